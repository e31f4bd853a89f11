# Three appliances and a client with dig (needs KVM; `nix build .#checks.x86_64-linux.cluster`).
# The first appliance starts a cluster of one and the others join it with tickets from
# `outpost cluster invite`. A write made on a follower is read from every node; the
# leader stops, the others elect a new one, keep answering and take writes, and
# removing a box would cost the quorum, so it is refused; the old leader comes back
# and catches up, and a joiner restarts with its used ticket still configured.
# nixos/tests/eval/cluster-test.nix evaluates these nodes without KVM.
let
  raftPort = 7400;
  appliance =
    { config, pkgs, ... }:
    {
      services.outpost = {
        enable = true;
        openFirewall = true;
        openRaftFirewall = true;
        # The address the other appliances dial: this node's address on the test network.
        settings.cluster.raft = "${config.networking.primaryIPAddress}:${toString raftPort}";
      };
      # For reading `outpost cluster status --json` in the shell.
      environment.systemPackages = [ pkgs.jq ];
    };
  joiner =
    { lib, ... }:
    {
      imports = [ appliance ];
      # Left in place after the join: a member ignores it (the last subtest relies on it).
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
    # The admin CLI finds the admin token with --data-dir, after the subcommand.
    data_dir = "--data-dir /var/lib/outpost"

    def answers(node, name, expected):
        client.wait_until_succeeds(
            f"dig @{node} +short +time=2 +tries=1 {name} A | grep -x {expected}", timeout=60
        )

    def role(name):
        return json.loads(appliances[name].succeed(f"outpost status --json {data_dir}"))["role"]

    def cluster_status(name):
        return json.loads(appliances[name].succeed(f"outpost cluster status --json {data_dir}"))

    def leader(candidates):
        for name in candidates:
            if role(name) == "leader":
                return name
        raise Exception("no leader among " + ", ".join(candidates))

    def voters(name, count):
        appliances[name].wait_until_succeeds(
            f"outpost cluster status --json {data_dir}"
            f" | jq -e '[.nodes[] | select(.voter)] | length == {count}'",
            timeout=60,
        )

    start_all()
    a1.wait_for_unit("outpost.service")

    with subtest("the first box starts a cluster of one and leads it"):
        a1.wait_until_succeeds(f"outpost status --json {data_dir} | jq -e '.role == \"leader\"'", timeout=30)
        voters("a1", 1)

    with subtest("two boxes join with tickets from the first"):
        for name in ["a2", "a3"]:
            # The ticket is the last line of stdout.
            ticket = a1.succeed(f"outpost cluster invite --ttl 600 {data_dir}").strip().splitlines()[-1]
            assert ticket.startswith("outpost-join-v1:"), ticket
            node = appliances[name]
            node.succeed(f"printf %s '{ticket}' | install -m 0600 /dev/stdin /run/outpost-join-ticket")
            # Type=notify: the start returns once the box has joined.
            node.succeed("systemctl start outpost")
            node.wait_for_unit("outpost.service")

    with subtest("a follower lists three voters"):
        voters("a1", 3)
        follower = next(name for name in appliances if role(name) == "follower")
        voters(follower, 3)
        status = cluster_status(follower)
        assert status["role"] == "follower", status
        assert status["leader"] is not None and status["leader"] != status["node_id"], status
        assert len(status["nodes"]) == 3, status

    with subtest("a write on a follower is forwarded and read from every node"):
        appliances[follower].succeed(f"outpost record add nas.example.internal. A 10.0.0.50 --ttl 60 {data_dir}")
        for name in appliances:
            answers(name, "nas.example.internal", "10.0.0.50")

    with subtest("the leader stops, the others elect one, still answer and take writes"):
        first = leader(appliances)
        appliances[first].succeed("systemctl stop outpost")
        rest = [name for name in appliances if name != first]
        for name in rest:
            answers(name, "nas.example.internal", "10.0.0.50")
        appliances[rest[0]].wait_until_succeeds(
            f"outpost record add nas2.example.internal. A 10.0.0.51 --ttl 60 {data_dir}", timeout=60
        )
        for name in rest:
            answers(name, "nas2.example.internal", "10.0.0.51")
        # One of them leads now (leader() raises otherwise).
        leader(rest)

    with subtest("removing a box that would cost the quorum is refused"):
        # Voters left would be the stopped box and rest[0]: one of two reachable.
        doomed = cluster_status(rest[1])["node_id"]
        appliances[rest[0]].fail(f"outpost cluster remove {doomed} {data_dir}")
        voters(rest[0], 3)

    with subtest("the old leader restarts and catches up"):
        appliances[first].succeed("systemctl start outpost")
        appliances[first].wait_for_unit("outpost.service")
        answers(first, "nas2.example.internal", "10.0.0.51")
        appliances[first].wait_until_succeeds(
            f"outpost status --json {data_dir} | jq -e '.role == \"follower\"'", timeout=30
        )

    with subtest("a joiner restarts with its used ticket still configured"):
        a2.succeed("systemctl restart outpost")
        a2.wait_for_unit("outpost.service")
        voters("a2", 3)
        answers("a2", "nas2.example.internal", "10.0.0.51")
  '';
}
