//! `cargo bench --bench reconcile`: how fast the appliance makes bridges and ports match its
//! config, beside ovs-vsctl (per port and batched) and the floor (the same transaction written
//! straight to db.sock); the no-op pass; drift repair; cold start to applied. BENCHMARKS.md says
//! what is measured and how. The run count is fixed here (RUNS) before anyone looks at a result;
//! BENCH_ONLY runs one measure alone, for work on it, not for a report.
//!
//! Needs root, OVS (ovsdb-server, ovs-vswitchd, ovs-vsctl, ovs-ctl), `ip` and `unshare`. Other
//! sessions may run OVS on this machine: every instance here has its own network namespace
//! (`ovsa-rb-<pid>-<n>`) and temp run/db dirs, and only processes this bench started are killed,
//! by pid, checked against /proc/<pid>/comm. Guards clean up on error, panic and Ctrl-C.

// A bench's root file looks for modules beside itself; these live in benches/reconcile/.
#[path = "reconcile/apply.rs"]
mod apply;
#[path = "reconcile/cold.rs"]
mod cold;
#[path = "reconcile/drift.rs"]
mod drift;
#[path = "reconcile/floor.rs"]
mod floor;
#[path = "reconcile/instance.rs"]
mod instance;
#[path = "common/proc.rs"]
mod proc;
#[path = "reconcile/raw.rs"]
mod raw;
#[path = "reconcile/report.rs"]
mod report;
#[path = "common/stats.rs"]
mod stats;
#[path = "reconcile/workload.rs"]
mod workload;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context, Result};

use apply::{Method, Results};
use report::{fmt_ms, median, Target};
use workload::Shape;

/// The binary cargo built for this bench (target/release/ovs-appliance).
const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");
/// Runs of each apply shape and of the cold start: at least 15, fixed before looking.
const RUNS: usize = 15;
const SHAPES: [Shape; 4] = [
    Shape::Ports(10),
    Shape::Ports(100),
    Shape::Ports(1000),
    Shape::Bridges(100),
];

pub struct Bench {
    /// The appliance's session runs here: one worker thread keeps its monitor read while the
    /// main thread waits on ovs-vsctl, and runs the timed `reconcile_once` too.
    rt: tokio::runtime::Runtime,
    runs: usize,
    noop_runs: usize,
    drift_runs: usize,
    /// The apply methods measured (all but with `BENCH_ONLY`).
    methods: Vec<Method>,
    stop: Arc<AtomicBool>,
}

impl Bench {
    fn interrupted(&self) -> Result<()> {
        ensure!(!self.stop.load(Ordering::Relaxed), "interrupted");
        Ok(())
    }
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("reconcile bench: run it with `cargo bench --bench reconcile`");
        return Ok(());
    }
    preflight()?;
    let runs = RUNS;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let b = Bench {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?,
        runs,
        noop_runs: 200,
        drift_runs: runs.max(20),
        methods: match std::env::var("BENCH_ONLY").as_deref() {
            Ok("noop") => vec![Method::Appliance],
            Ok(only) if only.starts_with("apply-") => {
                vec![Method::Appliance, Method::Floor, Method::Batched]
            }
            _ => vec![
                Method::Appliance,
                Method::Floor,
                Method::Batched,
                Method::Loop,
            ],
        },
        stop,
    };
    let (load, began) = (report::loadavg(), std::time::Instant::now());
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        return only_one(&b, &only);
    }
    let (res, noop, drift) = on_one_instance(&b)?;
    let cold = cold::run(&b)?;
    report::machine(runs, (&load, &report::loadavg()), began.elapsed());
    report::apply(&res, &SHAPES);
    report::noop(&noop, 1000);
    report::drift(&drift);
    report::cold(&cold);
    report::targets(&targets(&res, &noop, &drift, &cold));
    Ok(())
}

