//! Tier 2: the metrics of a real appliance (bridges, ports, traffic between namespaces): a
//! scrape `promtool check metrics` accepts, with every family of the catalogue and no duplicate
//! series; traffic counted; series that follow the database, the patterns and the cap; daemon
//! health, restarts and the probes through a killed ovs-vswitchd.

mod common;

use common::http;
use common::net::{ns_run, Host};
use common::scrape::{samples, scrape, value};
use common::*;
use ovs_appliance::metrics::catalogue;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// The default [metrics] listen port, on the loopback of each test's own namespace.
const PORT: u16 = 9476;

const TWO_HOSTS: &str = r#"
[metrics]
refresh_interval = "1s"

[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "s1"
  [[bridges.ports]]
  name = "s2"
  [[bridges.ports]]
  name = "mgmt0"
  type = "internal"
  addresses = ["10.71.0.254/24"]
"#;

fn appliance(extra: &str, programs: &[&str]) -> Option<Appliance> {
    require_real_ovs_and(programs)
        .then(|| Appliance::new(&format!("datapath = \"netdev\"\n{extra}")))
}

fn labels(port: &str) -> [(&'static str, &str); 3] {
    [("bridge", "br0"), ("port", port), ("interface", port)]
}

/// `promtool check metrics` on `text`: its complaints, empty when clean.
fn promtool_check(dir: &std::path::Path, text: &str) -> String {
    let file = dir.join("scrape.txt");
    std::fs::write(&file, text).unwrap();
    let out = run(
        Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < '{}'", file.display())),
        Duration::from_secs(30),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("status {}: {said}", out.status)
    }
}

#[test]
fn a_real_scrape_is_clean_complete_and_counts_traffic() {
    let Some(mut app) = appliance(TWO_HOSTS, &["promtool"]) else {
        return;
    };
    let h1 = Host::new(&app.netns.name, "s1", "10.71.0.1/24");
    let h2 = Host::new(&app.netns.name, "s2", "10.71.0.2/24");
    app.start_ready();
    h1.ping(&h2.addr);
    let runs = |text: &str| value(text, "ovs_appliance_reconcile_runs_total", &[]);
    // Two passes: the first apply, and the one that checks it (its own rows came back while
    // ovs-vswitchd applied it). The status every new interface then gets (ofport, link_state)
    // plans nothing.
    let runs_before = wait_for(Duration::from_secs(20), "the pass count to settle", || {
        let first = runs(&scrape(&app, PORT));
        std::thread::sleep(Duration::from_millis(500));
        (runs(&scrape(&app, PORT)) == first).then_some(first)
    });
    assert_eq!(runs_before, Some(2.0), "passes after the start");
    // Interface statistics are refreshed every 5 s: after 6 s the warm-up pings are counted,
    // so they cannot be mistaken for the N below.
    std::thread::sleep(Duration::from_secs(6));
    // That refresh reached the monitor, and did not make reconcile plan again.
    assert_eq!(
        runs(&scrape(&app, PORT)),
        runs_before,
        "statistics re-planned"
    );
    let rx = |text: &str| value(text, "ovs_interface_receive_packets_total", &labels("s1"));
    let before = wait_for(Duration::from_secs(20), "s1's receive counter", || {
        rx(&scrape(&app, PORT))
    });
    const N: u64 = 20;
    let out = ns_run(
        &h1.netns.name,
        &[
            "ping",
            "-c",
            &N.to_string(),
            "-i",
            "0.05",
            "-W",
            "1",
            &h2.addr,
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "ping: {out:?}");
    // Counted at the next refresh, within 5 s.
    let after = wait_for(Duration::from_secs(20), "s1's counter to grow by N", || {
        rx(&scrape(&app, PORT)).filter(|v| *v >= before + N as f64)
    });
    eprintln!("s1 received {before} packets before the pings, {after} after");

    // Every family of the catalogue, once the background readings have the bridge too.
    let wanted: BTreeSet<&str> = catalogue::ALL.iter().map(|s| s.name).collect();
    let text = wait_for(Duration::from_secs(20), "every family in a scrape", || {
        let text = scrape(&app, PORT);
        let present = families(&text);
        wanted.is_subset(&present).then_some(text)
    });
    assert_eq!(families(&text), wanted, "families outside the catalogue");
    let problems = promtool_check(app.dir.path(), &text);
    assert!(problems.is_empty(), "promtool check metrics: {problems}");
    let mut series = BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let s = line.rsplit_once(' ').unwrap().0;
        assert!(series.insert(s), "duplicate series {s}");
    }
    // The heap in use is the allocator's count: a few MiB here, not a constant or a page count.
    let heap = value(&text, "ovs_appliance_heap_in_use_bytes", &[]).expect("heap in use");
    let rss = value(&text, "process_resident_memory_bytes", &[]).expect("resident memory");
    assert!(
        heap > 1e6 && heap < 4.0 * rss,
        "heap in use {heap} bytes against {rss} resident"
    );
    // Every collector succeeded; no uuid anywhere.
    for s in samples(&text) {
        if s.name == "ovs_appliance_collector_success" {
            assert_eq!(s.value, 1.0, "{s:?}");
        }
        assert!(!s
            .labels
            .values()
            .any(|v| v.len() == 36 && v.matches('-').count() == 4));
    }
}

fn families(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect()
}

#[test]
fn series_follow_the_database_the_patterns_and_the_cap() {
    let config = r#"
[metrics]
exclude = ["br*"]
max_interfaces = 2

[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "s1"
  type = "internal"
  [[bridges.ports]]
  name = "s2"
  type = "internal"
"#;
    let Some(mut app) = appliance(config, &[]) else {
        return;
    };
    app.start_ready();
    let exported = |text: &str| -> BTreeSet<String> {
        samples(text)
            .into_iter()
            .filter(|s| s.name == "ovs_interface_info")
            .map(|s| s.labels["interface"].clone())
            .collect()
    };
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let dropped = |text: &str| value(text, "ovs_appliance_metrics_interfaces_dropped", &[]);
    wait_for(Duration::from_secs(20), "s1 and s2 exported", || {
        let text = scrape(&app, PORT);
        (exported(&text) == names(&["s1", "s2"]) && dropped(&text) == Some(0.0)).then_some(())
    });
    // A port someone else adds: sorted first, so it is exported and s2 goes over the cap.
    let add = [
        "add-port",
        "br0",
        "a0",
        "--",
        "set",
        "interface",
        "a0",
        "type=internal",
    ];
    assert!(app.vsctl_ok(&add));
    let text = wait_for(Duration::from_secs(20), "a0 in, s2 over the cap", || {
        let text = scrape(&app, PORT);
        (exported(&text) == names(&["a0", "s1"])).then_some(text)
    });
    // One interface over the cap, however often it is scraped (it was a counter that grew
    // with every scrape).
    assert_eq!(dropped(&text), Some(1.0), "{text}");
    for _ in 0..3 {
        assert_eq!(dropped(&scrape(&app, PORT)), Some(1.0));
    }
    assert_eq!(
        value(&text, "ovs_appliance_metrics_interfaces", &[]),
        Some(2.0)
    );
    // Deleted: its series are gone from the next scrape, and s2 is back.
    assert!(app.vsctl_ok(&["del-port", "br0", "a0"]));
    wait_for(Duration::from_secs(20), "a0 gone, s2 back", || {
        let text = scrape(&app, PORT);
        (exported(&text) == names(&["s1", "s2"]) && !text.contains("\"a0\"")).then_some(())
    });
}

#[test]
fn a_killed_vswitchd_shows_in_up_restarts_and_the_probes() {
    // The second restart in a row waits 1-2 s (backoff_initial, jittered): long enough to see
    // the daemon down.
    let config = r#"
[supervisor]
backoff_initial = "2s"
backoff_max = "2s"

[[bridges]]
name = "br0"
"#;
    let Some(mut app) = appliance(config, &[]) else {
        return;
    };
    app.start_ready();
    let ns = app.netns.name.clone();
    let vs = [("daemon", "ovs-vswitchd")];
    let up = |t: &str| value(t, "ovs_appliance_daemon_up", &vs);
    let restarts = |t: &str| value(t, "ovs_appliance_daemon_restarts_total", &vs);
    let status = |path: &str| http::get(&ns, PORT, path).map(|r| r.status);
    wait_for(Duration::from_secs(20), "healthy and ready", || {
        let text = scrape(&app, PORT);
        let fine = up(&text) == Some(1.0) && restarts(&text) == Some(0.0);
        (fine && status("/healthz") == Some(200) && status("/readyz") == Some(200)).then_some(())
    });
    for round in 1..=2u32 {
        let pid = app.pid("ovs-vswitchd").expect("vswitchd running");
        kill(pid, nix::sys::signal::Signal::SIGKILL);
        if round == 2 {
            wait_for(
                Duration::from_secs(10),
                "up 0, /healthz and /readyz 503",
                || {
                    let text = scrape(&app, PORT);
                    let down = up(&text) == Some(0.0) && status("/healthz") == Some(503);
                    (down && status("/readyz") == Some(503)).then_some(())
                },
            );
        }
        wait_for(Duration::from_secs(30), "restarted and up again", || {
            let text = scrape(&app, PORT);
            let back = up(&text) == Some(1.0) && restarts(&text) == Some(f64::from(round));
            (back && status("/healthz") == Some(200)).then_some(())
        });
    }
    let text = scrape(&app, PORT);
    let db = [("daemon", "ovsdb-server")];
    assert_eq!(
        value(&text, "ovs_appliance_daemon_restarts_total", &db),
        Some(0.0)
    );
    wait_for(Duration::from_secs(20), "ready again", || {
        (status("/readyz") == Some(200)).then_some(())
    });
}

#[test]
fn a_stopped_vswitchd_fails_its_collectors_and_the_scrape_still_answers_at_once() {
    // Health checks far apart, so the supervisor does not restart the stopped daemon here.
    let config = r#"
[supervisor]
health_interval = "60s"

[metrics]
refresh_interval = "1s"

[[bridges]]
name = "br0"
"#;
    let Some(mut app) = appliance(config, &[]) else {
        return;
    };
    app.start_ready();
    let success =
        |text: &str, c: &str| value(text, "ovs_appliance_collector_success", &[("collector", c)]);
    wait_for(Duration::from_secs(20), "the datapath collector", || {
        (success(&scrape(&app, PORT), "datapath") == Some(1.0)).then_some(())
    });
    let pid = app.pid("ovs-vswitchd").expect("vswitchd running");
    kill(pid, nix::sys::signal::Signal::SIGSTOP);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let text = wait_for(
            Duration::from_secs(20),
            "vswitchd collectors failing",
            || {
                let began = std::time::Instant::now();
                let text = scrape(&app, PORT);
                let took = began.elapsed();
                assert!(took < Duration::from_secs(1), "a scrape waited {took:?}");
                (success(&text, "datapath") == Some(0.0)).then_some(text)
            },
        );
        // The daemon's other figures, and everything from the cache, are still there.
        assert_eq!(success(&text, "interfaces"), Some(1.0));
        assert_eq!(success(&text, "ovsdb_memory"), Some(1.0));
        assert!(
            !text.contains("ovs_datapath_flows{"),
            "stale datapath series"
        );
        assert!(text.contains("ovs_bridge_ports{bridge=\"br0\"}"));
    }));
    kill(pid, nix::sys::signal::Signal::SIGCONT);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    wait_for(
        Duration::from_secs(20),
        "the datapath collector back",
        || (success(&scrape(&app, PORT), "datapath") == Some(1.0)).then_some(()),
    );
}

#[test]
fn the_listener_answers_only_its_paths_and_methods() {
    let Some(mut app) = appliance("", &[]) else {
        return;
    };
    app.start_ready();
    let ns = app.netns.name.clone();
    scrape(&app, PORT);
    let r = http::get(&ns, PORT, "/metrics").unwrap();
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(http::get(&ns, PORT, "/nope").unwrap().status, 404);
    let post = http::request(&ns, PORT, "POST", "/metrics").unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // Garbage and a silent client do not take the listener down.
    use std::io::{Read, Write};
    let mut g = http::connect(&ns, PORT).unwrap();
    let _ = g.write_all(&[0xff, 0x00, 0x13, b'\n', b'\r', b'\n'].repeat(100));
    let mut sink = Vec::new();
    let _ = g.read_to_end(&mut sink);
    let _quiet = http::connect(&ns, PORT).unwrap();
    assert_eq!(http::get(&ns, PORT, "/healthz").unwrap().status, 200);
}
