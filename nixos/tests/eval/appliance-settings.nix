# Settings: rendered to TOML with null keys left out, checked by `outpost check-config`
# at build time, typed keys refusing bad values, freeform keys passed through; a change
# reloads the daemon, or restarts it for the keys it reads only at start.
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

  defaults = evalWith { };
  site = evalWith {
    settings = {
      example_zone = false;
      dns.allow_recursion = [ "10.20.0.0/16" ];
      # Freeform under a declared section: response rate limiting.
      dns.rate_limit.responses_per_second = 50;
      forward = {
        upstreams = [
          "10.20.0.1"
          "tcp://9.9.9.9:53"
        ];
        timeout_ms = 800;
        serve_stale_secs = 3600;
        zones = [
          {
            name = "corp.example.";
            upstreams = [ "10.0.0.53" ];
          }
        ];
      };
      sync.history_entries = 5000;
      cluster.raft = "10.20.0.2:7400";
      # Freeform: a key the module does not know goes through as written.
      future.option = "kept";
    };
  };
  unchecked = evalWith { checkConfig = false; };
  unit = config: config.systemd.services.outpost;
  newUpstreams = evalWith { settings.forward.upstreams = [ "10.20.0.9" ]; };
  newRaft = evalWith { settings.cluster.raft = "10.20.0.2:7400"; };
  newDnsListen = evalWith { settings.dns.listen = "10.20.0.2:53"; };

  source = config: config.environment.etc."outpost/outpost.toml".source;
  # Real nixpkgs renders TOML in a build: the text checks run on the stubs only.
  renderedAs =
    name: config: expected:
    let
      text = t.renderedConfig config;
    in
    if text == null then true else t.eq name expected (builtins.fromTOML text);
in
t.all [
  (renderedAs "defaults render the listen addresses and nothing else" defaults {
    dns.listen = "0.0.0.0:53";
    admin.listen = "127.0.0.1:8053";
    sync.listen = "127.0.0.1:8054";
    forward = { };
    cluster = { };
    plugins = { };
  })
  (renderedAs "site settings render as TOML" site {
    example_zone = false;
    dns = {
      listen = "0.0.0.0:53";
      allow_recursion = [ "10.20.0.0/16" ];
      rate_limit.responses_per_second = 50;
    };
    admin.listen = "127.0.0.1:8053";
    sync = {
      listen = "127.0.0.1:8054";
      history_entries = 5000;
    };
    forward = {
      upstreams = [
        "10.20.0.1"
        "tcp://9.9.9.9:53"
      ];
      timeout_ms = 800;
      serve_stale_secs = 3600;
      zones = [
        {
          name = "corp.example.";
          upstreams = [ "10.0.0.53" ];
        }
      ];
    };
    cluster.raft = "10.20.0.2:7400";
    plugins = { };
    future.option = "kept";
  })
  (t.eq "the freeform key is in the settings" "kept" site.services.outpost.settings.future.option)
  (t.check "a setting applied live reloads" (
    (unit newUpstreams).reloadTriggers != (unit defaults).reloadTriggers
    && (unit newUpstreams).restartTriggers == (unit defaults).restartTriggers
  ) "restartTriggers changed with forward.upstreams")
  (t.check "a new Raft address restarts" ((unit newRaft).restartTriggers != (unit defaults).restartTriggers)
    "restartTriggers unchanged with cluster.raft"
  )
  (t.check "a new DNS address restarts" ((unit newDnsListen).restartTriggers != (unit defaults).restartTriggers)
    "restartTriggers unchanged with dns.listen"
  )
  (t.hasInfix "the file is checked with the daemon at build time" "/bin/outpost check-config" ((source defaults).buildCommand or "(no build step)"))
  (t.lacksInfix "checkConfig = false skips the check" "check-config" ((source unchecked).buildCommand or ""))
  (t.throws "a timeout out of the daemon's range is refused" (evalWith { settings.forward.timeout_ms = 5; }).services.outpost.settings)
  (t.throws "a listen address without a port is refused" (evalWith { settings.dns.listen = "0.0.0.0"; }).services.outpost.settings)
  (t.throws "a Raft address without a port is refused" (evalWith { settings.cluster.raft = "10.20.0.2"; }).services.outpost.settings)
  (t.assertionFails "data_dir is refused" "data_dir" (evalWith { settings.data_dir = "/srv/outpost"; }))
  (t.assertionFails "sync off loopback without TLS is refused" "insecure_plaintext" (evalWith {
    settings.sync.listen = "0.0.0.0:8054";
  }))
  (t.assertionFails "the admin API off loopback is refused" "admin.insecure_plaintext" (evalWith {
    settings.admin.listen = "0.0.0.0:8053";
  }))
  (t.assertionFails "a TLS certificate without its key is refused" "tls_cert" (evalWith {
    settings.sync.tls_cert = "/etc/outpost/sync.pem";
  }))
]
