//! `cargo bench --bench supervisor`: cold start, restart after `kill -9` of ovs-vswitchd, and the
//! supervisor's memory, for `ovs-appliance run` beside `ovs-ctl start` and a hand-written launch
//! (benches/hand-launch.sh). BENCHMARKS.md says what is measured and how. The run count is
//! fixed here (RUNS), before anyone looks at a result.
//!
//! Needs root, OVS (ovsdb-server, ovs-vswitchd, ovs-ctl), `ip` and `unshare`. Other sessions may
//! run OVS on this machine: every instance here has its own network namespace and temp run/db
//! dirs, and only processes this bench started are killed, by the pids in its own pidfiles,
//! checked against /proc/<pid>/comm. Guards clean up on error, panic and Ctrl-C.

// A bench's root file looks for modules beside itself; these live in benches/supervisor/.
#[path = "supervisor/cold.rs"]
mod cold;
#[path = "supervisor/instance.rs"]
mod instance;
#[path = "common/logtime.rs"]
mod logtime;
#[path = "supervisor/probe.rs"]
mod probe;
#[path = "common/proc.rs"]
mod proc;
#[path = "supervisor/report.rs"]
mod report;
#[path = "supervisor/restart.rs"]
mod restart;
#[path = "common/stats.rs"]
mod stats;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

/// The binary cargo built for this bench: the `bench` profile inherits `[profile.release]`, so
/// this is target/release/ovs-appliance.
const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");
const HAND_LAUNCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/hand-launch.sh");
const OVS_CTL: &str = "/usr/share/openvswitch/scripts/ovs-ctl";
const VSWITCHD: &str = "ovs-vswitchd";
const OVSDB: &str = "ovsdb-server";
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Runs of each measure (each under a second or two): at least 15, fixed before looking.
const RUNS: usize = 15;

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("supervisor bench: run it with `cargo bench --bench supervisor`");
        return Ok(());
    }
    preflight()?;
    logtime::self_check()?;
    let runs = RUNS;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let bench = Bench {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        runs,
        stop,
        root: tempfile::Builder::new().prefix("ovsa-bench-").tempdir()?,
    };
    let machine = report::machine();
    let created = host_dirs_for_ovs_ctl()?;
    let result = (|| -> Result<_> {
        let (mut rows, steps) = cold::run(&bench)?;
        rows.extend(restart::run(&bench)?);
        Ok((rows, steps))
    })();
    for dir in created {
        // Only if still empty: another session may have started using it meanwhile.
        let _ = fs::remove_dir(dir);
    }
    let (left, netns) = (instance::leftovers(bench.root()), instance::netns_left());
    let clean = left.is_empty() && netns.is_empty();
    if !clean {
        eprintln!("left behind: processes {left:?}, namespaces {netns:?}");
    }
    let (rows, steps) = result?;
    report::print(&machine, runs, &rows, &steps);
    ensure!(clean, "cleanup failed");
    println!("\nCleanup check: no process of this run is left, nor any of its namespaces.");
    Ok(())
}

struct Bench {
    rt: tokio::runtime::Runtime,
    runs: usize,
    stop: Arc<AtomicBool>,
    /// /tmp/ovsa-bench-XXXX: every instance's dirs are under it.
    root: tempfile::TempDir,
}

impl Bench {
    fn root(&self) -> &Path {
        self.root.path()
    }

    fn interrupted(&self) -> Result<()> {
        ensure!(!self.stop.load(Ordering::Relaxed), "interrupted");
        Ok(())
    }
}

fn preflight() -> Result<()> {
    proc::require(&[OVSDB, VSWITCHD, "ovsdb-tool", "ovs-vsctl", "ip", "unshare"])?;
    ensure!(Path::new(OVS_CTL).is_file(), "{OVS_CTL} missing");
    Ok(())
}

/// ovs-ctl's paths are fixed; it runs in a private mount namespace with our temp dirs bound over
/// them, which needs the mount points to exist on the host. Returns those it created.
fn host_dirs_for_ovs_ctl() -> Result<Vec<&'static str>> {
    let mut created = Vec::new();
    for dir in [
        "/var/run/openvswitch",
        "/var/log/openvswitch",
        "/etc/openvswitch",
    ] {
        if !Path::new(dir).exists() {
            fs::create_dir_all(dir).with_context(|| format!("mkdir {dir}"))?;
            created.push(dir);
        }
    }
    Ok(created)
}
