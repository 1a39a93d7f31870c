//! The supervision loop: start in order, watch (exits and health checks), restart with backoff
//! inside a budget, and the orderly stop.
//!
//! The loop decides; a [`Host`] acts. Everything it does to processes and files (spawn, signal,
//! health check, the main thread's CPU, the Open_vSwitch row, the ended daemon's control socket)
//! goes through that seam, so the order, the restart budget and the drain can be tested with a
//! scripted host (the tests below) as well as against real OVS (tests/supervisor*.rs).

use super::backoff::{self, Budget, Jitter};
use super::claim::Claim;
use super::daemon::Daemon;
use super::exit::ExitStatus;
use super::flows::Flows;
use super::host::Ovs;
use super::reaper::Reaper;
use super::state::{self, StateTx};
use super::{health, init, Error, Settings, Shutdown};
use nix::sys::signal::Signal;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// What the supervision loop does to the world.
pub(super) trait Host {
    /// Starts `daemon`; returns its pid and the future of its exit status.
    fn spawn(&mut self, daemon: Daemon) -> std::io::Result<(u32, oneshot::Receiver<ExitStatus>)>;
    /// Sends `signal` to a daemon not yet seen to end.
    fn signal(&self, pid: u32, signal: Signal);
    /// One health check (see [`health::check`]).
    fn check(
        &self,
        daemon: Daemon,
        pid: u32,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), String>>;
    /// The state letter and CPU ticks of the daemon's main thread (see
    /// [`health::main_thread_cpu`]).
    fn main_thread(&self, pid: u32) -> Option<(char, u64)>;
    /// Makes the Open_vSwitch row current once ovsdb-server answers; returns the system-id.
    fn init_row(&mut self, timeout: Duration) -> impl Future<Output = Result<String, String>>;
    /// Asks a daemon to exit over its control socket; false if it did not take the request.
    fn ask_exit(&self, daemon: Daemon, pid: u32) -> impl Future<Output = bool>;
    /// A daemon's end was seen: remove what it could not (its control socket after SIGKILL).
    fn ended(&mut self, daemon: Daemon, pid: u32);
    /// How long ovs-vswitchd has to be held back before it may start (see
    /// [`super::boot_clock`]); `None`: start it now.
    fn vswitchd_hold(&self) -> Option<Duration>;
    /// Before ovs-vswitchd is spawned: `flow-restore-wait` stamped when there are flows to
    /// restore (see [`super::flows`]).
    fn flows_before_vswitchd(&mut self) -> impl Future<Output = ()>;
    /// Once ovs-vswitchd answers: its flows restored, the flag cleared.
    fn flows_after_vswitchd(&mut self) -> impl Future<Output = ()>;
    /// Before ovs-vswitchd is told to exit, or stopped with ovsdb-server: one last snapshot.
    fn flows_snapshot(&mut self) -> impl Future<Output = ()>;
}

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

    fn signal(&self, host: &impl Host, signal: Signal) {
        if self.exited.is_none() {
            host.signal(self.pid, signal);
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

pub(super) struct Supervisor<H> {
    host: H,
    timing: crate::config::SupervisorConfig,
    ready: super::Ready,
    state: StateTx,
    db: Option<Running>,
    vswitchd: Option<Running>,
}

impl Supervisor<Ovs> {
    pub fn new(
        reaper: &'static Reaper,
        settings: Settings,
        stamp: init::Stamp,
        ready: super::Ready,
        state: StateTx,
        claim: Claim,
        flows: Arc<Flows>,
    ) -> Self {
        let host = Ovs {
            flows,
            pending: Vec::new(),
            reaper,
            layout: settings.layout,
            nice: settings.nice,
            proc_root: settings.proc_root,
            kernel_datapath: settings.kernel_datapath,
            stamp,
            claim,
        };
        Self::with_host(host, settings.timing, ready, state)
    }
}

impl<H: Host> Supervisor<H> {
    pub fn with_host(
        host: H,
        timing: crate::config::SupervisorConfig,
        ready: super::Ready,
        state: StateTx,
    ) -> Self {
        Self {
            host,
            timing,
            ready,
            state,
            db: None,
            vswitchd: None,
        }
    }

    pub async fn run(mut self, shutdown: &mut Shutdown) -> Result<(), Error> {
        let timing = self.timing.clone();
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
            let now = Instant::now().into_std();
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
            if let Some(hold) = self.host.vswitchd_hold() {
                warn!(
                    hold_ms = hold.as_millis() as u64,
                    "the host's monotonic clock is under 10 s: an ovs-vswitchd started now counts 0 CPU cores until it passes 10 s, and on the kernel datapath runs no upcall handler (every packet that misses its flow cache is dropped); holding it back until then"
                );
                tokio::select! {
                    _ = tokio::time::sleep(hold) => {}
                    _ = recv(shutdown) => return Err(Stop::Shutdown),
                }
            }
            // flow-restore-wait before the spawn (it is read only at start), the restore once
            // it answers, then the flag cleared.
            self.host.flows_before_vswitchd().await;
            self.start(Daemon::Vswitchd, shutdown).await?;
            self.host.flows_after_vswitchd().await;
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
        let (pid, exit) = self.host.spawn(daemon).map_err(|e| {
            Stop::Failed(Failure {
                daemon,
                why: format!("spawn failed: {e}"),
            })
        })?;
        info!(daemon = daemon.name(), pid, "started");
        self.state.send_modify(|s| state::spawned(s, daemon, pid));
        *self.slot(daemon) = Some(Running {
            pid,
            exit,
            exited: None,
            failed_checks: 0,
            busy: health::Busy::default(),
        });
        let timing = self.timing.clone();
        let deadline = began + timing.start_timeout.0;
        loop {
            let check = self.host.check(daemon, pid, timing.health_timeout.0);
            let running = match daemon {
                Daemon::OvsdbServer => self.db.as_mut(),
                Daemon::Vswitchd => self.vswitchd.as_mut(),
            }
            .expect("just started");
            // An exit already seen wins over the check: a daemon that died at once is reported
            // as such, not after more polls.
            tokio::select! {
                biased;
                status = running.wait() => return Err(Stop::Failed(Failure {
                    daemon, why: format!("{status} while starting"),
                })),
                result = check => if result.is_ok() { break },
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
        let system_id = self
            .host
            .init_row(self.timing.start_timeout.0)
            .await
            .map_err(failed)?;
        info!(%system_id, "Open_vSwitch row initialised");
        Ok(())
    }

    /// Waits for a daemon to end or stop answering, or for a shutdown.
    async fn watch(&mut self, shutdown: &mut Shutdown) -> Stop {
        let timing = self.timing.clone();
        let period = timing.health_interval.0;
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (Some(db), Some(vs)) = (self.db.as_mut(), self.vswitchd.as_mut()) else {
                unreachable!("watch runs with both daemons up");
            };
            let host = &self.host;
            tokio::select! {
                _ = recv(shutdown) => return Stop::Shutdown,
                status = db.wait() => return failed(Daemon::OvsdbServer, status.to_string()),
                status = vs.wait() => return failed(Daemon::Vswitchd, status.to_string()),
                _ = tick.tick() => {
                    let (db_ok, vs_ok) = tokio::join!(
                        host.check(Daemon::OvsdbServer, db.pid, timing.health_timeout.0),
                        host.check(Daemon::Vswitchd, vs.pid, timing.health_timeout.0),
                    );
                    // Either daemon can be busy rather than hung: vswitchd adding or deleting
                    // hundreds of ports, ovsdb-server sending those rows to every monitor.
                    let now = Instant::now().into_std();
                    let limit = &timing.busy_timeout;
                    let db_ok = db.busy.judge(Daemon::OvsdbServer, db.pid, host.main_thread(db.pid), now, limit, db_ok);
                    let vs_ok = vs.busy.judge(Daemon::Vswitchd, vs.pid, host.main_thread(vs.pid), now, limit, vs_ok);
                    // What /healthz, /readyz, ovs_up and ovs_appliance_daemon_busy report is the
                    // supervisor's judgment: a daemon that is busy, not hung, is up and busy (and
                    // is not restarted).
                    self.state.send_if_modified(|s| {
                        let before = s.clone();
                        for (d, judged) in [(&mut s.ovsdb_server, &db_ok), (&mut s.vswitchd, &vs_ok)] {
                            d.up = !matches!(judged, health::Judged::Failed(_));
                            d.busy = matches!(judged, health::Judged::Busy);
                        }
                        before != *s
                    });
                    for (daemon, running, judged) in [(Daemon::OvsdbServer, db, db_ok), (Daemon::Vswitchd, vs, vs_ok)] {
                        match judged {
                            health::Judged::Answered | health::Judged::Busy => {
                                running.failed_checks = 0;
                            }
                            health::Judged::Failed(why) => {
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
            self.host.flows_snapshot().await;
            if let Some(vs) = self.vswitchd.as_mut() {
                vs.signal(&self.host, Signal::SIGTERM);
                if tokio::time::timeout(Duration::from_secs(5), vs.wait())
                    .await
                    .is_err()
                {
                    vs.signal(&self.host, Signal::SIGKILL);
                }
            }
            self.end(Daemon::Vswitchd).await;
        }
        let host = &self.host;
        let running = match daemon {
            Daemon::OvsdbServer => self.db.as_mut(),
            Daemon::Vswitchd => self.vswitchd.as_mut(),
        };
        if let Some(running) = running {
            running.signal(host, Signal::SIGKILL);
        }
        self.end(daemon).await;
    }

    fn set_up(&self, daemon: Daemon, up: bool) {
        self.state.send_if_modified(|s| {
            let d = s.daemon_mut(daemon);
            let busy = std::mem::replace(&mut d.busy, false);
            std::mem::replace(&mut d.up, up) != up || busy
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
        self.host.ended(daemon, running.pid);
        self.state.send_modify(|s| state::ended(s, daemon));
    }

    /// The orderly stop: vswitchd first (control-socket `exit`), then ovsdb-server, within the
    /// drain timeout; a second shutdown request or the timeout kills what is left.
    async fn drain(&mut self, shutdown: &mut Shutdown) -> Result<(), Error> {
        let deadline = Instant::now() + self.timing.drain_timeout.0;
        // Before ovs-vswitchd is told to exit: what a new container on this db_dir restores.
        let _ = tokio::time::timeout_at(deadline, self.host.flows_snapshot()).await;
        let mut escalated = false;
        for daemon in [Daemon::Vswitchd, Daemon::OvsdbServer] {
            let host = &self.host;
            let running = match daemon {
                Daemon::OvsdbServer => self.db.as_mut(),
                Daemon::Vswitchd => self.vswitchd.as_mut(),
            };
            let Some(running) = running else {
                continue;
            };
            if running.exited.is_none() && !escalated {
                if !host.ask_exit(daemon, running.pid).await {
                    running.signal(host, Signal::SIGTERM);
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
            running.signal(host, Signal::SIGKILL);
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

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
