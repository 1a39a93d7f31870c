//! A reconcile session: two reconnecting OVSDB connections, one with a monitor on the tables the
//! appliance manages, feeding a local cache, one for transactions and `cur_cfg`. Plans read the
//! cache, never the server.

use super::model::Desired;
use super::model::{Observed, BRIDGE_COLUMNS, INTERFACE_COLUMNS, PORT_COLUMNS};
use super::telemetry::{self, TelemetryHandle};
use super::touched::{touched, Interest, Touched, INTERFACE_METRICS_COLUMNS};
use super::Error;
use crate::ovsdb::{
    Cache, MonitorEvent, MonitorRequest, MonitorRequests, OpResult, Operation, ReconnectOptions,
    ReconnectingClient, RowUpdate,
};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const DB: &str = "Open_vSwitch";

/// What the monitor said last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A full snapshot: first connect or after ovsdb-server restarted.
    Snapshot,
    /// Rows changed in columns reconcile plans from.
    Update,
    /// Only status columns changed (an interface's ofport, error, link or admin state;
    /// `cur_cfg`): no re-plan, but hooks that follow the devices and the error report run again.
    Status,
    /// Only columns kept for metrics changed (statistics, every 5 s): nothing to do.
    Statistics,
    /// The connection dropped; a snapshot follows when it is back.
    Disconnected(String),
}

pub struct Session {
    /// Transactions go here.
    client: ReconnectingClient,
    /// The monitor has a connection of its own: ovsdb-server sends a connection's monitor
    /// updates before the reply to its own transaction, so on one connection every commit of a
    /// thousand rows waited for those rows to be sent back and decoded first. Updates still
    /// arrive in commit order here, so once `cur_cfg` reaches a change's `next_cfg` the cache
    /// holds the change; a plan from a cache that is behind fails its guards and is re-planned.
    _monitor: ReconnectingClient,
    events: mpsc::UnboundedReceiver<MonitorEvent>,
    cache: Cache,
    /// ovs-vswitchd's `cur_cfg`, from a monitor of that column alone on the transaction
    /// connection: it arrives as soon as ovs-vswitchd writes it, where on the row monitor it
    /// queues behind the status of every interface just created (50-180 ms at 1000 ports).
    progress: mpsc::UnboundedReceiver<MonitorEvent>,
    applied_cfg: i64,
    /// The most a row update applied since the last `drain` changed: a plan drains first, so
    /// this is what arrived after it (while its transaction was sent and applied).
    unplanned: Touched,
    /// The rows plans read; updates of others start no pass. None: every row counts.
    interest: Option<Interest>,
    telemetry: TelemetryHandle,
    /// When the cache was last copied to telemetry, and whether it changed since.
    published: Option<Instant>,
    unpublished: bool,
}

/// Metrics read a copy of the cache, and copying it walks every row: under a burst of updates
/// (another tool churning its ports, a thousand interfaces' statistics) it is copied at most
/// this often; the last change of a burst is copied when `publish_due` comes.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

fn with(extra: &[&str], base: &[&str]) -> MonitorRequest {
    let mut cols: Vec<&str> = base.to_vec();
    cols.extend_from_slice(extra);
    MonitorRequest::columns(&cols)
}

/// Managed columns plus what status needs (ofport, error, link_state), the references, and the
/// interface columns metrics read.
fn requests() -> MonitorRequests {
    let mut reqs = MonitorRequests::new();
    reqs.insert(
        "Open_vSwitch".into(),
        MonitorRequest::columns(&[
            "bridges",
            "next_cfg",
            "cur_cfg",
            "other_config",
            "external_ids",
        ]),
    );
    reqs.insert(
        "Bridge".into(),
        with(&["ports", "controller"], BRIDGE_COLUMNS),
    );
    reqs.insert("Port".into(), with(&["interfaces"], PORT_COLUMNS));
    reqs.insert(
        "Interface".into(),
        with(
            &[
                &["ofport", "error", "link_state", "admin_state"][..],
                INTERFACE_METRICS_COLUMNS,
            ]
            .concat(),
            INTERFACE_COLUMNS,
        ),
    );
    reqs.insert(
        "Controller".into(),
        MonitorRequest::columns(&["target", "external_ids"]),
    );
    reqs
}

