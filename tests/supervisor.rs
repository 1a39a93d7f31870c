//! Tier 2: the supervisor against real ovsdb-server and ovs-vswitchd, started through the binary,
//! each test in its own network namespace and temp dir.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Fast health checks so failures are seen in a test's time.
const FAST: &str = r#"
datapath = "netdev"
[supervisor]
health_interval = "100ms"
health_timeout = "300ms"
health_failures = 2
backoff_initial = "50ms"
backoff_max = "500ms"
restart_limit = 20
restart_window = "60s"
"#;

fn appliance() -> Option<Appliance> {
    require_real_ovs().then(|| Appliance::new(FAST))
}

fn new_pid(app: &Appliance, daemon: &str, old: i32) -> i32 {
    wait_for(
        Duration::from_secs(15),
        &format!("{daemon} to come back"),
        || app.pid(daemon).filter(|p| *p != old),
    )
}

#[test]
fn brings_ovs_up_and_stamps_the_open_vswitch_row() {
    let Some(mut app) = appliance() else { return };
    app.start_ready();
    let row = app.vsctl_stdout(&[
        "--format=json",
        "--columns=external_ids,ovs_version,db_version",
        "list",
        "Open_vSwitch",
    ]);
    let json: serde_json::Value = serde_json::from_str(&row).unwrap();
    let data = &json["data"][0];
    let ids = data[0][1].as_array().unwrap();
    let key = |k: &str| {
        ids.iter()
            .find(|p| p[0] == k)
            .map(|p| p[1].as_str().unwrap().to_string())
    };
    let system_id = key("system-id").expect("system-id in external_ids");
    let on_disk = std::fs::read_to_string(app.db_dir().join("system-id.conf")).unwrap();
    assert_eq!(on_disk.trim(), system_id);
    assert!(key("hostname").is_some());
    assert_eq!(data[1].as_str().unwrap(), ovs_version());
    assert!(
        data[2].as_str().unwrap().starts_with('8'),
        "db_version {data}"
    );
    // ovs-vswitchd is connected: it reports the datapath types it supports into the row.
    let types = app.vsctl_stdout(&["get", "Open_vSwitch", ".", "datapath_types"]);
    assert!(types.contains("netdev"), "{types}");
    // Daemon log lines reach our stdout tagged with the daemon's name.
    let log = app.log();
    assert!(log.contains("daemon=\"ovs-vswitchd\""), "{log}");
    assert!(log.contains("daemon=\"ovsdb-server\""), "{log}");
    assert!(app.zombie_children().is_empty());
}

fn ovs_version() -> String {
    let out = run(
        std::process::Command::new("ovs-vswitchd").arg("--version"),
        Duration::from_secs(5),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn kill_9_of_each_daemon_is_repaired() {
    let Some(mut app) = appliance() else { return };
    app.start_ready();
    app.vsctl_stdout(&[
        "add-br",
        "br-keep",
        "--",
        "set",
        "bridge",
        "br-keep",
        "datapath_type=netdev",
    ]);

    let vswitchd = app.pid("ovs-vswitchd").unwrap();
    let db = app.pid("ovsdb-server").unwrap();
    kill(vswitchd, Signal::SIGKILL);
    let vswitchd2 = new_pid(&app, "ovs-vswitchd", vswitchd);
    app.wait_ready();
    assert_eq!(
        app.pid("ovsdb-server"),
        Some(db),
        "ovsdb-server is left alone"
    );

    kill(db, Signal::SIGKILL);
    let db2 = new_pid(&app, "ovsdb-server", db);
    // vswitchd depends on ovsdb-server: it is restarted with it.
    let vswitchd3 = new_pid(&app, "ovs-vswitchd", vswitchd2);
    app.wait_ready();
    assert_ne!(db2, db);
    assert_ne!(vswitchd3, vswitchd2);
    assert!(app.vsctl_stdout(&["list-br"]).contains("br-keep"));
    assert!(
        app.zombie_children().is_empty(),
        "zombies: {:?}",
        app.zombie_children()
    );
    // The dead daemons' control sockets were removed.
    assert!(!app
        .run_dir()
        .join(format!("ovs-vswitchd.{vswitchd}.ctl"))
        .exists());
    assert!(!app
        .run_dir()
        .join(format!("ovsdb-server.{db}.ctl"))
        .exists());
}

#[test]
fn a_stopped_daemon_is_detected_and_restarted() {
    let Some(mut app) = appliance() else { return };
    app.start_ready();
    for daemon in ["ovs-vswitchd", "ovsdb-server"] {
        let pid = app.pid(daemon).unwrap();
        kill(pid, Signal::SIGSTOP);
        let began = Instant::now();
        new_pid(&app, daemon, pid);
        app.wait_ready();
        eprintln!("{daemon}: SIGSTOP to replaced in {:?}", began.elapsed());
        assert!(!is_process(pid, daemon), "the stopped {daemon} was killed");
    }
    let log = app.log();
    assert!(log.contains("stopped answering"), "{log}");
}

#[test]
fn sigterm_stops_both_daemons_and_exits_0() {
    let Some(mut app) = appliance() else { return };
    app.start_ready();
    let pids = [
        app.pid("ovs-vswitchd").unwrap(),
        app.pid("ovsdb-server").unwrap(),
    ];
    let began = Instant::now();
    app.signal(Signal::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", app.log());
    eprintln!("SIGTERM to exit: {:?}", began.elapsed());
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} left"
        );
    }
    let log = app.log();
    let vswitchd_end = log
        .find("ended daemon=\"ovs-vswitchd\"")
        .expect("vswitchd ended");
    let db_end = log
        .find("ended daemon=\"ovsdb-server\"")
        .expect("ovsdb-server ended");
    assert!(vswitchd_end < db_end, "vswitchd stops first");
    assert!(log.contains("exited with status 0"), "{log}");
}

