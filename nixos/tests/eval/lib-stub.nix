# A stand-in for nixpkgs' `lib`: only what nixos/modules/*.nix and these tests use,
# with nixpkgs' semantics, so the modules evaluate offline with plain nix-instantiate.
#
# `evalModules` is a small version of the NixOS module system: options with types
# and defaults, `mkIf`/`mkMerge` pushed down to the leaves (so `config = mkIf
# cfg.enable ...` is not a recursion), priorities (`mkDefault`, `mkForce`), lists
# concatenated, submodules with a freeform type. Paths no module declares (systemd,
# networking, environment, assertions) merge like NixOS's unit options: lists
# concatenate, attribute sets merge, other values must agree.
#
# Known differences from nixpkgs, none of which the modules rely on: no `imports`
# de-duplication, no `_module.args`, no option renames, types check but do not coerce,
# submodules are attribute sets (not functions of `name`), and an `attrsOf` element
# under `mkIf false` still exists (its attributes are switched off, not the element).
let
  b = builtins;

  lib = rec {
    # ---- Attribute sets, lists, strings (as in nixpkgs lib) ----
    inherit (b)
      all
      any
      attrNames
      attrValues
      concatLists
      concatMap
      elem
      filter
      head
      length
      mapAttrs
      replaceStrings
      toJSON
      ;

    optional = cond: value: if cond then [ value ] else [ ];
    optionals = cond: values: if cond then values else [ ];
    optionalString = cond: string: if cond then string else "";
    optionalAttrs = cond: set: if cond then set else { };
    last = list: b.elemAt list (b.length list - 1);
    unique = b.foldl' (acc: x: if b.elem x acc then acc else acc ++ [ x ]) [ ];
    concatStringsSep = b.concatStringsSep;
    concatMapStringsSep = sep: f: list: b.concatStringsSep sep (map f list);
    hasPrefix = prefix: string: b.substring 0 (b.stringLength prefix) string == prefix;
    removePrefix =
      prefix: string:
      if hasPrefix prefix string then
        b.substring (b.stringLength prefix) (b.stringLength string) string
      else
        string;
    toInt =
      string:
      let
        digits = b.match "0*([0-9]+)" string;
      in
      if digits == null then throw "toInt: ${string} is not a decimal number" else b.fromJSON (b.head digits);
    mapAttrsToList = f: set: map (name: f name set.${name}) (b.attrNames set);
    filterAttrs = pred: set: b.removeAttrs set (b.filter (name: !pred name set.${name}) (b.attrNames set));
    filterAttrsRecursive =
      pred: set:
      b.listToAttrs (
        b.concatMap (
          name:
          let
            value = set.${name};
          in
          if pred name value then
            [
              {
                inherit name;
                value = if b.isAttrs value then filterAttrsRecursive pred value else value;
              }
            ]
          else
            [ ]
        ) (b.attrNames set)
      );
    recursiveUpdate =
      left: right:
      left
      // b.mapAttrs (
        name: value:
        if b.isAttrs value && b.isAttrs (left.${name} or null) then recursiveUpdate left.${name} value else value
      ) right;
    isDerivation = value: b.isAttrs value && (value.type or null) == "derivation";

    escapeShellArg =
      arg:
      let
        string = toString arg;
      in
      if b.match "[[:alnum:],._+:@%/-]+" string == null then
        "'${b.replaceStrings [ "'" ] [ "'\\''" ] string}'"
      else
        string;
    escapeShellArgs = concatMapStringsSep " " escapeShellArg;
    getExe' = package: exe: "${package}/bin/${exe}";
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };

    # ---- Option declarations ----
    mkOption = attrs: { _type = "option"; } // attrs;
    mkEnableOption =
      name:
      mkOption {
        type = types.bool;
        default = false;
        description = "Whether to enable ${name}.";
      };
    mkPackageOption =
      pkgs: name: _:
      mkOption {
        type = types.package;
        default = pkgs.${name};
        defaultText = literalExpression "pkgs.${name}";
        description = "The ${name} package to use.";
      };

    # ---- Definitions ----
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkMerge = contents: {
      _type = "merge";
      inherit contents;
    };
    mkOverride = priority: content: {
      _type = "override";
      inherit priority content;
    };
    mkOptionDefault = mkOverride 1500;
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;

    # ---- Types: a name and a check; merging is done by evalModules ----
    types =
      let
        mkType = name: check: extra: { inherit name check; } // extra;
        int = mkType "signed integer" b.isInt { };
        between =
          low: high: mkType "integer between ${toString low} and ${toString high}" (v: b.isInt v && v >= low && v <= high) { };
      in
      rec {
        bool = mkType "boolean" b.isBool { };
        str = mkType "string" b.isString { };
        inherit int;
        ints = {
          inherit between;
          positive = mkType "positive integer" (v: b.isInt v && v > 0) { };
          unsigned = mkType "unsigned integer" (v: b.isInt v && v >= 0) { };
        };
        port = between 0 65535;
        strMatching = pattern: mkType "string matching ${pattern}" (v: b.isString v && b.match pattern v != null) { };
        package = mkType "package" isDerivation { };
        path = mkType "path" (v: b.isPath v || (b.isString v && hasPrefix "/" v)) { };
        listOf =
          elemType:
          mkType "list of ${elemType.name}" (v: b.isList v && b.all elemType.check v) {
            merge = "concat";
          };
        nonEmptyListOf =
          elemType:
          mkType "non-empty list of ${elemType.name}" (v: b.isList v && v != [ ] && b.all elemType.check v) {
            merge = "concat";
          };
        # Merged as a single value: a definition is one of the two, whole.
        either = left: right: mkType "${left.name} or ${right.name}" (v: left.check v || right.check v) { };
        nullOr =
          elemType:
          mkType "null or ${elemType.name}" (v: v == null || elemType.check v) {
            merge = "nullOr";
            inherit elemType;
          };
        # The freeform value type of pkgs.formats.*: anything but null and functions.
        anything = mkType "TOML value" (v: v != null && !b.isFunction v) { merge = "generic"; };
        enum = values: mkType "one of ${concatMapStringsSep ", " b.toJSON values}" (v: b.elem v values) { };
        attrsOf =
          elemType:
          mkType "attribute set of ${elemType.name}" (v: b.isAttrs v && b.all elemType.check (b.attrValues v)) {
            merge = "attrsOf";
            inherit elemType;
          };
        submodule = module: mkType "submodule" b.isAttrs { submodule = module; };
      };

    # ---- The module evaluator ----
    evalModules =
      {
        modules,
        specialArgs ? { },
        # Option namespaces (under `services`) where an undeclared definition is an
        # error, as it is in NixOS.
        checkedNamespaces ? [ ],
      }:
      let
        isOption = value: b.isAttrs value && (value._type or null) == "option";
        isProperty =
          value:
          b.isAttrs value
          && b.elem (value._type or null) [
            "if"
            "merge"
            "override"
          ];
        absent = {
          _type = "absent";
        };
        isAbsent = value: b.isAttrs value && (value._type or null) == "absent";

        moduleArgs = {
          inherit config options lib;
        }
        // specialArgs;

        # A module is a path, a function or an attribute set; `imports` are followed.
        load =
          module:
          if b.isPath module || b.isString module then
            load (import module)
          else
            let
              called = if b.isFunction module then module moduleArgs else module;
              normalized =
                if called ? options || called ? config then
                  {
                    imports = called.imports or [ ];
                    options = called.options or { };
                    config = called.config or { };
                  }
                else
                  {
                    imports = called.imports or [ ];
                    options = { };
                    config = b.removeAttrs called [ "imports" ];
                  };
            in
            [ normalized ] ++ b.concatMap load normalized.imports;

        loaded = b.concatMap load modules;

        mergeDeclarations =
          path: left: right:
          if isOption left || isOption right then
            throw "The option `${b.concatStringsSep "." path}' is declared twice"
          else
            left
            // b.mapAttrs (
              name: value: if left ? ${name} then mergeDeclarations (path ++ [ name ]) left.${name} value else value
            ) right;
        options = b.foldl' (mergeDeclarations [ ]) { } (map (m: m.options) loaded);

        # mkIf/mkMerge/mkOverride around an attribute set become the same properties
        # around each attribute, without evaluating any condition.
        pushDown =
          def:
          let
            type = def._type or null;
          in
          if type == "merge" then
            b.concatMap pushDown def.contents
          else if type == "if" then
            map (b.mapAttrs (_: lib.mkIf def.condition)) (pushDown def.content)
          else if type == "override" then
            map (b.mapAttrs (_: lib.mkOverride def.priority)) (pushDown def.content)
          else
            [ def ];

        # Whether a definition (under its properties) is an attribute set to descend into.
        isNodeDefinition =
          def:
          if isProperty def then
            (if def._type == "merge" then b.all isNodeDefinition def.contents else isNodeDefinition def.content)
          else
            b.isAttrs def && !isDerivation def && !(def ? _type);

        # Properties evaluated: the definitions that apply, with their priorities.
        discharge =
          priority: def:
          let
            type = def._type or null;
          in
          if type == "merge" then
            b.concatMap (discharge priority) def.contents
          else if type == "if" then
            (if def.condition then discharge priority def.content else [ ])
          else if type == "override" then
            discharge def.priority def.content
          else
            [
              {
                value = def;
                inherit priority;
              }
            ];

        highestPriority =
          defs:
          let
            best = b.foldl' (low: def: if def.priority < low then def.priority else low) 9999 defs;
          in
          b.filter (def: def.priority == best) defs;

        show = path: b.concatStringsSep "." path;

        mergeEqual =
          path: values:
          if b.all (value: value == b.head values) values then
            b.head values
          else
            throw "The option `${show path}' has conflicting definitions";

        # An option: its definitions and default, by priority, checked and merged.
        evalOption =
          path: option: defs:
          let
            given = b.concatMap (discharge 100) defs;
            withDefault = given ++ lib.optional (option ? default) {
              value = option.default;
              priority = 1500;
            };
            winners = highestPriority withDefault;
            values = map (def: def.value) winners;
            type = option.type or types.anything;
            checked = map (
              value:
              if type ? submodule || type.check value then
                value
              else
                throw "The option `${show path}' is not of type `${type.name}' (value: ${
                  if b.isAttrs value || b.isFunction value then "a ${b.typeOf value}" else b.toJSON value
                })"
            ) values;
            merged =
              if winners == [ ] then
                throw "The option `${show path}' is used but not defined"
              else if type ? submodule then
                evalSubmodule path type.submodule values
              else if (type.merge or null) == "concat" then
                b.concatLists checked
              else if (type.merge or null) == "attrsOf" then
                mergeAttrsOf path type.elemType checked
              else if (type.merge or null) == "nullOr" then
                (
                  if b.all (value: value == null) checked then
                    null
                  else if b.any (value: value == null) checked then
                    throw "The option `${show path}' is defined both null and not null"
                  else
                    (if (type.elemType.merge or null) == "concat" then b.concatLists checked else mergeEqual path checked)
                )
              else
                mergeEqual path checked;
          in
          (option.apply or (x: x)) merged;

        # attrsOf: the definitions of each name merged as one value of the element type.
        mergeAttrsOf =
          path: elemType: values:
          b.listToAttrs (
            map (name: {
              inherit name;
              value =
                let
                  defs = map (value: value.${name}) (b.filter (value: value ? ${name}) values);
                in
                if elemType ? submodule then
                  evalSubmodule (path ++ [ name ]) elemType.submodule defs
                else
                  mergeEqual (path ++ [ name ]) defs;
            }) (lib.unique (b.concatMap b.attrNames values))
          );

        # A definition of a submodule is a module: `{ config = ...; }` is its config, and
        # a `config` or `options` key beside other keys is an error, as in nixpkgs.
        submoduleConfig =
          path: def:
          let
            others = b.filter (name: !b.elem name [ "config" "options" "imports" "_file" ]) (b.attrNames def);
          in
          if !(b.isAttrs def) || def ? _type || !(def ? config || def ? options) then
            def
          else if others != [ ] then
            throw "Module `${show path}' has an unsupported attribute `${b.head others}'. This is caused by introducing a top-level `config' or `options' attribute."
          else
            def.config or { };

        evalSubmodule =
          path: module: defs:
          let
            declared = module.options or { };
          in
          prune declared (evalNode path declared (module.freeformType or null != null) (map (submoduleConfig path) defs));

        # A node of the tree: an option, or attributes from declarations and definitions.
        evalNode =
          path: declaration: freeform: defs:
          if isOption declaration then
            evalOption path declaration defs
          else if declaration == null && !(b.all isNodeDefinition defs) then
            genericLeaf path defs
          else
            let
              pushed = b.filter b.isAttrs (b.concatMap pushDown defs);
              names = lib.unique (b.attrNames (if declaration == null then { } else declaration) ++ b.concatMap b.attrNames pushed);
              # Undeclared names are errors in our own namespaces, except under a
              # freeform submodule (settings).
              strict =
                !freeform
                && b.length path >= 2
                && b.head path == "services"
                && b.elem (b.elemAt path 1) checkedNamespaces;
            in
            b.listToAttrs (
              map (name: {
                inherit name;
                value =
                  let
                    sub = if declaration == null then null else declaration.${name} or null;
                    subDefs = map (def: def.${name}) (b.filter (def: def ? ${name}) pushed);
                  in
                  if sub == null && strict then
                    throw "The option `${show (path ++ [ name ])}' does not exist"
                  else
                    evalNode (path ++ [ name ]) sub freeform subDefs;
              }) names
            );

        # Undeclared leaves: lists concatenate, other values must agree.
        genericLeaf =
          path: defs:
          let
            values = map (def: def.value) (highestPriority (b.concatMap (discharge 100) defs));
          in
          if values == [ ] then
            absent
          else if b.all b.isList values then
            b.concatLists values
          else
            mergeEqual path values;

        # Drops undeclared leaves whose every definition was switched off, and
        # undeclared attribute sets left empty by that.
        prune =
          declaration: value:
          if isOption declaration then
            value
          else if b.isAttrs value && !isDerivation value && !isAbsent value && !(value ? _type) then
            let
              kept = lib.filterAttrs (_: x: !isAbsent x) (
                b.mapAttrs (
                  name: x: prune (if declaration == null then null else declaration.${name} or null) x
                ) value
              );
            in
            if declaration == null && kept == { } then absent else kept
          else
            value;

        # What modules read: complete, lazy, never pruned (pruning evaluates conditions).
        config = evalNode [ ] options false (map (m: m.config) loaded);
      in
      {
        inherit options;
        config = prune options config;
      };
  };
in
lib
