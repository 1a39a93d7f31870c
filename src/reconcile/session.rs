//! A reconcile session: one reconnecting OVSDB connection with a monitor on the tables the
//! appliance manages, feeding a local cache. Plans read the cache, never the server.

use super::model::{Observed, BRIDGE_COLUMNS, INTERFACE_COLUMNS, PORT_COLUMNS};
use super::Error;
use crate::ovsdb::{
    Cache, MonitorEvent, MonitorRequest, MonitorRequests, OpResult, Operation, ReconnectOptions,
    ReconnectingClient,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub const DB: &str = "Open_vSwitch";

/// What the monitor said last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A full snapshot: first connect or after ovsdb-server restarted.
    Snapshot,
    /// Rows changed.
    Update,
    /// The connection dropped; a snapshot follows when it is back.
    Disconnected(String),
}

pub struct Session {
    client: ReconnectingClient,
    events: mpsc::UnboundedReceiver<MonitorEvent>,
    cache: Cache,
}

fn with(extra: &[&str], base: &[&str]) -> MonitorRequest {
    let mut cols: Vec<&str> = base.to_vec();
    cols.extend_from_slice(extra);
    MonitorRequest::columns(&cols)
}

/// Managed columns plus what status needs (ofport, error, link_state) and the references.
fn requests() -> MonitorRequests {
    let mut reqs = MonitorRequests::new();
    reqs.insert(
        "Open_vSwitch".into(),
        MonitorRequest::columns(&["bridges", "next_cfg", "cur_cfg", "other_config"]),
    );
    reqs.insert(
        "Bridge".into(),
        with(&["ports", "controller"], BRIDGE_COLUMNS),
    );
    reqs.insert("Port".into(), with(&["interfaces"], PORT_COLUMNS));
    reqs.insert(
        "Interface".into(),
        with(
            &["ofport", "error", "link_state", "admin_state"],
            INTERFACE_COLUMNS,
        ),
    );
    reqs.insert("Controller".into(), MonitorRequest::columns(&["target"]));
    reqs
}

impl Session {
    /// Connects (waiting up to `timeout` for ovsdb-server) and loads the first snapshot.
    pub async fn open(db_sock: &Path, timeout: Duration) -> Result<Session, Error> {
        let opts = ReconnectOptions {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            call_timeout: Some(timeout),
            probe_interval: Some(Duration::from_secs(5)),
        };
        let client = ReconnectingClient::new(db_sock, opts);
        let schema = tokio::time::timeout(timeout, async {
            client.client().await.get_schema(DB).await
        })
        .await
        .map_err(|_| {
            Error::Connect(format!(
                "{} did not answer within {timeout:?}",
                db_sock.display()
            ))
        })?
        .map_err(Error::Ovsdb)?;
        let reqs = requests();
        let cache = Cache::new(Arc::new(schema), &reqs);
        let events = client.monitor(DB, reqs);
        let mut session = Session {
            client,
            events,
            cache,
        };
        loop {
            match tokio::time::timeout(timeout, session.next()).await {
                Ok(Ok(Event::Snapshot)) => return Ok(session),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(Error::Connect("no monitor snapshot".into())),
            }
        }
    }

    /// The next monitor event, applied to the cache.
    pub async fn next(&mut self) -> Result<Event, Error> {
        let event = self.events.recv().await.ok_or(Error::MonitorEnded)?;
        if !self.cache.apply_event(&event).map_err(Error::Ovsdb)? {
            if let MonitorEvent::Failed(why) = event {
                return Err(Error::Monitor(why));
            }
        }
        Ok(match event {
            MonitorEvent::Snapshot(_) => Event::Snapshot,
            MonitorEvent::Update(_) => Event::Update,
            MonitorEvent::Disconnected(why) => Event::Disconnected(why),
            MonitorEvent::Failed(why) => return Err(Error::Monitor(why)),
        })
    }

    /// Applies every event already queued, without waiting.
    pub fn drain(&mut self) -> Result<(), Error> {
        while let Ok(event) = self.events.try_recv() {
            self.cache.apply_event(&event).map_err(Error::Ovsdb)?;
        }
        Ok(())
    }

    pub fn observed(&self) -> Observed {
        Observed::from_cache(&self.cache)
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub async fn transact(&self, ops: &[Operation]) -> Result<Vec<OpResult>, Error> {
        self.client.transact(DB, ops).await.map_err(Error::Ovsdb)
    }

    /// `cur_cfg` of the Open_vSwitch row, as last seen.
    pub fn cur_cfg(&self) -> i64 {
        self.cache
            .table("Open_vSwitch")
            .next()
            .and_then(|(_, r)| r.get("cur_cfg").and_then(|d| d.as_i64()))
            .unwrap_or(0)
    }

    /// Waits until ovs-vswitchd reports `cur_cfg >= next_cfg` (it applied the change).
    pub async fn wait_applied(&mut self, next_cfg: i64, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.cur_cfg() < next_cfg {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(result) => {
                    result?;
                }
                Err(_) => {
                    return Err(Error::NotApplied {
                        next_cfg,
                        cur_cfg: self.cur_cfg(),
                        timeout,
                    })
                }
            }
        }
        Ok(())
    }
}