#[test]
fn a_second_sigterm_kills_what_is_left() {
    let Some(mut app) = appliance() else { return };
    app.write_config(&format!("{FAST}drain_timeout = \"60s\"\n"));
    app.start_ready();
    // A stopped vswitchd cannot honour `exit`: only the second SIGTERM ends the wait.
    let vswitchd = app.pid("ovs-vswitchd").unwrap();
    kill(vswitchd, Signal::SIGSTOP);
    app.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(app.still_running(), "still draining");
    app.signal(Signal::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", app.log());
    assert!(!is_process(vswitchd, "ovs-vswitchd"));
}

#[test]
fn starts_over_the_stale_files_of_a_killed_container() {
    let Some(mut app) = appliance() else { return };
    app.start_ready();
    let vswitchd = app.pid("ovs-vswitchd").unwrap();
    let db = app.pid("ovsdb-server").unwrap();
    // A killed container: everything dies at once, nothing is cleaned.
    app.signal(Signal::SIGKILL);
    kill(vswitchd, Signal::SIGKILL);
    kill(db, Signal::SIGKILL);
    app.wait_exit(Duration::from_secs(5));
    wait_for(Duration::from_secs(5), "daemons to die", || {
        (!is_process(vswitchd, "ovs-vswitchd") && !is_process(db, "ovsdb-server")).then_some(())
    });
    let stale = app.run_dir().join(format!("ovs-vswitchd.{vswitchd}.ctl"));
    assert!(stale.exists() && app.run_dir().join("ovsdb-server.pid").exists());

    app.start_ready();
    assert!(!stale.exists(), "stale control socket removed");
    assert!(app.log().contains("removed a stale file"));
}

#[test]
fn refuses_to_start_beside_a_live_instance_on_the_same_run_dir() {
    let Some(mut first) = appliance() else { return };
    first.start_ready();
    let out = first.oneshot(&[], "run");
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("already running"), "{text}");
    first.wait_ready();
}

#[test]
fn missing_net_admin_exits_77_naming_the_flag() {
    let Some(app) = appliance() else { return };
    let out = app.oneshot(&["capsh", "--drop=cap_net_admin", "--"], "run");
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--cap-add NET_ADMIN"), "{text}");
    assert!(
        !app.db_dir().join("conf.db").exists(),
        "nothing was started"
    );
}

#[test]
fn check_reports_and_run_falls_back_to_netdev_loudly() {
    let Some(mut app) = appliance() else { return };
    // A host without the module: an empty /sys tree (this machine has none either).
    let fake_sys = app.dir.path().join("sys");
    std::fs::create_dir_all(fake_sys.join("class/net")).unwrap();
    app.extra_args = vec!["--sys-root".into(), fake_sys.display().to_string()];
    app.write_config(&FAST.replace("datapath = \"netdev\"", "datapath = \"auto\""));
    let out = app.oneshot(&[], "check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("falling back to the userspace (netdev) datapath"),
        "{text}"
    );
    assert!(text.contains("datapath netdev"), "{text}");
    app.start_ready();
    assert!(app.log().contains("KERNEL DATAPATH UNAVAILABLE"));
}

