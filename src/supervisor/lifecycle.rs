//! The supervision loop: start in order, watch (exits and health checks), restart with backoff
//! inside a budget, and the orderly stop.

use super::backoff::{self, Budget, Jitter};
use super::daemon::{self, Daemon};
use super::exit::ExitStatus;
use super::flows::Flows;
use super::reaper::Reaper;
use super::state::{self, StateTx};
use super::{health, init, stale, Error, Settings, Shutdown};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// A daemon we started and have not yet seen end.
struct Running {
    pid: u32,
    exit: oneshot::Receiver<ExitStatus>,
    exited: Option<ExitStatus>,
    failed_checks: u32,
    /// Tells a busy daemon from a hung one across checks.
    busy: health::Busy,
}

impl Running {
    /// Waits for the end; resolves at once if it was already seen.
    async fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        // The reaper never drops a sender of a live child; a closed channel would mean the child
        // cannot be waited for, so it is reported as gone.
        let status = (&mut self.exit).await.unwrap_or(ExitStatus::Signal(9));
        self.exited = Some(status);
        status
    }

    fn signal(&self, signal: Signal) {
        if self.exited.is_none() {
            let _ = kill(Pid::from_raw(self.pid as i32), signal);
        }
    }
}

/// Why a daemon has to be restarted.
struct Failure {
    daemon: Daemon,
    why: String,
}

/// What interrupted a phase.
enum Stop {
    /// A shutdown was asked for.
    Shutdown,
    Failed(Failure),
}

pub(super) struct Supervisor {
    reaper: &'static Reaper,
    settings: Settings,
    stamp: init::Stamp,
    ready: super::Ready,
    state: StateTx,
    db: Option<Running>,
    vswitchd: Option<Running>,
    /// This appliance's claim on run_dir, where each daemon it starts is recorded.
    claim: super::claim::Claim,
    /// Flow snapshots, restored into every new ovs-vswitchd.
    flows: std::sync::Arc<Flows>,
}

impl Supervisor {
    pub fn new(
        reaper: &'static Reaper,
        settings: Settings,
        stamp: init::Stamp,
        ready: super::Ready,
        state: StateTx,
        claim: super::claim::Claim,
        flows: std::sync::Arc<Flows>,
    ) -> Self {
        Self {
            flows,
            reaper,
            settings,
            stamp,
            ready,
            state,
            db: None,
            vswitchd: None,
            claim,
        }
    }

    pub async fn run(mut self, shutdown: &mut Shutdown) -> Result<(), Error> {
        let timing = self.settings.timing.clone();
        let mut budget = Budget::new(timing.restart_limit, timing.restart_window.0);
        let mut jitter = Jitter::from_clock();
        loop {
            let stop = match self.bring_up(shutdown).await {
                Ok(()) => {
                    self.ready.send_modify(|n| *n += 1);
                    self.watch(shutdown).await
                }
                Err(stop) => stop,
            };
            let failure = match stop {
                Stop::Shutdown => return self.drain(shutdown).await,
                Stop::Failed(failure) => failure,
            };
            warn!(daemon = failure.daemon.name(), why = %failure.why, "daemon failed; restarting");
            self.take_down(failure.daemon).await;
            let now = Instant::now();
            let recent = budget.recent(now);
            if !budget.try_spend(now) {
                error!(daemon = failure.daemon.name(), "restart budget exhausted");
                let _ = self.drain(shutdown).await;
                return Err(Error::RestartLoop {
                    daemon: failure.daemon.name(),
                    restarts: recent,
                    window: timing.restart_window.0,
                    why: failure.why,
                });
            }
            let delay = backoff::delay(
                recent,
                timing.backoff_initial.0,
                timing.backoff_max.0,
                jitter.next(),
            );
            if !delay.is_zero() {
                info!(
                    delay_ms = delay.as_millis() as u64,
                    "waiting before the restart"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = recv(shutdown) => return self.drain(shutdown).await,
                }
            }
        }
    }

    /// Starts whatever is not running: ovsdb-server (then its Open_vSwitch row), then vswitchd.
    async fn bring_up(&mut self, shutdown: &mut Shutdown) -> Result<(), Stop> {
        if self.db.is_none() {
            self.start(Daemon::OvsdbServer, shutdown).await?;
            self.init_row().await?;
        }
        if self.vswitchd.is_none() {
            // flow-restore-wait before the spawn (it is read only at start), the restore once
            // it answers, then the flag cleared.
            let pending = self.flows.before_vswitchd().await;
            self.start(Daemon::Vswitchd, shutdown).await?;
            self.flows.after_vswitchd(pending).await;
        }
        Ok(())
    }

