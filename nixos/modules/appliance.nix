# services.outpost: the Outpost appliance daemon as a hardened systemd service.
#
# The unit runs `outpost serve` as a dynamic user whose only writable directory is
# /var/lib/outpost and whose only capability is CAP_NET_BIND_SERVICE (for port 53).
# Secrets (admin token, join ticket, sync TLS key, TSIG keys) reach it through LoadCredential,
# never through the Nix store. Settings are rendered to /etc/outpost/outpost.toml,
# checked by `outpost check-config` when the system is built, and applied by a reload
# (SIGHUP), so a settings change does not restart the daemon. Declared plugins are
# installed through the admin API by a oneshot unit, outpost-plugins.service, once the
# daemon is ready.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    types
    literalExpression
    ;

  cfg = config.services.outpost;
  format = pkgs.formats.toml { };
  outpost = lib.getExe' cfg.package "outpost";

  stateDir = "/var/lib/outpost";
  configPath = "/etc/outpost/outpost.toml";
  # Where the ExecStartPre copy of the boot-partition file lives; see `bootstrap`.
  bootstrapCopy = "${stateDir}/bootstrap.toml";
  # systemd's $CREDENTIALS_DIRECTORY for this unit, spelled out for the config file.
  credentialsDir = "/run/credentials/outpost.service";

  # `IP:PORT` or `[IPv6]:PORT`. The daemon parses the address; here we only need the
  # port, for the firewall.
  listenAddress = types.strMatching ".*:[0-9]+";
  portOf = address: lib.toInt (builtins.head (builtins.match ".*:([0-9]+)" address));
  isLoopback = address: lib.hasPrefix "127." address || lib.hasPrefix "[::1]:" address;

  # dns.listen is one address or a list of them.
  dnsAddresses =
    if builtins.isList cfg.settings.dns.listen then cfg.settings.dns.listen else [ cfg.settings.dns.listen ];
  dnsPorts = lib.unique (map portOf dnsAddresses);
  adminPort = portOf cfg.settings.admin.listen;
  syncPort = portOf cfg.settings.sync.listen;
  # DNS over TLS and HTTPS (TCP) and over QUIC (UDP), each when configured.
  optionalPort = address: lib.optional (address != null) (portOf address);
  encryptedTcpPorts = optionalPort cfg.settings.dns.tls_listen ++ optionalPort cfg.settings.dns.https_listen;
  encryptedUdpPorts = optionalPort cfg.settings.dns.quic_listen;
  # Null when the node has no Raft endpoint (it runs alone).
  raftAddress = cfg.settings.cluster.raft;
  raftPort = if raftAddress == null then null else portOf raftAddress;
  # Null when the node serves no export (docs/iroh-docs.md); a freeform section.
  exportAddress = (cfg.settings.export or { }).listen or null;
  exportPort = if exportAddress == null then null else portOf exportAddress;
  isWildcard = address: lib.hasPrefix "0.0.0.0:" address || lib.hasPrefix "[::]:" address;
  # Where a raft address can come from besides the Nix settings: a flag, or the site
  # file that replaces the settings under `bootstrap`.
  raftElsewhere =
    cfg.bootstrap.enable || builtins.any (arg: arg == "--raft" || lib.hasPrefix "--raft=" arg) cfg.extraArgs;

  # The settings a running daemon cannot apply (README, "Signals, reload and systemd"):
  # a reload would keep their old value, so a change of one restarts the unit.
  startOnlySettings = builtins.toJSON [
    cfg.settings.dns.listen
    cfg.settings.dns.udp_workers
    cfg.settings.dns.tls_listen
    cfg.settings.dns.https_listen
    cfg.settings.dns.quic_listen
    cfg.settings.admin.listen
    cfg.settings.sync
    (cfg.settings.allow_root or null)
    cfg.settings.cluster.raft
    cfg.settings.plugins
  ];

  # Null means "the daemon's default", so such keys are left out of the file (in the
  # entries of forward.zones too, which filterAttrsRecursive does not enter: a list).
  withoutNulls = lib.filterAttrsRecursive (_: value: value != null);
  renderedSettings = withoutNulls (
    cfg.settings
    // {
      forward =
        cfg.settings.forward
        // lib.optionalAttrs (cfg.settings.forward.zones != null) {
          zones = map withoutNulls cfg.settings.forward.zones;
        };
    }
    // lib.optionalAttrs (transferKeys != [ ]) {
      transfer = (cfg.settings.transfer or { }) // {
        keys = transferKeys;
      };
    }
  );
  configFile = format.generate "outpost.toml" renderedSettings;
  # `check-config` opens the sync and DNS TLS files, which exist only on the running
  # machine (the key is a credential): the build checks everything else.
  buildCheckFile = format.generate "outpost-build-check.toml" (
    renderedSettings
    // lib.optionalAttrs (renderedSettings ? sync) {
      sync = builtins.removeAttrs renderedSettings.sync [
        "tls_cert"
        "tls_key"
      ];
    }
    // lib.optionalAttrs (renderedSettings ? dns) {
      dns = builtins.removeAttrs renderedSettings.dns [
        "tls_cert"
        "tls_key"
      ];
    }
    # The secret files are credentials too: the build checks the rest of each key
    # with a stand-in secret.
    // lib.optionalAttrs (transferKeys != [ ]) {
      transfer = renderedSettings.transfer // {
        keys = map (
          key:
          builtins.removeAttrs key [ "secret_file" ]
          // {
            secret = "YnVpbGQtdGltZSBzdGFuZC1pbg==";
          }
        ) transferKeys;
      };
    }
  );
  # The package cannot run on the build machine when cross-compiling an image.
  canRunPackage = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
  checkedConfigFile =
    if cfg.checkConfig && canRunPackage then
      pkgs.runCommand "outpost-checked.toml" { passthru = { inherit configFile buildCheckFile; }; } ''
        ${outpost} check-config ${buildCheckFile}
        cp ${configFile} $out
      ''
    else
      configFile;

  secretOptions = {
    adminTokenFile = "admin.token";
    joinTicketFile = "join-ticket";
    syncTlsKeyFile = "sync-tls.key";
  };
  # LoadCredential entries: systemd reads each file as root and hands the unit a
  # private copy under $CREDENTIALS_DIRECTORY.
  credentials =
    lib.concatLists (
      lib.mapAttrsToList (
        option: id: lib.optional (cfg.${option} != null) "${id}:${cfg.${option}}"
      ) secretOptions
    )
    ++ lib.mapAttrsToList (name: key: "tsig-${name}:${key.secretFile}") cfg.transferKeys;
  # `[[transfer.keys]]`: those of the settings, then one per transferKeys entry, its
  # secret read from the credential.
  transferKeys =
    (cfg.settings.transfer.keys or [ ])
    ++ lib.mapAttrsToList (name: key: {
      inherit name;
      inherit (key) algorithm;
      secret_file = "${credentialsDir}/tsig-${name}";
    }) cfg.transferKeys;

  serveArgs = [
    "serve"
    "--data-dir"
    stateDir
    "--log"
    cfg.logLevel
  ]
  # A ticket is a secret, so it travels as a file, not in argv. The daemon ignores it
  # once its data directory is a cluster member, so it may stay on every start.
  ++ lib.optionals (cfg.joinTicketFile != null) [
    "--join-file"
    "${credentialsDir}/join-ticket"
  ]
  ++ cfg.extraArgs;

  # Root (the "+" prefix), before the daemon: takes the boot-partition file once.
  bootstrapScript = pkgs.writeShellScript "outpost-bootstrap" ''
    set -eu
    source=${lib.escapeShellArg cfg.bootstrap.file}
    [ -f "$source" ] || exit 0
    if report=$(${outpost} check-config "$source" 2>&1); then
      # Root-owned and readable inside the 0700 state directory of the dynamic user:
      # only root and the daemon can reach it.
      cp "$source" ${bootstrapCopy}.new
      chmod 0644 ${bootstrapCopy}.new
      mv ${bootstrapCopy}.new ${bootstrapCopy}
      echo "outpost-bootstrap: $source now replaces ${configPath}"
      # Removed so that it applies once, and because later files may carry secrets.
      rm -f "$source" || echo "outpost-bootstrap: cannot remove $source, remove it by hand" >&2
    else
      echo "outpost-bootstrap: $source refused, keeping the current settings: $report" >&2
      mv "$source" "$source.rejected" || true
      echo "$report" > "$(dirname "$source")/outpost-bootstrap.error" || true
    fi
  '';

  # The dynamic user, before the daemon: the daemon reads its token from the data dir.
  installAdminToken = pkgs.writeShellScript "outpost-install-admin-token" ''
    set -eu
    # UMask=0077 makes the copy 0600, as the daemon wants its token file.
    cat "$CREDENTIALS_DIRECTORY/admin.token" > ${stateDir}/admin.token.new
    mv ${stateDir}/admin.token.new ${stateDir}/admin.token
  '';

  # With bootstrap on, a copied site file replaces the Nix-rendered settings as a
  # whole (flags still pin the data directory).
  startScript = pkgs.writeShellScript "outpost-start" ''
    config=${configPath}
    if [ -f ${bootstrapCopy} ]; then config=${bootstrapCopy}; fi
    exec ${outpost} ${lib.escapeShellArgs serveArgs} --config "$config"
  '';
  execStart =
    if cfg.bootstrap.enable then
      "${startScript}"
    else
      "${outpost} ${lib.escapeShellArgs serveArgs} --config ${configPath}";

  # The mount unit of the boot partition ("/boot" is boot.mount), for ordering.
  bootMountUnit =
    let
      directory = lib.removePrefix "/" (dirOf cfg.bootstrap.file);
    in
    if directory == "" then "-.mount" else "${lib.replaceStrings [ "/" ] [ "-" ] directory}.mount";

  # ---- Plugins: `outpost plugin install` for each declared one ----

  # The admin API as the CLI dials it: a wildcard listen address is reached on loopback.
  adminDialAddress =
    let
      listen = cfg.settings.admin.listen;
    in
    if lib.hasPrefix "0.0.0.0:" listen then
      "127.0.0.1:${toString adminPort}"
    else if lib.hasPrefix "[::]:" listen then
      "[::1]:${toString adminPort}"
    else
      listen;
  # The plugins unit gets the daemon's token as a credential (systemd reads it as root),
  # and `--data-dir` points the CLI at it: the CLI reads `<data-dir>/admin.token`.
  pluginsCredentialsDir = "/run/credentials/outpost-plugins.service";
  # Same rule as the daemon (check_plugin_name in core/src/zones/plugins.rs).
  validPluginName = name: builtins.match "[a-z0-9_-]{1,64}" name != null;

  pluginConfigFile =
    name: plugin:
    if plugin.configText != null then
      pkgs.writeText "outpost-plugin-${name}.conf" plugin.configText
    else
      plugin.configFile;
  # Interpolated, so that a Nix path literal is copied to the store and named there.
  pluginInstallArgs =
    name: plugin:
    let
      configFile = pluginConfigFile name plugin;
    in
    [
      "plugin"
      "install"
      "${plugin.component}"
      "--name"
      name
      "--hook"
      plugin.hook
      "--order"
      (toString plugin.order)
      "--on-error"
      plugin.onError
    ]
    ++ lib.optionals (configFile != null) [
      "--config-file"
      "${configFile}"
    ]
    ++ lib.optional (!plugin.enable) "--disabled"
    ++ [
      "--admin"
      adminDialAddress
      "--data-dir"
      pluginsCredentialsDir
    ];

  # The plugins unit's `script` (NixOS runs it with `sh -e`). Every plugin is tried;
  # the unit fails at the end if the daemon refused any, and the CLI's message for each
  # is in the journal just above.
  installPluginsScript = ''
    refused=""
    ${lib.concatStringsSep "\n" (
      lib.mapAttrsToList (
        name: plugin: "${outpost} ${lib.escapeShellArgs (pluginInstallArgs name plugin)} || refused=\"$refused ${name}\""
      ) cfg.plugins
    )}
    if [ -n "$refused" ]; then
      echo "outpost-plugins: not installed:$refused (the reasons are above; fix services.outpost.plugins)" >&2
      exit 1
    fi
  '';

  pluginOptions = {
    options = {
      component = mkOption {
        type = types.path;
        example = literalExpression ''"''${outpost.packages.''${system}.plugins}/lib/outpost/plugins/outpost_plugin_blocklist.wasm"'';
        description = "The plugin: a WebAssembly component (`.wasm`) built for its hook's world.";
      };
      hook = mkOption {
        type = types.enum [
          "query-policy"
          "record-transform"
        ];
        description = "The world the component was built for (`--hook`).";
      };
      # Not `config`: a submodule definition with a `config` key is read as a module.
      configText = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "ads.example.com.\ntracker.example.net.\n";
        description = ''
          The configuration the plugin's `init` receives, as text (written to the Nix
          store). Not a secret in any case: every node and Lite client receives it.
          Set this or {option}`configFile`, not both; neither means an empty
          configuration.
        '';
      };
      configFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = ''
          File whose bytes the plugin's `init` receives (`--config-file`). The unit
          reads it as an unprivileged dynamic user: a store path (a Nix path literal
          is copied there) always works, a file elsewhere must be readable by every
          user and outside /home.
        '';
      };
      order = mkOption {
        type = types.ints.between (-2147483648) 2147483647;
        default = 0;
        description = "Plugins of a hook run in ascending order (`--order`).";
      };
      onError = mkOption {
        type = types.enum [
          "fail-open"
          "fail-closed"
        ];
        default = "fail-open";
        description = ''
          What a failing plugin means (`--on-error`): `fail-open` carries on as if it
          allowed, `fail-closed` answers SERVFAIL (query-policy) or refuses the write
          (record-transform).
        '';
      };
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Run the plugin; false installs it switched off (`--disabled`).";
      };
    };
  };

  nullOrInt = type: description: mkOption {
    type = types.nullOr type;
    default = null;
    inherit description;
  };

  # The sandbox both units share; each adds its capabilities, write-execute rule and
  # address families.
  sandbox = {
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectHostname = true;
    ProtectClock = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    LockPersonality = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    RemoveIPC = true;
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    SystemCallErrorNumber = "EPERM";
    SystemCallArchitectures = "native";
  };
