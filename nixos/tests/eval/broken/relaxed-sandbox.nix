# Broken on purpose: /etc and /usr writable again. appliance-unit.nix must fail.
{ lib, ... }:
{
  systemd.services.outpost.serviceConfig.ProtectSystem = lib.mkForce "full";
}
