# Broken on purpose: a second capability on the appliance. appliance-unit.nix must fail.
{
  systemd.services.outpost.serviceConfig.CapabilityBoundingSet = [ "CAP_SYS_ADMIN" ];
}
