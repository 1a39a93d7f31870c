//! `cargo bench --bench metrics`: what a scrape of `ovs-appliance run` with 1000 interfaces
//! costs, beside an exporter-style scrape done the way today's OVS exporters do it
//! (`ovs-vsctl --format=json list Interface`, `ovs-appctl dpctl/show -s`, `ovs-appctl
//! coverage/show`, one after the other) against the same OVS in the same run; and the
//! appliance's resident memory and idle CPU with 0 and 1000 interfaces. Prints markdown tables;
//! BENCHMARKS.md ("Metrics") says what they mean.
//!
//! Fair by construction: the same number of samples on every side (ROUNDS, fixed here before
//! looking), the sides in a different order each round; ours both as an HTTP GET from a thread
//! (how Prometheus scrapes) and as a `curl` process (the whole-process figure beside the
//! exporter's three processes); the CPU of every process a scrape touches (the appliance, the
//! OVS daemons, the scrape's own children) counted per scrape; and the appliance's background
//! work (its readings every 5 s) counted per second beside it, since /metrics serves what that
//! work read.
//!
//! Needs root, OVS, `ip` and `curl`. Each instance runs in its own network namespace and temp
//! dir; only processes this bench started are signalled (the appliance it spawned, and the
//! daemons named by pidfiles in its own temp dir, checked against /proc/<pid>/comm).

#[path = "../tests/common/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "metrics/instance.rs"]
mod instance;
#[path = "common/stats.rs"]
mod stats;

use anyhow::{ensure, Context, Result};
use instance::Instance;
use stats::Summary;
use std::process::Command;
use std::time::{Duration, Instant};

const INTERFACES: usize = 1000;
/// Scrapes per side, after one round not counted.
const ROUNDS: usize = 30;
/// The window over which idle CPU is read, with nobody scraping.
const IDLE_SECS: u64 = 30;
/// Prometheus's default scrape interval, for the CPU per interval.
const SCRAPE_INTERVAL_SECS: f64 = 15.0;
/// The families an exporter-style scrape covers (the Interface table, the datapath, coverage),
/// by name prefix: our body cut to these is the like-for-like size.
const EXPORTER_FAMILIES: [&str; 3] = ["ovs_interface_", "ovs_datapath_", "ovs_vswitchd_coverage_"];

/// One scrape: its wall time, its body size, and the CPU it cost every process it touched.
struct Scrape {
    ms: f64,
    bytes: usize,
    cpu_ms: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// GET /metrics from a thread in the namespace, a new connection each.
    Http,
    /// `curl -s http://127.0.0.1:9476/metrics`, a process per scrape.
    Curl,
    /// The three exporter-style processes, one after the other.
    Exporter,
}

const SIDES: [Side; 3] = [Side::Http, Side::Curl, Side::Exporter];

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Http => "ovs-appliance `/metrics`, HTTP GET (as Prometheus)",
            Side::Curl => "ovs-appliance `/metrics`, a `curl` process",
            Side::Exporter => {
                "exporter-style: `ovs-vsctl list Interface` + `dpctl/show -s` + `coverage/show`"
            }
        }
    }
}

/// CPU seconds of this process's waited-for children (the scrape's subprocesses).
fn children_cpu() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// The CPU a scrape spends in the appliance and in its own processes. The OVS daemons' share
/// is not counted: with 1000 netdev ports ovs-vswitchd polls at most of a core whether or not
/// anyone scrapes, and /proc's 10 ms ticks cannot tell a scrape's few milliseconds from that.
fn cpu_now(inst: &Instance) -> Result<f64> {
    Ok(inst.appliance_cpu_seconds()? + children_cpu())
}

/// One `GET /metrics` from inside the instance's namespace, as Prometheus makes it.
fn get_metrics(inst: &Instance) -> Result<String> {
    http::in_netns(inst.ns(), || -> Result<String> {
        let stream = std::net::TcpStream::connect(("127.0.0.1", instance::PORT))?;
        let r = http::request_on(stream, "GET", "/metrics").context("no response")?;
        ensure!(r.status == 200, "/metrics answered {}", r.status);
        Ok(r.body)
    })
}

fn scrape(inst: &Instance, side: Side) -> Result<Scrape> {
    let cpu0 = cpu_now(inst)?;
    let began = Instant::now();
    let bytes = match side {
        Side::Http => get_metrics(inst)?.len(),
        // Spawned from a thread in the namespace, so curl starts there (no `ip netns exec`).
        Side::Curl => http::in_netns(inst.ns(), || -> Result<usize> {
            let url = format!("http://127.0.0.1:{}/metrics", instance::PORT);
            let out = Command::new("curl").args(["-sf", &url]).output()?;
            ensure!(out.status.success(), "curl: {out:?}");
            Ok(out.stdout.len())
        })?,
        Side::Exporter => {
            let ctl = inst.vswitchd_ctl()?;
            let db = format!("unix:{}", inst.db_sock().display());
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
            let mut bytes = 0;
            for argv in &commands {
                let out = Command::new(argv[0]).args(&argv[1..]).output()?;
                ensure!(out.status.success(), "{argv:?}: {out:?}");
                bytes += out.stdout.len();
            }
            bytes
        }
    };
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    let cpu_ms = (cpu_now(inst)? - cpu0) * 1000.0;
    Ok(Scrape { ms, bytes, cpu_ms })
}

