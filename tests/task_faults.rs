//! Tier 2: a task of the appliance that ends or panics (issue 14 item 4) stops the daemons in
//! order and ends the appliance with 70, its name and why in the log. The failure is injected
//! with `OVS_APPLIANCE_FAULT` (src/app/tasks.rs), in the real binary.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn start_with_fault(app: &mut Appliance, fault: &str) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(app.log_path())
        .unwrap();
    let child = app
        .command(&[], "run")
        .env("OVS_APPLIANCE_FAULT", fault)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    app.child = Some(child);
}

fn a_failed_task_stops_the_daemons_and_exits_70(fault: &str, task: &str, why: &str) {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new("datapath = \"netdev\"\n");
    // Late enough for both daemons to be up: the stop must be the orderly one.
    start_with_fault(&mut app, fault);
    app.wait_ready();
    let pids = [
        app.pid("ovs-vswitchd").unwrap(),
        app.pid("ovsdb-server").unwrap(),
    ];
    let began = Instant::now();
    let status = app.wait_exit(Duration::from_secs(30));
    let log = app.log();
    eprintln!(
        "exit {:?} {:?} after the daemons were up",
        status.code(),
        began.elapsed()
    );
    assert_eq!(status.code(), Some(70), "{log}");
    let line = format!("the {task} task ended ({why}");
    assert!(log.contains(&line), "no {line:?} in\n{log}");
    assert!(log.contains("a task of the appliance ended"), "{log}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} left"
        );
    }
    let vswitchd_end = log
        .find("ended daemon=\"ovs-vswitchd\"")
        .expect("vswitchd ended");
    let db_end = log
        .find("ended daemon=\"ovsdb-server\"")
        .expect("ovsdb-server ended");
    assert!(vswitchd_end < db_end, "vswitchd stops first:\n{log}");
}

#[test]
fn a_panic_of_the_reconcile_watch_ends_the_appliance_with_70() {
    a_failed_task_stops_the_daemons_and_exits_70(
        "reconcile:panic:4",
        "reconcile",
        "panicked: OVS_APPLIANCE_FAULT asked for a panic of reconcile",
    );
}

#[test]
fn a_metrics_poller_that_returns_ends_the_appliance_with_70() {
    a_failed_task_stops_the_daemons_and_exits_70(
        "metrics-poller:end:4",
        "metrics-poller",
        "returned",
    );
}
