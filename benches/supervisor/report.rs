//! The report: the machine, the command, a markdown table of medians (min, max), the appliance's
//! cold start step by step, and the targets.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::{BIN, VSWITCHD};

pub enum Figure {
    /// Milliseconds, one per run.
    Ms(Vec<f64>),
    /// A ratio of two medians, with the ratios of the runs paired by round (their spread).
    Ratio(f64, Vec<f64>),
    /// One reading in KiB.
    Kib(u64),
}

pub struct Row {
    label: String,
    value: Figure,
}

impl Row {
    pub fn ms(label: &str, v: Vec<f64>) -> Row {
        Row::new(label, Figure::Ms(v))
    }
    /// `a` over `b`: the ratio of their medians, and each round's `a[i] / b[i]`.
    pub fn ratio(label: &str, a: &[f64], b: &[f64]) -> Row {
        let pairs = a.iter().zip(b).map(|(x, y)| x / y).collect();
        Row::new(label, Figure::Ratio(median(a) / median(b), pairs))
    }
    pub fn mib(label: &str, kib: u64) -> Row {
        Row::new(label, Figure::Kib(kib))
    }
    fn new(label: &str, value: Figure) -> Row {
        Row {
            label: label.into(),
            value,
        }
    }

    /// The median, ratio or MiB this row stands for.
    fn headline(&self) -> f64 {
        match &self.value {
            Figure::Ms(v) => median(v),
            Figure::Ratio(r, _) => *r,
            Figure::Kib(kib) => *kib as f64 / 1024.0,
        }
    }

    fn print(&self) {
        let label = &self.label;
        match &self.value {
            Figure::Ms(v) => {
                let cells = crate::stats::Summary::of(v).cells(|x| format!("{x:.1} ms"));
                println!("| {label} | {cells} |");
            }
            Figure::Ratio(r, pairs) => {
                let p = crate::stats::Summary::of(pairs);
                println!(
                    "| {label} (of medians; spread: per round) | {r:.2}x | {:.2}x-{:.2}x | {:.2}x-{:.2}x | {} |",
                    p.q1, p.q3, p.min, p.max, p.n
                );
            }
            Figure::Kib(_) => println!("| {label} | {:.1} MiB | | | 1 |", self.headline()),
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

pub struct Machine {
    cores: usize,
    kernel: String,
    debian: String,
    ovs: String,
    load: String,
    commit: String,
}

pub fn machine() -> Machine {
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: read("/proc/sys/kernel/osrelease"),
        debian: read("/etc/debian_version"),
        ovs: first_line(Command::new(VSWITCHD).arg("--version")),
        load: read("/proc/loadavg"),
        commit: first_line(
            Command::new("git")
                .args(["-C", env!("CARGO_MANIFEST_DIR"), "describe"])
                .args(["--always", "--dirty"]),
        ),
    }
}

/// The first line a command prints, or "" (for the report's header only).
fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            text.lines().next().unwrap_or("").to_string()
        })
        .unwrap_or_default()
}

fn read(path: &str) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub fn print(m: &Machine, runs: usize, rows: &[Row], steps: &[Row]) {
    println!("\n## ovs-appliance supervisor bench\n");
    println!(
        "- command: `cargo bench --bench supervisor` ({runs} runs of each, fixed in the bench)"
    );
    println!("- binary: {BIN}, built from commit {}", m.commit);
    println!(
        "- machine: {} cores (nproc), kernel {}, Debian {}, {}",
        m.cores, m.kernel, m.debian, m.ovs
    );
    println!(
        "- load average before / after: {} / {}\n",
        m.load,
        read("/proc/loadavg")
    );
    println!("| measure | median | IQR | min-max | n |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    rows.iter().for_each(Row::print);
    println!("\nThe appliance's cold start, step by step (ms after spawn, from its JSON log):\n");
    println!("| step | median | IQR | min-max | n |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    steps.iter().for_each(Row::print);
    print_targets(rows);
}

fn print_targets(rows: &[Row]) {
    let value = |label: &str| {
        rows.iter()
            .find(|r| r.label.starts_with(label))
            .map_or(f64::NAN, Row::headline)
    };
    let cold = value("cold start ratio appliance / hand");
    let noticed = value("kill -9 -> appliance logs");
    let restart = value("restart ratio");
    let rss = value("supervisor VmRSS after");
    let peak = value("supervisor VmHWM");
    let checks = [
        (
            "cold start: appliance no slower than hand-written (ratio <= 1)",
            format!("{cold:.2}x"),
            cold <= 1.0,
        ),
        (
            "kill -9 -> exit noticed (log line) < 50 ms",
            format!("{noticed:.1} ms"),
            noticed < 50.0,
        ),
        (
            "restart: appliance within 1.1x of by hand",
            format!("{restart:.2}x"),
            restart <= 1.1,
        ),
        (
            "supervisor RSS after the restarts <= 20 MiB",
            format!("{rss:.1} MiB"),
            rss <= 20.0,
        ),
        (
            "supervisor peak RSS <= 20 MiB",
            format!("{peak:.1} MiB"),
            peak <= 20.0,
        ),
    ];
    println!("\n| target (medians) | value | met |");
    println!("| --- | ---: | --- |");
    for (what, value, met) in checks {
        let met = if met { "yes" } else { "**no**" };
        println!("| {what} | {value} | {met} |");
    }
}
