# Evaluates the Outpost modules on the stubs, the way nixpkgs' nixos/lib/eval-config.nix
# evaluates a system: `evalConfig { config = { services.outpost.enable = true; }; }`
# gives the resulting `config`. The flake's `checks.<system>.module-eval` passes the
# same tests an evalConfig built on real nixpkgs instead.
{
  # Module files under test; the check script passes deliberately broken copies.
  applianceModule ? ../../modules/appliance.nix,
  liteClientModule ? ../../modules/lite-client.nix,
  crossCompiling ? false,
}:
{
  config,
  extraModules ? [ ],
}:
let
  lib = import ./lib-stub.nix;
  pkgs = import ./pkgs-stub.nix { inherit lib crossCompiling; };
in
(lib.evalModules {
  modules = [
    applianceModule
    liteClientModule
    ./nixos-stub.nix
    config
  ]
  ++ extraModules;
  specialArgs = { inherit pkgs; };
  checkedNamespaces = [
    "outpost"
    "outpost-lite"
  ];
}).config
