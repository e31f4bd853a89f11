# What every flashed Outpost box runs: the appliance on port 53, settings from the
# boot partition, SSH with keys only, and Nix ready for `nixos-rebuild switch`.
#
# A site flake imports this with its own SSH keys and, if it wants, settings:
#   users.users.root.openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA... ops" ];
{ lib, ... }:
{
  services.outpost = {
    enable = true;
    openFirewall = true;
    # One image for many sites: /boot/outpost-bootstrap.toml (see docs/deploy.md).
    bootstrap.enable = true;
    # Lite sync stays on loopback until the site sets sync.listen, TLS
    # (syncTlsKeyFile) and openSyncFirewall: tokens must not cross the LAN in clear.
  };

  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };

  # Boxes upgrade from a flake (nixos-rebuild switch --flake ...).
  nix.settings.experimental-features = [
    "nix-command"
    "flakes"
  ];
  # Several generations stay bootable for rollback, bounded so /boot never fills.
  nix.gc = {
    automatic = true;
    options = "--delete-older-than 30d";
  };

  networking.hostName = lib.mkDefault "outpost";
  # DHCP by default; give each box a reservation, or set static addresses in the
  # site flake (networking.interfaces.<name>.ipv4.addresses).
  networking.useDHCP = lib.mkDefault true;
  time.timeZone = lib.mkDefault "UTC";
  documentation.enable = false;

  system.stateVersion = "26.05";
}
