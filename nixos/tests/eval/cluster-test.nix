# The appliances of the cluster VM test (nixos/tests/cluster.nix), evaluated without
# KVM: each passes the module's assertions, dials its own address on the test network
# and opens the Raft port with the firewall on; the first starts at boot without a
# ticket, the joiners wait for the test to hand them one.
{
  evalConfig ? import ./eval-config.nix { },
  extraModules ? [ ],
}:
let
  t = import ./testlib.nix;
  test = import ../cluster.nix;
  # The test driver numbers the nodes in name order and gives node N 192.168.1.N on
  # the first network; its VM module declares networking.primaryIPAddress, which a
  # plain system (and the stubs) lacks.
  evalNode =
    number: node:
    evalConfig {
      config =
        { lib, ... }:
        {
          imports = [ node ];
          options.networking.primaryIPAddress = lib.mkOption { type = lib.types.str; };
          config.networking.primaryIPAddress = "192.168.1.${toString number}";
        };
      inherit extraModules;
    };
  appliances = {
    a1 = evalNode 1 test.nodes.a1;
    a2 = evalNode 2 test.nodes.a2;
    a3 = evalNode 3 test.nodes.a3;
  };
  service = config: config.systemd.services.outpost.serviceConfig;
  checkNode =
    name: number:
    let
      config = appliances.${name};
    in
    [
      (t.noFailedAssertions "${name} passes the module's assertions" config)
      (t.eq "${name} dials its own address" "192.168.1.${toString number}:7400" config.services.outpost.settings.cluster.raft)
      (t.contains "${name} opens the Raft port" 7400 (config.networking.firewall.allowedUDPPorts or [ ]))
      (t.contains "${name} opens DNS for the client" 53 (config.networking.firewall.allowedUDPPorts or [ ]))
      (t.eq "${name} keeps the firewall on" true (config.networking.firewall.enable or true))
    ];
in
t.all (
  checkNode "a1" 1
  ++ checkNode "a2" 2
  ++ checkNode "a3" 3
  ++ [
    (t.eq "the node names the test script uses" [
      "a1"
      "a2"
      "a3"
      "client"
    ] (builtins.attrNames test.nodes))
    (t.lacksInfix "the first node has no ticket" "--join-file" (service appliances.a1).ExecStart)
    (t.contains "the first node starts at boot" "multi-user.target" appliances.a1.systemd.services.outpost.wantedBy)
    (t.hasInfix "a joiner reads its ticket" "--join-file /run/credentials/outpost.service/join-ticket" (service appliances.a2).ExecStart)
    (t.eq "a joiner waits for the test to start it" [ ] appliances.a3.systemd.services.outpost.wantedBy)
  ]
)
