//! The operator's console (`/ui/`) driven by a real headless Chromium through
//! ChromeDriver, against a real appliance: sign in, change records and see `dig` answer
//! them, import a broken zone file and read its line number, watch `dig`'s queries in
//! the live log, see a blocked query marked with its plugin, revoke a Lite token and
//! see the session close, see a cluster of three and a removal refused for its quorum,
//! sign out. Each page is checked with axe-core and
//! photographed (`OUTPOST_SCREENSHOTS=docs/console` refreshes the docs' pictures).
//! The session's refusals (no cookie, a wrong CSRF token) and the query log's API are
//! checked over plain HTTP.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use outpost_tests::browser::{self, Browser, PATIENCE};
use outpost_tests::lite::Lite;
use outpost_tests::{Appliance, default_config, plugin_path, wait_until};

/// What `dig` prints for `name` and `rtype`, with `extra` options (`+short`).
fn dig_with(dns: SocketAddr, name: &str, rtype: &str, extra: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            &format!("@{}", dns.ip()),
            "-p",
            &dns.port().to_string(),
            "+tries=1",
            "+time=5",
            name,
            rtype,
        ])
        .args(extra)
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dig(dns: SocketAddr, name: &str, rtype: &str) -> String {
    dig_with(dns, name, rtype, &[])
}

/// The answer section's data of `dig +short`.
fn dig_short(dns: SocketAddr, name: &str) -> String {
    dig_with(dns, name, "A", &["+short"]).trim().to_string()
}

fn console_url(appliance: &Appliance) -> String {
    format!("http://{}/ui/", appliance.admin_addr())
}

/// Opens the console and signs in with the admin token.
fn signed_in(appliance: &Appliance) -> Browser {
    let browser = Browser::start();
    browser.goto(&console_url(appliance));
    browser.type_into("#token", appliance.token());
    browser.click("button[type=submit]");
    browser.wait_for_text("Queries per second");
    browser
}

