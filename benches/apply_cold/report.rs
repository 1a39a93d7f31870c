//! Statistics and the printed report: one table of the sides per size, the ratios with their
//! spread, apply's time split, and the targets.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use crate::side::{Side, SIDES};
use crate::stats::{self, ms, quantile, Summary};

/// Milliseconds per (ports, side), in run order: the i-th runs of two sides were taken in the
/// same round, minutes apart at most.
pub type Times = BTreeMap<(usize, usize), Vec<f64>>;
/// Apply's phase durations (ms) per ports, one Vec per phase, in [`PHASES`] order.
pub type Splits = BTreeMap<usize, Vec<Vec<f64>>>;

/// Ports left down by batched ovs-vsctl alone, per ports, one count per run.
pub type Down = BTreeMap<usize, Vec<usize>>;

/// Apply's phases: the log message that ends each one (after spawn), and what it covers.
pub const PHASES: [(&str, &str); 8] = [
    (
        "phase: started",
        "process start (exec to `apply`, after argv and the log writer)",
    ),
    ("phase: connected", "config read, runtime, connect"),
    ("phase: schema read", "schema (`get_schema`)"),
    (
        "phase: snapshot loaded",
        "snapshot (monitor of the managed tables)",
    ),
    ("phase: planned", "plan and operations"),
    ("phase: committed", "commit (transaction sent to reply)"),
    (
        "phase: applied",
        "applied (`cur_cfg` reached, cache caught up)",
    ),
    (
        "phase: links up",
        "plan printed, links up (netlink dump, set up)",
    ),
];

/// Apply's phases from its JSON log: ms of each phase, then from the last to the exit.
pub fn split(log: &Path, spawned: SystemTime, total_ms: f64) -> Option<Vec<f64>> {
    let text = fs::read_to_string(log).ok()?;
    let mut at = Vec::new();
    for (message, _) in PHASES {
        let ts = text.lines().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["message"] == message)
                .then(|| crate::logtime::parse_utc(v["timestamp"].as_str()?))?
        })?;
        at.push(ts.duration_since(spawned).ok()?.as_secs_f64() * 1000.0);
    }
    at.push(total_ms);
    Some(
        at.iter()
            .scan(0.0, |prev, &x| Some(x - std::mem::replace(prev, x)))
            .collect(),
    )
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.unwrap_or_default().trim().to_string()
}

pub fn header(runs: usize, load: (&str, &str), minutes: f64) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("## Cold apply: `ovs-appliance apply` against batched `ovs-vsctl` and the floor\n");
    println!("- command: `cargo bench --bench apply_cold` ({runs} runs per side and size, fixed)");
    println!("- commit: {}", stats::commit());
    println!("- binary: {}", crate::BIN);
    println!(
        "- machine: {cores} cores, kernel {}, {}",
        sh("uname", &["-r"]),
        sh("ovs-vswitchd", &["--version"])
            .lines()
            .next()
            .unwrap_or("?")
    );
    println!(
        "- load average (1, 5, 15 min) before / after: {} / {}",
        load.0, load.1
    );
    println!("- took {minutes:.1} min\n");
}

pub fn sides(times: &Times, sizes: &[usize]) {
    println!("| ports | side | median | IQR | min-max | n |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    for &n in sizes {
        for (i, side) in SIDES.iter().enumerate() {
            let cells = Summary::of(&times[&(n, i)]).cells(ms);
            println!("| {n} | {} | {cells} |", side.label());
        }
    }
    println!();
}

/// Ratio of medians of `a` to `b` at `n` ports, and the IQR of the per-round ratios.
pub fn ratio(times: &Times, n: usize, a: Side, b: Side) -> (f64, f64, f64) {
    let idx = |s: Side| SIDES.iter().position(|x| *x == s).unwrap_or(0);
    let (va, vb) = (&times[&(n, idx(a))], &times[&(n, idx(b))]);
    let pairs: Vec<f64> = va.iter().zip(vb).map(|(x, y)| x / y).collect();
    (
        median(va) / median(vb),
        quantile(&pairs, 0.25),
        quantile(&pairs, 0.75),
    )
}

