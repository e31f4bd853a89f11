# A generic x86_64 box booting UEFI from one disk (the raw EFI image of
# `system.build.images.raw-efi`). The filesystems and the boot loader below are those
# the image is made with (nixpkgs nixos/modules/virtualisation/disk-image.nix), so
# that `nixos-rebuild switch` on a flashed box keeps booting.
{ modulesPath, ... }:
{
  imports = [ "${modulesPath}/profiles/all-hardware.nix" ];

  boot.loader.systemd-boot = {
    enable = true;
    # Each generation keeps a kernel and initrd on the ESP.
    configurationLimit = 5;
  };
  # Booted as removable media: systemd-boot also lands in EFI/BOOT/BOOTX64.EFI.
  boot.loader.efi.canTouchEfiVariables = false;
  boot.growPartition = true;

  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/ESP";
    fsType = "vfat";
    options = [ "umask=0077" ];
  };

  networking.hostName = "outpost-x86";
  nixpkgs.hostPlatform = "x86_64-linux";
}
