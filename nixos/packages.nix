# The Rust packages: `outpost` (appliance daemon and admin CLI), `outpost-lite` (the
# laptop client) and `plugins` (the example plugins of plugins/: WebAssembly
# components for wasm32-wasip2, in lib/outpost/plugins/, ready for
# `services.outpost.plugins.<name>.component`).
#
# `toolchain` is the one rust-toolchain.toml pins (from rust-overlay), with the
# wasm32-wasip2 target added; the Cargo.toml `rust-version` is newer than some
# nixpkgs releases' rustc, so nixpkgs' own rustc is not used.
{
  lib,
  pkgs,
  toolchain,
}:
let
  rustPlatform = pkgs.makeRustPlatform {
    cargo = toolchain;
    rustc = toolchain;
  };
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;

  # The workspace without what never goes into a Rust build, so editing a module or
  # a document does not rebuild the binaries. Every workspace member (bench/sync too)
  # must stay in; plugins/ is a workspace of its own (wasm32-wasip2), built below.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.difference ../. (
      lib.fileset.unions (
        map lib.fileset.maybeMissing [
          ../target
          ../nixos
          ../flake.nix
          ../flake.lock
          ../docs
          ../scripts
          ../.ci
          ../plugins
        ]
      )
    );
  };

  workspaceBinary =
    {
      pname,
      cargoPackage,
      description,
      platforms,
      doCheck ? true,
    }:
    rustPlatform.buildRustPackage {
      inherit
        pname
        version
        src
        doCheck
        ;
      cargoLock.lockFile = ../Cargo.lock;
      cargoBuildFlags = [
        "-p"
        cargoPackage
      ];
      # Unit tests of that crate only; the integration suite (tests/) starts real
      # processes and runs in scripts/test.sh and the NixOS VM tests.
      cargoTestFlags = [
        "-p"
        cargoPackage
      ];
      meta = {
        inherit description platforms;
        license = lib.licenses.asl20;
        mainProgram = pname;
      };
    };

  # plugins/ is a workspace of its own (its own Cargo.lock), built for wasm32-wasip2.
  # $out/lib/outpost/plugins/ holds one component per example:
  # outpost_plugin_blocklist.wasm and outpost_plugin_split_horizon.wasm
  # (query-policy), outpost_plugin_ttl_floor.wasm and outpost_plugin_ptr_synth.wasm
  # (record-transform). docs/plugins.md describes each one's configuration.
  plugins = pkgs.stdenv.mkDerivation {
    pname = "outpost-plugins";
    inherit version;
    # The guests read the WIT from ../wit, so the source holds both folders and the
    # build runs in plugins/.
    src = lib.fileset.toSource {
      root = ../.;
      fileset = lib.fileset.unions [
        ../plugins
        ../wit
      ];
    };
    sourceRoot = "source/plugins";
    cargoDeps = rustPlatform.importCargoLock { lockFile = ../plugins/Cargo.lock; };
    nativeBuildInputs = [
      toolchain
      rustPlatform.cargoSetupHook
    ];
    buildPhase = ''
      runHook preBuild
      cargo build --release --offline --target wasm32-wasip2
      runHook postBuild
    '';
    installPhase = ''
      runHook preInstall
      mkdir -p $out/lib/outpost/plugins
      cp target/wasm32-wasip2/release/*.wasm $out/lib/outpost/plugins/
      # The hostile plugins exist to test the sandbox; they are not shipped.
      rm -f $out/lib/outpost/plugins/outpost_plugin_hostile.wasm
      runHook postInstall
    '';
    meta = {
      description = "Outpost's example plugins (WebAssembly components): blocklist, split-horizon, ttl-floor, ptr-synth";
      license = lib.licenses.asl20;
    };
  };
in
{
  outpost = workspaceBinary {
    pname = "outpost";
    cargoPackage = "outpost-appliance";
    description = "Outpost edge DNS appliance and its admin CLI";
    platforms = lib.platforms.linux;
  };
  outpost-lite = workspaceBinary {
    pname = "outpost-lite";
    cargoPackage = "outpost-lite";
    description = "Outpost Lite client: the site's DNS from a local replica";
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
    # Its tests bind loopback sockets, which the Darwin sandbox refuses.
    doCheck = pkgs.stdenv.hostPlatform.isLinux;
  };
  inherit plugins;
}