#[test]
fn system_datapath_without_the_module_exits_69_naming_the_mount() {
    let Some(mut app) = appliance() else { return };
    let fake_sys = app.dir.path().join("sys");
    std::fs::create_dir_all(&fake_sys).unwrap();
    app.extra_args = vec!["--sys-root".into(), fake_sys.display().to_string()];
    app.write_config("datapath = \"system\"\n");
    let out = app.oneshot(&[], "run");
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-v /lib/modules:/lib/modules:ro"), "{text}");
}

#[test]
fn json_logs_carry_the_daemon_name() {
    let Some(mut app) = appliance() else { return };
    app.extra_args = vec!["--log-format".into(), "json".into()];
    app.start_ready();
    let log = app.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["daemon"] == "ovs-vswitchd" && l["module"].is_string()));
    assert!(lines.iter().all(|l| l["level"].is_string()));
}

#[test]
fn a_restart_loop_ends_the_appliance_for_the_container_to_restart() {
    let Some(mut app) = appliance() else { return };
    app.write_config(&FAST.replace("restart_limit = 20", "restart_limit = 2"));
    app.start_ready();
    let mut pid = app.pid("ovs-vswitchd").unwrap();
    for _ in 0..2 {
        kill(pid, Signal::SIGKILL);
        pid = new_pid(&app, "ovs-vswitchd", pid);
        app.wait_ready();
    }
    kill(pid, Signal::SIGKILL);
    let status = app.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(70), "{}", app.log());
    let log = app.log();
    assert!(
        log.contains("giving up so the container's restart policy takes over"),
        "{log}"
    );
    assert!(
        app.pid("ovsdb-server").is_none(),
        "ovsdb-server was stopped too"
    );
}

/// ovs-vsctl that waits (up to 120 s) for ovs-vswitchd to apply the change.
fn vsctl_wait(app: &Appliance, args: &[String]) {
    let mut cmd = std::process::Command::new("ovs-vsctl");
    cmd.env("OVS_RUNDIR", app.run_dir())
        .arg("--timeout=120")
        .args(args);
    let out = run(&mut cmd, Duration::from_secs(150));
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_vswitchd_busy_applying_many_ports_is_not_killed() {
    let Some(mut app) = appliance() else { return };
    app.start_ready();
    let pid = app.pid("ovs-vswitchd").unwrap();
    let mut args: Vec<String> = "add-br brbusy -- set Bridge brbusy datapath_type=netdev"
        .split(' ')
        .map(String::from)
        .collect();
    for i in 0..300 {
        for word in
            format!("-- add-port brbusy bp{i} -- set Interface bp{i} type=internal").split(' ')
        {
            args.push(word.into());
        }
    }
    vsctl_wait(&app, &args);
    // /healthz follows the supervisor's judgment: busy is not down. Polled throughout the delete.
    let ns = app.netns.name.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = std::thread::spawn({
        let done = done.clone();
        move || {
            let mut statuses = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                statuses.push(http::get(&ns, 9476, "/healthz").map(|r| r.status));
                std::thread::sleep(Duration::from_millis(50));
            }
            statuses
        }
    });
    // Deleting netdev ports costs vswitchd ~18 ms each: seconds without a control-socket answer,
    // far past the 2 x 300 ms this appliance's health checks allow a hung daemon.
    vsctl_wait(&app, &["del-br".to_string(), "brbusy".to_string()]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = poller.join().unwrap();
    assert!(statuses.len() > 10, "polled {} times", statuses.len());
    assert!(
        statuses.iter().all(|s| *s == Some(200)),
        "/healthz while vswitchd was busy: {statuses:?}\n{}",
        app.log()
    );
    assert_eq!(
        app.pid("ovs-vswitchd"),
        Some(pid),
        "not killed while busy:\n{}",
        app.log()
    );
    assert!(
        app.log().contains("answers slowly"),
        "the busy path was taken:\n{}",
        app.log()
    );
}
