//! Monitors: `monitor_cond` (ovsdb-server(5), with "update2" notifications), falling back to RFC
//! 7047 `monitor` ("update") on servers without it. A [`Monitor`] hands out the initial contents
//! and then a stream of [`TableUpdates`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::datum::{row_from_json, short};
use super::rpc::RouteKey;
use super::{Client, Condition, Error, Notification, Row, Uuid};

/// Which kinds of change a monitor reports (RFC 7047 `<monitor-select>`); all by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorSelect {
    pub initial: bool,
    pub insert: bool,
    pub delete: bool,
    pub modify: bool,
}

impl Default for MonitorSelect {
    fn default() -> Self {
        MonitorSelect {
            initial: true,
            insert: true,
            delete: true,
            modify: true,
        }
    }
}

/// What to watch in one table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MonitorRequest {
    /// None: every column.
    pub columns: Option<Vec<String>>,
    /// Only rows matching all conditions (monitor_cond only; a plain monitor sees every row).
    pub conditions: Option<Vec<Condition>>,
    pub select: Option<MonitorSelect>,
}

/// Table name to request.
pub type MonitorRequests = BTreeMap<String, MonitorRequest>;

/// Which protocol method a monitor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorKind {
    /// `monitor_cond`, "update2" notifications with column diffs.
    Cond,
    /// RFC 7047 `monitor`, "update" notifications with old/new rows.
    Plain,
}

/// The change to one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowUpdate {
    /// Present when the monitor started: every monitored column.
    Initial(Row),
    /// Inserted since: every monitored column.
    Insert(Row),
    /// update2: the changed columns as diffs; apply with [`super::Datum::apply_diff`].
    Modify(Row),
    /// update: new values of the monitored columns; they replace the old ones.
    Replace(Row),
    Delete,
}

/// Table name to row uuid to change.
pub type TableUpdates = BTreeMap<String, BTreeMap<Uuid, RowUpdate>>;

impl MonitorRequest {
    /// Every column of every row.
    pub fn all() -> MonitorRequest {
        MonitorRequest::default()
    }

    /// Only these columns.
    pub fn columns(cols: &[&str]) -> MonitorRequest {
        MonitorRequest {
            columns: Some(cols.iter().map(|c| c.to_string()).collect()),
            ..MonitorRequest::default()
        }
    }

    pub(crate) fn to_json(&self, kind: MonitorKind) -> Value {
        let mut o = Map::new();
        if let Some(c) = &self.columns {
            o.insert("columns".into(), json!(c));
        }
        if let (MonitorKind::Cond, Some(conds)) = (kind, &self.conditions) {
            let w: Vec<Value> = conds.iter().map(Condition::to_json).collect();
            o.insert("where".into(), Value::Array(w));
        }
        if let Some(s) = &self.select {
            o.insert(
                "select".into(),
                json!({"initial": s.initial, "insert": s.insert,
                       "delete": s.delete, "modify": s.modify}),
            );
        }
        Value::Object(o)
    }
}

pub(crate) fn requests_json(reqs: &MonitorRequests, kind: MonitorKind) -> Value {
    Value::Object(
        reqs.iter()
            .map(|(t, r)| (t.clone(), r.to_json(kind)))
            .collect(),
    )
}

fn table_map<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Error> {
    v.as_object()
        .ok_or_else(|| Error::decode(what, format!("{} is not an object", short(v))))
}

/// Decodes `<table-updates2>` (the monitor_cond reply and "update2" notifications).
pub fn parse_updates2(v: &Value) -> Result<TableUpdates, Error> {
    parse_tables(v, |ru| {
        let o = table_map(ru, "row-update2")?;
        let (kind, body) = match o.iter().next() {
            Some(kv) if o.len() == 1 => kv,
            _ => return Err(Error::decode("row-update2", short(ru))),
        };
        Ok(match kind.as_str() {
            "initial" => RowUpdate::Initial(row_from_json(body)?),
            "insert" => RowUpdate::Insert(row_from_json(body)?),
            "modify" => RowUpdate::Modify(row_from_json(body)?),
            "delete" => RowUpdate::Delete,
            other => {
                return Err(Error::decode(
                    "row-update2",
                    format!("unknown kind {other:?}"),
                ))
            }
        })
    })
}

/// Decodes RFC 7047 `<table-updates>`; `initial` for the monitor reply (where a row with only
/// "new" existed before), false for "update" notifications (where it was inserted).
pub fn parse_updates(v: &Value, initial: bool) -> Result<TableUpdates, Error> {
    parse_tables(v, |ru| {
        let o = table_map(ru, "row-update")?;
        let old = o.get("old").filter(|v| !v.is_null());
        let new = o.get("new").filter(|v| !v.is_null());
        Ok(match (old, new) {
            (None, Some(n)) if initial => RowUpdate::Initial(row_from_json(n)?),
            (None, Some(n)) => RowUpdate::Insert(row_from_json(n)?),
            (Some(_), Some(n)) => RowUpdate::Replace(row_from_json(n)?),
            (Some(_), None) => RowUpdate::Delete,
            (None, None) => return Err(Error::decode("row-update", "neither old nor new")),
        })
    })
}

