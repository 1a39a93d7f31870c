//! Tier 2: the daemons' log lines and our own output, against real ovsdb-server and
//! ovs-vswitchd started through the binary, each test in its own network namespace and temp dir.

mod common;

use common::*;
use std::io::Read;
use std::process::{ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FAST: &str = r#"
datapath = "netdev"
[supervisor]
health_interval = "100ms"
health_timeout = "300ms"
health_failures = 2
"#;

/// The default [metrics] listen port, on the loopback of the test's own namespace.
const PORT: u16 = 9476;

/// Starts `run` with its stdout on a pipe the caller holds (and may never read), stderr in
/// the log file, and the appliance's own log level at debug.
fn start_with_stdout_pipe(app: &mut Appliance) -> ChildStdout {
    let log = std::fs::File::create(app.log_path()).unwrap();
    let mut child = app
        .command(&[], "run")
        .env("OVS_APPLIANCE_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    app.child = Some(child);
    stdout
}

fn appctl(app: &Appliance, pid: i32, args: &[&str]) -> std::process::Output {
    let ctl = app.run_dir().join(format!("ovs-vswitchd.{pid}.ctl"));
    let mut cmd = std::process::Command::new("ovs-appctl");
    cmd.arg("-t").arg(ctl).arg("--timeout=5").args(args);
    run(&mut cmd, Duration::from_secs(10))
}

fn dropped_metric(ns: &str) -> Option<f64> {
    let r = http::get(ns, PORT, "/metrics")?;
    r.body
        .lines()
        .find_map(|l| l.strip_prefix("ovs_appliance_log_lines_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
}

/// Issue 13, item 1: whoever reads our stdout may stall for good; ovs-vswitchd (at debug level,
/// with database updates to log) must keep answering and `/healthz` must keep saying 200.
#[test]
fn a_stalled_log_reader_blocks_neither_vswitchd_nor_healthz() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(FAST);
    let stdout = start_with_stdout_pipe(&mut app);
    app.wait_ready();
    let vswitchd = app.pid("ovs-vswitchd").unwrap();
    let out = appctl(&app, vswitchd, &["vlog/set", "console:dbg"]);
    assert!(out.status.success(), "vlog/set: {out:?}");
    let out = app.vsctl(&[
        "add-br",
        "br-log",
        "--",
        "set",
        "bridge",
        "br-log",
        "datapath_type=netdev",
    ]);
    assert!(out.status.success(), "add-br: {out:?}");

    // Database churn: each update of a column ovs-vswitchd reads reaches it, and it logs the
    // update whole at debug level.
    let stop = Arc::new(AtomicBool::new(false));
    let updates = Arc::new(AtomicU64::new(0));
    let churn = {
        let (stop, updates) = (stop.clone(), updates.clone());
        let run_dir = app.run_dir();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let value = format!("{i}-{}", "x".repeat(16_000));
                let mut cmd = std::process::Command::new("ovs-vsctl");
                cmd.env("OVS_RUNDIR", &run_dir).args([
                    "--timeout=2",
                    "--no-wait",
                    "set",
                    "bridge",
                    "br-log",
                    &format!("other_config:junk={value}"),
                ]);
                if run(&mut cmd, Duration::from_secs(5)).status.success() {
                    updates.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let started = Instant::now();
    let mut worst_version = Duration::ZERO;
    let mut checks = 0;
    while started.elapsed() < Duration::from_secs(12) {
        let t = Instant::now();
        let out = appctl(&app, vswitchd, &["version"]);
        let took = t.elapsed();
        worst_version = worst_version.max(took);
        assert!(
            out.status.success() && took < Duration::from_secs(2),
            "ovs-vswitchd did not answer `version` within 2 s after {:?} of a stalled reader ({took:?}): {out:?}",
            started.elapsed()
        );
        let health = http::get(&app.netns.name, PORT, "/healthz");
        assert_eq!(
            health.as_ref().map(|r| r.status),
            Some(200),
            "/healthz after {:?} of a stalled reader: {health:?}",
            started.elapsed()
        );
        checks += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    let dropped = dropped_metric(&app.netns.name).expect("the dropped-lines metric");
    eprintln!(
        "{checks} checks, worst `version` {worst_version:?}, {} updates, {dropped} lines dropped",
        updates.load(Ordering::Relaxed)
    );
    assert!(dropped > 0.0, "the stalled reader made no line drop");
    assert!(app.still_running());

    // The reader drains: output resumes, saying how many lines were lost.
    let text = Arc::new(Mutex::new(Vec::new()));
    {
        let text = text.clone();
        let mut stdout = stdout;
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
    }
    let report = wait_for(Duration::from_secs(20), "the dropped-lines report", || {
        let text = String::from_utf8_lossy(&text.lock().unwrap()).into_owned();
        text.lines()
            .find(|l| l.contains("log lines: the reader of the appliance's output did not keep up"))
            .map(str::to_string)
    });
    eprintln!("{report}");
    assert!(report.contains("WARN"), "{report}");
    let app_ok = appctl(&app, vswitchd, &["version"]);
    assert!(app_ok.status.success());
}

/// Issue 12, item 6: a warning ovs-vswitchd repeats at every reconfiguration (a port whose
/// device does not exist) is logged once, then counted.
#[test]
fn repeated_daemon_lines_are_collapsed() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(FAST);
    app.start_ready();
    let br = [
        "add-br",
        "br-rep",
        "--",
        "set",
        "bridge",
        "br-rep",
        "datapath_type=netdev",
    ];
    assert!(app.vsctl(&br).status.success());
    // add-port fails its wait (the device is missing) but the port is in the database.
    app.vsctl(&["add-port", "br-rep", "nodev0"]);
    for i in 0..10 {
        let key = format!("external_ids:n={i}");
        app.vsctl(&["set", "bridge", "br-rep", &key]);
    }
    // Another message ends the run of repeats.
    app.vsctl(&["add-port", "br-rep", "nodev1"]);
    let warning = "could not open network device nodev0";
    let log = wait_for(Duration::from_secs(10), "the repeat count", || {
        let log = app.log();
        log.contains("more times: could not open network device nodev0")
            .then_some(log)
    });
    // Up to the other message (after it, ovs-vswitchd warns about both ports, alternately).
    let before = log.split("network device nodev1").next().unwrap();
    let lines: Vec<&str> = before.lines().filter(|l| l.contains(warning)).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains(&format!("WARN ovs: {warning} ")),
        "{}",
        lines[0]
    );
    let times: u64 = lines[1]
        .split("repeated ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", lines[1]));
    assert!(times >= 10, "{}", lines[1]);
    assert!(
        lines[1].contains(&format!("repeated={times}")),
        "{}",
        lines[1]
    );
}
