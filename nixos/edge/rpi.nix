# Raspberry Pi 3, 4 and 400 (aarch64, U-Boot and mainline kernel) from an SD card:
# nixpkgs' aarch64 SD image, used as the running system too, so that
# `nixos-rebuild switch` on a flashed card keeps booting. The bootstrap file goes on
# the FAT partition (FIRMWARE), which the system mounts at /boot/firmware.
{ modulesPath, ... }:
{
  imports = [ "${modulesPath}/installer/sd-card/sd-image-aarch64.nix" ];

  # The FIRMWARE partition is `noauto`; the outpost unit wants its mount unit, so it
  # is mounted (nofail) before the daemon looks for the file.
  services.outpost.bootstrap.file = "/boot/firmware/outpost-bootstrap.toml";

  boot.loader.generic-extlinux-compatible.configurationLimit = 5;

  networking.hostName = "outpost-rpi";
  nixpkgs.hostPlatform = "aarch64-linux";
}
