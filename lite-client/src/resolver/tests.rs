use super::*;

fn zones(list: &[&str]) -> Vec<String> {
    list.iter().map(|zone| zone.to_string()).collect()
}

fn dns(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn linux_gets_one_resolved_drop_in_routing_only_the_zones() {
    let root = Path::new("/");
    let plan = plan_install(
        Os::Linux,
        root,
        dns("127.0.0.1:5354"),
        &zones(&["site.internal.", "lab.internal."]),
    )
    .unwrap();
    assert_eq!(
        plan.write,
        [(
            PathBuf::from("/etc/systemd/resolved.conf.d/outpost-lite.conf"),
            format!(
                "{MARKER}\n[Resolve]\nDNS=127.0.0.1:5354\nDomains=~site.internal ~lab.internal\n"
            )
        )]
    );
    assert_eq!(
        plan.commands,
        [["systemctl", "try-reload-or-restart", "systemd-resolved"]]
    );
}

#[test]
fn macos_gets_a_resolver_file_per_zone_with_the_port() {
    let plan = plan_install(
        Os::Macos,
        Path::new("/"),
        dns("127.0.0.1:5354"),
        &zones(&["site.internal.", "lab.internal."]),
    )
    .unwrap();
    let expected = format!("{MARKER}\nnameserver 127.0.0.1\nport 5354\n");
    assert_eq!(
        plan.write,
        [
            (
                PathBuf::from("/etc/resolver/site.internal"),
                expected.clone()
            ),
            (PathBuf::from("/etc/resolver/lab.internal"), expected),
        ]
    );
    assert!(plan.commands.is_empty());
}

#[test]
fn windows_gets_nrpt_rules_and_needs_port_53() {
    let error = plan_install(
        Os::Windows,
        Path::new("/"),
        dns("127.0.0.1:5354"),
        &zones(&["site.internal."]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("--dns 127.0.0.1:53"), "{error}");
    let plan = plan_install(
        Os::Windows,
        Path::new("/"),
        dns("127.0.0.1:53"),
        &zones(&["site.internal."]),
    )
    .unwrap();
    assert!(plan.write.is_empty());
    let script = &plan.commands[0][3];
    assert!(script.contains("Remove-DnsClientNrptRule"), "{script}");
    assert!(
        script.contains("Add-DnsClientNrptRule -Namespace '.site.internal' -NameServers '127.0.0.1' -Comment 'outpost-lite'"),
        "{script}"
    );
    let removal = plan_uninstall(&installed(
        Os::Windows,
        Path::new("/"),
        dns("127.0.0.1:53"),
        &zones(&["site.internal."]),
        &plan,
    ));
    assert!(removal.commands[0][3].contains("Where-Object Comment -eq 'outpost-lite'"));
}

#[test]
fn no_zones_is_an_error_not_an_empty_config() {
    let error = plan_install(Os::Linux, Path::new("/"), dns("127.0.0.1:5354"), &[]).unwrap_err();
    assert!(matches!(error, ResolverError::NoZones), "{error}");
}

#[test]
fn a_changed_scope_rewrites_and_uninstall_removes_only_ours() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let target = (Os::Macos, root, dns("127.0.0.1:5354"));
    let first = reinstall(data, None, target, &zones(&["a.test.", "b.test."]), false).unwrap();
    assert_eq!(read_installed(data).as_ref(), Some(&first));
    assert!(root.join("etc/resolver/a.test").exists() && root.join("etc/resolver/b.test").exists());
    // The scope lost b.test. and gained c.test.
    let second = reinstall(
        data,
        Some(&first),
        target,
        &zones(&["a.test.", "c.test."]),
        false,
    )
    .unwrap();
    assert!(root.join("etc/resolver/a.test").exists());
    assert!(!root.join("etc/resolver/b.test").exists());
    assert!(root.join("etc/resolver/c.test").exists());
    // Someone else's file beside ours is left alone, and one of ours replaced by theirs is refused.
    std::fs::write(
        root.join("etc/resolver/corp.example"),
        "nameserver 10.0.0.1\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/resolver/c.test"), "nameserver 10.9.9.9\n").unwrap();
    let refused = apply(&plan_uninstall(&second), false).unwrap_err();
    assert!(
        matches!(refused, ResolverError::Foreign { .. }),
        "{refused}"
    );
    std::fs::remove_file(root.join("etc/resolver/c.test")).unwrap();
    apply(&plan_uninstall(&second), false).unwrap();
    assert!(!root.join("etc/resolver/a.test").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/resolver/corp.example")).unwrap(),
        "nameserver 10.0.0.1\n"
    );
}

#[test]
fn what_is_installed_is_kept_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_installed(dir.path()), None);
    let plan = plan_install(
        Os::Linux,
        dir.path(),
        dns("127.0.0.1:5354"),
        &zones(&["a.test."]),
    )
    .unwrap();
    let kept = installed(
        Os::Linux,
        dir.path(),
        dns("127.0.0.1:5354"),
        &zones(&["a.test."]),
        &plan,
    );
    write_installed(dir.path(), Some(&kept)).unwrap();
    assert_eq!(read_installed(dir.path()), Some(kept));
    write_installed(dir.path(), None).unwrap();
    assert_eq!(read_installed(dir.path()), None);
}

#[test]
fn zone_names_that_could_escape_a_file_or_a_string_are_refused() {
    for zone in [
        "x'; Start-Process calc; '.",
        "x\nDNS=203.0.113.9.",
        "/etc/sudoers.d/x",
        "../../x.",
        "a..b.",
        ".",
        "sp ace.test.",
    ] {
        let error = plan_install(
            Os::Macos,
            Path::new("/"),
            dns("127.0.0.1:5354"),
            &zones(&[zone]),
        )
        .unwrap_err();
        assert!(
            matches!(error, ResolverError::Zone { .. }),
            "{zone:?}: {error}"
        );
    }
    assert_eq!(
        check_zone("_dmarc.site-1.internal.").unwrap(),
        "_dmarc.site-1.internal"
    );
    // Uninstall recomputes its paths from the zones: a tampered list of files is ignored.
    let tampered = Installed {
        os: Os::Macos,
        root: PathBuf::from("/"),
        dns: dns("127.0.0.1:5354"),
        zones: zones(&["../../usr/bin/sudo", "a.test."]),
        files: vec![PathBuf::from("/usr/bin/sudo")],
    };
    assert_eq!(
        plan_uninstall(&tampered).remove,
        [PathBuf::from("/etc/resolver/a.test")]
    );
}

#[test]
fn a_file_that_cannot_be_read_as_ours_is_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("tool");
    std::fs::write(&binary, [0x7f, b'E', b'L', b'F', 0xff, 0xfe]).unwrap();
    let plan = Plan {
        remove: vec![binary.clone()],
        ..Plan::default()
    };
    assert!(matches!(
        apply(&plan, false),
        Err(ResolverError::Foreign { .. })
    ));
    assert!(binary.exists());
}