/// Photographs the page as `name.png` and checks it with axe-core.
fn check_page(browser: &Browser, axe: &str, name: &str) {
    let dir = browser::screenshot_dir();
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    browser.screenshot(&dir.join(format!("{name}.png")));
    let violations = browser::accessibility_violations(browser, axe);
    assert!(
        violations.is_empty(),
        "axe-core finds on the {name} page:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_console_signs_in_edits_records_shows_queries_and_signs_out() {
    let appliance = Appliance::start(&default_config());
    let dns = appliance.dns_addr();
    let axe = browser::axe_script();
    let browser = Browser::start();
    browser.goto(&console_url(&appliance));
    browser.wait_for("#token");
    check_page(&browser, &axe, "sign-in");

    // A wrong token is refused with the reason; the right one opens the dashboard.
    browser.type_into("#token", "not-the-token");
    browser.click("button[type=submit]");
    browser.wait_for_text("not this node's admin token");
    browser.type_into("#token", appliance.token());
    browser.click("button[type=submit]");
    browser.wait_for_text("Queries per second");
    let cookies = browser.cookies();
    let session = cookies
        .iter()
        .find(|cookie| cookie["name"] == "outpost_session")
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    let script_sees = browser.execute("return document.cookie;", serde_json::json!([]));
    assert_eq!(
        script_sees, "",
        "the page's script must not read the session"
    );

    // Add a record in the zone's page; dig gets it.
    browser.goto(&format!("{}#/zones", console_url(&appliance)));
    browser.click("a[href='#/zones/example.internal.']");
    browser.wait_for_text("www.example.internal.");
    browser.type_into("#add-record input[name=name]", "console.example.internal.");
    browser.type_into("#add-record input[name=type]", "A");
    browser.type_into("#add-record input[name=data]", "192.0.2.55");
    browser.click("#add-record button[type=submit]");
    browser.wait_for_text("Added console.example.internal. A 192.0.2.55.");
    assert_eq!(dig_short(dns, "console.example.internal."), "192.0.2.55");
    browser.wait_for_text("192.0.2.55");
    check_page(&browser, &axe, "zone");

    // A master file with a mistake on line 3: the notice names the line, nothing changes.
    browser.goto(&format!("{}#/zones", console_url(&appliance)));
    browser.type_into("input[name=import-origin]", "broken.test.");
    browser.type_into(
        "textarea[name=zone-file]",
        "$ORIGIN broken.test.\n@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\nwww 300 IN A 999.1.2.3\n",
    );
    browser.click("form.stack button[type=submit]");
    browser.wait_for_text("line 3");
    check_page(&browser, &axe, "zones");
    let (status, _) = appliance.api("GET", "/v1/zones/broken.test./export", None);
    assert_eq!(status, 404, "the broken zone must not exist");

    // The live log shows what dig asks, with where the answer came from.
    browser.goto(&format!("{}#/log", console_url(&appliance)));
    browser.wait_for("#log");
    assert!(dig(dns, "console.example.internal.", "A").contains("192.0.2.55"));
    dig(dns, "nothing-here.example.internal.", "TXT");
    browser.wait_for_text("nothing-here.example.internal.");
    let row = browser.text("#log tbody tr:first-child");
    assert!(row.contains("nothing-here.example.internal."), "{row}");
    assert!(
        row.contains("TXT") && row.contains("NXDOMAIN") && row.contains("zone"),
        "{row}"
    );
    check_page(&browser, &axe, "query-log");

    // The dashboard counts them.
    browser.goto(&console_url(&appliance));
    browser.wait_for_text("Top names");
    browser.wait_for_text("console.example.internal.");
    check_page(&browser, &axe, "dashboard");

    // The cluster page is checked on a cluster of three, below.
    for (page, heading) in [("lite", "Tokens"), ("plugins", "Install or update")] {
        browser.goto(&format!("{}#/{page}", console_url(&appliance)));
        browser.wait_for_text(heading);
        check_page(&browser, &axe, page);
    }

    // On a phone's width, every page fits: nothing wider than the screen but the
    // tables, which scroll inside their own box.
    browser.resize(390, 844);
    for page in ["", "log", "zones", "cluster", "lite", "plugins"] {
        browser.goto(&format!("{}#/{page}", console_url(&appliance)));
        browser.wait_for("main h1");
        let overflow = browser.execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            serde_json::json!([]),
        );
        assert!(
            overflow.as_i64().is_some_and(|px| px <= 0),
            "#/{page} is {overflow} px too wide for a phone"
        );
    }
    browser.goto(&format!("{}#/log", console_url(&appliance)));
    browser.wait_for_text("nothing-here.example.internal.");
    check_page(&browser, &axe, "query-log-phone");
    browser.resize(1280, 900);

    // Sign out: the sign-in form again, and the old session is gone.
    browser.click("#sign-out");
    browser.wait_for("#token");
    // A fresh load asks the node for the session: it is gone there, not only in the page.
    browser.execute("location.reload();", serde_json::json!([]));
    browser.goto(&format!("{}#/zones", console_url(&appliance)));
    browser.wait_for("#token");
    let asked = browser.execute_async(
        "const done = arguments[arguments.length - 1];
         fetch('/v1/zones').then((r) => done(r.status));",
        serde_json::json!([]),
    );
    assert_eq!(asked, 401, "the signed-out browser still reads /v1");
    assert!(!browser.page_text().contains("example.internal."));
}

/// A request as a browser would send it: the session cookie, perhaps a CSRF token,
/// never the bearer token. (status, body)
fn with_session(
    appliance: &Appliance,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
    body: Option<&str>,
) -> (u16, String, Vec<String>) {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", appliance.admin_addr()));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", format!("outpost_session={cookie}"));
    }
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", csrf);
    }
    if body.is_some() {
        request = request.header("Content-Type", "application/json");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .run(request.body(body.unwrap_or_default().to_string()).unwrap())
        .expect("the admin listener answers");
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap_or_default().to_string())
        .collect();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, text, cookies)
}

