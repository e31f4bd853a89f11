# Broken on purpose: the Lite client gets a capability on port 5354. lite-client.nix
# must fail.
{ lib, ... }:
{
  systemd.services.outpost-lite.serviceConfig.AmbientCapabilities = lib.mkForce [ "CAP_NET_RAW" ];
}
