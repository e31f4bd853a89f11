# services.outpost-lite: the Lite client on a laptop, answering the site's names from
# a local replica, on the site or away from it.
#
# Same hardening as the appliance. No capability at all unless it must bind port 53
# (see `resolver.enable`). The token reaches it through LoadCredential.
{
  config,
  options,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption mkEnableOption mkIf types;

  cfg = config.services.outpost-lite;
  resolved = config.services.resolved.enable;

  stateDir = "/var/lib/outpost-lite";
  port = lib.toInt (builtins.head (builtins.match ".*:([0-9]+)" cfg.listen));
  host = builtins.head (builtins.match "\\[?([^]]*)]?:[0-9]+" cfg.listen);
  bindsPrivilegedPort = port < 1024;
  # An upstream other than DoH, or DoH whose host is an IPv4 or [IPv6] address.
  dohHostIsAddress =
    upstream:
    !(lib.hasPrefix "https://" upstream)
    || builtins.match "https://([0-9.]+|\\[[0-9a-fA-F:.]+])([:/#].*)?" upstream != null;

  runArgs = [
    "run"
    "--dns"
    cfg.listen
    "--data-dir"
    stateDir
  ]
  ++ lib.concatMap (url: [
    "--appliance"
    url
  ]) cfg.appliances
  ++ lib.concatMap (upstream: [
    "--upstream"
    upstream
  ]) cfg.upstreams
  ++ lib.optionals (cfg.pin != null) [
    "--pin"
    cfg.pin
  ]
  ++ lib.optionals (cfg.caFile != null) [
    "--ca"
    cfg.caFile
  ]
  ++ lib.optionals (cfg.upstreamCaFile != null) [
    "--upstream-ca"
    cfg.upstreamCaFile
  ]
  ++ lib.optional cfg.insecurePlaintext "--insecure-plaintext"
  ++ [
    "--log"
    cfg.logLevel
  ]
  ++ cfg.extraArgs;

  # Until outpost-lite has `--token-file`, the token goes in its OUTPOST_LITE_TOKEN
  # variable (readable by the service's user and root only, unlike argv), read from
  # the credential at start. Then: `--token-file $CREDENTIALS_DIRECTORY/token`.
  startScript = pkgs.writeShellScript "outpost-lite-start" ''
    set -eu
    OUTPOST_LITE_TOKEN=$(cat "$CREDENTIALS_DIRECTORY/token")
    export OUTPOST_LITE_TOKEN
    exec ${lib.getExe' cfg.package "outpost-lite"} ${lib.escapeShellArgs runArgs}
  '';

  # resolved.conf `Domains=~.`: every name goes to our DNS= first. The option moved
  # to `settings` in newer nixpkgs; set whichever this nixpkgs has.
  resolvedRoutesEverything =
    if options.services.resolved ? settings then
      { services.resolved.settings.Resolve.Domains = [ "~." ]; }
    else
      { services.resolved.domains = [ "~." ]; };
in
{
  options.services.outpost-lite = {
    enable = mkEnableOption "the Outpost Lite client";

    package = lib.mkPackageOption pkgs "outpost-lite" { };

    appliances = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "wss://dns1.site.internal:8054"
        "wss://dns2.site.internal:8054"
      ];
      description = "Sync URLs of the site's appliances, tried in order.";
    };

    tokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/outpost-lite-token";
      description = ''
        File holding the Lite token (`outpost lite-token create`), loaded with
        `LoadCredential`. Must not be in the Nix store.
      '';
    };

    listen = mkOption {
      type = types.strMatching ".*:[0-9]+";
      default = if cfg.resolver.enable && !resolved then "127.0.0.1:53" else "127.0.0.1:5354";
      defaultText = lib.literalExpression ''
        if resolver.enable && !config.services.resolved.enable then "127.0.0.1:53" else "127.0.0.1:5354"'';
      description = "DNS address of the local resolver (`IP:PORT`, loopback).";
    };

    upstreams = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "9.9.9.9"
        "tcp://149.112.112.112:53"
      ];
      description = ''
        Resolvers for names outside the site's zones (`--upstream`: `IP`, `IP:PORT`,
        `tcp://IP:PORT`, `tls://IP:PORT#NAME` or `https://HOST[:PORT]/PATH[#NAME]`).
        Empty: the nameservers of /etc/resolv.conf, which is why `resolver.enable`
        requires this (and requires a DoH host to be an IP: a name would be looked up
        through the client itself).
      '';
    };

    upstreamCaFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "For tls:// and https:// upstreams: PEM CA certificates to trust besides the system's (`--upstream-ca`).";
    };

    pin = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "For wss://: SHA-256 fingerprint of the appliances' certificate (`--pin`; the appliance logs it at start).";
    };

    caFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "For wss://: PEM file of the CA certificates that sign the appliances' certificate (`--ca`).";
    };

    insecurePlaintext = mkOption {
      type = types.bool;
      default = false;
      description = "Allow `ws://` (no TLS) to an appliance on another machine (`--insecure-plaintext`): the token then crosses the network in the clear. Without it, such a URL is refused at start.";
    };

    logLevel = mkOption {
      type = types.str;
      default = "info";
      description = "Log filter passed as `--log`.";
    };

    resolver.enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Make the Lite client the laptop's resolver. With systemd-resolved enabled, it
        becomes resolved's global server (`DNS=127.0.0.1:5354`, `Domains=~.`) and
        keeps port 5354 and no capability. Without resolved, {file}`/etc/resolv.conf`
        cannot name a port, so it listens on `127.0.0.1:53` (with
        CAP_NET_BIND_SERVICE) and becomes the only nameserver.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra arguments for `outpost-lite run`.";
    };
  };

  config = mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = cfg.appliances != [ ];
            message = "services.outpost-lite.appliances: name at least one appliance sync URL";
          }
          {
            assertion = cfg.tokenFile != null;
            message = "services.outpost-lite.tokenFile: the Lite client needs a token file (`outpost lite-token create` prints one)";
          }
          {
            assertion = cfg.tokenFile == null || !lib.hasPrefix builtins.storeDir cfg.tokenFile;
            message = "services.outpost-lite.tokenFile: ${toString cfg.tokenFile} is in the Nix store, which every local user can read; use a path outside it";
          }
          {
            assertion = cfg.resolver.enable -> cfg.upstreams != [ ];
            message = "services.outpost-lite.upstreams: set them with resolver.enable, or the client would forward to itself (its default upstreams are the nameservers of resolv.conf)";
          }
          {
            assertion = cfg.resolver.enable -> lib.all dohHostIsAddress cfg.upstreams;
            message = "services.outpost-lite.upstreams: with resolver.enable, write a DoH upstream's host as an IP (https://IP/dns-query#NAME): a name would be looked up through the client itself";
          }
          {
            assertion = cfg.resolver.enable && !resolved -> port == 53;
            message = "services.outpost-lite.listen: ${cfg.listen} cannot be the system resolver without systemd-resolved (resolv.conf has no port); use port 53 or enable services.resolved";
          }
        ];

        # `sudo outpost-lite status --data-dir /var/lib/outpost-lite`.
        environment.systemPackages = [ cfg.package ];

        systemd.services.outpost-lite = {
          description = "Outpost Lite client";
          wantedBy = [ "multi-user.target" ];
          wants = [ "network-online.target" ];
          after = [ "network-online.target" ];
          before = lib.optional cfg.resolver.enable "nss-lookup.target";
          stopIfChanged = false;

          serviceConfig = {
            Type = "exec";
            ExecStart = "${startScript}";
            Restart = "on-failure";
            RestartSec = "2s";
            LoadCredential = lib.optional (cfg.tokenFile != null) "token:${cfg.tokenFile}";

            DynamicUser = true;
            StateDirectory = "outpost-lite";
            StateDirectoryMode = "0700";
            WorkingDirectory = stateDir;
            UMask = "0077";

            AmbientCapabilities = if bindsPrivilegedPort then [ "CAP_NET_BIND_SERVICE" ] else "";
            CapabilityBoundingSet = if bindsPrivilegedPort then [ "CAP_NET_BIND_SERVICE" ] else "";
            NoNewPrivileges = true;
            PrivateUsers = false;

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
            # False: the client runs the cluster's query-policy plugins, which
            # wasmtime compiles and maps executable.
            MemoryDenyWriteExecute = false;
            RestrictRealtime = true;
            RestrictSUIDSGID = true;
            RemoveIPC = true;
            RestrictAddressFamilies = [
              "AF_INET"
              "AF_INET6"
              "AF_UNIX"
              "AF_NETLINK"
            ];
            SystemCallFilter = [
              "@system-service"
              "~@privileged"
              "~@resources"
            ];
            SystemCallErrorNumber = "EPERM";
            SystemCallArchitectures = "native";
          };
        };
      }

      (mkIf (cfg.resolver.enable && resolved) (
        lib.recursiveUpdate { networking.nameservers = [ cfg.listen ]; } resolvedRoutesEverything
      ))
      (mkIf (cfg.resolver.enable && !resolved) { networking.nameservers = [ host ]; })
    ]
  );
}
