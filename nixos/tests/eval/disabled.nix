# A disabled module adds nothing: no unit, no file, no port, no assertion, even with
# its other options set.
{
  evalConfig ? import ./eval-config.nix { },
  extraModules ? [ ],
}:
let
  t = import ./testlib.nix;
  config = evalConfig {
    config.services = {
      outpost = {
        enable = false;
        openFirewall = true;
        openAdminFirewall = true;
        adminTokenFile = "/run/secrets/outpost-admin-token";
        bootstrap.enable = true;
        plugins.ads = {
          component = "/var/lib/outpost-plugins/blocklist.wasm";
          hook = "query-policy";
        };
      };
      outpost-lite = {
        enable = false;
        resolver.enable = true;
        appliances = [ "ws://10.0.0.2:8054" ];
      };
    };
    inherit extraModules;
  };
  # On the stubs, the whole configuration outside `services` is what the modules
  # defined; on real nixpkgs only our own names can be checked.
  onStubs = !(config ? system);
in
t.all [
  (t.check "no outpost unit" (!(config.systemd.services or { } ? outpost)) "systemd.services.outpost exists")
  (t.check "no plugins unit" (!(config.systemd.services or { } ? outpost-plugins)) "systemd.services.outpost-plugins exists")
  (t.check "no outpost-lite unit" (!(config.systemd.services or { } ? outpost-lite)) "systemd.services.outpost-lite exists")
  (t.check "no settings file" (!(config.environment.etc or { } ? "outpost/outpost.toml")) "/etc/outpost/outpost.toml exists")
  (t.eq "no TCP port" [ ] (config.networking.firewall.allowedTCPPorts or [ ]))
  (t.eq "no UDP port" [ ] (config.networking.firewall.allowedUDPPorts or [ ]))
  (t.eq "no nameserver" [ ] (config.networking.nameservers or [ ]))
  (t.noFailedAssertions "no assertion fails" config)
  (t.eq "nothing else at all" [ "services" ] (if onStubs then builtins.attrNames config else [ "services" ]))
]
