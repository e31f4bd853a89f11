# The few NixOS options, outside our own, that the modules read.
{ lib, ... }:
{
  options.services.resolved.enable = lib.mkOption {
    type = lib.types.bool;
    default = false;
  };
}
