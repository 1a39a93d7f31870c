//! A local copy of monitored tables, kept current by applying monitor updates. The reconciler's
//! "observed" state and the metrics collectors read it; nothing here talks to the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::monitor::{MonitorRequests, RowUpdate, TableUpdates};
use super::reconnect::MonitorEvent;
use super::{Datum, Error, Row, Schema, Uuid};

/// Rows by table and uuid. Needs the schema: update2 diffs cannot be applied without knowing
/// whether a column is a scalar, a set or a map (a one-element set diff looks like a scalar).
///
/// Rows are shared (`Arc`), so a clone of the cache is cheap and shares every row: metrics keep
/// the last clone while the reconciler goes on updating its own, which copies only the rows
/// that change.
#[derive(Debug, Clone)]
pub struct Cache {
    schema: Arc<Schema>,
    /// Monitored columns per table (None: all). update2 omits columns holding their default
    /// value from new rows, so the cache must know which absent columns to fill in.
    columns: BTreeMap<String, Option<Vec<String>>>,
    tables: BTreeMap<String, BTreeMap<Uuid, Arc<Row>>>,
}

impl Cache {
    /// An empty cache for the tables and columns that `requests` monitor.
    pub fn new(schema: Arc<Schema>, requests: &MonitorRequests) -> Cache {
        Cache {
            schema,
            columns: requests
                .iter()
                .map(|(t, r)| (t.clone(), r.columns.clone()))
                .collect(),
            tables: BTreeMap::new(),
        }
    }

    /// The schema the cache decodes with.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Forgets every row (before applying a fresh snapshot after a reconnect).
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    /// The rows of `table` (empty when unknown or not monitored).
    pub fn table(&self, table: &str) -> impl Iterator<Item = (&Uuid, &Row)> {
        self.tables
            .get(table)
            .into_iter()
            .flatten()
            .map(|(u, r)| (u, &**r))
    }

    /// The rows of `table` as the cache holds them, shared: a copy costs a reference count.
    pub fn shared_table(&self, table: &str) -> impl Iterator<Item = (&Uuid, &Arc<Row>)> {
        self.tables.get(table).into_iter().flatten()
    }

    /// One row.
    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<&Row> {
        self.tables.get(table)?.get(uuid).map(|r| &**r)
    }

    /// Applies one batch of updates. On error the cache may be partly updated; the caller should
    /// resubscribe (a fresh snapshot) rather than trust it.
    pub fn apply(&mut self, updates: &TableUpdates) -> Result<(), Error> {
        for (table, rows) in updates {
            for (uuid, ru) in rows {
                self.apply_row(table, *uuid, ru)?;
            }
        }
        Ok(())
    }

    /// Applies an event of a reconnecting monitor: a snapshot replaces everything, a disconnect
    /// keeps the last known rows (stale until the next snapshot). Returns false for `Failed`.
    pub fn apply_event(&mut self, ev: &MonitorEvent) -> Result<bool, Error> {
        match ev {
            MonitorEvent::Snapshot(u) => {
                self.clear();
                self.apply(u)?;
            }
            MonitorEvent::Update(u) => self.apply(u)?,
            MonitorEvent::Disconnected(_) => {}
            MonitorEvent::Failed(_) => return Ok(false),
        }
        Ok(true)
    }

