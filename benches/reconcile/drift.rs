//! Measure 3, drift repair by the running appliance: it is given (SIGHUP) a config of one bridge
//! `drift0` with ten internal ports, instance "default"; then, run after run, one port is deleted
//! behind its back with `ovs-vsctl --no-wait del-port`. The bench's own monitor (raw.rs, pushed
//! updates stamped as they are read, no ovs-vsctl in the loop) times from the update that shows
//! the port's row gone to the update that shows a new row of that name, and to the `cur_cfg`
//! update that says ovs-vswitchd applied the repair.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::instance::Instance;
use crate::proc::{secs, wait_for};
use crate::raw::{Raw, Seen};
use crate::report::ms;
use crate::Bench;

pub const PORTS: usize = 10;

pub struct Drift {
    /// Deletion seen -> the port back in the database (the repair committed).
    pub back: Vec<f64>,
    /// Deletion seen -> ovs-vswitchd applied the repair.
    pub applied: Vec<f64>,
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
    let mut out = Drift {
        back: Vec::new(),
        applied: Vec::new(),
    };
    for run in 0..b.drift_runs {
        b.interrupted()?;
        // Let the appliance finish the pass after the last repair (addresses, status).
        std::thread::sleep(Duration::from_millis(300));
        let Some((back, applied)) = once(inst, &mut c, &mut seen, &ports[run % PORTS])? else {
            eprintln!(
                "drift {}: deletion and repair in one update, not counted",
                run + 1
            );
            continue;
        };
        eprintln!(
            "drift {}/{}: back {back:.1} ms, applied {applied:.1} ms",
            run + 1,
            b.drift_runs
        );
        out.back.push(back);
        out.applied.push(applied);
    }
    Ok(out)
}

/// One deletion and its repair: (to back, to applied) in ms; None when the deletion and the
/// repair reached the monitor in one update (no interval to measure).
fn once(inst: &Instance, c: &mut Raw, seen: &mut Seen, port: &str) -> Result<Option<(f64, f64)>> {
    let old = seen
        .uuid_of("Port", port)
        .context("port missing before the run")?
        .to_string();
    let args = ["--no-wait", "del-port", "drift0", port].map(String::from);
    let mut del = inst.vsctl_command(&args);
    let mut child = del.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let gone = c.until(seen, |s| s.uuid_of("Port", port) != Some(old.as_str()))?;
    let merged = seen.uuid_of("Port", port).is_some();
    let back = c.until(seen, |s| s.uuid_of("Port", port).is_some())?;
    let applied = c.until(seen, Seen::settled)?;
    let status = wait_for(secs(30), || child.try_wait().ok().flatten());
    ensure!(
        status.is_some_and(|s| s.success()),
        "ovs-vsctl del-port failed: {status:?}"
    );
    Ok((!merged).then(|| (ms(back - gone), ms(applied - gone))))
}