in
{
  options.services.outpost = {
    enable = mkEnableOption "the Outpost edge DNS appliance";

    package = lib.mkPackageOption pkgs "outpost" { };

    settings = mkOption {
      default = { };
      description = ''
        Contents of {file}`/etc/outpost/outpost.toml` (see the README's
        Configuration section). Keys set to `null` are left out, so the daemon's
        default applies. Keys not declared here are passed through as written;
        `outpost check-config` refuses unknown ones when the system is built.
        `data_dir` is not a setting here: the unit passes
        `--data-dir /var/lib/outpost`, its only writable directory.
      '';
      example = literalExpression ''
        {
          dns.allow_recursion = [ "10.20.0.0/16" ];
          dns.rate_limit = { responses_per_second = 20; slip = 2; };
          forward.upstreams = [ "10.20.0.1" "tcp://9.9.9.9:53" ];
          sync.listen = "0.0.0.0:8054";
        }
      '';
      type = types.submodule {
        freeformType = format.type;
        options = {
          example_zone = mkOption {
            type = types.nullOr types.bool;
            default = null;
            description = "Create the `example.internal.` zone on first start (daemon default: true).";
          };
          dns = {
            listen = mkOption {
              type = types.either listenAddress (types.nonEmptyListOf listenAddress);
              default = "0.0.0.0:53";
              example = [
                "10.20.0.2:53"
                "[fd00:20::2]:53"
              ];
              description = "DNS address, UDP and TCP (`IP:PORT`), or a list of them (several interfaces, IPv4 and IPv6).";
            };
            allow_recursion = mkOption {
              type = types.nullOr (types.listOf types.str);
              default = null;
              example = [ "10.0.0.0/8" ];
              description = "Networks (CIDR) whose clients may use the forwarder (daemon default: loopback and private ranges).";
            };
            udp_workers = nullOrInt (types.ints.between 1 64) "UDP worker threads, each with its own socket on the DNS port (daemon default: one per core; changed by a restart, not a reload).";
            tls_listen = mkOption {
              type = types.nullOr listenAddress;
              default = null;
              example = "0.0.0.0:853";
              description = "DNS over TLS (RFC 7858) address; off when null.";
            };
            https_listen = mkOption {
              type = types.nullOr listenAddress;
              default = null;
              example = "0.0.0.0:443";
              description = "DNS over HTTPS (RFC 8484, HTTP/2, path `/dns-query`) address; off when null.";
            };
            quic_listen = mkOption {
              type = types.nullOr listenAddress;
              default = null;
              example = "0.0.0.0:853";
              description = "DNS over QUIC (RFC 9250) address (UDP); off when null.";
            };
            tls_cert = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "Certificate chain (PEM) of the encrypted DNS listeners, re-read on reload; null: a self-signed one made in the data directory (its SHA-256 pin is logged).";
            };
            tls_key = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "Private key (PEM) of `tls_cert`: a path on the machine, not a store path (the store is world-readable).";
            };
          };
          admin.listen = mkOption {
            type = listenAddress;
            default = "127.0.0.1:8053";
            description = "Admin API address. Keep it on loopback unless the admin network is trusted.";
          };
          sync = {
            listen = mkOption {
              type = listenAddress;
              default = "127.0.0.1:8054";
              description = "Lite sync (WebSocket) address; use `0.0.0.0:8054` to serve laptops on the LAN.";
            };
            tls_cert = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "Certificate (PEM) of the sync endpoint. Not secret, so a store path is fine.";
            };
            tls_key = mkOption {
              type = types.nullOr types.str;
              default = if cfg.syncTlsKeyFile != null then "${credentialsDir}/sync-tls.key" else null;
              defaultText = literalExpression ''if syncTlsKeyFile != null then "${credentialsDir}/sync-tls.key" else null'';
              description = "Private key of the sync endpoint. Set {option}`services.outpost.syncTlsKeyFile` instead of this.";
            };
            history_entries = nullOrInt (types.ints.between 0 100000000) "Log indexes of change history kept for Lite clients to resume from (daemon default: 100000).";
          };
          forward = {
            upstreams = mkOption {
              type = types.nullOr (types.listOf types.str);
              default = null;
              example = [
                "10.0.0.1"
                "tcp://10.0.0.2:53"
                "tls://9.9.9.9:853#dns.quad9.net"
                "https://9.9.9.9/dns-query#dns.quad9.net"
              ];
              description = ''
                Upstream resolvers: `IP`, `IP:PORT`, `tcp://IP:PORT`, DNS over TLS
                `tls://IP:PORT#NAME` or DNS over HTTPS `https://HOST[:PORT]/PATH[#NAME]`
                (`NAME`: what the certificate must name). A DoH host written as a name is
                looked up through the system's resolver: where outpost is that resolver,
                write the IP and `#NAME`. Daemon default: the nameservers of /etc/resolv.conf.
              '';
            };
            tls_ca_file = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "PEM CA certificates that DoT and DoH upstreams may chain to, besides the system's (another outpost's `dns-tls.pem`, a site CA).";
            };
            timeout_ms = nullOrInt (types.ints.between 10 30000) "Per-upstream timeout in milliseconds (daemon default: 1500).";
            cache_entries = nullOrInt (types.ints.between 0 10000000) "Answer cache bound in entries (daemon default: 10000).";
            serve_stale_secs = nullOrInt types.ints.unsigned "RFC 8767 serve-stale window in seconds (daemon default: 86400).";
            zones = mkOption {
              type = types.nullOr (
                types.listOf (
                  types.submodule {
                    options = {
                      name = mkOption {
                        type = types.str;
                        example = "corp.example.";
                        description = "The domain, absolute (with its final dot).";
                      };
                      upstreams = mkOption {
                        type = types.nonEmptyListOf types.str;
                        example = [ "10.0.0.53" ];
                        description = "Its upstreams, in the forms of `forward.upstreams`.";
                      };
                      cache_entries = nullOrInt (types.ints.between 0 10000000) "Its answer cache bound in entries (daemon default: 1000).";
                      serve_stale_secs = nullOrInt types.ints.unsigned "Its serve-stale window (daemon default: the section's).";
                    };
                  }
                )
              );
              default = null;
              description = ''
                Conditional forwarding (`[[forward.zones]]`): names under each domain go to
                its own upstreams, with a cache of its own; the longest domain wins and a
                zone of ours always wins. Private reverse zones (RFC 6303) are answered
                locally unless an entry covers them.
              '';
            };
          };
          plugins = {
            policy_deadline_ms = nullOrInt (types.ints.between 1 1000) "How long a query-policy plugin's decide may run before it is cut off, in milliseconds (daemon default: 2; changed by a restart, not a reload).";
            transform_deadline_ms = nullOrInt (types.ints.between 1 60000) "How long a record-transform plugin's transform may run before it is cut off, in milliseconds (daemon default: 2000; changed by a restart, not a reload).";
          };
          cluster.raft = mkOption {
            type = types.nullOr listenAddress;
            default = null;
            example = "10.20.0.2:7400";
            description = ''
              The node's Raft endpoint (iroh, QUIC over UDP): the address the other
              appliances dial, so an address of this machine, never `0.0.0.0` or `[::]`.
              Port 0 takes any free port (named in
              {file}`/var/lib/outpost/addresses.json`), which
              {option}`openRaftFirewall` cannot open. Null (the daemon's default): no
              Raft endpoint; the node runs alone and can neither invite nor join. See
              {file}`docs/cluster.md`.
            '';
          };
        };
      };
    };

    checkConfig = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Validate the rendered settings with `outpost check-config` when the system is
        built. Skipped automatically when cross-compiling (the package cannot run on
        the build machine).
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the DNS port of `settings.dns.listen` (UDP and TCP), and those of the encrypted listeners that are set (`tls_listen` and `https_listen` TCP, `quic_listen` UDP).";
    };
    openAdminFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the admin API port of `settings.admin.listen` (TCP). The API is protected by the bearer token only.";
    };
    openSyncFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the Lite sync port of `settings.sync.listen` (TCP).";
    };
    openRaftFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the Raft port of `settings.cluster.raft` (UDP), which the other
        appliances of the cluster dial. The endpoint serves only cluster members and
        holders of a valid join ticket.
      '';
    };

    openExportFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the export endpoint's port of `settings.export.listen` (UDP), which
        satellites and Lite clients holding an export ticket dial (docs/iroh-docs.md).
      '';
    };

    adminTokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/outpost-admin-token";
      description = ''
        File holding the admin bearer token, loaded with `LoadCredential` and copied to
        {file}`/var/lib/outpost/admin.token` at every start (so changing the file and
        restarting rotates the token). Must not be in the Nix store. When null, the
        daemon creates a random token on first start.
      '';
    };
    joinTicketFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/keys/outpost-join-ticket";
      description = ''
        File holding a cluster join ticket (the last line printed by `outpost
        cluster invite` on a member), loaded with `LoadCredential` and passed as
        `--join-file`. Needs `settings.cluster.raft`. Must not be in the Nix store.
        A node whose data directory is already a cluster member ignores the ticket,
        so the option may stay set; the unit does not start while it names a
        missing file, so unset it before deleting the file. Leave it null on the
        first node: it starts a cluster of one. See {file}`docs/cluster.md`.
      '';
    };
    syncTlsKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = ''
        Private key (PEM) of the Lite sync endpoint, loaded with `LoadCredential`;
        `settings.sync.tls_key` then points at the credential. Must not be in the
        Nix store.
      '';
    };
    transferKeys = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            secretFile = mkOption {
              type = types.str;
              example = "/run/secrets/hq-secondary.tsig";
              description = "File holding the key's base64 secret (as `keymgr -t` or `tsig-keygen` print it), loaded with `LoadCredential`. Must not be in the Nix store.";
            };
            algorithm = mkOption {
              type = types.enum [
                "hmac-sha256"
                "hmac-sha384"
                "hmac-sha512"
              ];
              default = "hmac-sha256";
              description = "The key's HMAC.";
            };
          };
        }
      );
      default = { };
      example = literalExpression ''{ "hq-secondary." = { secretFile = "/run/secrets/hq-secondary.tsig"; }; }'';
      description = ''
        TSIG keys for zone transfers (`[[transfer.keys]]`, {file}`docs/transfers.md`), by
        key name: each secret reaches the daemon as a credential, never through the Nix
        store. Name the key in a `settings.transfer.secondaries` entry's `key`.
      '';
    };
    environmentFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "systemd `EnvironmentFile` for the daemon (for example `RUST_LOG=...`).";
    };

    plugins = mkOption {
      type = types.attrsOf (types.submodule pluginOptions);
      default = { };
      example = literalExpression ''
        {
          ads = {
            component = "''${outpost.packages.''${system}.plugins}/lib/outpost/plugins/outpost_plugin_blocklist.wasm";
            hook = "query-policy";
            configFile = ./blocked-domains.txt;
            order = 10;
            onError = "fail-closed";
          };
        }
      '';
      description = ''
        WebAssembly plugins to install into the cluster, by name (1 to 64 of a-z,
        0-9, `-` and `_`). Plugins live in the cluster's replicated state, not on
        this machine: a oneshot unit, `outpost-plugins.service`, runs `outpost plugin
        install` for each one through the admin API (`settings.admin.listen`, a
        wildcard address dialled on loopback, with the daemon's token) after
        `outpost.service` is ready. A separate unit rather than `ExecStartPost`, so
        that a refused plugin fails that unit (its journal has the CLI's message,
        and `nixos-rebuild switch` names it) while DNS keeps serving. It runs again
        when the declaration changes and whenever `outpost.service` starts or
        restarts; installing exactly what is installed is a no-op, so this is safe
        on every start and on every node of a cluster.

        Declared plugins win: a declared plugin changed by hand is put back at the
        next run. Plugins installed by hand and not declared are left alone, and so
        is a plugin removed from this set: remove it with `outpost plugin rm NAME
        --data-dir /var/lib/outpost`. With {option}`bootstrap.enable`, keep the
        site file's `admin.listen` equal to the Nix setting, or the unit cannot
        reach the daemon.
      '';
    };

    logLevel = mkOption {
      type = types.str;
      default = "info";
      example = "info,outpost_appliance=debug";
      description = "Log filter passed as `--log` (`RUST_LOG` in `environmentFile` overrides it).";
    };
    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra arguments for `outpost serve`.";
    };

    bootstrap = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Take site settings from a file on the boot partition, so that one image
          serves many sites. Before each start, if {option}`bootstrap.file` exists
          and `outpost check-config` accepts it, it is copied to
          {file}`/var/lib/outpost/bootstrap.toml` and removed from the boot partition;
          from then on that copy replaces the Nix-rendered settings as a whole (delete
          it to return to them). A refused file is renamed `*.rejected`, the error is
          written beside it as {file}`outpost-bootstrap.error`, and the daemon keeps
          its current settings. The firewall options still follow the Nix settings.
        '';
      };
      file = mkOption {
        type = types.strMatching "/.+";
        default = "/boot/outpost-bootstrap.toml";
        description = "The file on the boot partition (FAT, writable from any laptop).";
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = (cfg.settings.sync.tls_cert == null) == (cfg.settings.sync.tls_key == null);
        message = "services.outpost: set both settings.sync.tls_cert and syncTlsKeyFile (wss://), or neither (ws://)";
      }
      {
        assertion =
          isLoopback cfg.settings.sync.listen
          || cfg.settings.sync.tls_cert != null
          || (cfg.settings.sync.insecure_plaintext or false);
        message = "services.outpost: settings.sync.listen (${cfg.settings.sync.listen}) is not a loopback address: give the endpoint TLS (settings.sync.tls_cert and syncTlsKeyFile), or set settings.sync.insecure_plaintext = true to send Lite tokens in the clear";
      }
      {
        assertion = isLoopback cfg.settings.admin.listen || (cfg.settings.admin.insecure_plaintext or false);
        message = "services.outpost: settings.admin.listen (${cfg.settings.admin.listen}) is not a loopback address, and the admin API has no TLS: keep it on loopback (reach it over SSH), or set settings.admin.insecure_plaintext = true to send its token in the clear";
      }
      {
        assertion = builtins.all (key: !(key ? secret)) (cfg.settings.transfer.keys or [ ]);
        message = "services.outpost.settings.transfer.keys: a secret written here lands in the world-readable Nix store; use services.outpost.transferKeys.<name>.secretFile";
      }
      {
        assertion = builtins.all (name: builtins.match "[A-Za-z0-9._-]+" name != null) (
          builtins.attrNames cfg.transferKeys
        );
        message = "services.outpost.transferKeys: a key name is letters, digits, '.', '-' and '_' (it names the key's credential file)";
      }
      {
        assertion = !(cfg.settings ? data_dir);
        message = "services.outpost.settings.data_dir: the unit always uses /var/lib/outpost (its StateDirectory); remove the key";
      }
      {
        assertion = raftAddress == null || !(isWildcard raftAddress);
        message = "services.outpost.settings.cluster.raft (${toString raftAddress}) is a wildcard address; give the address the other appliances dial (for example 10.20.0.2:${toString raftPort})";
      }
      {
        assertion = cfg.joinTicketFile == null || raftAddress != null || raftElsewhere;
        message = "services.outpost.joinTicketFile: a node joins over its Raft endpoint; set services.outpost.settings.cluster.raft to the address the other appliances dial (for example \"10.20.0.3:7400\")";
      }
      {
        assertion = !(cfg.settings.cluster ? join_file);
        message = "services.outpost.settings.cluster.join_file: set services.outpost.joinTicketFile instead, which hands the ticket to the sandboxed daemon as a credential";
      }
      {
        assertion = !cfg.openRaftFirewall || raftAddress != null;
        message = "services.outpost.openRaftFirewall: set services.outpost.settings.cluster.raft, whose port it opens";
      }
      {
        assertion = !cfg.openRaftFirewall || raftPort != 0;
        message = "services.outpost.openRaftFirewall: settings.cluster.raft (${toString raftAddress}) takes any free port, which the firewall cannot open; give a fixed port (for example 7400)";
      }
    ]
    ++ lib.mapAttrsToList (option: _: {
      assertion = cfg.${option} == null || !lib.hasPrefix builtins.storeDir cfg.${option};
      message = "services.outpost.${option}: ${toString cfg.${option}} is in the Nix store, which every local user can read; use a path outside it (for example under /run/secrets)";
    }) secretOptions
    ++ lib.mapAttrsToList (name: key: {
      assertion = !lib.hasPrefix builtins.storeDir key.secretFile;
      message = "services.outpost.transferKeys.\"${name}\".secretFile: ${key.secretFile} is in the Nix store, which every local user can read; use a path outside it (for example under /run/secrets)";
    }) cfg.transferKeys
    ++ lib.concatLists (
      lib.mapAttrsToList (name: plugin: [
        {
          assertion = validPluginName name;
          message = "services.outpost.plugins.\"${name}\": not a valid plugin name (use 1 to 64 of a-z, 0-9, '-' and '_')";
        }
        {
          assertion = plugin.configText == null || plugin.configFile == null;
          message = "services.outpost.plugins.${name}: set configText or configFile, not both";
        }
      ]) cfg.plugins
    );

    warnings =
      lib.optional (cfg.openFirewall && lib.all isLoopback dnsAddresses)
        "services.outpost.openFirewall opens port ${lib.concatMapStringsSep ", " toString dnsPorts}, but settings.dns.listen (${lib.concatStringsSep ", " dnsAddresses}) is only loopback addresses"
      ++ lib.optional (cfg.openAdminFirewall && isLoopback cfg.settings.admin.listen)
        "services.outpost.openAdminFirewall opens port ${toString adminPort}, but settings.admin.listen (${cfg.settings.admin.listen}) is a loopback address"
      ++ lib.optional (cfg.openSyncFirewall && isLoopback cfg.settings.sync.listen)
        "services.outpost.openSyncFirewall opens port ${toString syncPort}, but settings.sync.listen (${cfg.settings.sync.listen}) is a loopback address"
      ++ lib.optional (cfg.openRaftFirewall && raftAddress != null && isLoopback raftAddress)
        "services.outpost.openRaftFirewall opens port ${toString raftPort}, but settings.cluster.raft (${raftAddress}) is a loopback address";

    environment.etc."outpost/outpost.toml".source = checkedConfigFile;
    # The admin CLI: `outpost record list site.internal. --data-dir /var/lib/outpost`
    environment.systemPackages = [ cfg.package ];

    networking.firewall = mkMerge [
      (mkIf cfg.openFirewall {
        allowedUDPPorts = dnsPorts ++ encryptedUdpPorts;
        allowedTCPPorts = dnsPorts ++ encryptedTcpPorts;
      })
      (mkIf cfg.openAdminFirewall { allowedTCPPorts = [ adminPort ]; })
      (mkIf cfg.openSyncFirewall { allowedTCPPorts = [ syncPort ]; })
      # Without an address the assertions above fail; the guard keeps a null port out.
      (mkIf (cfg.openRaftFirewall && raftPort != null) { allowedUDPPorts = [ raftPort ]; })
      (mkIf (cfg.openExportFirewall && exportPort != null) { allowedUDPPorts = [ exportPort ]; })
    ];

    systemd.services.outpost = {
      description = "Outpost edge DNS appliance";
      wantedBy = [ "multi-user.target" ];
      # Binding a specific address needs it configured; a DNS server precedes lookups.
      wants = [
        "network-online.target"
        "nss-lookup.target"
      ]
      ++ lib.optional cfg.bootstrap.enable bootMountUnit;
      after = [ "network-online.target" ] ++ lib.optional cfg.bootstrap.enable bootMountUnit;
      before = [ "nss-lookup.target" ];
      # The unit names /etc/outpost/outpost.toml, not its store path, so a settings
      # change reloads (SIGHUP) instead of restarting; a new package restarts, and so
      # does a change of a setting read only at start (a new Raft address, say).
      reloadTriggers = [ checkedConfigFile ];
      restartTriggers = [ startOnlySettings ];
      # Restart in one step on upgrades: the DNS gap is the restart, not the activation.
      stopIfChanged = false;

      serviceConfig = sandbox // {
        Type = "notify";
        ExecStartPre =
          # "+": as root, to read and remove the boot-partition file; "-": a failure
          # there never keeps DNS down.
          lib.optional cfg.bootstrap.enable "-+${bootstrapScript}"
          ++ lib.optional (cfg.adminTokenFile != null) "${installAdminToken}";
        ExecStart = execStart;
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        Restart = "on-failure";
        RestartSec = "2s";
        # The daemon sends WATCHDOG=1 every WATCHDOG_USEC / 2.
        WatchdogSec = "30s";
        # The daemon drains for at most 5 s (node::DRAIN_DEADLINE), then shuts Raft
        # down and closes redb.
        TimeoutStopSec = "20s";
        # A joiner reports ready only once it has joined: up to 2 min of asking the
        # ticket's nodes (store::join::JOIN_DEADLINE), then catching up from the log or a
        # snapshot. Past systemd's default 90 s it would be killed and start over.
        TimeoutStartSec = mkIf (cfg.joinTicketFile != null) "5min";
        LoadCredential = credentials;
        EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;

        DynamicUser = true;
        StateDirectory = "outpost";
        StateDirectoryMode = "0700";
        WorkingDirectory = stateDir;
        UMask = "0077";
        # Up to 1024 forwarded queries each on a fresh UDP socket, 256 TCP clients.
        LimitNOFILE = 8192;

        # Port 53, and nothing else.
        AmbientCapabilities = [ "CAP_NET_BIND_SERVICE" ];
        CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" ];
        NoNewPrivileges = true;
        # A user namespace would make the capability useless in the host's network
        # namespace, so no PrivateUsers.
        PrivateUsers = false;

        # False: plugins (installed at run time with `outpost plugin install`) are
        # compiled by wasmtime, which maps the compiled code executable.
        MemoryDenyWriteExecute = false;
        # INET and INET6 for DNS, the admin API, Lite sync and Raft (QUIC over UDP);
        # UNIX for NOTIFY_SOCKET; NETLINK for interface enumeration (iroh).
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
          "AF_NETLINK"
        ];
      };
    };

    # See the `plugins` option for why a unit of its own.
    systemd.services.outpost-plugins = mkIf (cfg.plugins != { }) {
      description = "Install the declared Outpost plugins";
      # Started with the daemon (at boot, and by `systemctl start outpost`) and
      # restarted with it; `after` a Type=notify unit waits for READY=1.
      wantedBy = [
        "multi-user.target"
        "outpost.service"
      ];
      requires = [ "outpost.service" ];
      after = [ "outpost.service" ];
      partOf = [ "outpost.service" ];
      script = installPluginsScript;

      serviceConfig = sandbox // {
        Type = "oneshot";
        RemainAfterExit = true;
        # A large component is compiled and checked by the node before it answers.
        TimeoutStartSec = "5min";
        # The daemon's token, created by it or installed from adminTokenFile.
        LoadCredential = [ "admin.token:${stateDir}/admin.token" ];

        # The CLI reads files and speaks HTTP to the admin API; nothing more.
        DynamicUser = true;
        CapabilityBoundingSet = "";
        NoNewPrivileges = true;
        # The CLI sends the component's bytes; it compiles nothing.
        MemoryDenyWriteExecute = true;
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
      };
    };
  };
}
