# Assertions for the eval tests: each returns true or throws a message naming what
# failed, so a test file is a list of them and evaluates to true.
let
  b = builtins;
  show = b.toJSON;
in
rec {
  check = name: ok: detail: if ok then true else throw "FAIL ${name}: ${detail}";
  eq = name: expected: actual: check name (expected == actual) "expected ${show expected}, got ${show actual}";
  contains = name: needle: haystack: check name (b.elem needle haystack) "${show needle} is not in ${show haystack}";
  hasInfix =
    name: needle: string:
    check name (b.match ".*${escapeRegex needle}.*" string != null) "${show needle} is not in ${show string}";
  lacksInfix =
    name: needle: string:
    check name (b.match ".*${escapeRegex needle}.*" string == null) "${show needle} is in ${show string}";
  throws = name: value: check name (!(b.tryEval (b.deepSeq value value)).success) "evaluation succeeded";
  all = b.all (x: x);

  escapeRegex = b.replaceStrings [ "\\" "." "*" "+" "?" "(" ")" "[" "]" "{" "}" "|" "^" "$" ] [
    "\\\\"
    "\\."
    "\\*"
    "\\+"
    "\\?"
    "\\("
    "\\)"
    "\\["
    # Outside a bracket expression "]" is literal; std::regex refuses it escaped.
    "]"
    "\\{"
    "\\}"
    "\\|"
    "\\^"
    "\\$"
  ];

  # Failed assertions of our modules (a real system may fail others, such as
  # resolved's in a container).
  failedAssertions =
    config:
    b.filter (message: b.match "services[.]outpost.*" message != null) (
      map (a: a.message) (b.filter (a: !a.assertion) (config.assertions or [ ]))
    );
  # An assertion failed whose message contains `needle`.
  assertionFails =
    name: needle: config:
    check name (b.any (message: b.match ".*${escapeRegex needle}.*" message != null) (failedAssertions config))
      "no failed assertion mentions ${show needle} (failed: ${show (failedAssertions config)})";
  noFailedAssertions = name: config: eq name [ ] (failedAssertions config);
  # Warnings of our modules (a real system may carry others).
  ourWarnings = config: b.filter (w: b.match "services[.]outpost.*" w != null) (config.warnings or [ ]);

  # The TOML text behind /etc/outpost/outpost.toml, or null when it is only known
  # after a build (real nixpkgs renders it in a derivation).
  renderedConfig =
    config:
    let
      source = config.environment.etc."outpost/outpost.toml".source;
    in
    (source.configFile or source).text or null;
}
