# Ports are opened only when asked, and they are the configured ones.
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
  tcp = config: config.networking.firewall.allowedTCPPorts or [ ];
  udp = config: config.networking.firewall.allowedUDPPorts or [ ];
  sorted = builtins.sort builtins.lessThan;

  closed = evalWith { };
  dns = evalWith { openFirewall = true; };
  dnsElsewhere = evalWith {
    openFirewall = true;
    settings.dns.listen = "10.0.0.2:5300";
  };
  dnsTwice = evalWith {
    openFirewall = true;
    settings.dns.listen = [
      "10.0.0.2:53"
      "[fd00::2]:53"
      "10.0.1.2:5300"
    ];
  };
  admin = evalWith {
    openAdminFirewall = true;
    settings.admin.listen = "0.0.0.0:9053";
  };
  loopbackAdmin = evalWith { openAdminFirewall = true; };
  sync = evalWith {
    openSyncFirewall = true;
    settings.sync.listen = "[::]:8054";
  };
  raft = evalWith {
    openRaftFirewall = true;
    settings.cluster.raft = "10.20.0.2:7400";
  };
  raftOnIPv6 = evalWith {
    openRaftFirewall = true;
    settings.cluster.raft = "[fd00::2]:7401";
  };
  raftNotOpened = evalWith { settings.cluster.raft = "10.20.0.2:7400"; };
  loopbackRaft = evalWith {
    openRaftFirewall = true;
    settings.cluster.raft = "127.0.0.1:7400";
  };
  everything = evalWith {
    openFirewall = true;
    openAdminFirewall = true;
    openSyncFirewall = true;
    openRaftFirewall = true;
    settings.admin.listen = "0.0.0.0:8053";
    settings.sync.listen = "0.0.0.0:8054";
    settings.cluster.raft = "10.20.0.2:7400";
  };
in
t.all [
  (t.eq "nothing opened by default (TCP)" [ ] (tcp closed))
  (t.eq "nothing opened by default (UDP)" [ ] (udp closed))
  (t.eq "openFirewall opens DNS over UDP" [ 53 ] (udp dns))
  (t.eq "openFirewall opens DNS over TCP" [ 53 ] (tcp dns))
  (t.eq "the DNS port follows dns.listen" [ 5300 ] (udp dnsElsewhere))
  (t.eq "each port of a dns.listen list is opened once" [ 53 5300 ] (tcp dnsTwice))
  (t.eq "openAdminFirewall opens the admin port only" [ 9053 ] (tcp admin))
  (t.eq "openAdminFirewall opens no UDP" [ ] (udp admin))
  (t.eq "openSyncFirewall opens the sync port only" [ 8054 ] (tcp sync))
  (t.eq "openRaftFirewall opens the Raft port over UDP" [ 7400 ] (udp raft))
  (t.eq "openRaftFirewall opens no TCP" [ ] (tcp raft))
  (t.eq "the Raft port follows cluster.raft (IPv6)" [ 7401 ] (udp raftOnIPv6))
  (t.eq "a Raft address alone opens nothing" [ ] (udp raftNotOpened))
  (t.eq "all four (UDP)" [
    53
    7400
  ] (sorted (udp everything)))
  (t.eq "all four (TCP)" [
    53
    8053
    8054
  ] (sorted (tcp everything)))
  (t.eq "no warning when the listen addresses are reachable" [ ] (t.ourWarnings everything))
  (t.check "a warning when opening a port bound to loopback" (
    builtins.length (t.ourWarnings loopbackAdmin) == 1
  ) "warnings: ${builtins.toJSON (t.ourWarnings loopbackAdmin)}")
  (t.check "a warning when opening a Raft port bound to loopback" (
    builtins.length (t.ourWarnings loopbackRaft) == 1
  ) "warnings: ${builtins.toJSON (t.ourWarnings loopbackRaft)}")
]
