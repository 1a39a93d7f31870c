//! Tier 2: hitless restarts on the netdev datapath. A `fail_mode = "secure"` bridge forwards
//! only by flows added with `ovs-ofctl add-flow` (not in the config): after a kill -9 of
//! ovs-vswitchd, or a new appliance on the same db_dir, they are back and ping works; with
//! `restore_flows = false` they are not. Damaged snapshots, vanished bridges, idle cost, and
//! the OpenFlow port numbers the restored rules rely on.

mod common;

use common::net::Host;
use common::scrape::{scrape, value};
use common::*;
use nix::sys::signal::Signal;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const PORT: u16 = 9476;

fn secure(extra_ovs: &str) -> String {
    format!(
        r#"datapath = "netdev"
{extra_ovs}
[[bridges]]
name = "br0"
fail_mode = "secure"
protocols = ["OpenFlow13"]
  [[bridges.ports]]
  name = "s1"
  [[bridges.ports]]
  name = "s2"
"#
    )
}

fn ofctl(app: &Appliance, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("ovs-ofctl");
    cmd.env("OVS_RUNDIR", app.run_dir())
        .args(["-O", "OpenFlow13"])
        .args(args);
    run(&mut cmd, Duration::from_secs(20))
}

fn flows(app: &Appliance) -> String {
    let out = ofctl(app, &["dump-flows", "--no-stats", "br0"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ofport(app: &Appliance, iface: &str) -> Option<i64> {
    let out = app.vsctl(&["get", "Interface", iface, "ofport"]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

fn snapshot(app: &Appliance) -> PathBuf {
    app.db_dir().join("flows/br0.flows")
}

fn other_config(app: &Appliance) -> String {
    app.vsctl_stdout(&["get", "Open_vSwitch", ".", "other_config"])
}

/// Two hosts on br0, the appliance up, and the forwarding flows added by hand (by OpenFlow
/// port number, as a controller would). Returns the hosts and the two port numbers.
fn forwarding(app: &mut Appliance, net: &str) -> (Host, Host, i64, i64) {
    let h1 = Host::new(&app.netns.name, "s1", &format!("{net}.1/24"));
    let h2 = Host::new(&app.netns.name, "s2", &format!("{net}.2/24"));
    app.start_ready();
    let (p1, p2) = wait_for(Duration::from_secs(20), "ofports of s1 and s2", || {
        Some((ofport(app, "s1")?, ofport(app, "s2")?))
    });
    // Secure: nothing forwards before the flows exist.
    assert!(
        h1.cannot_ping(&h2.addr, 1),
        "a secure bridge forwarded with no flows"
    );
    for (from, to) in [(p1, p2), (p2, p1)] {
        let flow = format!("priority=100,in_port={from},actions=output:{to}");
        let out = ofctl(app, &["add-flow", "br0", &flow]);
        assert!(out.status.success(), "add-flow: {out:?}");
    }
    h1.ping(&h2.addr);
    (h1, h2, p1, p2)
}

/// Waits for the snapshot to hold both forwarding flows.
fn snapshot_taken(app: &Appliance, p1: i64, p2: i64) -> String {
    wait_for(Duration::from_secs(10), "the snapshot of br0", || {
        let text = std::fs::read_to_string(snapshot(app)).ok()?;
        let both = [p1, p2]
            .iter()
            .all(|p| text.contains(&format!("in_port={p} actions")));
        both.then_some(text)
    })
}

/// Kills ovs-vswitchd and waits for its successor to answer; returns it.
fn kill_vswitchd(app: &Appliance) -> i32 {
    let old = app.pid("ovs-vswitchd").expect("vswitchd running");
    kill(old, Signal::SIGKILL);
    wait_for(Duration::from_secs(30), "a new ovs-vswitchd", || {
        app.pid("ovs-vswitchd")
            .filter(|p| *p != old && app.appctl_ok(*p, "ovs-vswitchd", &["version"]))
    })
}

/// The first moment a 200 ms ping succeeds, polled from `since` for up to `limit`.
fn recovered(h1: &Host, to: &str, since: Instant, limit: Duration) -> Option<Duration> {
    while since.elapsed() < limit {
        let out = common::net::ns_run(
            &h1.netns.name,
            &["ping", "-c", "1", "-W", "0.2", to],
            Duration::from_secs(5),
        );
        if out.status.success() {
            return Some(since.elapsed());
        }
    }
    None
}

#[test]
fn kill_9_of_vswitchd_restores_flows_added_by_hand() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(&secure(""));
    let (h1, h2, p1, p2) = forwarding(&mut app, "10.73.0");
    snapshot_taken(&app, p1, p2);
    // Idle: nothing changes, nothing is written (same inode, same mtime) over 3 intervals.
    let before = std::fs::metadata(snapshot(&app)).unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    let after = std::fs::metadata(snapshot(&app)).unwrap();
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec()),
        "an unchanged snapshot was written again"
    );

    let killed = Instant::now();
    let old = app.pid("ovs-vswitchd").unwrap();
    kill(old, Signal::SIGKILL);
    let back = recovered(&h1, &h2.addr, killed, Duration::from_secs(30));
    eprintln!("kill -9 of ovs-vswitchd: ping answered again after {back:?}");
    let back = back.unwrap_or_else(|| panic!("no ping after the restart:\n{}", flows(&app)));
    assert!(back < Duration::from_secs(15), "took {back:?}");
    let new = app.pid("ovs-vswitchd").unwrap();
    assert_ne!(new, old);
    let text = flows(&app);
    for p in [p1, p2] {
        assert!(
            text.contains(&format!("in_port={p} ")),
            "flow of port {p} not back: {text}"
        );
    }
    // The restored rules name ports by number: OVS reused each Interface.ofport.
    assert_eq!(
        (ofport(&app, "s1"), ofport(&app, "s2")),
        (Some(p1), Some(p2)),
        "OpenFlow port numbers changed across the restart"
    );
    assert!(!other_config(&app).contains("flow-restore-wait"));
    let restored = wait_for(Duration::from_secs(10), "the restore counted", || {
        let text = scrape(&app, PORT);
        value(
            &text,
            "ovs_appliance_flow_restores_total",
            &[("result", "restored")],
        )
        .filter(|v| *v >= 1.0)
    });
    assert_eq!(restored, 1.0);
    let log = app.log();
    assert!(log.contains("flows restored"), "{log}");
    assert!(log.contains("flow-restore-wait set"), "{log}");
    // `status` shows the snapshot: its flows and age.
    let out = app.oneshot(&[], "status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("flow snapshot br0: 2 flows, written "),
        "status: {text}"
    );
}

#[test]
fn without_restore_flows_the_flows_are_not_back() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(&secure("restore_flows = false"));
    let (h1, h2, p1, p2) = forwarding(&mut app, "10.74.0");
    // Snapshots are still taken; they are just not put back.
    snapshot_taken(&app, p1, p2);
    kill_vswitchd(&app);
    std::thread::sleep(Duration::from_secs(2));
    assert!(h1.cannot_ping(&h2.addr, 2), "forwarded without its flows");
    let text = flows(&app);
    assert!(!text.contains("in_port="), "flows came back: {text}");
    assert!(!other_config(&app).contains("flow-restore-wait"));
    assert!(!app.log().contains("flow-restore-wait set"));
}

#[test]
fn a_new_appliance_on_the_same_db_dir_restores_the_flows() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(&secure(""));
    let (h1, h2, p1, p2) = forwarding(&mut app, "10.75.0");
    snapshot_taken(&app, p1, p2);
    // One more flow just before the stop: the snapshot taken at the stop has it.
    let out = ofctl(
        &app,
        &["add-flow", "br0", "priority=7,dl_type=0x88b5,actions=drop"],
    );
    assert!(out.status.success(), "add-flow: {out:?}");
    app.signal(Signal::SIGTERM);
    assert!(app.wait_exit(Duration::from_secs(30)).success());
    let text = std::fs::read_to_string(snapshot(&app)).unwrap();
    assert!(
        text.contains("dl_type=0x88b5"),
        "stop did not snapshot: {text}"
    );
    // The upgrade path: another appliance process, the same volume.
    let started = Instant::now();
    app.start();
    let back = recovered(&h1, &h2.addr, started, Duration::from_secs(30));
    eprintln!("new appliance on the same db_dir: ping answered after {back:?} from its start");
    assert!(
        back.is_some(),
        "no ping after the new start:\n{}",
        app.log()
    );
    let text = flows(&app);
    assert!(text.contains("dl_type=0x88b5") && text.contains(&format!("in_port={p1} ")));
}

