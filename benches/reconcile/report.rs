//! The report: the machine, the command, and one markdown table per measure, then the targets.

use std::process::Command;
use std::time::Duration;

use crate::apply::{shape_key, Method, Noop, Results};
use crate::cold::LAUNCHES;
use crate::drift::Drift;
use crate::workload::Shape;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

/// The `p` quantile with linear interpolation (0.5: the median).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    crate::stats::quantile(v, p)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// A duration in the unit that reads best.
fn t(ms: f64) -> String {
    if ms.is_nan() {
        "-".into()
    } else if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("?")
        .trim()
        .to_string()
}

/// The 1-minute load average: other sessions share this machine.
pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split(' ').next().unwrap_or("?").to_string()
}

pub fn machine(runs: usize, load: (&str, &str), took: Duration) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find_map(|l| l.strip_prefix("model name"));
    let model = model
        .and_then(|m| m.split(':').nth(1))
        .unwrap_or("?")
        .trim();
    println!(
        "Machine: {cores} cores ({model}), kernel {}, {}, netdev datapath (no kernel module).",
        first_line("uname", &["-r"]),
        first_line("ovs-vswitchd", &["--version"])
    );
    println!("Command: `cargo bench --bench reconcile` ({runs} runs, fixed in the bench; 20 at 10 and 100 ports).");
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = first_line("git", &["-C", dir, "log", "-1", "--format=%h %s"]);
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "src"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let state = if dirty { "modified" } else { "clean" };
    println!(
        "Binary: {}, built from the tree at {head} (src/ {state}).",
        crate::BIN
    );
    let mins = took.as_secs_f64() / 60.0;
    println!(
        "Load average (1 min) at start {}, at end {}; the bench took {mins:.1} min.\n",
        load.0, load.1
    );
}

pub fn apply(res: &Results, shapes: &[Shape]) {
    println!("### 1. Apply: to committed and to applied (cur_cfg = next_cfg)\n");
    println!(
        "| workload | method | committed | applied | applied IQR | applied min - max | runs |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for &shape in shapes {
        for m in [
            Method::Appliance,
            Method::Floor,
            Method::Batched,
            Method::Loop,
        ] {
            let Some(c) = res.get(&(shape_key(shape), m)) else {
                continue;
            };
            let (iqr, range) = match c.applied.is_empty() {
                true => ("-".to_string(), "-".to_string()),
                false => (
                    format!(
                        "{} - {}",
                        t(percentile(&c.applied, 0.25)),
                        t(percentile(&c.applied, 0.75))
                    ),
                    format!("{} - {}", t(min(&c.applied)), t(max(&c.applied))),
                ),
            };
            let mut runs = c.applied.len().to_string();
            if let Some(note) = &c.note {
                runs += &format!(" ({note})");
            }
            let (cm, am) = (t(median(&c.committed)), t(median(&c.applied)));
            println!(
                "| {} | {} | {cm} | {am} | {iqr} | {range} | {runs} |",
                shape.label(),
                m.label()
            );
        }
    }
    println!("\n| workload | appliance / floor, applied | appliance / floor, committed | batched / appliance, applied | per-port loop / appliance, applied |");
    println!("| --- | --- | --- | --- | --- |");
    for &shape in shapes {
        let r = |a: Method, b: Method, applied: bool| ratio(res, shape, a, b, applied);
        println!(
            "| {} | {} | {} | {} | {} |",
            shape.label(),
            r(Method::Appliance, Method::Floor, true),
            r(Method::Appliance, Method::Floor, false),
            r(Method::Batched, Method::Appliance, true),
            r(Method::Loop, Method::Appliance, true),
        );
    }
    println!();
}

fn median_of(res: &Results, shape: Shape, m: Method, applied: bool) -> f64 {
    let Some(c) = res.get(&(shape_key(shape), m)) else {
        return f64::NAN;
    };
    median(if applied { &c.applied } else { &c.committed })
}

pub fn ratio_of(res: &Results, shape: Shape, a: Method, b: Method, applied: bool) -> f64 {
    median_of(res, shape, a, applied) / median_of(res, shape, b, applied)
}

fn ratio(res: &Results, shape: Shape, a: Method, b: Method, applied: bool) -> String {
    let r = ratio_of(res, shape, a, b, applied);
    if r.is_nan() {
        "-".into()
    } else {
        format!("{r:.2}x")
    }
}

pub fn noop(n: &Noop, ports: usize) {
    println!("### 2. No-op reconcile at {ports} ports\n");
    println!("| passes | median | p90 | max | transactions sent | next_cfg before -> after |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| {} | {} | {} | {} | {} | {} -> {} |\n",
        n.ms.len(),
        t(median(&n.ms)),
        t(percentile(&n.ms, 0.9)),
        t(max(&n.ms)),
        n.sent,
        n.next_cfg.0,
        n.next_cfg.1
    );
    println!(
        "Its two steps timed apart (medians of {} more passes): `Session::observed` (a copy of \
         the monitor cache) {}, `plan` {}.\n",
        n.plan.len(),
        t(median(&n.observed)),
        t(median(&n.plan))
    );
}

pub fn drift(d: &Drift) {
    println!("### 3. Drift repair by the running appliance (10-port bridge, one port deleted)\n");
    println!("| interval | median | IQR | min | max | runs |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (label, v) in [
        (
            "`ovs-vsctl --no-wait del-port` spawned -> deletion seen",
            &d.seen,
        ),
        (
            "deletion seen -> port back in the database (repair committed)",
            &d.back,
        ),
        (
            "deletion seen -> ovs-vswitchd applied the repair (cur_cfg)",
            &d.applied,
        ),
        (
            "**`ovs-vsctl` spawned -> ovs-vswitchd applied the repair**",
            &d.total,
        ),
    ] {
        let (med, lo, hi) = (t(median(v)), t(min(v)), t(max(v)));
        let iqr = format!("{} - {}", t(percentile(v, 0.25)), t(percentile(v, 0.75)));
        println!("| {label} | {med} | {iqr} | {lo} | {hi} | {} |", v.len());
    }
    println!();
}

pub fn cold(took: &[Vec<f64>; 3]) {
    println!("### 4. Cold start to applied (fresh database, br0 + internal p0, netdev)\n");
    println!("| launcher | median | IQR | min | max | runs |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (how, v) in LAUNCHES.iter().zip(took) {
        let label = how.label();
        println!(
            "| {label} | {} | {} - {} | {} | {} | {} |",
            t(median(v)),
            t(percentile(v, 0.25)),
            t(percentile(v, 0.75)),
            t(min(v)),
            t(max(v)),
            v.len()
        );
    }
    let [app, ctl, hand] = took.each_ref().map(|v| median(v));
    println!(
        "\nappliance / hand-written: {:.2}x; appliance / ovs-ctl: {:.2}x\n",
        app / hand,
        app / ctl
    );
}

/// One line per target: what was measured and whether it was met.
pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: bool,
}

pub fn targets(list: &[Target]) {
    println!("### Targets\n");
    println!("| target | measured | met |");
    println!("| --- | --- | --- |");
    for tg in list {
        let met = if tg.met { "yes" } else { "**no**" };
        println!("| {} | {} | {met} |", tg.what, tg.measured);
    }
    println!();
}

pub fn fmt_ms(ms: f64) -> String {
    t(ms)
}