impl Session {
    /// Connects and loads the first snapshot, within `timeout` in all: one deadline, not one per
    /// event, or a server that drops every connection keeps it waiting for ever (issue 14).
    pub async fn open(db_sock: &Path, timeout: Duration) -> Result<Session, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let opts = ReconnectOptions {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            call_timeout: Some(timeout),
            probe_interval: Some(Duration::from_secs(5)),
            stable_after: Duration::from_secs(5),
        };
        let client = ReconnectingClient::new(db_sock, opts.clone());
        let monitor = ReconnectingClient::new(db_sock, opts);
        // The debug events here and in `reconcile_once` time `apply`'s phases from its JSON log
        // (benches/apply_cold.rs reads them).
        let schema = tokio::time::timeout_at(deadline, async {
            let c = client.client().await;
            tracing::debug!("phase: connected");
            c.get_schema(DB).await
        })
        .await
        .map_err(|_| {
            Error::Connect(format!(
                "{} did not answer within {timeout:?}",
                db_sock.display()
            ))
        })?
        .map_err(Error::Ovsdb)?;
        tracing::debug!("phase: schema read");
        let reqs = requests();
        let cache = Cache::new(Arc::new(schema), &reqs);
        let events = monitor.monitor(DB, reqs);
        let mut cfg = MonitorRequests::new();
        cfg.insert("Open_vSwitch".into(), MonitorRequest::columns(&["cur_cfg"]));
        let progress = client.monitor(DB, cfg);
        let mut session = Session {
            client,
            _monitor: monitor,
            events,
            cache,
            progress,
            applied_cfg: 0,
            unplanned: Touched::Nothing,
            interest: None,
            published: None,
            unpublished: false,
            telemetry: telemetry::none(),
        };
        let mut dropped = 0u32;
        loop {
            match tokio::time::timeout_at(deadline, session.next()).await {
                Ok(Ok(Event::Snapshot)) => {
                    tracing::debug!("phase: snapshot loaded");
                    return Ok(session);
                }
                Ok(Ok(Event::Disconnected(_))) => dropped += 1,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(Error::Connect(format!(
                        "{} sent no monitor snapshot within {timeout:?} (the connection dropped {dropped} time(s) meanwhile)",
                        db_sock.display()
                    )))
                }
            }
        }
    }

    /// Where the cache, transactions and passes are reported from now on; the current cache is
    /// reported at once.
    pub fn set_telemetry(&mut self, telemetry: TelemetryHandle) {
        self.telemetry = telemetry;
        self.publish_now();
    }

    /// Copies the cache to telemetry, unless it was copied less than `PUBLISH_EVERY` ago.
    fn publish(&mut self) {
        match self.published {
            Some(at) if at.elapsed() < PUBLISH_EVERY => self.unpublished = true,
            _ => self.publish_now(),
        }
    }

    /// Copies the cache to telemetry now.
    pub fn publish_now(&mut self) {
        self.telemetry.observed(&self.cache);
        self.published = Some(Instant::now());
        self.unpublished = false;
    }

    /// When a change not yet copied to telemetry is due to be (`publish_now`), if there is one.
    pub fn publish_due(&self) -> Option<Instant> {
        self.unpublished.then(|| {
            self.published
                .map_or_else(Instant::now, |at| at + PUBLISH_EVERY)
        })
    }

    pub fn telemetry(&self) -> &TelemetryHandle {
        &self.telemetry
    }

    /// From now on, an update of a row that plans for `desired` do not read (neither owned nor
    /// named by the config) is `Event::Statistics`: nothing to do.
    pub fn set_interest(&mut self, desired: &Desired) {
        self.interest = Some(Interest::of(desired));
    }

    /// The next monitor event, applied to the cache.
    pub async fn next(&mut self) -> Result<Event, Error> {
        let event = self.events.recv().await.ok_or(Error::MonitorEnded)?;
        self.apply(event)
    }

    fn apply(&mut self, event: MonitorEvent) -> Result<Event, Error> {
        let touched = match &event {
            MonitorEvent::Update(u) => touched(&self.cache, u, self.interest.as_ref()),
            _ => Touched::Managed,
        };
        self.unplanned = self.unplanned.max(touched);
        if !self.cache.apply_event(&event).map_err(Error::Ovsdb)? {
            if let MonitorEvent::Failed(why) = event {
                return Err(Error::Monitor(why));
            }
        }
        if !matches!(event, MonitorEvent::Disconnected(_)) {
            self.publish();
        }
        Ok(match event {
            MonitorEvent::Snapshot(_) => Event::Snapshot,
            MonitorEvent::Update(_) => match touched {
                Touched::Managed => Event::Update,
                Touched::Status => Event::Status,
                Touched::Nothing | Touched::Statistics => Event::Statistics,
            },
            MonitorEvent::Disconnected(why) => Event::Disconnected(why),
            MonitorEvent::Failed(why) => return Err(Error::Monitor(why)),
        })
    }

    /// Applies every event already queued, without waiting; a plan made now sees all of them,
    /// and [`Session::unplanned`] starts again from nothing.
    pub fn drain(&mut self) -> Result<(), Error> {
        let mut applied = false;
        while let Ok(event) = self.events.try_recv() {
            self.cache.apply_event(&event).map_err(Error::Ovsdb)?;
            applied = true;
        }
        if applied {
            self.publish();
        }
        self.unplanned = Touched::Nothing;
        Ok(())
    }

    /// The most the row updates applied since the last [`Session::drain`] changed. After a
    /// pass, `Managed` means a change arrived that its plan did not see: ours, or someone
    /// else's made while ovs-vswitchd applied ours, which only a new plan can tell apart.
    pub fn unplanned(&self) -> Touched {
        self.unplanned
    }

    pub fn observed(&self) -> Observed {
        Observed::from_cache(&self.cache)
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub async fn transact(&self, ops: &[Operation]) -> Result<Vec<OpResult>, Error> {
        let began = Instant::now();
        let result = self.client.transact(DB, ops).await.map_err(Error::Ovsdb);
        self.telemetry.transaction(began.elapsed(), result.is_ok());
        result
    }

    /// A column of the Open_vSwitch row, as the cache last saw it.
    fn root_column(&self, column: &str) -> i64 {
        self.cache
            .table("Open_vSwitch")
            .next()
            .and_then(|(_, r)| r.get(column).and_then(|d| d.as_i64()))
            .unwrap_or(0)
    }

    /// ovs-vswitchd's `cur_cfg`, as last seen on either monitor.
    pub fn cur_cfg(&self) -> i64 {
        self.applied_cfg.max(self.root_column("cur_cfg"))
    }

    /// Waits until ovs-vswitchd reports `cur_cfg >= next_cfg` (it applied the change), and the
    /// cache holds the change (`next_cfg` of the cached row reached it), so the next plan reads it.
    pub async fn wait_applied(&mut self, next_cfg: i64, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let not_applied = |s: &Session| Error::NotApplied {
            next_cfg,
            cur_cfg: s.cur_cfg(),
            timeout,
        };
        // The row updates are applied while ovs-vswitchd works, not after: at 1000 ports the
        // change itself is 2000 rows for the cache.
        while self.cur_cfg() < next_cfg {
            let publish = self.publish_due();
            tokio::select! {
                biased;
                event = self.progress.recv() => {
                    let event = event.ok_or(Error::MonitorEnded)?;
                    if let Some(cur) = cur_cfg_in(&event) {
                        self.applied_cfg = cur;
                    }
                }
                event = self.events.recv() => {
                    self.apply(event.ok_or(Error::MonitorEnded)?)?;
                }
                () = tokio::time::sleep_until(deadline) => return Err(not_applied(self)),
                // A long wait (ovs-vswitchd busy or stopped) must not leave metrics behind.
                () = sleep_until(publish), if publish.is_some() => self.publish_now(),
            }
        }
        // Usually already queued: ovsdb-server sent the change itself right after the commit.
        while self.root_column("next_cfg") < next_cfg {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(result) => {
                    result?;
                }
                Err(_) => return Err(not_applied(self)),
            }
        }
        Ok(())
    }
}

