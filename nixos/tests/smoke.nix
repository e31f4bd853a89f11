# One appliance and a client with dig (needs KVM; `nix build .#checks.x86_64-linux.smoke`).
# Start, dig the example zone, add a record with the CLI, dig it, reload without a
# failed query, and stop cleanly.
{
  name = "outpost-smoke";

  nodes = {
    appliance = {
      services.outpost = {
        enable = true;
        openFirewall = true;
      };
    };
    client =
      { pkgs, ... }:
      {
        environment.systemPackages = [ pkgs.dnsutils ];
      };
  };

  testScript = ''
    def dig(name, rtype="A"):
        return client.succeed(f"dig @appliance +short +time=2 +tries=1 {name} {rtype}").strip()

    start_all()
    # Type=notify: the unit is active only once the daemon has sent READY=1.
    appliance.wait_for_unit("outpost.service")
    client.wait_for_unit("multi-user.target")

    with subtest("the example zone answers from the client"):
        assert dig("www.example.internal") == "10.0.0.10", dig("www.example.internal")

    with subtest("a record added with the CLI is served"):
        appliance.succeed(
            "outpost record add camera.example.internal. A 10.0.0.42 --ttl 60 --data-dir /var/lib/outpost"
        )
        client.wait_until_succeeds(
            "dig @appliance +short camera.example.internal A | grep -x 10.0.0.42", timeout=30
        )

    with subtest("the unit is as hardened as the eval tests say"):
        appliance.succeed("systemd-analyze security outpost.service --threshold=4 --no-pager")
        appliance.succeed("test \"$(stat -c %a /var/lib/private/outpost)\" = 700")
        pid = appliance.succeed("systemctl show -P MainPID outpost").strip()
        caps = appliance.succeed(f"grep CapEff /proc/{pid}/status").split()[1]
        # CAP_NET_BIND_SERVICE is bit 10.
        assert caps == "0000000000000400", f"effective capabilities {caps}"

    with subtest("reload (SIGHUP) keeps answering"):
        # 300 queries in the background on the client, a reload in the middle.
        client.succeed(
            "(for i in $(seq 300); do"
            " dig @appliance +short +time=1 +tries=1 www.example.internal A | grep -qx 10.0.0.10"
            " || { echo failed at $i > /tmp/dig-result; exit; }; done;"
            " echo ok > /tmp/dig-result) >/dev/null 2>&1 &"
        )
        appliance.succeed("systemctl reload outpost")
        client.wait_until_succeeds("test -s /tmp/dig-result", timeout=120)
        client.succeed("grep -x ok /tmp/dig-result")
        appliance.succeed("test \"$(systemctl show -P NRestarts outpost)\" = 0")

    with subtest("stop is clean and state survives a restart"):
        appliance.succeed("systemctl stop outpost")
        appliance.succeed("test \"$(systemctl show -P Result outpost)\" = success")
        appliance.succeed("systemctl start outpost")
        appliance.wait_for_unit("outpost.service")
        assert dig("camera.example.internal") == "10.0.0.42"
  '';
}
