//! Installs that cannot run are refused with the reason, and nothing is stored.

use super::*;

/// An install the appliance must refuse, and what its message must say.
struct RefusedInstall {
    file: PathBuf,
    hook: &'static str,
    config: &'static str,
    needles: &'static [&'static str],
}

#[test]
fn installs_that_cannot_run_are_refused_and_nothing_is_stored() {
    let appliance = Appliance::start(&patient_plugins_config());
    let scratch = appliance.scratch();
    // Not WebAssembly: bytes of a simple generator, the same every run.
    let random: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    std::fs::write(scratch.join("random.wasm"), &random).unwrap();
    std::fs::write(scratch.join("core.wasm"), &core_module).unwrap();
    let refused =
        |file: PathBuf, hook: &'static str, config: &'static str, needles| RefusedInstall {
            file,
            hook,
            config,
            needles,
        };
    let cases = [
        refused(
            scratch.join("random.wasm"),
            "query-policy",
            "",
            &["not WebAssembly"],
        ),
        refused(
            scratch.join("core.wasm"),
            "query-policy",
            "",
            &["core WebAssembly module", "not a component"],
        ),
        refused(
            plugin_path("ttl_floor"),
            "query-policy",
            "300",
            &["not a query-policy plugin"],
        ),
        refused(
            plugin_path("blocklist"),
            "record-transform",
            "",
            &["not a record-transform plugin"],
        ),
        refused(
            plugin_path("blocklist"),
            "query-policy",
            "color=red\n",
            &["init refused", "color"],
        ),
        refused(
            plugin_path("hostile"),
            "query-policy",
            "init=fail",
            &["configured to fail"],
        ),
    ];
    for case in cases {
        let what = format!(
            "{} as {} with config {:?}",
            case.file.display(),
            case.hook,
            case.config
        );
        let config_file = scratch.join("refused.conf");
        std::fs::write(&config_file, case.config).unwrap();
        let output = appliance.cli([
            "plugin".as_ref(),
            "install".as_ref(),
            case.file.as_os_str(),
            "--name".as_ref(),
            "refused".as_ref(),
            "--hook".as_ref(),
            case.hook.as_ref(),
            "--config-file".as_ref(),
            config_file.as_os_str(),
        ]);
        assert_fails_with(&output, case.needles);

        let bytes = std::fs::read(&case.file).unwrap();
        let (status, body) = put_plugin(
            &appliance,
            "refused",
            case.hook,
            &bytes,
            case.config,
            "fail-open",
        );
        assert_eq!(status, 422, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        for needle in case.needles {
            assert!(error.contains(needle), "{what}: {error:?} lacks {needle:?}");
        }
    }

    // An init that never returns is stopped at its deadline, and refused too.
    let started = Instant::now();
    let (status, body) = put_plugin(
        &appliance,
        "refused",
        "query-policy",
        &plugin_bytes("hostile"),
        "init=loop",
        "fail-open",
    );
    assert_eq!(status, 422, "init=loop: {body}");
    assert!(started.elapsed() < LOAD_DEADLINE, "{:?}", started.elapsed());
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline")),
        "{body}"
    );

    // An unknown hook is a bad request, from the API and the CLI alike.
    let (status, body) = put_plugin(
        &appliance,
        "refused",
        "response-rewrite",
        &plugin_bytes("blocklist"),
        "",
        "fail-open",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("response-rewrite")),
        "{body}"
    );
    let output = appliance.cli([
        "plugin".as_ref(),
        "install".as_ref(),
        plugin_path("blocklist").as_os_str(),
        "--name".as_ref(),
        "refused".as_ref(),
        "--hook".as_ref(),
        "response-rewrite".as_ref(),
    ]);
    assert_fails_with(&output, &["response-rewrite"]);
    let output = appliance.cli([
        "plugin",
        "install",
        "/nonexistent/x.wasm",
        "--name",
        "x",
        "--hook",
        "query-policy",
    ]);
    assert_fails_with(&output, &["/nonexistent/x.wasm"]);

    assert_eq!(plugins(&appliance), Vec::<Value>::new());
    let list = appliance.cli_ok(["plugin", "list"]);
    assert!(!list.contains("refused"), "{list}");
    assert_eq!(appliance.a_records("www.example.internal."), ["10.0.0.10"]);
}
