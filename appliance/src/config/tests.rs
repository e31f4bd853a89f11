use outpost_dns::forward::Upstream;

use super::*;
use crate::store::DEFAULT_HISTORY_ENTRIES;

#[test]
fn flags_override_the_file_which_overrides_defaults() {
    let raw = RawConfig::from_toml(
        "[dns]\nlisten = \"127.0.0.1:9953\"\n[admin]\nlisten = \"127.0.0.1:9080\"\n[forward]\nupstreams = [\"127.0.0.1:5300\", \"tcp://127.0.0.1:5301\"]\n",
    )
    .unwrap();
    let config = raw
        .resolve(Overrides {
            dns: Some("127.0.0.1:7753".into()),
            ..Overrides::default()
        })
        .unwrap();
    assert_eq!(config.dns, ["127.0.0.1:7753".parse().unwrap()]);
    assert_eq!(config.admin, "127.0.0.1:9080".parse().unwrap());
    assert_eq!(
        config.sync,
        SyncConfig {
            listen: DEFAULT_SYNC.parse().unwrap(),
            tls: None,
            history_entries: DEFAULT_HISTORY_ENTRIES,
        }
    );
    assert_eq!(
        config.forward.upstreams,
        vec![
            Upstream::Udp("127.0.0.1:5300".parse().unwrap()),
            Upstream::Tcp("127.0.0.1:5301".parse().unwrap()),
        ]
    );
    assert_eq!(
        config.recursion_networks.len(),
        DEFAULT_RECURSION_NETWORKS.len()
    );
}

#[test]
fn the_raft_address_is_off_by_default_and_must_be_one_peers_can_dial() {
    let config = RawConfig::default().resolve(Overrides::default()).unwrap();
    assert_eq!(config.raft, None);
    let raw = RawConfig::from_toml("[cluster]\nraft = \"127.0.0.1:7400\"\n").unwrap();
    let config = raw
        .resolve(Overrides {
            raft: Some("127.0.0.1:7401".into()),
            ..Overrides::default()
        })
        .unwrap();
    assert_eq!(config.raft, Some("127.0.0.1:7401".parse().unwrap()));
    for (text, problem) in [("0.0.0.0:7400", "unspecified"), ("node-a:7400", "IP:PORT")] {
        let error = RawConfig::from_toml(&format!("[cluster]\nraft = {text:?}\n"))
            .unwrap()
            .resolve(Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("cluster.raft"), "{error}");
        assert!(error.contains(problem), "{error}");
    }
}

#[test]
fn secrets_in_the_clear_off_loopback_are_a_decision() {
    // Sync off loopback: TLS, or the operator's explicit choice.
    let err = RawConfig::from_toml("[sync]\nlisten = \"0.0.0.0:8054\"\n")
        .unwrap()
        .resolve(Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("sync.listen: \"0.0.0.0:8054\" is not a loopback address")
            && err.contains("sync.insecure_plaintext = true"),
        "{err}"
    );
    let tls = "[sync]\nlisten = \"0.0.0.0:8054\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n";
    assert!(
        RawConfig::from_toml(tls)
            .unwrap()
            .resolve(Overrides::default())
            .is_ok()
    );
    let plain = "[sync]\nlisten = \"0.0.0.0:8054\"\ninsecure_plaintext = true\n";
    assert!(
        RawConfig::from_toml(plain)
            .unwrap()
            .resolve(Overrides::default())
            .is_ok()
    );
    // The flag counts too.
    let err = RawConfig::default()
        .resolve(Overrides {
            sync: Some("192.0.2.1:8054".into()),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("sync.listen: \"192.0.2.1:8054\""), "{err}");

    // The admin API has no TLS: off loopback only when asked.
    let err = RawConfig::from_toml("[admin]\nlisten = \"[::]:8053\"\n")
        .unwrap()
        .resolve(Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("admin.listen: \"[::]:8053\" is not a loopback address")
            && err.contains("admin.insecure_plaintext = true"),
        "{err}"
    );
    let plain = "[admin]\nlisten = \"[::]:8053\"\ninsecure_plaintext = true\n";
    assert!(
        RawConfig::from_toml(plain)
            .unwrap()
            .resolve(Overrides::default())
            .is_ok()
    );
    let ipv6_loopback = "[admin]\nlisten = \"[::1]:8053\"\n";
    assert!(
        RawConfig::from_toml(ipv6_loopback)
            .unwrap()
            .resolve(Overrides::default())
            .is_ok()
    );
}

#[test]
fn the_sync_section() {
    let raw = RawConfig::from_toml(
        "[sync]\nlisten = \"127.0.0.1:9054\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\nhistory_entries = 10\n",
    )
    .unwrap();
    let config = raw
        .resolve(Overrides {
            sync: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        })
        .unwrap();
    assert_eq!(
        config.sync,
        SyncConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: Some(TlsFiles {
                cert: "cert.pem".into(),
                key: "key.pem".into(),
            }),
            history_entries: 10,
        }
    );

    let raw = RawConfig::from_toml("[sync]\ntls_cert = \"cert.pem\"\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert_eq!(
        err,
        "sync.tls_key is missing while sync.tls_cert is cert.pem (set both for wss://, or neither for ws://)"
    );

    let raw = RawConfig::from_toml("[sync]\nhistory_entries = 100000001\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert_eq!(
        err,
        "sync.history_entries: \"100000001\" is too large (at most 100000000)"
    );

    let err = RawConfig::from_toml("[sync]\ntls = true\n").unwrap_err();
    assert!(err.contains("unknown field `tls`"), "{err}");
}

