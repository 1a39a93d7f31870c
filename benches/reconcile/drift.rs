//! Measure 3, drift repair by the running appliance: it is given (SIGHUP) a config of one bridge
//! `drift0` with ten internal ports, instance "default"; then, run after run, one port is deleted
//! behind its back with `ovs-vsctl --no-wait del-port`. The bench's own monitor (raw.rs: pushed
//! updates, each stamped when it is read; no ovs-vsctl in the loop) sees the port's row go, a new
//! row of that name come, and the `cur_cfg` update that says ovs-vswitchd applied the repair.
//!
//! Two clocks: from the moment `ovs-vsctl` is spawned (an upper bound: it includes ovs-vsctl's
//! own start, read of the database and commit), and from the update that shows the deletion (a
//! lower bound: when the bench's reader is scheduled after the appliance, both updates are read
//! back to back, so the repair looks almost instant).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::instance::Instance;
use crate::proc::{secs, wait_for};
use crate::raw::{Raw, Seen};
use crate::report::ms;
use crate::Bench;

pub const PORTS: usize = 10;

/// Milliseconds per run.
#[derive(Default)]
pub struct Drift {
    /// ovs-vsctl spawned -> the deletion seen.
    pub seen: Vec<f64>,
    /// Deletion seen -> the port back in the database (the repair committed).
    pub back: Vec<f64>,
    /// Deletion seen -> ovs-vswitchd applied the repair.
    pub applied: Vec<f64>,
    /// ovs-vsctl spawned -> ovs-vswitchd applied the repair.
    pub total: Vec<f64>,
}

fn config() -> String {
    let mut toml = "\n[[bridges]]\nname = \"drift0\"\n".to_string();
    for i in 0..PORTS {
        toml += &format!("[[bridges.ports]]\nname = \"d{i}\"\ntype = \"internal\"\n");
    }
    toml
}

pub fn run(b: &Bench, inst: &Instance) -> Result<Drift> {
    let ports: Vec<String> = (0..PORTS).map(|i| format!("d{i}")).collect();
    inst.reconfigure(&config())?;
    let mut c = Raw::connect(&inst.db_sock(), secs(60))?;
    let tables: [(&str, &[&str]); 2] = [
        ("Open_vSwitch", &["cur_cfg", "next_cfg"]),
        ("Port", &["name"]),
    ];
    let mut seen = c.monitor(&tables)?;
    c.until(&mut seen, |s| {
        ports.iter().all(|p| s.has("Port", p)) && s.next_cfg >= 1 && s.settled()
    })
    .context("the appliance never applied drift0")?;
    let mut out = Drift::default();
    for run in 0..b.drift_runs {
        b.interrupted()?;
        // Let the appliance finish the pass after the last repair (addresses, status).
        std::thread::sleep(Duration::from_millis(300));
        let [spawned, gone, back, applied] = once(inst, &mut c, &mut seen, &ports[run % PORTS])?;
        out.seen.push(ms(gone - spawned));
        out.back.push(ms(back - gone));
        out.applied.push(ms(applied - gone));
        out.total.push(ms(applied - spawned));
        let total = ms(applied - spawned);
        eprintln!(
            "drift {}/{}: {total:.1} ms from spawn to applied",
            run + 1,
            b.drift_runs
        );
    }
    Ok(out)
}

/// One deletion and its repair: when ovs-vsctl was spawned, and when the monitor showed the port
/// gone, back, and applied.
fn once(inst: &Instance, c: &mut Raw, seen: &mut Seen, port: &str) -> Result<[Instant; 4]> {
    let old = seen
        .uuid_of("Port", port)
        .context("port missing before the run")?
        .to_string();
    let args = ["--no-wait", "del-port", "drift0", port].map(String::from);
    let mut del = inst.vsctl_command(&args);
    del.stdout(Stdio::null()).stderr(Stdio::null());
    let spawned = Instant::now();
    let mut child = del.spawn()?;
    let gone = c.until(seen, |s| s.uuid_of("Port", port) != Some(old.as_str()))?;
    let back = c.until(seen, |s| s.uuid_of("Port", port).is_some())?;
    let applied = c.until(seen, Seen::settled)?;
    let status = wait_for(secs(30), || child.try_wait().ok().flatten());
    let ok = status.is_some_and(|s| s.success());
    ensure!(ok, "ovs-vsctl del-port failed: {status:?}");
    Ok([spawned, gone, back, applied])
}