    fn apply_row(&mut self, table: &str, uuid: Uuid, ru: &RowUpdate) -> Result<(), Error> {
        let ts =
            self.schema.tables.get(table).ok_or_else(|| {
                Error::protocol("monitor update", format!("unknown table {table}"))
            })?;
        let coerce = |col: &str, d: &Datum| -> Result<(Datum, _), Error> {
            let ty = ts.column(col).ok_or_else(|| {
                Error::protocol("monitor update", format!("unknown column {table}.{col}"))
            })?;
            Ok((d.clone().coerce(ty), ty))
        };
        let rows = self.tables.entry(table.to_string()).or_default();
        match ru {
            RowUpdate::Initial(r) | RowUpdate::Insert(r) => {
                let mut row = Row::new();
                for (c, d) in r {
                    row.insert(c.clone(), coerce(c, d)?.0);
                }
                // Borrowed, not copied per row: a thousand-port commit inserts 2000 rows.
                let mut fill = |c: &String| {
                    if let (false, Some(ty)) = (row.contains_key(c), ts.column(c)) {
                        row.insert(c.clone(), ty.default_datum());
                    }
                };
                match self.columns.get(table) {
                    Some(Some(monitored)) => monitored.iter().for_each(&mut fill),
                    _ => ts.columns.keys().for_each(&mut fill),
                }
                rows.insert(uuid, Arc::new(row));
            }
            RowUpdate::Delete => {
                rows.remove(&uuid);
            }
            RowUpdate::Modify(diff) => {
                let row = rows.get_mut(&uuid).ok_or_else(|| missing(table, uuid))?;
                let row = Arc::make_mut(row);
                for (c, d) in diff {
                    let (d, ty) = coerce(c, d)?;
                    row.entry(c.clone())
                        .or_insert_with(|| ty.default_datum())
                        .apply_diff(&d, ty);
                }
            }
            RowUpdate::Replace(new) => {
                let row = rows.get_mut(&uuid).ok_or_else(|| missing(table, uuid))?;
                let row = Arc::make_mut(row);
                for (c, d) in new {
                    row.insert(c.clone(), coerce(c, d)?.0);
                }
            }
        }
        Ok(())
    }
}