#[test]
fn a_damaged_snapshot_is_refused_moved_aside_and_traffic_flows() {
    if !require_real_ovs() {
        return;
    }
    // Standalone: traffic flows through NORMAL without any restored flow.
    let config = r#"datapath = "netdev"
[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "s1"
  [[bridges.ports]]
  name = "s2"
"#;
    let mut app = Appliance::new(config);
    let h1 = Host::new(&app.netns.name, "s1", "10.76.0.1/24");
    let h2 = Host::new(&app.netns.name, "s2", "10.76.0.2/24");
    app.start_ready();
    // Ready means the daemons answer, not that br0 exists yet.
    wait_for(Duration::from_secs(20), "ofports of s1 and s2", || {
        Some((ofport(&app, "s1")?, ofport(&app, "s2")?))
    });
    let out = ofctl(
        &app,
        &["add-flow", "br0", "priority=7,dl_type=0x88b5,actions=drop"],
    );
    assert!(out.status.success(), "add-flow: {out:?}");
    let text = wait_for(Duration::from_secs(10), "the snapshot", || {
        std::fs::read_to_string(snapshot(&app))
            .ok()
            .filter(|t| t.contains("0x88b5"))
    });
    app.signal(Signal::SIGTERM);
    assert!(app.wait_exit(Duration::from_secs(30)).success());
    // Truncated mid-file, as by a crash of a writer that did not rename.
    let cut = &text[..text.len() / 2];
    std::fs::write(snapshot(&app), cut).unwrap();
    app.start_ready();
    h1.ping(&h2.addr);
    let log = app.log();
    let path = snapshot(&app).display().to_string();
    assert!(
        log.contains("flow snapshot refused") && log.contains(&path),
        "the refusal does not name {path}:\n{log}"
    );
    let aside: Vec<_> = std::fs::read_dir(app.db_dir().join("flows"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("br0.flows.failed-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "not moved aside");
    assert_eq!(std::fs::read_to_string(aside[0].path()).unwrap(), cut);
    assert!(!other_config(&app).contains("flow-restore-wait"));
    assert!(
        !flows(&app).contains("0x88b5"),
        "a damaged snapshot was restored"
    );
    let failed = value(
        &scrape(&app, PORT),
        "ovs_appliance_flow_restores_total",
        &[("result", "failed")],
    );
    assert_eq!(failed, Some(1.0));
}

#[test]
fn the_snapshot_of_a_vanished_bridge_is_removed() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new("datapath = \"netdev\"\n");
    let dir = app.db_dir().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    let ghost = dir.join("ghost.flows");
    std::fs::write(&ghost, "not even a snapshot").unwrap();
    app.start_ready();
    wait_for(Duration::from_secs(10), "ghost.flows removed", || {
        (!ghost.exists()).then_some(())
    });
    assert!(app
        .log()
        .contains("removed the flow snapshot of a bridge that no longer exists"));
    assert!(!other_config(&app).contains("flow-restore-wait"));
}

/// `n` drop flows that match nothing the test sends, as a controller's table might hold.
fn many_flows(app: &Appliance, n: u32) {
    let file = app.dir.path().join("many.flows");
    let text: String = (0..n)
        .map(|i| {
            format!(
                "priority=1,ip,nw_dst=10.{}.{}.{},actions=drop\n",
                200 + i / 65536,
                (i / 256) % 256,
                i % 256
            )
        })
        .collect();
    std::fs::write(&file, text).unwrap();
    let out = ofctl(app, &["add-flows", "br0", &file.display().to_string()]);
    assert!(out.status.success(), "add-flows: {out:?}");
}

fn snapshot_flows(app: &Appliance) -> Option<usize> {
    let text = std::fs::read_to_string(snapshot(app)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("flows "))
        .and_then(|n| n.parse().ok())
}

/// The `took_ms` of the last log line holding `what`.
fn took_ms(log: &str, what: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains(what))?;
    let at = line.find("took_ms=")? + "took_ms=".len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn ten_thousand_flows_and_a_vswitchd_dying_during_the_restore() {
    if !require_real_ovs() {
        return;
    }
    const N: u32 = 10_000;
    let mut app = Appliance::new(&secure(""));
    let (h1, h2, _, _) = forwarding(&mut app, "10.77.0");
    let added = Instant::now();
    many_flows(&app, N);
    let total = N as usize + 2;
    let added_in = added.elapsed();
    let written = Instant::now();
    wait_for(
        Duration::from_secs(30),
        "the snapshot of 10,002 flows",
        || (snapshot_flows(&app) == Some(total)).then_some(()),
    );
    eprintln!(
        "{N} flows: add-flows {added_in:?}; snapshot on disk {:?} later (interval 1 s); {} bytes; write took_ms {:?}",
        written.elapsed(),
        std::fs::metadata(snapshot(&app)).unwrap().len(),
        took_ms(&app.log(), "flow snapshot written"),
    );

    // A plain restart: restored, and the time it took.
    let killed = Instant::now();
    kill_vswitchd(&app);
    let back = recovered(&h1, &h2.addr, killed, Duration::from_secs(30));
    eprintln!(
        "kill -9 with {total} flows: ping back after {back:?}; restore took_ms {:?}",
        took_ms(&app.log(), "flow restore finished")
    );
    assert!(back.is_some());
    // dump-aggregate: a dump of 10,000 flows would fill the pipe `run` reads only at the end.
    let count = |app: &Appliance| -> usize {
        let out = ofctl(app, &["dump-aggregate", "br0"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("flow_count=")
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(count(&app), total);

    // Killed again, and its successor killed as soon as it answers: inside the restore.
    let second = kill_vswitchd(&app);
    kill(second, Signal::SIGKILL);
    let third = wait_for(Duration::from_secs(30), "a third ovs-vswitchd", || {
        app.pid("ovs-vswitchd")
            .filter(|p| *p != second && app.appctl_ok(*p, "ovs-vswitchd", &["version"]))
    });
    assert!(third > 0);
    wait_for(Duration::from_secs(30), "all flows back", || {
        (count(&app) == total).then_some(())
    });
    h1.ping(&h2.addr);
    assert!(!other_config(&app).contains("flow-restore-wait"));
    let text = scrape(&app, PORT);
    let get = |r: &str| value(&text, "ovs_appliance_flow_restores_total", &[("result", r)]);
    eprintln!(
        "restores: restored {:?}, interrupted {:?}, failed {:?}",
        get("restored"),
        get("interrupted"),
        get("failed")
    );
    // Whatever the kill interrupted, no snapshot was lost or set aside.
    assert_eq!(get("failed"), Some(0.0), "{}", app.log());
    assert_eq!(snapshot_flows(&app), Some(total));
}

/// A small tmpfs mounted on db_dir, unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = run(
            Command::new("mount").args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0750"),
                "tmpfs",
                &at.display().to_string(),
            ]),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "mount tmpfs: {out:?}");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run(
            Command::new("umount").args(["-l", &self.0.display().to_string()]),
            Duration::from_secs(10),
        );
    }
}

#[test]
fn a_full_disk_keeps_the_old_snapshot_and_is_counted() {
    if !require_real_ovs_and(&["mount", "umount", "dd"]) {
        return;
    }
    let mut app = Appliance::new(&secure(""));
    let _disk = Tmpfs::mount(&app.db_dir(), "4m");
    let (_h1, _h2, p1, p2) = forwarding(&mut app, "10.78.0");
    let old = snapshot_taken(&app, p1, p2);
    // Fill what is left of the disk.
    let filler = app.db_dir().join("filler");
    let _ = run(
        Command::new("dd").args(["if=/dev/zero", &format!("of={}", filler.display()), "bs=4k"]),
        Duration::from_secs(30),
    );
    let out = ofctl(
        &app,
        &["add-flow", "br0", "priority=7,dl_type=0x88b5,actions=drop"],
    );
    assert!(out.status.success(), "add-flow: {out:?}");
    let failed = wait_for(Duration::from_secs(15), "a failed write counted", || {
        value(
            &scrape(&app, PORT),
            "ovs_appliance_flow_snapshot_writes_total",
            &[("result", "failed")],
        )
        .filter(|v| *v >= 1.0)
    });
    assert!(failed >= 1.0);
    assert_eq!(
        std::fs::read_to_string(snapshot(&app)).unwrap(),
        old,
        "the old snapshot changed"
    );
    let log = app.log();
    assert!(log.contains("flow snapshot not written"), "{log}");
    let leftovers: Vec<_> = std::fs::read_dir(app.db_dir().join("flows"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // Space again: the next pass writes the change.
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        Duration::from_secs(15),
        "the snapshot with the new flow",
        || {
            std::fs::read_to_string(snapshot(&app))
                .ok()
                .filter(|t| t.contains("0x88b5"))
        },
    );
}

/// CPU seconds of `pid` and of the children it has reaped (its ovs-ofctl runs).
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest.split(' ').map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14-17 (utime, stime, cutime, cstime), counted from the state at index 0 = field 3.
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    (f[11] + f[12] + f[13] + f[14]) / ticks
}

/// CPU used by the appliance (with its ovs-ofctl children) and ovs-vswitchd over `window`,
/// as a share of one core.
fn idle_cpu(app: &Appliance, window: Duration) -> (f64, f64) {
    let me = app.appliance_pid() as i32;
    let vs = app.pid("ovs-vswitchd").unwrap();
    let (a0, v0) = (cpu_seconds(me), cpu_seconds(vs));
    std::thread::sleep(window);
    let (a1, v1) = (cpu_seconds(me), cpu_seconds(vs));
    let s = window.as_secs_f64();
    ((a1 - a0) / s, (v1 - v0) / s)
}

#[test]
fn idle_cost_of_the_snapshots() {
    if !require_real_ovs() {
        return;
    }
    let window = Duration::from_secs(10);
    let mut figures = Vec::new();
    for (label, interval, extra) in [
        ("2 flows, no snapshots (interval 600s)", "600s", 0),
        ("2 flows, interval 1s", "1s", 0),
        ("10,002 flows, interval 1s", "1s", 10_000),
    ] {
        let mut app = Appliance::new(&secure(&format!("flow_snapshot_interval = \"{interval}\"")));
        let (_h1, _h2, _, _) = forwarding(&mut app, "10.79.0");
        if extra > 0 {
            many_flows(&app, extra);
            wait_for(Duration::from_secs(30), "the big snapshot", || {
                (snapshot_flows(&app) == Some(extra as usize + 2)).then_some(())
            });
        } else if interval == "1s" {
            wait_for(Duration::from_secs(10), "the snapshot", || {
                (snapshot_flows(&app) == Some(2)).then_some(())
            });
        } else {
            std::thread::sleep(Duration::from_secs(2));
        }
        let mtime = std::fs::metadata(snapshot(&app))
            .ok()
            .map(|m| m.mtime_nsec());
        let (appliance, vswitchd) = idle_cpu(&app, window);
        let unchanged = std::fs::metadata(snapshot(&app))
            .ok()
            .map(|m| m.mtime_nsec())
            == mtime;
        eprintln!(
            "idle, {label}: appliance with its ovs-ofctl {:.2} % of a core, ovs-vswitchd {:.2} %, snapshot unchanged: {unchanged}",
            appliance * 100.0,
            vswitchd * 100.0
        );
        assert!(unchanged, "{label}: written while idle");
        figures.push((label, appliance + vswitchd));
    }
    // Comparing costs at most 1/20 of a core by design (the dump duty), plus the OVSDB read.
    for (label, cpu) in figures {
        assert!(
            cpu < 0.15,
            "{label}: {:.1} % of a core while idle",
            cpu * 100.0
        );
    }
}
