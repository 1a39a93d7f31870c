//! Keeping the host matched: re-plan on every monitor event (drift), on every daemon restart
//! (full pass), and on SIGHUP (the config file is re-read; a file that fails validation is
//! refused and the running state kept).

use super::apply::{reconcile_once, Applied};
use super::model::Desired;
use super::session::{sleep_until, Event, Session};
use super::status::InterfaceErrors;
use super::telemetry::{PassOutcome, PassReport, TelemetryHandle};
use super::touched::Touched;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Where the desired state comes from, so SIGHUP can re-read it.
pub trait DesiredSource: Send {
    /// Reads and validates the config again; Err holds the message to log. File reads belong
    /// off the runtime thread: the watch shares it with the session.
    fn reload(&mut self) -> impl Future<Output = Result<Desired, String>> + Send;
}

/// What the watch loop needs.
pub struct WatchSettings {
    pub db_sock: PathBuf,
    /// How long a pass waits for ovs-vswitchd to apply a transaction.
    pub apply_timeout: Duration,
    /// Delay before retrying a pass that failed.
    pub retry: Duration,
    /// Where the monitor cache, transactions and passes are reported (metrics).
    pub telemetry: TelemetryHandle,
}

/// Why the next pass runs: only a pass caused by a database change repairs drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Start,
    Drift,
    Restart,
    Reload,
}

/// Hooks run after each pass that succeeded, and after a status change of the rows (a device
/// appeared or went away): internal port addresses and links.
pub trait AfterPass: Send {
    fn after_pass(
        &mut self,
        session: &Session,
        desired: &Desired,
    ) -> impl Future<Output = ()> + Send;
}