fn missing(table: &str, uuid: Uuid) -> Error {
    Error::protocol(
        "monitor update",
        format!("modify of unknown row {table} {uuid}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::monitor::parse_updates2;
    use crate::ovsdb::Atom;
    use serde_json::json;

    const U: &str = "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11";
    const P1: &str = "00000000-0000-0000-0000-000000000001";
    const P2: &str = "00000000-0000-0000-0000-000000000002";

    fn schema() -> Arc<Schema> {
        let v = json!({"name": "t", "version": "1", "tables": {"Bridge": {"columns": {
            "name": {"type": "string"},
            "ports": {"type": {"key": "uuid", "min": 0, "max": "unlimited"}},
            "external_ids": {"type": {"key": "string", "value": "string",
                                      "min": 0, "max": "unlimited"}},
            "weight": {"type": "real"}}}}});
        Arc::new(Schema::from_json(&v).unwrap())
    }

    fn cache() -> Cache {
        Cache::new(
            schema(),
            &MonitorRequests::from([("Bridge".into(), Default::default())]),
        )
    }

    fn apply(c: &mut Cache, v: serde_json::Value) -> Result<(), Error> {
        c.apply(&parse_updates2(&v).unwrap())
    }

    #[test]
    fn initial_modify_delete() {
        let mut c = cache();
        apply(
            &mut c,
            json!({"Bridge": {U: {"initial": {
            "name": "br0", "ports": ["uuid", P1], "weight": 1,
            "external_ids": ["map", [["a", "1"]]]}}}}),
        )
        .unwrap();
        let u = Uuid::parse(U).unwrap();
        assert_eq!(c.row("Bridge", &u).unwrap()["weight"], Datum::from(1.0));
        // A one-element diff on a set column toggles: P1 goes, P2 comes.
        apply(
            &mut c,
            json!({"Bridge": {U: {"modify": {
            "ports": ["set", [["uuid", P1], ["uuid", P2]]],
            "name": "br1",
            "external_ids": ["map", [["a", "1"], ["b", "2"]]]}}}}),
        )
        .unwrap();
        let row = c.row("Bridge", &u).unwrap();
        assert_eq!(row["ports"].as_uuid(), Some(Uuid::parse(P2).unwrap()));
        assert_eq!(row["name"].as_str(), Some("br1"));
        assert!(row["external_ids"].map_get("a").is_none());
        assert_eq!(
            row["external_ids"].map_get("b").and_then(Atom::as_str),
            Some("2")
        );
        apply(
            &mut c,
            json!({"Bridge": {U: {"modify": {"ports": ["uuid", P2]}}}}),
        )
        .unwrap();
        assert!(c.row("Bridge", &u).unwrap()["ports"].is_empty());
        apply(&mut c, json!({"Bridge": {U: {"delete": null}}})).unwrap();
        assert_eq!(c.table("Bridge").count(), 0);
        // Columns at their default are left out of update2 rows; the cache fills them in.
        apply(&mut c, json!({"Bridge": {U: {"insert": {"name": "x"}}}})).unwrap();
        let row = c.row("Bridge", &u).unwrap();
        assert!(row["external_ids"].is_empty() && row["ports"].is_empty());
        assert_eq!(row["weight"], Datum::from(0.0));
        apply(&mut c, json!({"Bridge": {U: {"delete": null}}})).unwrap();
        assert_eq!(c.table("Bridge").count(), 0);
    }

    #[test]
    fn snapshot_replaces_everything() {
        let mut c = cache();
        apply(&mut c, json!({"Bridge": {U: {"insert": {"name": "old"}}}})).unwrap();
        let snap = parse_updates2(&json!({"Bridge": {P1: {"initial": {"name": "new"}}}})).unwrap();
        assert!(c.apply_event(&MonitorEvent::Snapshot(snap)).unwrap());
        let names: Vec<_> = c.table("Bridge").map(|(_, r)| r["name"].as_str()).collect();
        assert_eq!(names, [Some("new")]);
        assert!(!c.apply_event(&MonitorEvent::Failed("x".into())).unwrap());
    }

    #[test]
    fn inconsistent_updates_are_errors() {
        let mut c = cache();
        assert!(apply(&mut c, json!({"Bridge": {U: {"modify": {"name": "x"}}}})).is_err());
        assert!(apply(&mut c, json!({"Nope": {U: {"insert": {}}}})).is_err());
        assert!(apply(&mut c, json!({"Bridge": {U: {"insert": {"nope": 1}}}})).is_err());
    }

    /// ovsdb-server leaves a column at its default out of "initial" and "insert": the cache
    /// fills it in typed by the schema, so a `wait` sent back with it is well-formed (an empty
    /// map column encoded as `["set", []]` was rejected, and every later transaction with it).
    #[test]
    fn absent_columns_are_filled_with_their_typed_default() {
        let mut c = cache();
        for (kind, u) in [("initial", P1), ("insert", P2)] {
            apply(&mut c, json!({"Bridge": {u: {kind: {"name": "b"}}}})).unwrap();
            let row = c.row("Bridge", &Uuid::parse(u).unwrap()).unwrap();
            assert_eq!(row["external_ids"].to_json(), json!(["map", []]), "{kind}");
            assert_eq!(row["ports"].to_json(), json!(["set", []]), "{kind}");
            assert_eq!(row["weight"].to_json(), json!(0.0), "{kind}");
        }
        // A later key arrives as a diff on the typed empty map.
        apply(
            &mut c,
            json!({"Bridge": {P1: {"modify": {"external_ids": ["map", [["k", "v"]]]}}}}),
        )
        .unwrap();
        let row = c.row("Bridge", &Uuid::parse(P1).unwrap()).unwrap();
        assert_eq!(
            row["external_ids"].map_get("k").and_then(Atom::as_str),
            Some("v")
        );
    }
}

#[cfg(test)]
mod sharing_tests {
    use super::*;
    use crate::ovsdb::monitor::parse_updates2;
    use serde_json::json;

    #[test]
    fn a_clone_keeps_its_rows_while_the_original_changes() {
        let v = json!({"name": "t", "version": "1", "tables": {"Bridge": {"columns": {
            "name": {"type": "string"}}}}});
        let schema = Arc::new(Schema::from_json(&v).unwrap());
        let mut c = Cache::new(
            schema,
            &MonitorRequests::from([("Bridge".into(), Default::default())]),
        );
        let u = "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11";
        let apply = |c: &mut Cache, v| c.apply(&parse_updates2(&v).unwrap()).unwrap();
        apply(&mut c, json!({"Bridge": {u: {"insert": {"name": "a"}}}}));
        let snapshot = c.clone();
        apply(&mut c, json!({"Bridge": {u: {"modify": {"name": "b"}}}}));
        let uuid = Uuid::parse(u).unwrap();
        assert_eq!(
            snapshot.row("Bridge", &uuid).unwrap()["name"].as_str(),
            Some("a")
        );
        assert_eq!(c.row("Bridge", &uuid).unwrap()["name"].as_str(), Some("b"));
    }
}
