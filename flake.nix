{
  description = "Outpost: an edge DNS appliance, its Lite client, NixOS modules and flashable images";

  inputs = {
    # A stable release for appliances; the modules also evaluate on unstable.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    # The Rust toolchain rust-toolchain.toml pins (and wasm32-wasip2 for plugins).
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      rust-overlay,
    }:
    let
      inherit (nixpkgs) lib;
      linuxSystems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      darwinSystems = [
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          overlays = [ rust-overlay.overlays.default ];
        };
      toolchainFor =
        pkgs:
        (pkgs.rust-bin.fromRustupToolchainFile ./rust-toolchain.toml).override {
          targets = [ "wasm32-wasip2" ];
        };
      packagesFor =
        system:
        let
          pkgs = pkgsFor system;
        in
        import ./nixos/packages.nix {
          inherit lib pkgs;
          toolchain = toolchainFor pkgs;
        };

      # The package of this flake for the machine being configured.
      ownPackages = pkgs: self.packages.${pkgs.stdenv.hostPlatform.system};

      edgeSystem =
        profile:
        lib.nixosSystem {
          modules = [
            self.nixosModules.appliance
            ./nixos/edge/common.nix
            profile
          ];
        };

      # The eval tests of nixos/tests/eval, run here against real nixpkgs instead of
      # the stubs: they prove the stubs did not hide a difference.
      realEvalConfig =
        system:
        {
          config,
          extraModules ? [ ],
        }:
        (lib.nixosSystem {
          modules = [
            self.nixosModules.default
            {
              nixpkgs.hostPlatform = system;
              boot.isContainer = true;
              system.stateVersion = "26.05";
            }
            config
          ]
          ++ extraModules;
        }).config;
      evalTests = [
        ./nixos/tests/eval/appliance-unit.nix
        ./nixos/tests/eval/appliance-firewall.nix
        ./nixos/tests/eval/appliance-settings.nix
        ./nixos/tests/eval/appliance-secrets.nix
        ./nixos/tests/eval/appliance-plugins.nix
        ./nixos/tests/eval/appliance-cluster.nix
        ./nixos/tests/eval/cluster-test.nix
        ./nixos/tests/eval/disabled.nix
        ./nixos/tests/eval/lite-client.nix
      ];
    in
    {
      packages =
        lib.genAttrs linuxSystems (
          system:
          let
            own = packagesFor system;
          in
          {
            inherit (own) outpost outpost-lite plugins;
            default = own.outpost;
          }
        )
        // lib.genAttrs darwinSystems (
          system:
          let
            own = packagesFor system;
          in
          {
            inherit (own) outpost-lite;
            default = own.outpost-lite;
          }
        );

      nixosModules = {
        appliance =
          { lib, pkgs, ... }:
          {
            imports = [ ./nixos/modules/appliance.nix ];
            services.outpost.package = lib.mkDefault (ownPackages pkgs).outpost;
          };
        lite-client =
          { lib, pkgs, ... }:
          {
            imports = [ ./nixos/modules/lite-client.nix ];
            services.outpost-lite.package = lib.mkDefault (ownPackages pkgs).outpost-lite;
          };
        default = {
          imports = [
            self.nixosModules.appliance
            self.nixosModules.lite-client
          ];
        };
      };

      # Images:
      #   nixos-rebuild build-image --flake .#edge-x86_64 --image-variant raw-efi
      #   nix build .#nixosConfigurations.edge-rpi.config.system.build.sdImage
      nixosConfigurations = {
        edge-x86_64 = edgeSystem ./nixos/edge/x86_64.nix;
        edge-rpi = edgeSystem ./nixos/edge/rpi.nix;
      };

      checks = lib.genAttrs linuxSystems (
        system:
        let
          pkgs = pkgsFor system;
          runTest =
            test:
            pkgs.testers.runNixOSTest {
              imports = [ test ];
              defaults.imports = [ self.nixosModules.default ];
            };
        in
        {
          # Needs KVM. Start, dig the example zone, add a record with the CLI, dig it,
          # reload, stop cleanly.
          smoke = runTest ./nixos/tests/smoke.nix;
          # Needs KVM. Three appliances and a client: join with tickets, write on a
          # follower, read everywhere, stop the leader, still answered and written,
          # a remove that would cost the quorum refused, restart, caught up.
          cluster = runTest ./nixos/tests/cluster.nix;
          # No VM: the module eval tests against real nixpkgs.
          module-eval =
            assert lib.all (test: import test { evalConfig = realEvalConfig system; }) evalTests;
            pkgs.runCommand "outpost-module-eval" { } "touch $out";
        }
      );

      devShells = lib.genAttrs (linuxSystems ++ darwinSystems) (
        system:
        let
          pkgs = pkgsFor system;
        in
        {
          default = pkgs.mkShell {
            packages = [
              (toolchainFor pkgs)
              pkgs.jq
              pkgs.deadnix
            ]
            ++ lib.optionals pkgs.stdenv.hostPlatform.isLinux [
              pkgs.dnsutils # dig
              pkgs.dnsperf # bench/run.sh
              pkgs.nsd # bench/run.sh
            ];
          };
        }
      );
    };
}
