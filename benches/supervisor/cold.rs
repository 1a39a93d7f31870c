//! Measure 1, cold start on a fresh, empty database: `ovs-appliance run`, `ovs-ctl start` and
//! the hand-written script, alternating, each from just before its launcher is spawned until the
//! database answers and vswitchd has connected (`probe::until_ready`).

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use crate::instance::Instance;
use crate::probe::{self, MILESTONES};
use crate::proc::wait_for;
use crate::report::{ms, Row};
use crate::Bench;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Launch {
    Appliance,
    OvsCtl,
    Hand,
}

/// The rows of the main table, and the appliance's own steps (ms after spawn) for the second.
pub fn run(b: &Bench) -> Result<(Vec<Row>, Vec<Row>)> {
    let all = [Launch::Appliance, Launch::OvsCtl, Launch::Hand];
    // One unrecorded round warms the page cache; then the three alternate, so that load from
    // elsewhere on the machine falls on all of them alike.
    for how in all {
        start(b, how)?;
    }
    let mut took: [Vec<f64>; 3] = Default::default();
    let mut steps = vec![Vec::new(); MILESTONES.len() + 2];
    for run in 1..=b.runs {
        for (i, how) in all.into_iter().enumerate() {
            b.interrupted()?;
            let (t, milestones) = start(b, how)?;
            eprintln!("cold start {run}/{}: {how:?} {:.1} ms", b.runs, ms(t));
            took[i].push(ms(t));
            if how == Launch::Appliance {
                for (step, at) in milestones.into_iter().chain([ms(t)]).enumerate() {
                    steps[step].push(at);
                }
            }
        }
    }
    let [appliance, ovs_ctl, hand] = took;
    let rows = vec![
        Row::ms("cold start: `ovs-appliance run`", appliance.clone()),
        Row::ms("cold start: `ovs-ctl start`", ovs_ctl.clone()),
        Row::ms("cold start: hand-written script", hand.clone()),
        Row::ratio(
            "cold start ratio appliance / hand-written",
            &appliance,
            &hand,
        ),
        Row::ratio("cold start ratio appliance / ovs-ctl", &appliance, &ovs_ctl),
    ];
    let labels = ["first log line (exec, preflight)"]
        .into_iter()
        .chain(MILESTONES.iter().map(|m| m.0))
        .chain(["ready (the bench's criterion)"]);
    let steps = labels.zip(steps).map(|(l, v)| Row::ms(l, v)).collect();
    Ok((rows, steps))
}

/// One cold start; for the appliance also its steps from its JSON log (ms after spawn).
fn start(b: &Bench, how: Launch) -> Result<(Duration, Vec<f64>)> {
    let mut inst = Instance::new(b.root(), how != Launch::OvsCtl)?;
    let mut cmd = match how {
        Launch::Appliance => inst.appliance_command("")?,
        Launch::OvsCtl => inst.ovs_ctl_command(),
        Launch::Hand => inst.hand_command()?,
    };
    inst.log_to(&mut cmd, "launcher.log")?;
    let wall = SystemTime::now();
    let t0 = Instant::now();
    let child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
    match how {
        Launch::Appliance => inst.appliance = Some(child),
        _ => inst.launchers.push(child),
    }
    let ready = b.rt.block_on(probe::until_ready(&inst.db_sock(), &b.stop));
    let took = t0.elapsed();
    ready.with_context(|| format!("{how:?}: {}", inst.log("launcher.log")))?;
    inst.wait_launchers()?;
    let milestones = match how {
        Launch::Appliance => wait_for(Duration::from_secs(5), || {
            probe::milestones(&inst.path("launcher.log"), wall)
        })
        .with_context(|| format!("a step missing in {}", inst.log("launcher.log")))?,
        _ => Vec::new(),
    };
    Ok((took, milestones))
}
