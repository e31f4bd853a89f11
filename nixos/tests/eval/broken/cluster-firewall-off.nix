# Broken on purpose: the cluster VM test passing with the firewall off, as it did
# before the Raft port could be opened. cluster-test.nix must fail.
{
  networking.firewall.enable = false;
}
