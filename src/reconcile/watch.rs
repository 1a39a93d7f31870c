//! Keeping the host matched: re-plan on every monitor event (drift), on every daemon restart
//! (full pass), and on SIGHUP (the config file is re-read; a file that fails validation is
//! refused and the running state kept).

use super::apply::{reconcile_once, Applied};
use super::model::Desired;
use super::session::{Event, Session};
use super::status::InterfaceErrors;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Where the desired state comes from, so SIGHUP can re-read it.
pub trait DesiredSource: Send {
    /// Reads and validates the config again; Err holds the message to log.
    fn reload(&mut self) -> Result<Desired, String>;
}

/// What the watch loop needs.
pub struct WatchSettings {
    pub db_sock: PathBuf,
    /// How long a pass waits for ovs-vswitchd to apply a transaction.
    pub apply_timeout: Duration,
    /// Delay before retrying a pass that failed.
    pub retry: Duration,
}

/// Hooks run after each pass that changed something (internal port addresses, metrics).
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
    let mut errors = InterfaceErrors::default();
    let mut first = true;
    let mut dirty = true;
    loop {
        if dirty {
            dirty = false;
            match reconcile_once(&mut session, &desired, settings.apply_timeout).await {
                Ok(applied) => {
                    report(&applied, first);
                    first = false;
                    after.after_pass(&session, &desired).await;
                }
                Err(e) => {
                    error!(%e, "reconcile pass failed; retrying");
                    tokio::time::sleep(settings.retry).await;
                    dirty = true;
                }
            }
            errors.report(&session.observed(), &desired.owner);
        }
        tokio::select! {
            event = session.next() => match event {
                Ok(Event::Snapshot) => { info!("OVSDB snapshot (reconnected): full reconcile"); dirty = true }
                Ok(Event::Update) => dirty = true,
                Ok(Event::Disconnected(why)) => warn!(%why, "ovsdb-server connection lost"),
                Err(e) => {
                    error!(%e, "OVSDB monitor failed");
                    tokio::time::sleep(settings.retry).await;
                }
            },
            changed = ready.changed() => {
                if changed.is_err() { return; }
                info!("daemons restarted: full reconcile");
                dirty = true;
            }
            Some(()) = reload.recv() => match source.reload() {
                Ok(new) => {
                    info!("config reloaded");
                    desired = new;
                    dirty = true;
                }
                Err(e) => error!("config reload refused, keeping the running state: {e}"),
            },
        }
    }
}

fn report(applied: &Applied, first: bool) {
    for conflict in &applied.plan.conflicts {
        warn!("{conflict}");
    }
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
    if first {
        info!(changes = ?changes, committed_ms = ms(applied.committed), applied_ms = ms(applied.applied), "config applied");
    } else {
        warn!(changes = ?changes, applied_ms = ms(applied.applied), "drift repaired");
    }
}