fn parse_tables(
    v: &Value,
    row: impl Fn(&Value) -> Result<RowUpdate, Error>,
) -> Result<TableUpdates, Error> {
    let mut out = TableUpdates::new();
    for (table, rows) in table_map(v, "table-updates")? {
        let mut t = BTreeMap::new();
        for (uuid, ru) in table_map(rows, "table-update")? {
            let u = Uuid::parse(uuid)?;
            let r =
                row(ru).map_err(|e| Error::decode("table-updates", format!("{table} {u}: {e}")))?;
            t.insert(u, r);
        }
        out.insert(table.clone(), t);
    }
    Ok(out)
}

/// Decodes an update notification for a monitor of `kind`.
pub(crate) fn parse_notification(
    n: &Notification,
    kind: MonitorKind,
) -> Result<TableUpdates, Error> {
    // update3 (monitor_cond_since) carries a transaction id before the updates.
    let body = match (n.method.as_str(), kind) {
        ("update2", MonitorKind::Cond) => n.params.get(1),
        ("update3", MonitorKind::Cond) => n.params.get(2),
        ("update", MonitorKind::Plain) => n.params.get(1),
        _ => None,
    };
    let body = body.ok_or_else(|| {
        Error::protocol(
            "monitor notification",
            format!("{} with {} params", n.method, n.params.len()),
        )
    })?;
    match kind {
        MonitorKind::Cond => parse_updates2(body),
        MonitorKind::Plain => parse_updates(body, false),
    }
}

/// A running monitor. Holds a clone of the client, so the connection stays open while it lives.
#[derive(Debug)]
pub struct Monitor {
    client: Client,
    id: Value,
    kind: MonitorKind,
    /// The rows that matched when the monitor started.
    pub initial: TableUpdates,
    rx: mpsc::UnboundedReceiver<Notification>,
}

static NEXT_MONITOR: AtomicU64 = AtomicU64::new(1);

impl Client {
    /// Starts a monitor with `monitor_cond`, or `monitor` when the server does not know it.
    pub async fn monitor(&self, db: &str, reqs: &MonitorRequests) -> Result<Monitor, Error> {
        match self.monitor_with(db, reqs, MonitorKind::Cond).await {
            Err(Error::Rpc { error, .. }) if error.error.contains("unknown method") => {
                tracing::warn!(
                    db,
                    "ovsdb-server lacks monitor_cond; using monitor (no conditions)"
                );
                self.monitor_with(db, reqs, MonitorKind::Plain).await
            }
            other => other,
        }
    }

    /// Starts a monitor with the given method.
    pub async fn monitor_with(
        &self,
        db: &str,
        reqs: &MonitorRequests,
        kind: MonitorKind,
    ) -> Result<Monitor, Error> {
        let id = Value::from(format!(
            "ovs-appliance-{}",
            NEXT_MONITOR.fetch_add(1, Ordering::Relaxed)
        ));
        let (tx, rx) = mpsc::unbounded_channel();
        let method = match kind {
            MonitorKind::Cond => "monitor_cond",
            MonitorKind::Plain => "monitor",
        };
        let params = json!([db, id, requests_json(reqs, kind)]);
        let route = Some((RouteKey::monitor(&id), tx));
        let reply = self.call_routed(method, params, route).await;
        let initial = reply.and_then(|r| match kind {
            MonitorKind::Cond => parse_updates2(&r),
            MonitorKind::Plain => parse_updates(&r, true),
        });
        let initial = match initial {
            Ok(i) => i,
            Err(e) => {
                self.rpc.unsubscribe(RouteKey::monitor(&id));
                return Err(e);
            }
        };
        Ok(Monitor {
            client: self.clone(),
            id,
            kind,
            initial,
            rx,
        })
    }
}

impl Monitor {
    /// The method in use.
    pub fn kind(&self) -> MonitorKind {
        self.kind
    }

    /// The client this monitor runs on.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The next batch of changes (one committed transaction); `None` once the connection closed.
    /// Cancel-safe: usable in `tokio::select!`.
    pub async fn recv(&mut self) -> Option<Result<TableUpdates, Error>> {
        let n = self.rx.recv().await?;
        Some(parse_notification(&n, self.kind))
    }

    /// Stops the monitor on the server (`monitor_cancel`).
    pub async fn cancel(self) -> Result<(), Error> {
        self.client.rpc.unsubscribe(RouteKey::monitor(&self.id));
        self.client.call("monitor_cancel", json!([self.id])).await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
