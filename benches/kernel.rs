//! `cargo bench --bench kernel`: inside one tier-4 VM run (Debian's cloud kernel under QEMU,
//! TCG), TCP through the OVS kernel datapath against the same two hosts through a Linux bridge,
//! and the appliance's cold start to a configured bridge with the openvswitch module absent
//! (so the appliance loads it) and already loaded, and `modprobe openvswitch` alone. The guest
//! side is `tests/kernel/guest/bench.sh`, whose constants fix the run counts; BENCHMARKS.md says
//! what is measured and how.
//!
//! Needs what tier 4 needs (root, qemu-system-x86_64, cpio, and the cached root or debootstrap).

#[path = "common/stats.rs"]
mod stats;
#[path = "../tests/kernel/vm.rs"]
mod vm;

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The bench's binary: the `bench` profile inherits `[profile.release]`.
const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("kernel bench: run it with `cargo bench --bench kernel`");
        return Ok(());
    }
    let missing = vm::missing_prerequisites();
    ensure!(missing.is_empty(), "cannot run: {}", missing.join(", "));
    let root = vm::build_root(Duration::from_secs(30 * 60)).map_err(anyhow::Error::msg)?;
    let dir = tempfile::Builder::new()
        .prefix("ovsa-kb-")
        .tempdir_in("/var/tmp")?;
    // OVS_APPLIANCE_KERNEL_BENCH=bench-restarts runs one part (a comma-separated list).
    let wanted = std::env::var("OVS_APPLIANCE_KERNEL_BENCH")
        .unwrap_or_else(|_| "bench,bench-restarts".into());
    let scripts: Vec<vm::Script> = [("bench", 900), ("bench-restarts", 1500)]
        .into_iter()
        .filter(|(name, _)| wanted.split(',').any(|w| w.trim() == *name))
        .map(|(name, limit_s)| vm::Script { name, limit_s })
        .collect();
    ensure!(
        !scripts.is_empty(),
        "OVS_APPLIANCE_KERNEL_BENCH names no part: {wanted}"
    );
    let deadline: u64 = scripts.iter().map(|s| u64::from(s.limit_s)).sum::<u64>() + 300;
    let boot = vm::boot(
        &root,
        Path::new(BIN),
        &scripts,
        dir.path(),
        Duration::from_secs(deadline),
    )
    .map_err(anyhow::Error::msg)
    .context("the VM could not be started")?;
    for line in boot.prefixed("LOG ") {
        eprintln!("guest: {line}");
    }
    if !boot.finished() {
        bail!(
            "the VM did not finish (timed out: {}):\n{}",
            boot.timed_out,
            boot.console_tail(30)
        );
    }
    let samples = samples(&boot);
    // A part that ran but measured nothing is a failure, not a shorter table (a run where
    // bench.sh's namespaces did not ping printed no iperf3 rows and still passed).
    let expected: &[(&str, &[&str])] = &[
        (
            "bench",
            &[
                "iperf3-ovs",
                "iperf3-linux-bridge",
                "cold-start-module-absent",
            ],
        ),
        (
            "bench-restarts",
            &["kill9-vswitchd-restore", "kill9-vswitchd-no-restore"],
        ),
    ];
    for (part, measures) in expected {
        if scripts.iter().any(|s| s.name == *part) {
            let missing: Vec<&str> = measures
                .iter()
                .copied()
                .filter(|m| !samples.contains_key(*m))
                .collect();
            ensure!(
                missing.is_empty(),
                "the {part} part gave no figures for {missing:?} (the guest's LOG lines above say why)"
            );
        }
    }
    println!(
        "kernel {}, binary {BIN}, VM {:.0} s; {}",
        root.release,
        boot.took.as_secs_f64(),
        boot.prefixed("BENCH-CONFIG ").join(" ")
    );
    print_table(&samples)?;
    let ratios = paired_ratios(&boot, "iperf3-ovs", "iperf3-linux-bridge");
    if !ratios.is_empty() {
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "per-run ratio OVS / Linux bridge over {} runs: median {:.2}, min {min:.2}, max {max:.2}",
            ratios.len(),
            median(&ratios)
        );
    }
    Ok(())
}

/// measure -> (unit, values in run order).
type Samples = BTreeMap<String, (String, Vec<f64>)>;

/// The per-run ratios of two measures taken in the same runs (runs alternate their order).
fn paired_ratios(boot: &vm::Boot, over: &str, under: &str) -> Vec<f64> {
    let mut by_run: BTreeMap<&str, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for line in boot.prefixed("BENCH ") {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [measure, run, value, _unit] = fields[..] else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let slot = by_run.entry(run).or_default();
        if measure == over {
            slot.0 = Some(value);
        } else if measure == under {
            slot.1 = Some(value);
        }
    }
    by_run
        .values()
        .filter_map(|pair| match pair {
            (Some(a), Some(b)) if *b > 0.0 => Some(a / b),
            _ => None,
        })
        .collect()
}

fn samples(boot: &vm::Boot) -> Samples {
    let mut out = Samples::new();
    for line in boot.prefixed("BENCH ") {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [measure, _run, value, unit] = fields[..] else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let entry = out
            .entry(measure.to_string())
            .or_insert_with(|| (unit.to_string(), Vec::new()));
        entry.1.push(value);
    }
    out
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn print_table(samples: &Samples) -> Result<()> {
    println!("\n| measure | median | IQR | min-max | n | unit |");
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    for (measure, (unit, v)) in samples {
        let cells = stats::Summary::of(v).cells(|x| format!("{x:.2}"));
        println!("| {measure} | {cells} | {unit} |");
    }
    ensure!(!samples.is_empty(), "no figures came back");
    let get = |m: &str| samples.get(m).map(|(_, v)| median(v));
    let verdict = |met: bool| if met { "yes" } else { "**no**" };
    let mut targets = Vec::new();
    if let (Some(ovs), Some(bridge)) = (get("iperf3-ovs"), get("iperf3-linux-bridge")) {
        let ratio = ovs / bridge;
        targets.push(format!(
            "| TCP through the OVS kernel datapath at least 0.9x a Linux bridge (medians) | {ratio:.2}x | {} |",
            verdict(ratio >= 0.9)
        ));
    }
    for event in ["kill9-vswitchd", "replace", "kill9-ovsdb"] {
        if let Some(lost) = get(&format!("{event}-restore")) {
            let before = get(&format!("{event}-no-restore")).unwrap_or(f64::NAN);
            targets.push(format!(
                "| {event}: at most 1 probe lost with the restore (median; {before} without) | {lost} | {} |",
                verdict(lost <= 1.0)
            ));
        }
    }
    if !targets.is_empty() {
        println!("\n| target | measured | met |");
        println!("| --- | --- | --- |");
        for t in targets {
            println!("{t}");
        }
    }
    if let (Some(absent), Some(loaded)) = (
        get("cold-start-module-absent"),
        get("cold-start-module-loaded"),
    ) {
        println!(
            "\ncold start, module absent - module loaded, medians: {:.2} s",
            absent - loaded
        );
    }
    Ok(())
}
