# Broken on purpose: the admin port open without being asked. appliance-firewall.nix
# must fail.
{
  networking.firewall.allowedTCPPorts = [ 8053 ];
}