/// Runs until the process ends: waits for the daemons (`ready` > 0), then keeps the database
/// matched to `desired`.
pub async fn watch<S: DesiredSource, A: AfterPass>(
    settings: WatchSettings,
    mut desired: Desired,
    mut source: S,
    mut ready: watch::Receiver<u64>,
    mut reload: mpsc::UnboundedReceiver<()>,
    mut after: A,
) {
    if ready.wait_for(|n| *n > 0).await.is_err() {
        return;
    }
    let mut session = loop {
        match Session::open(&settings.db_sock, settings.apply_timeout).await {
            Ok(s) => break s,
            Err(e) => {
                warn!(%e, "reconcile cannot reach ovsdb-server yet");
                tokio::time::sleep(settings.retry).await;
            }
        }
    };
    session.set_telemetry(settings.telemetry.clone());
    session.set_interest(&desired);
    let telemetry = settings.telemetry.clone();
    let mut errors = InterfaceErrors::default();
    let mut conflicts = Conflicts::default();
    let mut dirty = Some(Cause::Start);
    // A failed pass is retried on a timer of its own, backing off, whether or not the database
    // changes meanwhile (an idle database sends nothing that would wake the loop).
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    loop {
        let due = retry_at.is_none_or(|at| at <= Instant::now());
        if let Some(cause) = dirty.take_if(|_| due) {
            let began = Instant::now();
            let outcome = match reconcile_once(&mut session, &desired, settings.apply_timeout).await
            {
                Ok(applied) => {
                    failures = 0;
                    retry_at = None;
                    conflicts.report(&applied.plan.conflicts);
                    report(&applied, cause);
                    after.after_pass(&session, &desired).await;
                    // Before `converged`: readiness must not say applied while an interface
                    // the pass created is known to be broken.
                    let broken = errors.report(&session.observed(), &desired.owner);
                    telemetry.interface_errors(&broken);
                    telemetry.converged(true, applied.plan.conflicts.len());
                    if applied.plan.is_empty() {
                        PassOutcome::Unchanged
                    } else {
                        PassOutcome::Applied {
                            drift: cause == Cause::Drift,
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    let delay = retry_delay(settings.retry, failures);
                    error!(%e, retry_in = ?delay, failures, "reconcile pass failed; retrying");
                    telemetry.converged(false, 0);
                    retry_at = Some(Instant::now() + delay);
                    // A retry keeps the cause: a failed repair is still a repair.
                    dirty = Some(cause);
                    PassOutcome::Failed
                }
            };
            telemetry.pass(&PassReport {
                duration: began.elapsed(),
                outcome,
            });
            let broken = errors.report(&session.observed(), &desired.owner);
            telemetry.interface_errors(&broken);
            // A change that reached the cache while this pass's own transaction was applied
            // was not planned from: usually that transaction coming back, but it may be an
            // operator's edit in the same moment, which would otherwise wait for the next one.
            if outcome != PassOutcome::Failed && session.unplanned() == Touched::Managed {
                dirty = Some(Cause::Drift);
                continue;
            }
        }
        let publish = session.publish_due();
        let retry = retry_at.filter(|_| dirty.is_some());
        let wake = tokio::select! {
            () = sleep_until(retry), if retry.is_some() => Wake::Nothing,
            () = sleep_until(publish), if publish.is_some() => {
                session.publish_now();
                Wake::Nothing
            }
            event = session.next() => match event {
                Ok(Event::Snapshot) => { info!("OVSDB snapshot (reconnected): full reconcile"); Wake::Pass(Cause::Drift) }
                Ok(Event::Update) => Wake::Pass(Cause::Drift),
                Ok(Event::Status) => Wake::Status,
                Ok(Event::Statistics) => Wake::Nothing,
                // News, not a warning: restarts and orderly stops close it, and the reconnecting client
                // warns when it cannot get it back.
                Ok(Event::Disconnected(why)) => { info!(%why, "ovsdb-server connection lost"); Wake::Nothing }
                Err(e) => {
                    error!(%e, "OVSDB monitor failed");
                    tokio::time::sleep(settings.retry).await;
                    Wake::Nothing
                }
            },
            changed = ready.changed() => {
                if changed.is_err() { return; }
                info!("daemons restarted: full reconcile");
                Wake::Pass(Cause::Restart)
            }
            Some(()) = reload.recv() => match source.reload().await {
                Ok(new) => {
                    info!("config reloaded");
                    desired = new;
                    session.set_interest(&desired);
                    // A new config is worth trying at once, whatever failed before.
                    retry_at = None;
                    Wake::Pass(Cause::Reload)
                }
                Err(e) => { error!("config reload refused, keeping the running state: {e}"); Wake::Nothing }
            },
        };
        match wake {
            // A pending failed pass keeps its cause unless something newer explains the change.
            Wake::Pass(cause) => {
                dirty = Some(match dirty {
                    Some(Cause::Drift) => Cause::Drift,
                    _ => cause,
                })
            }
            // A device appeared, went away or changed state: nothing to plan, but an internal
            // port that now exists gets its addresses, and the error report follows.
            Wake::Status if dirty.is_none() => {
                after.after_pass(&session, &desired).await;
                let broken = errors.report(&session.observed(), &desired.owner);
                telemetry.interface_errors(&broken);
            }
            Wake::Status | Wake::Nothing => {}
        }
    }
}

/// What woke the loop.
enum Wake {
    Pass(Cause),
    Status,
    Nothing,
}

/// How long to wait before retrying after `failures` failed passes in a row: `base`, doubling,
/// at most 30 s.
fn retry_delay(base: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings)
        .min(Duration::from_secs(30))
}

/// Conflicts are logged when they appear and when they clear, not at every pass: a key another
/// tool holds stays a conflict through every pass its updates cause.
#[derive(Default)]
struct Conflicts {
    seen: std::collections::BTreeSet<String>,
}

impl Conflicts {
    fn report(&mut self, now: &[String]) {
        let now: std::collections::BTreeSet<String> = now.iter().cloned().collect();
        for conflict in now.difference(&self.seen) {
            warn!("{conflict}");
        }
        for conflict in self.seen.difference(&now) {
            info!(was = %conflict, "conflict resolved");
        }
        self.seen = now;
    }
}

fn report(applied: &Applied, cause: Cause) {
    if applied.plan.is_empty() {
        return;
    }
    let changes: Vec<String> = applied
        .plan
        .changes
        .iter()
        .map(ToString::to_string)
        .collect();
    let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as u64);
    if matches!(cause, Cause::Start | Cause::Reload) {
        info!(changes = ?changes, committed_ms = ms(applied.committed), applied_ms = ms(applied.applied), "config applied");
    } else {
        warn!(changes = ?changes, applied_ms = ms(applied.applied), "drift repaired");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_pass_is_retried_backing_off_to_30_seconds() {
        let s = Duration::from_secs;
        let delays: Vec<Duration> = (1..=8).map(|n| retry_delay(s(1), n)).collect();
        assert_eq!(delays, [s(1), s(2), s(4), s(8), s(16), s(30), s(30), s(30)]);
        assert_eq!(retry_delay(s(1), u32::MAX), s(30));
    }
}
