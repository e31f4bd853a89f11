//! `dns.listen` as a list: the appliance serves UDP and TCP on every address (IPv4 and
//! IPv6 loopback here, each on a port of its own), names them in `addresses.json`, and
//! refuses a bad list with a clear error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use outpost_tests::appliance::{allow_root_flag, check_config_error};
use outpost_tests::{
    Ask, answers_of, ask_tcp, ask_udp_from, outpost_bin, unused_upstream, wait_until,
};

/// Kills the daemon when the test ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_dns_listen_address_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("outpost.toml");
    std::fs::write(
        &config,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:0\", \"[::1]:0\"]\n[forward]\nupstreams = [\"{}\"]\n",
            unused_upstream()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon(
        Command::new(outpost_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(["--admin", "127.0.0.1:0", "--sync", "127.0.0.1:0"])
            .args(allow_root_flag())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addresses = data.join("addresses.json");
    let mut listen: Vec<SocketAddr> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            let Ok(text) = std::fs::read_to_string(&addresses) else {
                return false;
            };
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
                return false;
            };
            if value["pid"] != daemon.0.id() {
                return false;
            }
            listen = value["dns_listen"]
                .as_array()
                .unwrap()
                .iter()
                .map(|addr| addr.as_str().unwrap().parse().unwrap())
                .collect();
            true
        }),
        "the daemon did not write addresses.json"
    );
    assert_eq!(listen.len(), 2, "{listen:?}");
    assert!(listen[0].is_ipv4() && listen[1].is_ipv6(), "{listen:?}");
    for addr in listen {
        let ask = Ask::new("www.example.internal.", RecordType::A);
        let source = match addr {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        assert_eq!(
            answers_of(&ask_udp_from(source, addr, &ask), RecordType::A),
            ["10.0.0.10"],
            "UDP on {addr}"
        );
        assert_eq!(
            answers_of(&ask_tcp(addr, &ask), RecordType::A),
            ["10.0.0.10"],
            "TCP on {addr}"
        );
    }
}

#[test]
fn a_bad_dns_listen_list_is_a_clear_error() {
    for (listen, expected) in [
        ("[]", "dns.listen: \"[]\" is empty"),
        (
            "[\"127.0.0.1:53\", \"127.0.0.1:53\"]",
            "dns.listen: \"127.0.0.1:53\" is listed twice",
        ),
        (
            "[\"127.0.0.1:53\", \"localhost:53\"]",
            "dns.listen: \"localhost:53\" is not an address",
        ),
    ] {
        let stderr = check_config_error(&format!("[dns]\nlisten = {listen}\n"));
        assert!(stderr.contains(expected), "{listen}: {stderr}");
    }
}