#[test]
fn a_reload_names_the_keys_that_need_a_restart() {
    let resolve = |text: &str| {
        RawConfig::from_toml(text)
            .unwrap()
            .resolve(Overrides {
                data_dir: Some("/var/lib/outpost".into()),
                ..Overrides::default()
            })
            .unwrap()
    };
    let running = resolve("[forward]\nupstreams = [\"127.0.0.1\"]\n");
    let live = resolve(
        "log = \"debug\"\n[dns]\nallow_recursion = []\n[forward]\nupstreams = [\"127.0.0.2\"]\ntimeout_ms = 100\n",
    );
    assert_eq!(running.restart_required(&live), Vec::<&str>::new());

    let moved = resolve(
        "data_dir = \"/elsewhere\"\nallow_root = true\n[dns]\nlisten = \"127.0.0.1:53\"\n[admin]\nlisten = \"127.0.0.1:1\"\n[sync]\nlisten = \"127.0.0.1:2\"\ntls_cert = \"c\"\ntls_key = \"k\"\nhistory_entries = 5\n[forward]\nupstreams = [\"127.0.0.1\"]\n",
    );
    // The data_dir flag wins over the file, so only the file's other keys moved.
    assert_eq!(
        running.restart_required(&moved),
        [
            "dns.listen",
            "admin.listen",
            "sync.listen",
            "sync.tls_cert",
            "sync.tls_key",
            "sync.history_entries",
            "allow_root"
        ]
    );
    // A join ticket is read once, at start (it was missing from the list once).
    let mut joining = running.clone();
    joining.join = Some(JoinTicket {
        cluster_id: "c".into(),
        nodes: Vec::new(),
        secret: [1; 32],
        expires_unix: 0,
    });
    assert_eq!(running.restart_required(&joining), ["cluster.join"]);
    // Plugins are loaded with their deadlines when the node starts.
    let patient = resolve(
        "[forward]\nupstreams = [\"127.0.0.1\"]\n[plugins]\npolicy_deadline_ms = 50\ntransform_deadline_ms = 5000\n",
    );
    assert_eq!(
        running.restart_required(&patient),
        [
            "plugins.policy_deadline_ms",
            "plugins.transform_deadline_ms"
        ]
    );
}

#[test]
fn the_plugins_section() {
    let config = RawConfig::default().resolve(Overrides::default()).unwrap();
    assert_eq!(config.plugins, PluginDeadlines::default());
    let raw = RawConfig::from_toml("[plugins]\npolicy_deadline_ms = 250\n").unwrap();
    let config = raw.resolve(Overrides::default()).unwrap();
    assert_eq!(config.plugins.policy, Duration::from_millis(250));
    assert_eq!(
        config.plugins.transform,
        PluginDeadlines::default().transform
    );

    let raw = RawConfig::from_toml("[plugins]\npolicy_deadline_ms = 0\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert_eq!(
        err,
        "plugins.policy_deadline_ms: \"0\" is out of range (1 to 1000 milliseconds)"
    );
    let raw = RawConfig::from_toml("[plugins]\ntransform_deadline_ms = 60001\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert!(
        err.starts_with("plugins.transform_deadline_ms: \"60001\""),
        "{err}"
    );
}

