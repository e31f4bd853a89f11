//! Zones move between outpost and the rest of the DNS world (docs/migrate.md): what
//! `outpost zone export` writes is accepted by BIND's `named-checkzone` and Knot's
//! `kzonecheck`, and a zone BIND writes out (`named-compilezone`, its canonical form)
//! imports into outpost with the same records.

use std::path::Path;
use std::process::Command;

use outpost_tests::{Appliance, authoritative_config};

/// A zone with the shapes that trip up converters: a delegation with glue, a wildcard,
/// TXT with quotes, spaces and several strings, MX, SRV, CAA, AAAA.
const ZONE: &str = r#"$ORIGIN interop.test.
$TTL 3600
@           IN SOA   ns1 hostmaster 2024010101 7200 3600 1209600 300
@           IN NS    ns1
@           IN MX    10 mail
@           IN CAA   0 issue "letsencrypt.org"
@           IN TXT   "v=spf1 mx -all"
ns1         IN A     192.0.2.1
mail        IN A     192.0.2.2
mail        IN AAAA  2001:db8::2
www    300  IN CNAME mail
*.apps      IN A     192.0.2.3
_sip._tcp   IN SRV   10 60 5060 mail
quoted      IN TXT   "a \"quoted\" word" "and a second string"
spaced      IN TXT   "two  spaces and a ; semicolon"
sub         IN NS    ns.sub
ns.sub      IN A     192.0.2.53
"#;

/// Runs a checker; it must succeed.
fn check(program: &str, args: &[&str], file: &Path) {
    let output = Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("run {program} (scripts/test.sh installs it): {e}"));
    assert!(
        output.status.success(),
        "{program} refused our export:\n{}{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(file).unwrap()
    );
}

/// The zone's records as outpost lists them, sorted.
fn records(appliance: &Appliance, origin: &str) -> Vec<String> {
    let mut lines: Vec<String> = appliance
        .cli_ok(["zone", "export", origin])
        .lines()
        .filter(|line| !line.starts_with(';') && !line.starts_with('$') && !line.trim().is_empty())
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

#[test]
fn our_export_passes_bind_and_knot_and_bind_output_imports_back() {
    let appliance = Appliance::start(&authoritative_config());
    appliance.import_zone("interop.test.", ZONE);
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("interop.test.zone");
    std::fs::write(
        &exported,
        appliance.cli_ok(["zone", "export", "interop.test."]),
    )
    .unwrap();

    check(
        "named-checkzone",
        &["-k", "fail", "-i", "full", "interop.test."],
        &exported,
    );
    check("kzonecheck", &["-o", "interop.test."], &exported);

    // BIND's canonical form of our export, imported under the same origin elsewhere.
    let compiled = dir.path().join("compiled.zone");
    let output = Command::new("named-compilezone")
        .args(["-s", "full", "-o"])
        .arg(&compiled)
        .arg("interop.test.")
        .arg(&exported)
        .output()
        .expect("run named-compilezone");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let other = Appliance::start(&authoritative_config());
    other.import_zone(
        "interop.test.",
        &std::fs::read_to_string(&compiled).unwrap(),
    );
    assert_eq!(
        records(&other, "interop.test."),
        records(&appliance, "interop.test.")
    );
}
