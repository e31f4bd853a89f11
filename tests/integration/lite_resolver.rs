//! `outpost-lite resolver install|uninstall` with the real binary: the files each system
//! gets (`--dry-run --os`), a drop-in written under `--root` and kept in step by the
//! running client when its token's scope shrinks, and an uninstall that removes it.

use std::path::Path;
use std::process::{Command, Output};

use outpost_tests::lite::lite_bin;
use outpost_tests::{Appliance, Lite, create_lite_token, default_config, wait_until};

fn resolver(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(lite_bin())
        .arg("resolver")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("outpost-lite runs")
}

fn ok(output: Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

const LAB: &str = "$ORIGIN lab.test.\n@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\nbox 300 IN A 10.8.0.1\n";

#[test]
fn the_resolver_sends_only_the_replicas_zones_and_follows_the_scope() {
    let appliance = Appliance::start(&default_config());
    appliance.import_zone("lab.test.", LAB);
    let token = create_lite_token(&appliance, "laptop", "example.internal.,lab.test.");
    let lite = Lite::start_for(&appliance, &token);
    lite.wait_for_a("box.lab.test.", &["10.8.0.1"]);
    lite.wait_for_status(
        "both zones in status.json",
        std::time::Duration::from_secs(10),
        |status| status["zone_names"].as_array().map(Vec::len) == Some(2),
    );
    let data = lite.data_dir();
    let dns = lite.dns_addr();

    // What each system would get, printed and not written.
    let mac = ok(resolver(&data, &["install", "--dry-run", "--os", "macos"]));
    assert!(mac.contains("write /etc/resolver/lab.test:"), "{mac}");
    assert!(
        mac.contains(&format!("nameserver {}\nport {}", dns.ip(), dns.port())),
        "{mac}"
    );
    let windows = resolver(&data, &["install", "--dry-run", "--os", "windows"]);
    assert!(!windows.status.success());
    assert!(String::from_utf8_lossy(&windows.stderr).contains("port 53"));
    let refused = resolver(&data, &["install", "--os", "macos"]);
    assert!(
        !refused.status.success(),
        "another system without --dry-run"
    );

    // Installed under a root of the test's: the drop-in names the client and the zones.
    let root = tempfile::tempdir().unwrap();
    let root_arg = root.path().to_str().unwrap();
    let out = ok(resolver(&data, &["install", "--root", root_arg]));
    assert!(out.contains("installed"), "{out}");
    let drop_in = root
        .path()
        .join("etc/systemd/resolved.conf.d/outpost-lite.conf");
    let text = std::fs::read_to_string(&drop_in).unwrap();
    assert!(text.contains(&format!("DNS={dns}\n")), "{text}");
    let domains = |text: &str| {
        let line = text
            .lines()
            .find(|line| line.starts_with("Domains="))
            .unwrap_or("")
            .to_string();
        let mut domains: Vec<String> = line
            .trim_start_matches("Domains=")
            .split(' ')
            .map(String::from)
            .collect();
        domains.sort();
        domains
    };
    assert_eq!(domains(&text), ["~example.internal", "~lab.test"]);

    // The zone leaves the token's scope: the running client rewrites the drop-in.
    let (status, body) = appliance.api("DELETE", "/v1/zones/lab.test.", None);
    assert_eq!(status, 200, "{body}");
    let followed = wait_until(std::time::Duration::from_secs(20), || {
        domains(&std::fs::read_to_string(&drop_in).unwrap_or_default()) == ["~example.internal"]
    });
    assert!(
        followed,
        "{}",
        std::fs::read_to_string(&drop_in).unwrap_or_default()
    );

    // Uninstall removes it, and what was installed is forgotten.
    ok(resolver(&data, &["uninstall"]));
    assert!(!drop_in.exists());
    assert!(!data.join("resolver.json").exists());
    let again = ok(resolver(&data, &["uninstall"]));
    assert!(again.contains("nothing installed"), "{again}");
}

/// A network namespace joined to the host by a veth pair, removed when dropped.
struct Namespace {
    name: String,
    host_ip: String,
}

impl Namespace {
    fn new() -> Namespace {
        let id = std::process::id() % 10_000;
        let name = format!("outpost-resolved-{id}");
        let (host, inside) = (format!("orh{id}"), format!("orn{id}"));
        let subnet = 1 + id % 250;
        let host_ip = format!("10.213.{subnet}.1");
        let ip = |args: &str| {
            let status = Command::new("ip")
                .args(args.split(' '))
                .status()
                .expect("ip runs");
            assert!(status.success(), "ip {args}");
        };
        // A namespace left by a test killed before its drop (usually there is none).
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&format!("netns add {name}"));
        ip(&format!("link add {host} type veth peer name {inside}"));
        ip(&format!("link set {inside} netns {name}"));
        ip(&format!("addr add {host_ip}/24 dev {host}"));
        ip(&format!("link set {host} up"));
        ip(&format!(
            "netns exec {name} ip addr add 10.213.{subnet}.2/24 dev {inside}"
        ));
        ip(&format!("netns exec {name} ip link set {inside} up"));
        ip(&format!("netns exec {name} ip link set lo up"));
        ip(&format!(
            "netns exec {name} ip route add default via {host_ip}"
        ));
        Namespace { name, host_ip }
    }

    fn exec(&self) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// What runs systemd-resolved in the namespace: its own /run, /etc/systemd (holding
/// `drop_in` and a test drop-in that keeps it off every other network: no LLMNR, no
/// mDNS, no fallback servers) and a passwd with its user.
const RESOLVED_SCRIPT: &str = r#"set -e
scratch=$1; drop_in=$2; resolved=$3
cp /etc/passwd "$scratch/passwd"; cp /etc/group "$scratch/group"
echo 'systemd-resolve:x:990:990::/:/usr/sbin/nologin' >> "$scratch/passwd"
echo 'systemd-resolve:x:990:' >> "$scratch/group"
mount --bind "$scratch/passwd" /etc/passwd
mount --bind "$scratch/group" /etc/group
mkdir -p /etc/systemd && mount -t tmpfs tmpfs /etc/systemd
mount -t tmpfs tmpfs /run && mkdir -p /run/systemd
mkdir -p /etc/systemd/resolved.conf.d
cp "$drop_in" /etc/systemd/resolved.conf.d/
printf '[Resolve]\nLLMNR=no\nMulticastDNS=no\nFallbackDNS=\n' > /etc/systemd/resolved.conf.d/00-test.conf
exec "$resolved"
"#;

#[test]
fn a_real_systemd_resolved_sends_the_zones_to_the_client() {
    let resolved = std::env::var("OUTPOST_SYSTEMD_RESOLVED").expect(
        "OUTPOST_SYSTEMD_RESOLVED names systemd-resolved's binary (scripts/test.sh extracts it from Debian's package)",
    );
    let namespace = Namespace::new();
    let appliance = Appliance::start(&default_config());
    let token = create_lite_token(&appliance, "laptop", "example.internal.");
    // The client listens where the namespace reaches it: the host end of the veth pair.
    let dns_flag = format!("{}:0", namespace.host_ip);
    let lite = Lite::start_with_args(
        &[outpost_tests::sync_url(&appliance)],
        &token,
        &["--dns", &dns_flag],
    );
    lite.wait_for_status(
        "the zone in status.json",
        std::time::Duration::from_secs(20),
        |status| status["zone_names"] == serde_json::json!(["example.internal."]),
    );
    let root = tempfile::tempdir().unwrap();
    ok(resolver(
        &lite.data_dir(),
        &["install", "--root", root.path().to_str().unwrap()],
    ));
    let drop_in = root
        .path()
        .join("etc/systemd/resolved.conf.d/outpost-lite.conf");

    let scratch = tempfile::tempdir().unwrap();
    let mut daemon = namespace
        .exec()
        .args([
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            RESOLVED_SCRIPT,
            "resolved",
        ])
        .arg(scratch.path())
        .arg(&drop_in)
        .arg(&resolved)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("systemd-resolved starts");
    let dig = |name: &str| {
        let out = namespace
            .exec()
            .args([
                "dig",
                "@127.0.0.53",
                "+short",
                "+tries=1",
                "+time=2",
                name,
                "A",
            ])
            .output()
            .expect("dig runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let answered = wait_until(std::time::Duration::from_secs(20), || {
        dig("www.example.internal.") == "10.0.0.10"
    });
    dig("outside.example.com.");
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        answered,
        "systemd-resolved never answered from the client: {:?}",
        dig("www.example.internal.")
    );

    // The zone's question reached the client through systemd-resolved and was answered
    // from the replica. A global DNS= server is also resolved's default route, so with
    // no other server (as in this namespace) it is asked other names too; the client
    // refuses those, as they come from an address that may not recurse (docs/lite-client.md
    // says what this means on a laptop).
    let page = lite.page_addr();
    let log = ureq::get(&format!("http://{page}/querylog?limit=100"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let records = log["records"].as_array().cloned().unwrap_or_default();
    let asked = |name: &str| {
        records
            .iter()
            .find(|record| record["name"] == name)
            .cloned()
    };
    let zone = asked("www.example.internal.").expect("the zone's query reached the client");
    assert_eq!(zone["source"], "zone", "{zone}");
    if let Some(other) = asked("outside.example.com.") {
        assert_eq!(other["rcode"], "REFUSED", "{other}");
    }
}
