# Secrets reach the unit through LoadCredential only, never through the store, argv
# or the rendered settings; bootstrap from the boot partition.
{
  evalConfig ? import ./eval-config.nix { },
  extraModules ? [ ],
}:
let
  t = import ./testlib.nix;
  evalWith =
    outpost:
    evalConfig {
      config.services.outpost = {
        enable = true;
      }
      // outpost;
      inherit extraModules;
    };
  service = config: config.systemd.services.outpost.serviceConfig;
  text = config: toString (t.renderedConfig config);

  secrets = evalWith {
    adminTokenFile = "/run/secrets/outpost-admin-token";
    joinTicketFile = "/run/keys/outpost-join-ticket";
    syncTlsKeyFile = "/run/secrets/outpost-sync.key";
    settings.sync.tls_cert = "/etc/outpost/sync.pem";
    # A joiner needs a Raft endpoint (appliance-cluster.nix).
    settings.cluster.raft = "10.20.0.3:7400";
  };
  storeToken = evalWith { adminTokenFile = "${builtins.storeDir}/0000-token"; };
  tsig = evalWith {
    transferKeys."hq-secondary.".secretFile = "/run/secrets/hq.tsig";
    settings.transfer.secondaries = [
      {
        allow = [ "192.0.2.53" ];
        key = "hq-secondary.";
      }
    ];
  };
  inlineTsig = evalWith {
    settings.transfer.keys = [
      {
        name = "k.";
        secret = "c2VjcmV0";
      }
    ];
  };
  storeTsig = evalWith { transferKeys."k.".secretFile = "${builtins.storeDir}/0000-tsig"; };
  bootstrap = evalWith { bootstrap.enable = true; };
  bootstrapOnFirmware = evalWith {
    bootstrap = {
      enable = true;
      file = "/boot/firmware/outpost-bootstrap.toml";
    };
  };
in
t.all [
  (t.eq "each secret file is a credential" [
    "admin.token:/run/secrets/outpost-admin-token"
    "join-ticket:/run/keys/outpost-join-ticket"
    "sync-tls.key:/run/secrets/outpost-sync.key"
  ] (builtins.sort builtins.lessThan (service secrets).LoadCredential))
  (t.check "the admin token is installed before start" (
    builtins.any (command: builtins.match ".*outpost-install-admin-token" command != null) (service secrets).ExecStartPre
  ) "ExecStartPre: ${builtins.toJSON (service secrets).ExecStartPre}")
  (t.hasInfix "the join ticket is passed as a file" "--join-file /run/credentials/outpost.service/join-ticket" (service secrets).ExecStart)
  (t.lacksInfix "no secret path in argv" "/run/keys" (service secrets).ExecStart)
  (t.eq "the TLS key setting points at the credential" "/run/credentials/outpost.service/sync-tls.key"
    secrets.services.outpost.settings.sync.tls_key
  )
  (t.lacksInfix "no secret path in the rendered settings" "/run/secrets" (text secrets))
  (t.lacksInfix "the build-time check leaves out the TLS files" "tls_" (
    secrets.environment.etc."outpost/outpost.toml".source.buildCheckFile.text or ""
  ))
  (t.hasInfix "the build-time check runs on that file" "outpost-build-check.toml" (
    secrets.environment.etc."outpost/outpost.toml".source.buildCommand or ""
  ))
  (t.noFailedAssertions "secret files outside the store pass" secrets)
  (t.contains "a TSIG key is a credential" "tsig-hq-secondary.:/run/secrets/hq.tsig" (service tsig).LoadCredential)
  (t.hasInfix "the rendered key reads the credential" "/run/credentials/outpost.service/tsig-hq-secondary." (text tsig))
  (t.lacksInfix "no TSIG secret path in the rendered settings" "/run/secrets" (text tsig))
  (t.lacksInfix "the build-time check leaves out the TSIG files" "secret_file" (
    tsig.environment.etc."outpost/outpost.toml".source.buildCheckFile.text or ""
  ))
  (t.noFailedAssertions "a TSIG key from a file passes" tsig)
  (t.assertionFails "a TSIG secret written in the settings is refused" "world-readable Nix store" inlineTsig)
  (t.assertionFails "a TSIG secret file in the store is refused" "transferKeys" storeTsig)
  (t.assertionFails "a secret in the store is refused" "Nix store" storeToken)

  (t.check "bootstrap runs as root and may fail without stopping DNS" (
    builtins.match "-\\+.*outpost-bootstrap" (builtins.head (service bootstrap).ExecStartPre) != null
  ) "ExecStartPre: ${builtins.toJSON (service bootstrap).ExecStartPre}")
  (t.hasInfix "bootstrap starts through the wrapper" "outpost-start" (service bootstrap).ExecStart)
  (t.contains "bootstrap waits for /boot" "boot.mount" bootstrap.systemd.services.outpost.after)
  (t.contains "bootstrap waits for /boot/firmware" "boot-firmware.mount" bootstrapOnFirmware.systemd.services.outpost.wants)
  (t.eq "no bootstrap, no root step" [ ] (service (evalWith { })).ExecStartPre)
]
