# Clustering: the Raft address is a setting peers can dial, a joiner gets its ticket
# as a credential and needs a Raft address, and the Raft firewall port needs a fixed
# one. (The ports themselves are in appliance-firewall.nix.)
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
  renderedCluster =
    config:
    let
      text = t.renderedConfig config;
    in
    # Real nixpkgs renders TOML in a build: nothing to read back there.
    if text == null then null else (builtins.fromTOML text).cluster or { };

  first = evalWith {
    settings.cluster.raft = "10.20.0.2:7400";
    openRaftFirewall = true;
  };
  joiner = evalWith {
    settings.cluster.raft = "10.20.0.3:7400";
    joinTicketFile = "/run/keys/outpost-join-ticket";
  };
  anyPort = evalWith { settings.cluster.raft = "10.20.0.2:0"; };
in
t.all [
  (t.noFailedAssertions "a first node passes" first)
  (t.noFailedAssertions "a joiner passes" joiner)
  (t.check "the Raft address is rendered as cluster.raft" (
    builtins.elem (renderedCluster first) [
      null
      { raft = "10.20.0.2:7400"; }
    ]
  ) "cluster table: ${builtins.toJSON (renderedCluster first)}")
  (t.lacksInfix "the first node gets no join flag" "--join" (service first).ExecStart)
  (t.lacksInfix "the Raft address is a setting, not a flag" "--raft" (service first).ExecStart)
  (t.hasInfix "a joiner reads its ticket from the credential" "--join-file /run/credentials/outpost.service/join-ticket" (service joiner).ExecStart)
  (t.contains "a joiner's ticket is a credential" "join-ticket:/run/keys/outpost-join-ticket" (service joiner).LoadCredential)
  (t.eq "a joiner has time to join and catch up" "5min" ((service joiner).TimeoutStartSec or "(unset)"))
  (t.eq "a first node keeps systemd's start timeout" "(unset)" ((service first).TimeoutStartSec or "(unset)"))
  (t.noFailedAssertions "port 0 is fine when no firewall port is asked for" anyPort)

  (t.assertionFails "a join ticket without a raft address is refused" "settings.cluster.raft" (evalWith {
    joinTicketFile = "/run/keys/outpost-join-ticket";
  }))
  (t.noFailedAssertions "with bootstrap, the site file may give the raft address" (evalWith {
    joinTicketFile = "/run/keys/outpost-join-ticket";
    bootstrap.enable = true;
  }))
  (t.noFailedAssertions "a --raft flag gives the raft address" (evalWith {
    joinTicketFile = "/run/keys/outpost-join-ticket";
    extraArgs = [ "--raft=10.20.0.3:7400" ];
  }))
  (t.assertionFails "a wildcard IPv4 raft address is refused" "wildcard" (evalWith {
    settings.cluster.raft = "0.0.0.0:7400";
  }))
  (t.assertionFails "a wildcard IPv6 raft address is refused" "wildcard" (evalWith {
    settings.cluster.raft = "[::]:7400";
  }))
  (t.assertionFails "a join_file setting is refused" "joinTicketFile instead" (evalWith {
    settings.cluster.join_file = "/root/outpost-join-ticket";
  }))
  (t.assertionFails "openRaftFirewall without a raft address is refused" "openRaftFirewall" (evalWith {
    openRaftFirewall = true;
  }))
  (t.assertionFails "openRaftFirewall on port 0 is refused" "fixed port" (evalWith {
    openRaftFirewall = true;
    settings.cluster.raft = "10.20.0.2:0";
  }))
  (t.assertionFails "a join ticket in the store is refused" "Nix store" (evalWith {
    settings.cluster.raft = "10.20.0.3:7400";
    joinTicketFile = "${builtins.storeDir}/0000-ticket";
  }))
]
