# Settings files as the appliance module renders them (on the stubs), for
# scripts/check-nix.sh to hand to the real `outpost check-config`: the typed keys of
# the module must be keys the daemon accepts.
let
  t = import ./testlib.nix;
  evalConfig = import ./eval-config.nix { };
  render =
    outpost:
    t.renderedConfig (evalConfig {
      config.services.outpost = {
        enable = true;
      }
      // outpost;
    });
in
{
  defaults = render { };
  site = render {
    syncTlsKeyFile = "/run/secrets/outpost-sync.key";
    settings = {
      example_zone = false;
      dns = {
        listen = "[::]:53";
        allow_recursion = [
          "10.20.0.0/16"
          "fd00::/8"
        ];
      };
      admin = {
        listen = "0.0.0.0:8053";
        insecure_plaintext = true;
      };
      sync = {
        listen = "0.0.0.0:8054";
        tls_cert = "/etc/outpost/sync.pem";
        history_entries = 5000;
      };
      forward = {
        upstreams = [
          "10.20.0.1"
          "tcp://9.9.9.9:53"
        ];
        timeout_ms = 800;
        cache_entries = 50000;
        serve_stale_secs = 3600;
      };
      plugins.policy_deadline_ms = 20;
    };
  };
  # The primary of a secondary, its TSIG key a credential.
  transfer = render {
    transferKeys."hq-secondary.".secretFile = "/run/secrets/hq.tsig";
    settings.transfer.secondaries = [
      {
        zones = [ "site.internal." ];
        allow = [ "192.0.2.53" ];
        notify = [ "192.0.2.53" ];
        key = "hq-secondary.";
      }
    ];
  };
  # A member of a cluster. The join ticket is a flag (--join-file), not a setting.
  cluster = render {
    settings.cluster.raft = "10.20.0.2:7400";
    openRaftFirewall = true;
    joinTicketFile = "/run/keys/outpost-join-ticket";
  };
}