/// Our body cut to the exporter's families (their # HELP and # TYPE lines included).
fn like_for_like_bytes(inst: &Instance) -> Result<usize> {
    let body = http::in_netns(inst.ns(), || -> Result<String> {
        let stream = std::net::TcpStream::connect(("127.0.0.1", instance::PORT))?;
        let r = http::request_on(stream, "GET", "/metrics").context("no response")?;
        Ok(r.body)
    })?;
    let keep = |name: &str| EXPORTER_FAMILIES.iter().any(|p| name.starts_with(p));
    Ok(body
        .lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            keep(name)
        })
        .map(|l| l.len() + 1)
        .sum())
}

struct Idle {
    rss: u64,
    peak: u64,
    /// CPU per second of wall time, in milliseconds.
    appliance_ms_per_s: f64,
    daemons_ms_per_s: f64,
}

/// RSS and CPU of the appliance (and the daemons' CPU) while nobody scrapes it.
fn idle(inst: &Instance, secs: u64) -> Result<Idle> {
    let (a0, d0) = (inst.appliance_cpu_seconds()?, inst.daemons_cpu_seconds()?);
    std::thread::sleep(Duration::from_secs(secs));
    let (a1, d1) = (inst.appliance_cpu_seconds()?, inst.daemons_cpu_seconds()?);
    let (rss, peak) = inst.appliance_memory()?;
    Ok(Idle {
        rss,
        peak,
        appliance_ms_per_s: (a1 - a0) / secs as f64 * 1000.0,
        daemons_ms_per_s: (d1 - d0) / secs as f64 * 1000.0,
    })
}

/// The appliance's heap in use (`ovs_appliance_heap_in_use_bytes`) from one scrape, taken
/// after the RSS it explains was read. Its process family is rendered first, before the
/// scrape's own buffers grow.
fn heap_in_use(inst: &Instance) -> Result<u64> {
    let body = get_metrics(inst)?;
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix("ovs_appliance_heap_in_use_bytes "))
        .context("no ovs_appliance_heap_in_use_bytes in /metrics")?;
    Ok(line.trim().parse::<f64>()? as u64)
}

/// Where resident memory is, at one moment: RSS as anonymous + file-backed, then the heap.
struct Split {
    anon: u64,
    file: u64,
    heap: u64,
}

