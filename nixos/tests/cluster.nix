# Three appliances and a client with dig (needs KVM; `nix build .#checks.x86_64-linux.cluster`).
#
# NEEDS ISSUE 3 (clustering): written as the test will run once `outpost cluster
# invite`, `--join-file` and `outpost status --json` exist; it fails before that.
# The CLI shapes used here (`cluster invite` printing the ticket on stdout, `status
# --json` with a "role" field) are assumptions for issue 3 to confirm or change.
let
  appliance = {
    services.outpost = {
      enable = true;
      openFirewall = true;
    };
    # The Raft transport's port is issue 3's to choose; the test network is closed.
    networking.firewall.enable = false;
  };
  joiner =
    { lib, ... }:
    {
      imports = [ appliance ];
      services.outpost.joinTicketFile = "/run/outpost-join-ticket";
      # A joiner starts only once the test has handed it a ticket.
      systemd.services.outpost.wantedBy = lib.mkForce [ ];
    };
in
{
  name = "outpost-cluster";

  nodes = {
    a1 = appliance;
    a2 = joiner;
    a3 = joiner;
    client =
      { pkgs, ... }:
      {
        environment.systemPackages = [ pkgs.dnsutils ];
      };
  };

  testScript = ''
    import json

    appliances = {"a1": a1, "a2": a2, "a3": a3}
    # The admin CLI finds the token with --data-dir, after the subcommand.
    token = "--data-dir /var/lib/outpost"

    def answers(node, name, expected):
        client.wait_until_succeeds(
            f"dig @{node} +short +time=2 +tries=1 {name} A | grep -x {expected}", timeout=60
        )

    def leader(candidates):
        for name in candidates:
            status = json.loads(appliances[name].succeed(f"outpost status --json {token}"))
            if status.get("role") == "leader":
                return name
        raise Exception("no leader among " + ", ".join(candidates))

    start_all()
    a1.wait_for_unit("outpost.service")

    with subtest("two boxes join with tickets from the first"):
        for name in ["a2", "a3"]:
            ticket = a1.succeed(f"outpost cluster invite {token}").strip()
            node = appliances[name]
            node.succeed(f"printf %s '{ticket}' | install -m 0600 /dev/stdin /run/outpost-join-ticket")
            node.succeed("systemctl start outpost")
            node.wait_for_unit("outpost.service")

    with subtest("a write is read from every node"):
        first = leader(appliances)
        appliances[first].succeed(f"outpost record add nas.example.internal. A 10.0.0.50 --ttl 60 {token}")
        for name in appliances:
            answers(name, "nas.example.internal", "10.0.0.50")

    with subtest("the leader stops, the others still answer and take writes"):
        appliances[first].succeed("systemctl stop outpost")
        rest = [name for name in appliances if name != first]
        for name in rest:
            answers(name, "nas.example.internal", "10.0.0.50")
        appliances[rest[0]].wait_until_succeeds(
            f"outpost record add nas2.example.internal. A 10.0.0.51 --ttl 60 {token}", timeout=60
        )
        for name in rest:
            answers(name, "nas2.example.internal", "10.0.0.51")

    with subtest("the old leader restarts and catches up"):
        appliances[first].succeed("systemctl start outpost")
        appliances[first].wait_for_unit("outpost.service")
        answers(first, "nas2.example.internal", "10.0.0.51")
  '';
}
