//! Measures 2 and 3: kill -9 of ovs-vswitchd with 100 internal ports on a netdev bridge, under
//! the appliance (noticed, and back) and by hand (the bench kills and respawns it at once), the
//! two alternating; the supervisor's resident memory, idle and after the restarts.

use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{ensure, Context, Result};
use nix::sys::signal::Signal;

use crate::instance::Instance;
use crate::probe;
use crate::proc::{live_pid, signal, wait_for};
use crate::report::{ms, Row};
use crate::{Bench, VSWITCHD};

const PORTS: usize = 100;
/// Pause after each restart: longer than the appliance's `restart_window` below, so every kill is
/// a first restart (no backoff), and long enough for vswitchd to re-add the 100 ports (~0.2 s).
const SETTLE: Duration = Duration::from_millis(1500);
/// After this long the appliance has run one health check (health_interval is 5 s).
const IDLE: Duration = Duration::from_secs(6);
/// Only the restart window differs from the defaults: 1 s instead of 5 min, so that every kill
/// (SETTLE apart) is a first restart, immediate as after a long stable run, and the runs do not
/// exhaust the restart budget (5 in the window).
const RESTART_CONFIG: &str = "[supervisor]\nrestart_window = \"1s\"\n";

/// One kill -9, in ms after the wall clock / monotonic clock read just before kill().
#[derive(Default)]
struct Kill {
    /// The old vswitchd has exited (its pidfd is readable; its parent gets SIGCHLD now).
    exited: Vec<f64>,
    /// The appliance's "daemon failed; restarting" log line.
    logged: Vec<f64>,
    /// That line, after the exit: the supervisor's own part.
    logged_after_exit: Vec<f64>,
    /// The new vswitchd answers `version` on its control socket.
    up: Vec<f64>,
    /// The same, after the old one's exit: without the kernel's teardown of the old process,
    /// which varies with the machine's load and is the same work for both.
    up_after_exit: Vec<f64>,
}

impl Kill {
    fn push(&mut self, t0: Instant, exited: Instant, up: Instant) {
        self.exited.push(ms(exited - t0));
        self.up.push(ms(up - t0));
        self.up_after_exit
            .push(ms(up.saturating_duration_since(exited)));
    }
}

pub fn run(b: &Bench) -> Result<Vec<Row>> {
    let mut app = Instance::new(b.root(), true)?;
    let mut cmd = app.appliance_command(RESTART_CONFIG)?;
    app.log_to(&mut cmd, "launcher.log")?;
    let started = Instant::now();
    app.appliance = Some(cmd.spawn()?);
    b.rt.block_on(probe::until_ready(&app.db_sock(), &b.stop))
        .with_context(|| app.log("launcher.log"))?;

    // While the appliance idles, the by-hand instance is set up in its own namespace.
    let mut hand = Instance::new(b.root(), true)?;
    let mut cmd = hand.hand_command()?;
    hand.log_to(&mut cmd, "launcher.log")?;
    hand.launchers.push(cmd.spawn()?);
    hand.wait_launchers()?;

    std::thread::sleep(IDLE.saturating_sub(started.elapsed()));
    let idle_rss = app.appliance_status("VmRSS")?;
    add_ports(&app)?;
    add_ports(&hand)?;
    std::thread::sleep(SETTLE);

    let (mut by_app, mut by_hand) = (Kill::default(), Kill::default());
    for run in 1..=b.runs {
        b.interrupted()?;
        appliance_restart(b, &app, &mut by_app)?;
        std::thread::sleep(SETTLE);
        hand_restart(b, &mut hand, &mut by_hand)?;
        std::thread::sleep(SETTLE);
        eprintln!(
            "restart {run}/{}: appliance: exited {:.1}, logged {:.1}, up {:.1} ms; \
             by hand: exited {:.1}, up {:.1} ms",
            b.runs,
            by_app.exited[run - 1],
            by_app.logged[run - 1],
            by_app.up[run - 1],
            by_hand.exited[run - 1],
            by_hand.up[run - 1],
        );
    }
    let rss_after = app.appliance_status("VmRSS")?;
    let hwm = app.appliance_status("VmHWM")?;
    let ratio = Row::ratio("restart ratio appliance / by hand", &by_app.up, &by_hand.up);
    let ratio_after_exit = Row::ratio(
        "restart ratio after the exit, appliance / by hand",
        &by_app.up_after_exit,
        &by_hand.up_after_exit,
    );
    Ok(vec![
        Row::ms(
            "kill -9 -> appliance logs \"daemon failed; restarting\"",
            by_app.logged,
        ),
        Row::ms(
            "kill -9 -> old vswitchd has exited (pidfd), appliance",
            by_app.exited,
        ),
        Row::ms(
            "old vswitchd exited -> appliance logs it",
            by_app.logged_after_exit,
        ),
        Row::ms(
            "kill -9 -> new vswitchd answers `version`, appliance",
            by_app.up,
        ),
        Row::ms(
            "kill -9 -> old vswitchd has exited (pidfd), by hand",
            by_hand.exited,
        ),
        Row::ms(
            "kill -9 -> respawned vswitchd answers `version`, by hand",
            by_hand.up,
        ),
        ratio,
        Row::ms(
            "old vswitchd exited -> new one answers, appliance",
            by_app.up_after_exit,
        ),
        Row::ms(
            "old vswitchd exited -> new one answers, by hand",
            by_hand.up_after_exit,
        ),
        ratio_after_exit,
        Row::mib("supervisor VmRSS, idle (both daemons up, 6 s)", idle_rss),
        Row::mib(
            &format!("supervisor VmRSS after {} restarts, 100 ports", b.runs),
            rss_after,
        ),
        Row::mib("supervisor VmHWM (peak RSS) over the whole run", hwm),
    ])
}