#[test]
fn console_requests_without_the_session_or_its_csrf_token_are_refused() {
    let appliance = Appliance::start(&default_config());
    let (status, body, _) = with_session(
        &appliance,
        "POST",
        "/ui/session",
        None,
        None,
        Some(r#"{"token":"wrong"}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not this node's admin token"), "{body}");

    let sign_in = format!(r#"{{"token":"{}"}}"#, appliance.token());
    let (status, body, cookies) = with_session(
        &appliance,
        "POST",
        "/ui/session",
        None,
        None,
        Some(&sign_in),
    );
    assert_eq!(status, 200, "{body}");
    let set = cookies.first().cloned().unwrap_or_default();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("outpost_session="))
        .expect("a session cookie")
        .to_string();
    let csrf: serde_json::Value = serde_json::from_str(&body).unwrap();
    let csrf = csrf["csrf"].as_str().unwrap().to_string();

    let zone = Some(r#"{"origin":"csrf.test."}"#);
    let reads = with_session(&appliance, "GET", "/v1/zones", Some(&cookie), None, None);
    assert_eq!(reads.0, 200, "{}", reads.1);
    let none = with_session(&appliance, "POST", "/v1/zones", None, None, zone);
    assert_eq!(none.0, 401, "{}", none.1);
    let forged = with_session(&appliance, "GET", "/v1/zones", Some("forged"), None, None);
    assert_eq!(forged.0, 401, "{}", forged.1);
    let no_csrf = with_session(&appliance, "POST", "/v1/zones", Some(&cookie), None, zone);
    assert_eq!(no_csrf.0, 403, "{}", no_csrf.1);
    assert!(no_csrf.1.contains("CSRF"), "{}", no_csrf.1);
    let wrong = with_session(
        &appliance,
        "POST",
        "/v1/zones",
        Some(&cookie),
        Some("00"),
        zone,
    );
    assert_eq!(wrong.0, 403, "{}", wrong.1);
    let (status, _) = appliance.api("GET", "/v1/zones/csrf.test./export", None);
    assert_eq!(status, 404, "a refused change changed nothing");
    let right = with_session(
        &appliance,
        "POST",
        "/v1/zones",
        Some(&cookie),
        Some(&csrf),
        zone,
    );
    assert_eq!(right.0, 201, "{}", right.1);

    // Signing out needs the CSRF token too; after it, the cookie opens nothing.
    let out = with_session(
        &appliance,
        "DELETE",
        "/ui/session",
        Some(&cookie),
        None,
        None,
    );
    assert_eq!(out.0, 403, "{}", out.1);
    let out = with_session(
        &appliance,
        "DELETE",
        "/ui/session",
        Some(&cookie),
        Some(&csrf),
        None,
    );
    assert_eq!(out.0, 204, "{}", out.1);
    assert!(out.2.iter().any(|c| c.contains("Max-Age=0")), "{:?}", out.2);
    let after = with_session(&appliance, "GET", "/v1/zones", Some(&cookie), None, None);
    assert_eq!(after.0, 401, "{}", after.1);

    // The pages forbid scripts and frames from anywhere else.
    let page = with_session(&appliance, "GET", "/ui/", None, None, None);
    assert_eq!(page.0, 200);
    assert!(page.1.contains("/ui/app.js"), "{}", page.1);
}

#[test]
fn a_blocked_query_is_marked_with_its_plugin_in_the_console() {
    let appliance = Appliance::start(&default_config());
    let dns = appliance.dns_addr();
    let config = appliance.scratch().join("blocklist.conf");
    // A name in no zone: before the plugin, the forwarder fails it (SERVFAIL); only the
    // plugin can make it NXDOMAIN.
    std::fs::write(&config, "ads.blocked.test\n").unwrap();
    let browser = signed_in(&appliance);
    browser.goto(&format!("{}#/plugins", console_url(&appliance)));
    browser.type_into("input[name=plugin-name]", "ads");
    browser.type_into(
        "input[name=component]",
        // Chromium takes only a canonical path for a file input.
        &plugin_path("blocklist")
            .canonicalize()
            .expect("scripts/build-plugins.sh built the blocklist")
            .display()
            .to_string(),
    );
    browser.type_into("input[name=config]", &config.display().to_string());
    browser.click("form.inline button[type=submit]");
    browser.wait_for_text("Installed ads.");
    let running = wait_until(PATIENCE, || {
        dig(dns, "ads.blocked.test.", "A").contains("NXDOMAIN")
    });
    assert!(
        running,
        "the blocklist never blocked:\n{}",
        appliance.log_tail()
    );
    browser.goto(&format!("{}#/plugins", console_url(&appliance)));
    browser.wait_for_text("running");

    browser.goto(&format!("{}#/log", console_url(&appliance)));
    browser.wait_for_text("block by ads");
    let row = browser.text("#log tbody tr:first-child");
    assert!(
        row.contains("ads.blocked.test.") && row.contains("block by ads"),
        "{row}"
    );
    browser.goto(&console_url(&appliance));
    browser.wait_for_text("Top blocked names");
    browser.wait_for_text("ads.blocked.test.");
}

#[test]
fn revoking_a_lite_token_in_the_console_closes_its_session() {
    let appliance = Appliance::start(&default_config());
    let browser = signed_in(&appliance);
    browser.goto(&format!("{}#/lite", console_url(&appliance)));
    browser.type_into("input[name=token-name]", "laptop");
    browser.type_into("input[name=token-zones]", "example.internal.");
    browser.click("form.inline button[type=submit]");
    browser.wait_for_text("Created the token laptop.");
    let token = browser.text("#created-token .secret");
    assert!(token.len() > 20, "{token}");

    let lite = Lite::start_for(&appliance, &token);
    lite.wait_for_a("www.example.internal.", &["10.0.0.10"]);
    // The page refreshes its sessions: the new one appears, and the token shown once
    // is still there to copy.
    browser.wait_for_text(&lite_client_id(&appliance));
    assert_eq!(browser.text("#created-token .secret"), token);

    browser.click("button[aria-label='Revoke token laptop']");
    browser.accept_alert();
    browser.wait_for_text("Revoked laptop.");
    lite.wait_for_status("the revoked token", Duration::from_secs(30), |status| {
        status["state"] == "Disconnected"
            && status["error"]
                .as_str()
                .is_some_and(|error| error.contains("refused the token"))
    });
    let closed = wait_until(PATIENCE, || {
        appliance.api_json("GET", "/v1/sync/sessions", None).1 == serde_json::json!([])
    });
    assert!(closed, "the session stayed open");
}

/// The client id of the one Lite session the appliance has.
fn lite_client_id(appliance: &Appliance) -> String {
    let mut id = String::new();
    wait_until(PATIENCE, || {
        let (_, sessions) = appliance.api_json("GET", "/v1/sync/sessions", None);
        id = sessions[0]["client_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        !id.is_empty()
    });
    assert!(!id.is_empty(), "no Lite session on the appliance");
    id
}

/// `GET /v1/querylog` with the bearer token: the records.
fn logged(appliance: &Appliance, query: &str) -> Vec<serde_json::Value> {
    let (status, body) = appliance.api_json("GET", &format!("/v1/querylog?{query}"), None);
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().cloned().unwrap_or_default()
}

#[test]
fn the_query_log_api_searches_names_its_bad_parameters_and_follows_a_reload() {
    let appliance = Appliance::start(&default_config());
    let dns = appliance.dns_addr();
    dig(dns, "www.example.internal.", "A");
    dig(dns, "www.example.internal.", "TXT");
    dig(dns, "nowhere.example.internal.", "A");
    let all = logged(&appliance, "");
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0]["name"], "nowhere.example.internal.");
    assert_eq!(all[0]["rcode"], "NXDOMAIN");
    assert_eq!(all[0]["client"], "127.0.0.1");
    let txt = logged(&appliance, "type=txt&name=WWW");
    assert_eq!(txt.len(), 1, "{txt:?}");
    assert_eq!(txt[0]["type"], "TXT");
    let newest = all[0]["seq"].as_u64().unwrap();
    assert!(logged(&appliance, &format!("after={newest}")).is_empty());

    let (status, stats) = appliance.api_json("GET", "/v1/querylog/stats?window=24h", None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["queries"], 3, "{stats}");
    assert_eq!(stats["top_names"][0]["key"], "www.example.internal.");
    assert_eq!(stats["top_names"][0]["count"], 2);

    for (query, names) in [
        ("type=NOPE", "type \"NOPE\""),
        ("rcode=sometimes", "rcode \"sometimes\""),
        ("client=example", "client \"example\""),
        ("source=elsewhere", "source \"elsewhere\""),
        ("limit=5000", "limit 5000"),
        ("colour=red", "unknown field `colour`"),
    ] {
        let (status, body) = appliance.api_json("GET", &format!("/v1/querylog?{query}"), None);
        assert_eq!(status, 400, "{query}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(names), "{query}: {error}");
    }
    let (status, body) = appliance.api("GET", "/v1/querylog/stats?window=2d", None);
    assert_eq!(status, 400, "{body}");

    // A reload that anonymises clients, then one that turns the log off.
    let config = appliance.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[query_log]\nanonymize_clients = true\n"),
    )
    .unwrap();
    appliance.signal(nix::sys::signal::Signal::SIGHUP);
    let anonymised = wait_until(PATIENCE, || {
        dig(dns, "www.example.internal.", "AAAA");
        logged(&appliance, "type=AAAA")
            .first()
            .is_some_and(|record| record["client"] == "127.0.0.0")
    });
    assert!(anonymised, "{:?}", logged(&appliance, ""));
    std::fs::write(&config, format!("{text}\n[query_log]\nmode = \"off\"\n")).unwrap();
    appliance.signal(nix::sys::signal::Signal::SIGHUP);
    let off = wait_until(PATIENCE, || {
        let (_, body) = appliance.api_json("GET", "/v1/querylog?limit=1", None);
        body["mode"] == "off"
    });
    assert!(off, "the reload never turned the log off");
    let before = logged(&appliance, "limit=1000").len();
    dig(dns, "after-off.example.internal.", "A");
    assert_eq!(logged(&appliance, "limit=1000").len(), before);
}

#[test]
fn the_cluster_page_lists_the_nodes_makes_a_ticket_and_shows_a_quorum_refusal() {
    use outpost_tests::cluster::{CLUSTER_WAIT, leader, start_cluster};
    let mut nodes = start_cluster(3, "");
    let leader = leader(&nodes, &[0, 1, 2]);
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (down, kept) = (followers[0], followers[1]);
    let browser = signed_in(&nodes[leader]);
    browser.goto(&format!("{}#/cluster", console_url(&nodes[leader])));
    let three = wait_until(CLUSTER_WAIT, || {
        browser.goto(&format!("{}#/cluster", console_url(&nodes[leader])));
        browser.wait_for_text("Nodes");
        let text = browser.page_text();
        text.split_whitespace()
            .filter(|word| *word == "healthy")
            .count()
            == 3
    });
    assert!(three, "{}", browser.page_text());
    assert_eq!(
        browser.page_text().matches("leader").count(),
        2,
        "the tag and the tile"
    );
    check_page(&browser, &browser::axe_script(), "cluster");

    browser.click("#main button:not(.danger)");
    browser.wait_for(".secret");
    assert!(
        browser.text(".secret").starts_with("outpost-join-v1:"),
        "{}",
        browser.text(".secret")
    );

    // With one follower down, removing the other would lose the quorum: the page says
    // so, and the node stays.
    let kept_id = nodes[kept].api_json("GET", "/v1/status", None).1["node_id"]
        .as_u64()
        .unwrap();
    nodes[down].kill9();
    let refused = wait_until(CLUSTER_WAIT, || {
        browser.goto(&format!("{}#/cluster", console_url(&nodes[leader])));
        browser.click(&format!("button[aria-label='Remove node {kept_id}']"));
        browser.accept_alert();
        browser.wait_for("#notice p");
        let notice = browser.text("#notice p");
        assert!(
            !notice.starts_with("Removed"),
            "a removal that loses the quorum went through"
        );
        notice.contains("quorum")
    });
    assert!(refused, "{}", browser.page_text());
}