pub fn ratios(times: &Times, sizes: &[usize]) {
    println!(
        "| ports | apply / batched ovs-vsctl | apply / (ovs-vsctl + ip links up) | apply / floor |"
    );
    println!("| ---: | ---: | ---: | ---: |");
    for &n in sizes {
        let r = |b| {
            let (m, q1, q3) = ratio(times, n, Side::Apply, b);
            format!("{m:.2}x (per round {q1:.2}-{q3:.2})")
        };
        println!(
            "| {n} | {} | {} | {} |",
            r(Side::Vsctl),
            r(Side::VsctlLinks),
            r(Side::Floor)
        );
    }
    println!("\nRatios are of medians; in parentheses the IQR of the ratios of the runs taken in the same round.\n");
}

pub fn splits(s: &Splits, sizes: &[usize]) {
    println!("`ovs-appliance apply`, where the time goes (median ms of each phase, from its JSON log):\n");
    let cols: Vec<String> = sizes.iter().map(|n| format!("{n} ports")).collect();
    println!("| phase | {} |", cols.join(" | "));
    println!("| --- |{}", " ---: |".repeat(sizes.len()));
    let labels = PHASES
        .iter()
        .map(|(_, l)| *l)
        .chain(["exit (runtime and log writer shut down)"]);
    for (i, label) in labels.enumerate() {
        let cells: Vec<String> = sizes.iter().map(|n| ms(median(&s[n][i]))).collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    let n: Vec<String> = sizes.iter().map(|n| s[n][0].len().to_string()).collect();
    println!("| runs with every phase logged | {} |\n", n.join(" | "));
}

pub fn down(down: &Down) {
    for (n, counts) in down {
        let (lo, hi) = (counts.iter().min(), counts.iter().max());
        println!(
            "After batched `ovs-vsctl` alone, {}-{} of the {n} ports were down (ovs-vswitchd leaves \
             netdev internal ports down; `apply` sets them up, checked after every run).",
            lo.unwrap_or(&0),
            hi.unwrap_or(&0)
        );
    }
    println!();
}

/// Medians of the phases as one line, for a missed target's reason.
pub fn split_line(s: &Splits, n: usize) -> String {
    let short = [
        "start", "connect", "schema", "snapshot", "plan", "commit", "applied", "links", "exit",
    ];
    let parts: Vec<String> = short
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} {}", ms(median(&s[&n][i]))))
        .collect();
    parts.join(", ")
}

/// One row per target, as scripts/bench-report collects them: what, measured, then "yes" or
/// "**no**" alone in the last cell; a miss's measured cell says by how much and where apply's
/// time went.
pub fn targets(times: &Times, s: &Splits, sizes: &[usize]) {
    println!("| target (medians) | measured | met |");
    println!("| --- | --- | --- |");
    let idx = |side: Side| SIDES.iter().position(|x| *x == side).unwrap_or(0);
    let row = |what: String, n: usize, b: Side, limit: f64| {
        let (m, q1, q3) = ratio(times, n, Side::Apply, b);
        let mut measured = format!("{m:.2}x (per round {q1:.2}-{q3:.2})");
        if m > limit {
            let gap = median(&times[&(n, idx(Side::Apply))]) - median(&times[&(n, idx(b))]);
            measured += &format!(": {} slower; apply's phases: {}", ms(gap), split_line(s, n));
        }
        let met = if m <= limit { "yes" } else { "**no**" };
        println!("| {what} | {measured} | {met} |");
    };
    for &n in sizes {
        row(
            format!("cold apply <= 1.0x batched ovs-vsctl, {n} ports"),
            n,
            Side::Vsctl,
            1.0,
        );
    }
    if sizes.contains(&1000) {
        row(
            "cold apply <= 1.2x the floor, 1000 ports".into(),
            1000,
            Side::Floor,
            1.2,
        );
    }
    println!();
}

fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}
