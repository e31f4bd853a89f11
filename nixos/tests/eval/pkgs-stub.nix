# A stand-in for nixpkgs' `pkgs`: only what nixos/modules/*.nix use. Derivations are
# plain attribute sets with a made-up store path (nothing is built), which keep what
# the tests look at: the text of a written file, the script of a runCommand.
{
  lib,
  # True to pretend the build machine cannot run the host's binaries.
  crossCompiling ? false,
}:
let
  b = builtins;

  fakeDerivation =
    name: content: attrs:
    {
      type = "derivation";
      inherit name;
      outPath = "${b.storeDir}/${b.substring 0 32 (b.hashString "sha256" "${name}\n${content}")}-${name}";
    }
    // attrs;

  package =
    pname: version: mainProgram:
    fakeDerivation "${pname}-${version}" "" {
      inherit pname version;
      meta = { inherit mainProgram; };
    };

  # TOML as nixpkgs' formats.toml renders it (through remarshal): tables after the
  # scalars of their parent, keys sorted. Tests read it back with builtins.fromTOML.
  toTOML =
    let
      key = name: if b.match "[A-Za-z0-9_-]+" name != null then name else b.toJSON name;
      value =
        v:
        if b.isAttrs v then
          "{ ${lib.concatMapStringsSep ", " (name: "${key name} = ${value v.${name}}") (b.attrNames v)} }"
        else if b.isList v then
          "[${lib.concatMapStringsSep ", " value v}]"
        else if b.isBool v then
          (if v then "true" else "false")
        else if b.isInt v || b.isFloat v then
          toString v
        else if b.isString v || b.isPath v then
          b.toJSON (toString v)
        else
          throw "formats.toml: cannot render a ${b.typeOf v}";
      table =
        path: set:
        let
          names = b.attrNames set;
          scalars = b.filter (name: !b.isAttrs set.${name}) names;
          tables = b.filter (name: b.isAttrs set.${name}) names;
        in
        lib.optionalString (path != [ ]) "[${lib.concatMapStringsSep "." key path}]\n"
        + lib.concatMapStringsSep "" (name: "${key name} = ${value set.${name}}\n") scalars
        + lib.concatMapStringsSep "" (name: "\n" + table (path ++ [ name ]) set.${name}) tables;
    in
    value: lib.removePrefix "\n" (table [ ] value);
in
{
  outpost = package "outpost" "0.1.0" "outpost";
  outpost-lite = package "outpost-lite" "0.1.0" "outpost-lite";
  coreutils = package "coreutils" "9.5" "coreutils";
  # For the nodes of the VM tests (cluster-test.nix).
  jq = package "jq" "1.7.1" "jq";

  stdenv = {
    hostPlatform = {
      system = "x86_64-linux";
      isLinux = true;
    };
    buildPlatform.canExecute = _: !crossCompiling;
  };

  formats.toml = _: {
    type = lib.types.anything;
    generate =
      name: value:
      let
        text = toTOML value;
      in
      fakeDerivation name text { inherit text; };
  };

  writeText = name: text: fakeDerivation name text { inherit text; };

  writeShellScript =
    name: text:
    fakeDerivation name text {
      text = "#!/bin/sh\n${text}";
    };

  runCommand =
    name: env: buildCommand:
    fakeDerivation name buildCommand ((b.removeAttrs env [ "passthru" ]) // (env.passthru or { }) // { inherit buildCommand; });
}
