//! `cargo bench --bench metrics`: the cost of a scrape of `ovs-appliance run` with 1000
//! interfaces, beside an exporter-style scrape done the way today's OVS exporters do it
//! (`ovs-vsctl --format=json list Interface`, `ovs-appctl dpctl/show -s`, `ovs-appctl
//! coverage/show`, one after the other) against the same OVS in the same run; and the
//! appliance's resident memory and idle CPU with 0 and 1000 interfaces. Prints a table;
//! BENCHMARKS.md ("Metrics") has the figures and what they mean.
//!
//! Needs root, OVS and `ip`. Each instance runs in its own network namespace and temp dir;
//! only processes this bench started are signalled (the appliance it spawned, and the daemons
//! named by pidfiles in its own temp dir, checked against /proc/<pid>/comm). BENCH_SCRAPES
//! sets the number of /metrics requests (default 200), BENCH_EXPORTER_RUNS the exporter-style
//! scrapes (default 20), BENCH_IDLE_SECS the idle CPU window (default 30).

#[path = "../tests/common/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "metrics/instance.rs"]
mod instance;

use anyhow::{ensure, Context, Result};
use instance::Instance;
use std::process::Command;
use std::time::{Duration, Instant};

const INTERFACES: usize = 1000;

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name} must be a number")),
        Err(_) => Ok(default),
    }
}

/// Median and 99th percentile of `samples` (sorted in place).
fn median_p99(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

/// `path` `n` times from one thread inside the appliance's namespace, a new connection each
/// (as Prometheus after its idle timeout); the time from connect to the last byte.
fn latency(inst: &Instance, path: &'static str, n: usize) -> Result<(Vec<Duration>, usize)> {
    http::in_netns(inst.ns(), move || {
        let mut times = Vec::with_capacity(n);
        let mut size = 0;
        for _ in 0..n {
            let began = Instant::now();
            let stream = std::net::TcpStream::connect(("127.0.0.1", instance::PORT))?;
            let r = http::request_on(stream, "GET", path).context("no response")?;
            times.push(began.elapsed());
            ensure!(r.status == 200, "{path} answered {}", r.status);
            size = r.body.len();
        }
        Ok((times, size))
    })
}

/// What an exporter does per scrape: three subprocesses, one after the other.
fn exporter_latency(inst: &Instance, n: usize) -> Result<(Vec<Duration>, usize)> {
    let ctl = inst.vswitchd_ctl()?;
    let db = format!("unix:{}", inst.db_sock().display());
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let began = Instant::now();
        let mut bytes = 0;
        let commands: [Vec<&str>; 3] = [
            vec![
                "ovs-vsctl",
                "--db",
                &db,
                "--format=json",
                "list",
                "Interface",
            ],
            vec!["ovs-appctl", "-t", &ctl, "dpctl/show", "-s"],
            vec!["ovs-appctl", "-t", &ctl, "coverage/show"],
        ];
        for argv in &commands {
            let out = Command::new(argv[0]).args(&argv[1..]).output()?;
            ensure!(out.status.success(), "{argv:?}: {out:?}");
            bytes += out.stdout.len();
        }
        times.push(began.elapsed());
        size = bytes;
    }
    Ok((times, size))
}

struct Idle {
    rss: u64,
    peak: u64,
    cpu_percent: f64,
}

/// RSS and CPU of the appliance process while nobody scrapes it.
fn idle(inst: &Instance, secs: u64) -> Result<Idle> {
    let cpu0 = inst.appliance_cpu_seconds()?;
    std::thread::sleep(Duration::from_secs(secs));
    let cpu1 = inst.appliance_cpu_seconds()?;
    let (rss, peak) = inst.appliance_memory()?;
    Ok(Idle {
        rss,
        peak,
        cpu_percent: (cpu1 - cpu0) / secs as f64 * 100.0,
    })
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("metrics bench: run it with `cargo bench --bench metrics`");
        return Ok(());
    }
    instance::preflight()?;
    let scrapes = env_usize("BENCH_SCRAPES", 200)?;
    let exporter_runs = env_usize("BENCH_EXPORTER_RUNS", 20)?;
    let idle_secs = env_usize("BENCH_IDLE_SECS", 30)? as u64;

    eprintln!("starting an appliance with no bridges");
    let kind = instance::Ports::from_env()?;
    let empty = Instance::start(0, kind)?;
    let idle0 = idle(&empty, idle_secs)?;
    drop(empty);

    eprintln!(
        "starting an appliance with {INTERFACES} {} ports on two bridges",
        kind.label()
    );
    let big = Instance::start(INTERFACES, kind)?;
    let idle1 = idle(&big, idle_secs)?;
    let (mut ours, body) = latency(&big, "/metrics", scrapes)?;
    let (mut probe, _) = latency(&big, "/healthz", scrapes)?;
    let (mut theirs, their_bytes) = exporter_latency(&big, exporter_runs)?;
    let (rss_after, _) = big.appliance_memory()?;
    // The background readings run every 5 s and return freed heap pages afterwards.
    std::thread::sleep(Duration::from_secs(6));
    let (rss_later, peak_after) = big.appliance_memory()?;
    drop(big);

    let (m, p) = median_p99(&mut ours);
    let (hm, hp) = median_p99(&mut probe);
    let (em, ep) = median_p99(&mut theirs);
    println!();
    println!(
        "{INTERFACES} interfaces: {} ports, half on bridge bra and half on brb (BENCH_PORTS).",
        kind.label()
    );
    println!();
    println!("| {INTERFACES} interfaces | median | p99 | bytes | runs |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| ovs-appliance `/metrics` | {} | {} | {body} | {scrapes} |",
        ms(m),
        ms(p)
    );
    println!(
        "| exporter-style (vsctl list Interface + dpctl/show -s + coverage/show) | {} | {} | {their_bytes} | {exporter_runs} |",
        ms(em),
        ms(ep)
    );
    println!(
        "| ovs-appliance `/healthz` (HTTP alone) | {} | {} | | {scrapes} |",
        ms(hm),
        ms(hp)
    );
    println!(
        "| ratio (exporter-style / ours) | {:.1}x | {:.1}x | | |",
        em.as_secs_f64() / m.as_secs_f64(),
        ep.as_secs_f64() / p.as_secs_f64()
    );
    println!();
    println!("| appliance process | RSS, idle | RSS right after the scrapes | RSS 6 s later | peak RSS (VmHWM) | idle CPU ({idle_secs} s, no scrapes) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| 0 interfaces | {} | | | {} | {:.2} % |",
        mib(idle0.rss),
        mib(idle0.peak),
        idle0.cpu_percent
    );
    println!(
        "| {INTERFACES} interfaces | {} | {} | {} | {} | {:.2} % |",
        mib(idle1.rss),
        mib(rss_after),
        mib(rss_later),
        mib(peak_after.max(idle1.peak)),
        idle1.cpu_percent
    );
    Ok(())
}