/// `BENCH_ONLY=noop|apply-10|apply-100|apply-1000|apply-bridges|cold`: one measure alone, for
/// working on it (no targets table).
fn only_one(b: &Bench, only: &str) -> Result<()> {
    let shape = match only {
        "cold" => {
            report::cold(&cold::run(b)?);
            return Ok(());
        }
        "noop" | "apply-1000" => Shape::Ports(1000),
        "apply-10" => Shape::Ports(10),
        "apply-100" => Shape::Ports(100),
        "apply-bridges" => Shape::Bridges(100),
        other => anyhow::bail!(
            "BENCH_ONLY={other}: expected noop, apply-10, apply-100, apply-1000, apply-bridges or cold"
        ),
    };
    let inst = instance::Instance::start("")?;
    let mut ctx = apply::Ctx::open(b, &inst, false)?;
    let mut res = Results::new();
    let noop = apply::shape(&mut ctx, shape, &mut res, only == "noop")?;
    report::apply(&res, &[shape]);
    if let Some(noop) = noop {
        report::noop(&noop, 1000);
    }
    Ok(())
}

/// Measures 1-3, all on one `ovs-appliance run` and its daemons.
fn on_one_instance(b: &Bench) -> Result<(Results, apply::Noop, drift::Drift)> {
    let inst = instance::Instance::start("")?;
    let vswitchd = inst.vswitchd_pid().context("no ovs-vswitchd pid")?;
    let mut ctx = apply::Ctx::open(b, &inst, true)?;
    // One unrecorded round warms the page cache and the daemons.
    apply::shape(&mut ctx, Shape::Ports(10), &mut Results::new(), false)?;
    ctx.warmup = false;
    let mut res = Results::new();
    let mut noop = None;
    for shape in SHAPES {
        let at_1000 = shape == Shape::Ports(1000);
        noop = apply::shape(&mut ctx, shape, &mut res, at_1000)?.or(noop);
    }
    drop(ctx);
    let drift = drift::run(b, &inst).with_context(|| inst.log())?;
    // A restart in the middle would have been timed as part of some apply.
    ensure!(
        inst.vswitchd_pid() == Some(vswitchd),
        "ovs-vswitchd was restarted during the bench: {}",
        inst.log()
    );
    Ok((res, noop.context("no no-op figures")?, drift))
}

fn targets(
    res: &Results,
    noop: &apply::Noop,
    d: &drift::Drift,
    cold: &[Vec<f64>; 3],
) -> Vec<Target> {
    let mut list = Vec::new();
    for shape in SHAPES {
        let r = report::ratio_of(res, shape, Method::Appliance, Method::Floor, true);
        list.push(Target {
            what: format!("appliance / floor, applied, {}: <= 1.2x", shape.label()),
            measured: format!("{r:.2}x"),
            met: r <= 1.2,
        });
    }
    let r = report::ratio_of(
        res,
        Shape::Ports(100),
        Method::Loop,
        Method::Appliance,
        true,
    );
    list.push(Target {
        what: "per-port loop / appliance, applied, 100 ports: >= 20x".into(),
        measured: format!("{r:.1}x"),
        met: r >= 20.0,
    });
    let m = median(&noop.ms);
    let unchanged = noop.next_cfg.0 == noop.next_cfg.1;
    list.push(Target {
        what: "no-op at 1000 ports: < 5 ms, 0 transactions".into(),
        measured: format!(
            "{}, {} transactions, next_cfg unchanged: {unchanged}",
            fmt_ms(m),
            noop.sent
        ),
        met: m < 5.0 && noop.sent == 0 && unchanged,
    });
    let (total, back) = (median(&d.total), median(&d.back));
    list.push(Target {
        what: "drift repair: < 100 ms (ovs-vsctl spawned -> applied)".into(),
        measured: format!(
            "{} ({} from the deletion seen to the repair committed)",
            fmt_ms(total),
            fmt_ms(back)
        ),
        met: total < 100.0,
    });
    let (app, hand) = (median(&cold[0]), median(&cold[2]));
    list.push(Target {
        what: "cold start: appliance no slower than the hand-written script".into(),
        measured: format!("{} vs {}", fmt_ms(app), fmt_ms(hand)),
        met: app <= hand,
    });
    list
}

fn preflight() -> Result<()> {
    proc::require(&[
        "ovsdb-server",
        "ovs-vswitchd",
        "ovsdb-tool",
        "ovs-vsctl",
        "ip",
        "unshare",
    ])?;
    let ovs_ctl = "/usr/share/openvswitch/scripts/ovs-ctl";
    ensure!(Path::new(ovs_ctl).is_file(), "{ovs_ctl} missing");
    Ok(())
}