#[test]
fn rate_limiting_is_off_unless_its_table_is_given_and_then_checked() {
    let config = RawConfig::default().resolve(Overrides::default()).unwrap();
    assert_eq!(config.rate_limit, None);
    let raw = RawConfig::from_toml("[dns.rate_limit]\n").unwrap();
    let config = raw.resolve(Overrides::default()).unwrap();
    assert_eq!(
        config.rate_limit,
        Some(RateLimit {
            responses_per_second: 20,
            slip: 2,
            exempt_recursion: true
        })
    );
    let raw = RawConfig::from_toml("[dns.rate_limit]\nslip = 11\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert_eq!(err, "dns.rate_limit.slip: \"11\" is out of range (0 to 10)");
    let raw = RawConfig::from_toml("[dns.rate_limit]\nresponses_per_second = 0\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert!(
        err.starts_with("dns.rate_limit.responses_per_second: \"0\" is out of range"),
        "{err}"
    );
    let err = RawConfig::from_toml("[dns.rate_limit]\nrate = 5\n").unwrap_err();
    assert!(err.contains("unknown field `rate`"), "{err}");
}

#[test]
fn the_log_filter_is_checked() {
    let raw = RawConfig::from_toml("log = \"info,outpost_appliance=debug\"\n").unwrap();
    let config = raw.resolve(Overrides::default()).unwrap();
    assert_eq!(config.log.as_deref(), Some("info,outpost_appliance=debug"));

    let raw = RawConfig::from_toml("log = \"info,[\"\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert!(
        err.starts_with("log: \"info,[\" is not a log filter ("),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let err = RawConfig::from_toml("[dns]\nlisten = \"127.0.0.1:53\"\nlisen = 1\n").unwrap_err();
    assert!(err.contains("lisen"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn bad_values_name_the_key_and_the_fix() {
    let raw = RawConfig::from_toml("[dns]\nallow_recursion = [\"10.0.0.0/33\"]\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert_eq!(
        err,
        "dns.allow_recursion: \"10.0.0.0/33\" is not a network (use CIDR, e.g. 10.0.0.0/8)"
    );

    let raw = RawConfig::default();
    let err = raw
        .resolve(Overrides {
            admin: Some("localhost".into()),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("admin.listen: \"localhost\" is not an address"),
        "{err}"
    );
}

#[test]
fn forward_zones_and_a_listen_list_are_read() {
    let raw = RawConfig::from_toml(
        "[dns]\nlisten = [\"127.0.0.1:53\", \"[::1]:5353\"]\n\
         [forward]\nupstreams = [\"10.0.0.1\"]\nserve_stale_secs = 60\n\
         [[forward.zones]]\nname = \"corp.example.\"\nupstreams = [\"10.1.0.53\", \"tls://10.1.0.54#dc2.corp.example\"]\n\
         [[forward.zones]]\nname = \"lab.example.\"\nupstreams = [\"10.2.0.53\"]\ncache_entries = 50\nserve_stale_secs = 0\n",
    )
    .unwrap();
    let config = raw.resolve(Overrides::default()).unwrap();
    assert_eq!(
        config.dns,
        [
            "127.0.0.1:53".parse().unwrap(),
            "[::1]:5353".parse().unwrap()
        ]
    );
    let zones = &config.forward.zones;
    assert_eq!(zones.len(), 2);
    assert_eq!(zones[0].name.to_string(), "corp.example.");
    assert_eq!(zones[0].upstreams.len(), 2);
    assert_eq!(zones[0].cache_entries, forward::DEFAULT_ZONE_CACHE_ENTRIES);
    assert_eq!(zones[0].serve_stale, Duration::from_secs(60));
    assert_eq!(
        (zones[1].cache_entries, zones[1].serve_stale),
        (50, Duration::ZERO)
    );
    // A zone's DoT upstream needs the TLS settings, as a default one would.
    assert!(config.forward.tls.is_some());
}

#[test]
fn the_transfer_section_is_read_and_its_mistakes_named() {
    let secret = "c2VjcmV0IHNoYXJlZCB3aXRoIHRoZSBzZWNvbmRhcnk=";
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("knot.tsig");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let keys = format!(
        "[[transfer.keys]]\nname = \"knot.\"\nsecret_file = \"{}\"\n\
         [[transfer.keys]]\nname = \"bind.\"\nalgorithm = \"hmac-sha512\"\nsecret = \"{secret}\"\n",
        secret_file.display()
    );
    let text = format!(
        "{keys}[[transfer.secondaries]]\nzones = [\"Site.Internal.\"]\n\
         allow = [\"192.0.2.10\", \"2001:db8::/64\"]\nnotify = [\"192.0.2.10\", \"[2001:db8::1]:5300\"]\n\
         key = \"knot.\"\n"
    );
    let config = RawConfig::from_toml(&text)
        .unwrap()
        .resolve(Overrides::default())
        .unwrap();
    let secondary = &config.transfer.secondaries[0];
    assert_eq!(secondary.zones[0].to_string(), "site.internal.");
    assert_eq!(secondary.allow.len(), 2);
    assert_eq!(
        secondary.notify,
        [
            "192.0.2.10:53".parse().unwrap(),
            "[2001:db8::1]:5300".parse().unwrap()
        ]
    );
    assert_eq!(secondary.key.as_ref().unwrap().to_string(), "knot.");

    let unknown_key = "[[transfer.secondaries]]\nallow = [\"192.0.2.10\"]\nkey = \"nobody.\"\n";
    assert_eq!(
        error(unknown_key),
        "transfer.secondaries.key: \"nobody.\" is not a [[transfer.keys]] name"
    );
    let bad_secret = "[[transfer.keys]]\nname = \"k.\"\nsecret = \"not base64!\"\n";
    assert_eq!(
        error(bad_secret),
        "transfer.keys: \"k.\" TSIG secret of key k. is not base64"
    );
    let md5 = format!(
        "[[transfer.keys]]\nname = \"k.\"\nalgorithm = \"hmac-md5\"\nsecret = \"{secret}\"\n"
    );
    assert!(
        error(&md5).contains("hmac-md5\" is not supported"),
        "{}",
        error(&md5)
    );
    let nobody = "[[transfer.secondaries]]\nallow = []\n";
    assert!(
        error(nobody).starts_with("transfer.secondaries.allow"),
        "{}",
        error(nobody)
    );
    let relative = "[[transfer.secondaries]]\nzones = [\"site\"]\nallow = [\"192.0.2.1\"]\n";
    assert!(
        error(relative).contains("end it with a dot"),
        "{}",
        error(relative)
    );
    let no_secret = "[[transfer.keys]]\nname = \"k.\"\n";
    assert!(error(no_secret).contains("exactly one of secret and secret_file"));
}

#[test]
fn the_sources_are_read_and_their_mistakes_named() {
    let text = "[[sources]]\nname = \"dhcp\"\nkind = \"kea\"\npath = \"/var/lib/kea/kea-leases4.csv\"\nzone = \"Site.Internal.\"\n";
    let config = RawConfig::from_toml(text)
        .unwrap()
        .resolve(Overrides::default())
        .unwrap();
    let source = &config.sources[0];
    assert_eq!(source.zone.to_string(), "site.internal.");
    assert_eq!((source.ttl, source.reverse), (300, true));

    let kind = "[[sources]]\nname = \"a\"\nkind = \"isc\"\npath = \"/x\"\nzone = \"a.\"\n";
    assert_eq!(
        error(kind),
        "sources.kind: \"isc\" is not hosts, dnsmasq or kea"
    );
    let twice = "[[sources]]\nname = \"a\"\nkind = \"hosts\"\npath = \"/x\"\nzone = \"a.\"\n\
                 [[sources]]\nname = \"a\"\nkind = \"hosts\"\npath = \"/y\"\nzone = \"a.\"\n";
    assert!(error(twice).contains("unique"), "{}", error(twice));
    let relative = "[[sources]]\nname = \"a\"\nkind = \"hosts\"\npath = \"/x\"\nzone = \"a\"\n";
    assert!(
        error(relative).contains("end it with a dot"),
        "{}",
        error(relative)
    );
}

/// The error a config file's text resolves to.
fn error(text: &str) -> String {
    RawConfig::from_toml(text)
        .unwrap()
        .resolve(Overrides::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn the_query_log_keeps_every_query_by_default_and_its_keys_are_checked() {
    use outpost_dns::querylog::{Mode, Settings};
    let config = RawConfig::default().resolve(Overrides::default()).unwrap();
    assert_eq!(config.query_log, Settings::default());
    assert_eq!(config.query_log.mode, Mode::All);
    let raw = RawConfig::from_toml(
        "[query_log]\nmode = \"blocked-or-failed\"\ncapacity = 50\nanonymize_clients = true\n",
    )
    .unwrap();
    let config = raw.resolve(Overrides::default()).unwrap();
    assert_eq!(
        config.query_log,
        Settings {
            mode: Mode::BlockedOrFailed,
            capacity: 50,
            anonymize_clients: true
        }
    );
    let raw = RawConfig::from_toml("[query_log]\nmode = \"some\"\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert_eq!(
        err,
        "query_log.mode: \"some\" is not a mode (all, blocked-or-failed or off)"
    );
    let raw = RawConfig::from_toml("[query_log]\ncapacity = 0\n").unwrap();
    let err = raw.resolve(Overrides::default()).unwrap_err().to_string();
    assert_eq!(
        err,
        "query_log.capacity: \"0\" is out of range (1 to 1000000)"
    );
}