/// One batched ovs-vsctl: a netdev bridge with 100 internal ports; it returns once vswitchd has
/// applied it.
fn add_ports(inst: &Instance) -> Result<()> {
    let mut cmd = Command::new("ovs-vsctl");
    cmd.arg(format!("--db=unix:{}", inst.db_sock().display()))
        .arg("--timeout=60")
        .args([
            "add-br",
            "br0",
            "--",
            "set",
            "bridge",
            "br0",
            "datapath_type=netdev",
        ]);
    for i in 0..PORTS {
        let p = format!("p{i}");
        cmd.args(["--", "add-port", "br0", &p]);
        cmd.args(["--", "set", "interface", &p, "type=internal"]);
    }
    let out = crate::proc::run(&mut cmd, Duration::from_secs(90))?;
    ensure!(out.status.success(), "ovs-vsctl add-br/add-port: {out:?}");
    Ok(())
}

/// kill -9 of the appliance's vswitchd; the appliance notices and restarts it.
fn appliance_restart(b: &Bench, app: &Instance, k: &mut Kill) -> Result<()> {
    let old = live_pid(&app.run_dir(), VSWITCHD).context("appliance's vswitchd not running")?;
    let log = app.path("launcher.log");
    let offset = fs::metadata(&log)?.len();
    let pidfd = probe::pidfd(old)?;
    let wall = SystemTime::now();
    let t0 = Instant::now();
    signal(old, Signal::SIGKILL)?;
    let ((exited, exited_wall), up) = exit_and_return(b, &app.run_dir(), old, pidfd)?;
    let message = "daemon failed; restarting";
    let logged = wait_for(Duration::from_secs(5), || {
        probe::logged(&log, offset, message, Some(VSWITCHD))
    })
    .with_context(|| format!("no \"{message}\" line for {VSWITCHD}"))?;
    let after = |t: SystemTime, from: SystemTime| t.duration_since(from).map(ms);
    k.logged
        .push(after(logged, wall).context("log line before the kill")?);
    // Signed: under load our own pidfd wakeup can come after the appliance's log line.
    let since_exit = match logged.duration_since(exited_wall) {
        Ok(d) => ms(d),
        Err(e) => -ms(e.duration()),
    };
    k.logged_after_exit.push(since_exit);
    k.push(t0, exited, up);
    Ok(())
}

/// kill -9 of the by-hand vswitchd and a respawn by the bench the moment the old one has exited,
/// the best a person or a script can do: a respawn before that exit aborts with "already running"
/// (the dying process still holds the pidfile's lock while the kernel closes its 100 taps).
fn hand_restart(b: &Bench, inst: &mut Instance, k: &mut Kill) -> Result<()> {
    let old = live_pid(&inst.run_dir(), VSWITCHD).context("by-hand vswitchd not running")?;
    let netns = File::open(inst.netns_path()?)?;
    let mut cmd = inst.vswitchd_by_hand()?;
    let pidfd = probe::pidfd(old)?;
    // A thread of our own enters the namespace and takes nice -10 (both are per thread on Linux,
    // and the child inherits them), so the respawn is one spawn, like the appliance's.
    let (t0, exited, child) = std::thread::scope(|s| {
        s.spawn(|| -> Result<(Instant, Instant, Child)> {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            // SAFETY: setpriority takes no pointers; with who = 0 it sets this thread's nice.
            let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) };
            ensure!(rc == 0, "setpriority: {}", std::io::Error::last_os_error());
            let t0 = Instant::now();
            signal(old, Signal::SIGKILL)?;
            probe::wait_exit(&pidfd)?;
            let exited = Instant::now();
            Ok((t0, exited, cmd.spawn()?))
        })
        .join()
        .expect("respawn thread panicked")
    })?;
    inst.launchers.push(child);
    let up =
        b.rt.block_on(probe::until_new_vswitchd(&inst.run_dir(), old, &b.stop))
            .with_context(|| inst.log("respawn.log"))?;
    k.push(t0, exited, up);
    let new = live_pid(&inst.run_dir(), VSWITCHD).context("respawned vswitchd gone")?;
    let ns = fs::metadata(inst.netns_path()?)?.ino();
    let its = fs::metadata(format!("/proc/{new}/ns/net"))?.ino();
    ensure!(
        ns == its,
        "respawned vswitchd {new} is not in {}",
        inst.ns()?
    );
    inst.wait_launchers()
}

/// Waits, together, for the old vswitchd to exit and for the appliance's new one to answer.
fn exit_and_return(
    b: &Bench,
    run_dir: &Path,
    old: i32,
    pidfd: OwnedFd,
) -> Result<((Instant, SystemTime), Instant)> {
    let (exited, up) = b.rt.block_on(async {
        tokio::join!(
            probe::exited(pidfd),
            probe::until_new_vswitchd(run_dir, old, &b.stop)
        )
    });
    Ok((exited?, up?))
}
