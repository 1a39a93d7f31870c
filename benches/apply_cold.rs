//! `cargo bench --bench apply_cold`: `ovs-appliance apply --config F` as a process, as a new user
//! would run it, against one batched `ovs-vsctl` of the same ports and the raw JSON-RPC floor, at
//! 10, 100 and 1000 internal ports on one netdev bridge, every run on fresh daemons; and where
//! apply's time goes, from the phase events of its JSON log. BENCHMARKS.md says how to run it.
//!
//! Needs root, OVS (ovsdb-tool, ovsdb-server, ovs-vswitchd, ovs-vsctl) and `ip`. Other sessions
//! may run OVS here: every run has its own network namespace (`ovsa-ac-<pid>-<n>`) and temp dir,
//! and only daemons named by this bench's pidfiles (checked against /proc/<pid>/comm) are killed.

#[path = "apply_cold/fresh.rs"]
mod fresh;
#[path = "common/logtime.rs"]
mod logtime;
#[path = "common/proc.rs"]
mod proc;
#[path = "reconcile/raw.rs"]
#[allow(dead_code)]
mod raw;
#[path = "apply_cold/report.rs"]
mod report;
#[path = "apply_cold/side.rs"]
mod side;
#[path = "common/stats.rs"]
mod stats;
#[path = "reconcile/workload.rs"]
#[allow(dead_code)]
mod workload;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use fresh::Fresh;
use report::{Down, Splits, Times};
use side::{Side, SIDES};

/// The binary cargo built for this bench (target/release/ovs-appliance).
const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");
/// Runs per side and size, fixed before any result was seen (issue 16: at least 15 for anything
/// under a second), after one unrecorded warm-up round per size.
const RUNS: usize = 15;
const SIZES: [usize; 3] = [10, 100, 1000];
/// Quiet before each timed run (ovs-vswitchd has just applied its first change), and after
/// each run per port: deleting the namespace hands its taps to the kernel's cleanup work, which
/// runs after `ip netns del` returns and must not fall into the next run.
const QUIET: Duration = Duration::from_millis(100);
const CLEANUP_PER_PORT: Duration = Duration::from_micros(1500);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("floor") {
        ensure!(args.len() == 4, "usage: apply_cold floor DB_SOCK REQUEST");
        return side::floor(Path::new(&args[2]), Path::new(&args[3]));
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("apply_cold bench: run it with `cargo bench --bench apply_cold`");
        return Ok(());
    }
    preflight()?;
    logtime::self_check()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    // BENCH_SIZES=10,100 while working on one figure; the run count stays fixed.
    let sizes: Vec<usize> = match std::env::var("BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .context("BENCH_SIZES: ports, comma-separated")
            })
            .collect::<Result<_>>()?,
        Err(_) => SIZES.to_vec(),
    };
    let (load, began) = (stats::load(), Instant::now());
    let (mut times, mut splits, mut down) = (Times::new(), Splits::new(), Down::new());
    for &n in &sizes {
        measure(n, &stop, &mut times, &mut splits, &mut down)?;
    }
    let minutes = began.elapsed().as_secs_f64() / 60.0;
    report::header(RUNS, (&load, &stats::load()), minutes);
    report::sides(&times, &sizes);
    report::ratios(&times, &sizes);
    report::splits(&splits, &sizes);
    report::down(&down);
    report::targets(&times, &splits, &sizes);
    Ok(())
}

/// One warm-up round, then `RUNS` rounds of every side at `n` ports, the order rotating by one
/// each round so that no side always runs first or last.
fn measure(
    n: usize,
    stop: &AtomicBool,
    times: &mut Times,
    splits: &mut Splits,
    down: &mut Down,
) -> Result<()> {
    let phases = splits
        .entry(n)
        .or_insert_with(|| vec![Vec::new(); report::PHASES.len() + 1]);
    for round in 0..=RUNS {
        for k in 0..SIDES.len() {
            ensure!(!stop.load(Ordering::Relaxed), "interrupted");
            let i = (round + k) % SIDES.len();
            let (ms, split, left_down) = once(SIDES[i], n)?;
            eprintln!("{n} ports, round {round}/{RUNS}: {:?} {ms:.1} ms", SIDES[i]);
            if round == 0 {
                continue;
            }
            times.entry((n, i)).or_default().push(ms);
            if SIDES[i] == Side::Vsctl {
                down.entry(n).or_default().push(left_down);
            }
            for (p, v) in split.into_iter().flatten().enumerate() {
                phases[p].push(v);
            }
        }
    }
    Ok(())
}

/// One run on fresh daemons: the time, apply's phase split, and how many of its ports it left
/// down, after a check of what it left.
fn once(side: Side, n: usize) -> Result<(f64, Option<Vec<f64>>, usize)> {
    let fresh = Fresh::start()?;
    std::thread::sleep(QUIET);
    let (took, spawned) = side::run(side, &fresh, n)?;
    let ms = took.as_secs_f64() * 1000.0;
    let split = (side == Side::Apply)
        .then(|| report::split(&fresh.path("side.log"), spawned, ms))
        .flatten();
    fresh
        .verify(n)
        .with_context(|| format!("{side:?} at {n} ports"))?;
    // ovs-vswitchd leaves netdev internal ports down; apply sets them up (checked), so the
    // side that does the same work is ovs-vsctl followed by `ip -batch`.
    let down = fresh.down(n)?;
    if matches!(side, Side::Apply | Side::VsctlLinks) {
        ensure!(down == 0, "{side:?}: {down} of {n} ports still down");
    }
    drop(fresh);
    std::thread::sleep(QUIET + CLEANUP_PER_PORT * n as u32);
    Ok((ms, split, down))
}

fn preflight() -> Result<()> {
    proc::require(&[
        "ovsdb-server",
        "ovs-vswitchd",
        "ovsdb-tool",
        "ovs-vsctl",
        "ip",
    ])?;
    Ok(())
}