/// Sleeps until `at` (never, for None).
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The `cur_cfg` an event of the progress monitor carries, if any.
fn cur_cfg_in(event: &MonitorEvent) -> Option<i64> {
    let (MonitorEvent::Snapshot(u) | MonitorEvent::Update(u)) = event else {
        return None;
    };
    u.get("Open_vSwitch")?
        .values()
        .find_map(|update| match update {
            RowUpdate::Initial(r)
            | RowUpdate::Insert(r)
            | RowUpdate::Modify(r)
            | RowUpdate::Replace(r) => r.get("cur_cfg")?.as_i64(),
            RowUpdate::Delete => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::parse_updates2;
    use serde_json::json;

    const I: &str = "00000000-0000-0000-0000-0000000000c1";

    #[test]
    fn progress_reads_cur_cfg_from_any_kind_of_row_update() {
        let updates = |v: serde_json::Value| parse_updates2(&v).unwrap();
        let root = "00000000-0000-0000-0000-0000000000a1";
        let initial = updates(json!({"Open_vSwitch": {root: {"initial": {"cur_cfg": 3}}}}));
        assert_eq!(cur_cfg_in(&MonitorEvent::Snapshot(initial)), Some(3));
        let modify = updates(json!({"Open_vSwitch": {root: {"modify": {"cur_cfg": 4}}}}));
        assert_eq!(cur_cfg_in(&MonitorEvent::Update(modify)), Some(4));
        let other = updates(json!({"Interface": {I: {"modify": {"mtu": 1400}}}}));
        assert_eq!(cur_cfg_in(&MonitorEvent::Update(other)), None);
        let gone = MonitorEvent::Disconnected("eof".into());
        assert_eq!(cur_cfg_in(&gone), None);
    }
}