fn split(inst: &Instance) -> Result<Split> {
    let (anon, file) = inst.appliance_rss_split()?;
    let heap = heap_in_use(inst)?;
    Ok(Split { anon, file, heap })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("metrics bench: run it with `cargo bench --bench metrics`");
        return Ok(());
    }
    instance::preflight()?;
    ensure!(
        Command::new("curl").arg("--version").output().is_ok(),
        "curl is needed (apt-get install curl)"
    );
    let load_before = stats::load();
    let began = Instant::now();

    eprintln!("starting an appliance with no bridges");
    let kind = instance::Ports::from_env()?;
    let empty = Instance::start(0, kind)?;
    let idle0 = idle(&empty, IDLE_SECS)?;
    drop(empty);

    eprintln!(
        "starting an appliance with {INTERFACES} {} ports on two bridges",
        kind.label()
    );
    let big = Instance::start(INTERFACES, kind)?;
    let idle1 = idle(&big, IDLE_SECS)?;
    let split_idle = split(&big)?;
    // Round 0 warms every side up and is not counted; each round starts with another side.
    let mut scrapes: [Vec<Scrape>; 3] = Default::default();
    for round in 0..=ROUNDS {
        for k in 0..SIDES.len() {
            let i = (round + k) % SIDES.len();
            let s = scrape(&big, SIDES[i])?;
            if round > 0 {
                scrapes[i].push(s);
            }
        }
    }
    let like_for_like = like_for_like_bytes(&big)?;
    let (rss_after, _) = big.appliance_memory()?;
    // The background readings run every 5 s and return freed heap pages afterwards.
    std::thread::sleep(Duration::from_secs(6));
    let (rss_later, peak_after) = big.appliance_memory()?;
    let split_later = split(&big)?;
    drop(big);
    let load_after = stats::load();

    println!();
    println!(
        "Commit {}; load {load_before} before, {load_after} after; {:.0} s. {INTERFACES} interfaces: {} ports, half on bridge bra and half on brb. {ROUNDS} scrapes a side (fixed), the sides in turn, each round starting with the next; CPU is that of the appliance and the scrape's own processes (curl, ovs-vsctl, ovs-appctl) during the scrape, per scrape (a mean: /proc counts 10 ms ticks); the OVS daemons' share is not counted (see below).",
        stats::commit(),
        began.elapsed().as_secs_f64(),
        kind.label()
    );
    println!();
    println!("| {INTERFACES} interfaces | median | IQR | min-max | n | CPU per scrape (mean) | body bytes |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mean_cpu =
        |i: usize| scrapes[i].iter().map(|s| s.cpu_ms).sum::<f64>() / scrapes[i].len() as f64;
    for (i, side) in SIDES.iter().enumerate() {
        let times: Vec<f64> = scrapes[i].iter().map(|s| s.ms).collect();
        let cpu = mean_cpu(i);
        let bytes = scrapes[i].last().map_or(0, |s| s.bytes);
        println!(
            "| {} | {} | {} | {bytes} |",
            side.label(),
            Summary::of(&times).cells(stats::ms),
            stats::ms(cpu)
        );
    }
    println!(
        "| ovs-appliance body cut to the exporter's families ({}) | | | | | | {like_for_like} |",
        EXPORTER_FAMILIES.join(", ")
    );
    // Ratios of the same round's scrapes, so a busy moment weighs on both sides.
    let ratio = |ours: usize| {
        let r: Vec<f64> = scrapes[2]
            .iter()
            .zip(&scrapes[ours])
            .map(|(e, o)| e.ms / o.ms)
            .collect();
        Summary::of(&r)
    };
    let fx = |v: f64| format!("{v:.1}x");
    println!();
    println!("| exporter-style / ovs-appliance, per round | median | IQR | min-max | n |");
    println!("| --- | --- | --- | --- | --- |");
    println!("| against the HTTP GET | {} |", ratio(0).cells(fx));
    println!("| against the `curl` process | {} |", ratio(1).cells(fx));
    let ours_interval = idle1.appliance_ms_per_s * SCRAPE_INTERVAL_SECS + mean_cpu(0);
    let theirs_interval = mean_cpu(2);
    println!();
    println!(
        "Background: with {INTERFACES} interfaces and nobody scraping, the appliance used {:.2} ms of CPU per second ({:.2} % of a core; its readings every 5 s), the OVS daemons {:.2} ms per second (ovs-vswitchd polling its netdev ports: too much to tell a scrape's share from, so no side's figure counts the daemons). Per {SCRAPE_INTERVAL_SECS:.0} s scrape interval, the appliance's background plus one HTTP scrape: {} of CPU; one exporter-style scrape: {} ({:.1}x).",
        idle1.appliance_ms_per_s,
        idle1.appliance_ms_per_s / 10.0,
        idle1.daemons_ms_per_s,
        stats::ms(ours_interval),
        stats::ms(theirs_interval),
        theirs_interval / ours_interval
    );
    let verdict = |met: bool| if met { "yes" } else { "**no**" };
    let (http, curl) = (ratio(0).median, ratio(1).median);
    let rss_max = idle1.rss.max(rss_after).max(rss_later) as f64 / 1048576.0;
    println!();
    println!("| target | measured | met |");
    println!("| --- | --- | --- |");
    println!(
        "| scrape at least 10x faster than exporter-style (median of the per-round ratios, HTTP GET) | {http:.1}x | {} |",
        verdict(http >= 10.0)
    );
    println!(
        "| the same as whole processes (`curl` against the three commands) | {curl:.1}x | {} |",
        verdict(curl >= 10.0)
    );
    println!(
        "| appliance RSS at most 20 MiB with {INTERFACES} interfaces (idle, right after the scrapes, 6 s later) | {rss_max:.1} MiB | {} |",
        verdict(rss_max <= 20.0)
    );
    println!();
    println!("| appliance process | RSS, idle | RSS right after the scrapes | RSS 6 s later | peak RSS (VmHWM) | idle CPU ({IDLE_SECS} s, no scrapes) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| 0 interfaces | {} | | | {} | {:.2} % |",
        mib(idle0.rss),
        mib(idle0.peak),
        idle0.appliance_ms_per_s / 10.0
    );
    println!(
        "| {INTERFACES} interfaces | {} | {} | {} | {} | {:.2} % |",
        mib(idle1.rss),
        mib(rss_after),
        mib(rss_later),
        mib(peak_after.max(idle1.peak)),
        idle1.appliance_ms_per_s / 10.0
    );
    println!();
    println!("Where the {INTERFACES}-interface RSS is (the kernel's split from /proc, then one scrape's `ovs_appliance_heap_in_use_bytes`; anonymous beyond the heap in use is stacks and freed memory not given back):");
    println!();
    println!("| moment | RSS anonymous | RSS file-backed | heap in use |");
    println!("| --- | --- | --- | --- |");
    for (moment, s) in [
        ("idle, before any scrape", &split_idle),
        ("6 s after the scrapes", &split_later),
    ] {
        println!(
            "| {moment} | {} | {} | {} |",
            mib(s.anon),
            mib(s.file),
            mib(s.heap)
        );
    }
    Ok(())
}