    fn slot(&mut self, daemon: Daemon) -> &mut Option<Running> {
        match daemon {
            Daemon::OvsdbServer => &mut self.db,
            Daemon::Vswitchd => &mut self.vswitchd,
        }
    }

    async fn start(&mut self, daemon: Daemon, shutdown: &mut Shutdown) -> Result<(), Stop> {
        let began = Instant::now();
        let spawned = daemon::spawn(
            self.reaper,
            daemon,
            &self.settings.layout,
            self.settings.nice,
        )
        .map_err(|e| {
            Stop::Failed(Failure {
                daemon,
                why: format!("spawn failed: {e}"),
            })
        })?;
        let pid = spawned.child.id();
        info!(daemon = daemon.name(), pid, "started");
        self.state.send_modify(|s| state::spawned(s, daemon, pid));
        self.claim.started(daemon, pid);
        *self.slot(daemon) = Some(Running {
            pid,
            exit: spawned.exit,
            exited: None,
            failed_checks: 0,
            busy: health::Busy::default(),
        });
        let timing = self.settings.timing.clone();
        let deadline = began + timing.start_timeout.0;
        let layout = self.settings.layout.clone();
        loop {
            let check = health::check(daemon, pid, &layout, timing.health_timeout.0);
            let running = self.slot(daemon).as_mut().expect("just started");
            tokio::select! {
                result = check => if result.is_ok() { break },
                status = running.wait() => return Err(Stop::Failed(Failure {
                    daemon, why: format!("{status} while starting"),
                })),
                _ = recv(shutdown) => return Err(Stop::Shutdown),
            }
            if Instant::now() >= deadline {
                return Err(Stop::Failed(Failure {
                    daemon,
                    why: format!("did not answer within {}", timing.start_timeout),
                }));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        info!(
            daemon = daemon.name(),
            pid,
            ready_ms = began.elapsed().as_millis() as u64,
            "answering"
        );
        self.set_up(daemon, true);
        Ok(())
    }

    async fn init_row(&mut self) -> Result<(), Stop> {
        let failed = |why: String| {
            Stop::Failed(Failure {
                daemon: Daemon::OvsdbServer,
                why,
            })
        };
        let layout = &self.settings.layout;
        let client = crate::ovsdb::Client::connect_unix(&layout.db_sock())
            .await
            .map_err(|e| failed(e.to_string()))?
            .with_timeout(self.settings.timing.start_timeout.0);
        let system_id = init::open_vswitch_row(&client, &layout.db_dir, &self.stamp)
            .await
            .map_err(|e| failed(e.to_string()))?;
        info!(%system_id, ovs_version = %self.stamp.ovs_version, "Open_vSwitch row initialised");
        Ok(())
    }

    /// Waits for a daemon to end or stop answering, or for a shutdown.
    async fn watch(&mut self, shutdown: &mut Shutdown) -> Stop {
        let timing = self.settings.timing.clone();
        let layout = self.settings.layout.clone();
        let period = timing.health_interval.0;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (Some(db), Some(vs)) = (self.db.as_mut(), self.vswitchd.as_mut()) else {
                unreachable!("watch runs with both daemons up");
            };
            tokio::select! {
                _ = recv(shutdown) => return Stop::Shutdown,
                status = db.wait() => return failed(Daemon::OvsdbServer, status.to_string()),
                status = vs.wait() => return failed(Daemon::Vswitchd, status.to_string()),
                _ = tick.tick() => {
                    let (db_ok, vs_ok) = tokio::join!(
                        health::check(Daemon::OvsdbServer, db.pid, &layout, timing.health_timeout.0),
                        health::check(Daemon::Vswitchd, vs.pid, &layout, timing.health_timeout.0),
                    );
                    // Either daemon can be busy rather than hung: vswitchd adding or deleting
                    // hundreds of ports, ovsdb-server sending those rows to every monitor.
                    let proc_root = &self.settings.proc_root;
                    let db_ok = db.busy.judge(Daemon::OvsdbServer, db.pid, proc_root, &timing.busy_timeout, db_ok);
                    let vs_ok = vs.busy.judge(Daemon::Vswitchd, vs.pid, proc_root, &timing.busy_timeout, vs_ok);
                    // What /healthz, /readyz and ovs_up report is the supervisor's judgment: a
                    // daemon that is busy, not hung, is up (and is not restarted).
                    self.state.send_if_modified(|s| {
                        let before = (s.ovsdb_server.up, s.vswitchd.up);
                        s.ovsdb_server.up = db_ok.is_ok();
                        s.vswitchd.up = vs_ok.is_ok();
                        before != (s.ovsdb_server.up, s.vswitchd.up)
                    });
                    for (daemon, running, result) in [(Daemon::OvsdbServer, db, db_ok), (Daemon::Vswitchd, vs, vs_ok)] {
                        match result {
                            Ok(()) => {
                                running.failed_checks = 0;
                            }
                            Err(why) => {
                                running.failed_checks += 1;
                                warn!(daemon = daemon.name(), pid = running.pid, failed = running.failed_checks, %why, "health check failed");
                                if running.failed_checks >= timing.health_failures {
                                    return failed(daemon, format!("stopped answering: {why}"));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Ends a failed daemon, and vswitchd with ovsdb-server since it depends on it.
    async fn take_down(&mut self, daemon: Daemon) {
        if daemon == Daemon::OvsdbServer {
            // ovs-vswitchd still has its flows: keep them for the one that follows.
            self.flows.final_snapshot().await;
            if let Some(vs) = self.vswitchd.as_mut() {
                vs.signal(Signal::SIGTERM);
                if tokio::time::timeout(Duration::from_secs(5), vs.wait())
                    .await
                    .is_err()
                {
                    vs.signal(Signal::SIGKILL);
                }
            }
            self.end(Daemon::Vswitchd).await;
        }
        if let Some(running) = self.slot(daemon).as_mut() {
            running.signal(Signal::SIGKILL);
        }
        self.end(daemon).await;
    }

    fn set_up(&self, daemon: Daemon, up: bool) {
        self.state.send_if_modified(|s| {
            let d = s.daemon_mut(daemon);
            std::mem::replace(&mut d.up, up) != up
        });
    }

    /// Waits for the daemon in `daemon`'s slot to end, removes what it left, and empties the slot.
    async fn end(&mut self, daemon: Daemon) {
        let Some(mut running) = self.slot(daemon).take() else {
            return;
        };
        self.set_up(daemon, false);
        match tokio::time::timeout(Duration::from_secs(10), running.wait()).await {
            Ok(status) => info!(daemon = daemon.name(), pid = running.pid, %status, "ended"),
            Err(_) => error!(
                daemon = daemon.name(),
                pid = running.pid,
                "did not end after SIGKILL"
            ),
        }
        stale::remove_ctl(&self.settings.layout, daemon, running.pid);
        self.state.send_modify(|s| state::ended(s, daemon));
    }

    /// The orderly stop: vswitchd first (control-socket `exit`), then ovsdb-server, within the
    /// drain timeout; a second shutdown request or the timeout kills what is left.
    async fn drain(&mut self, shutdown: &mut Shutdown) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + self.settings.timing.drain_timeout.0;
        // Before ovs-vswitchd is told to exit: what a new container on this db_dir restores.
        let _ = tokio::time::timeout_at(deadline, self.flows.final_snapshot()).await;
        let mut escalated = false;
        for daemon in [Daemon::Vswitchd, Daemon::OvsdbServer] {
            let layout = self.settings.layout.clone();
            let Some(running) = self.slot(daemon).as_mut() else {
                continue;
            };
            if running.exited.is_none() && !escalated {
                let ctl = layout.ctl_socket(daemon, running.pid);
                let asked = tokio::time::timeout(
                    Duration::from_secs(1),
                    crate::unixctl::call(&ctl, "exit", &[]),
                )
                .await;
                if !matches!(asked, Ok(Ok(_))) {
                    running.signal(Signal::SIGTERM);
                }
                tokio::select! {
                    _ = running.wait() => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        warn!(daemon = daemon.name(), "did not stop within the drain timeout; killing");
                        escalated = true;
                    }
                    _ = recv(shutdown) => {
                        warn!(daemon = daemon.name(), "second stop request; killing");
                        escalated = true;
                    }
                }
            }
            running.signal(Signal::SIGKILL);
            self.end(daemon).await;
        }
        info!("stopped");
        Ok(())
    }
}

fn failed(daemon: Daemon, why: String) -> Stop {
    Stop::Failed(Failure { daemon, why })
}

/// A shutdown request; never resolves once the sender is gone.
async fn recv(shutdown: &mut Shutdown) {
    if shutdown.recv().await.is_none() {
        std::future::pending::<()>().await;
    }
}
