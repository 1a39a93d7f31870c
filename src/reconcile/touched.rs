//! What a monitor update changed, as far as reconcile is concerned: a column plans are made
//! from, a status column (a device came, went or changed state), or a column kept only for
//! metrics. Only the first calls for a plan.

use super::model::{Desired, OWNER_KEY};
use crate::ovsdb::{Atom, Cache, Datum, Row, RowUpdate, TableUpdates, Uuid};
use std::collections::HashSet;

/// What a monitor update changed, as far as reconcile is concerned. Ordered: several updates
/// together changed the most any one of them did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Touched {
    #[default]
    Nothing,
    Statistics,
    Status,
    Managed,
}

/// Interface columns monitored only for metrics. An update that touches nothing else is
/// `Event::Statistics`: vswitchd rewrites `statistics` of every interface every 5 s, and
/// re-planning all bridges for that would be wasted work.
pub const INTERFACE_METRICS_COLUMNS: &[&str] = &[
    "statistics",
    "mtu",
    "link_speed",
    "mac_in_use",
    "link_resets",
];

/// Interface columns monitored for `status` and the hooks: an update of these alone re-plans
/// nothing.
const INTERFACE_STATUS_COLUMNS: &[&str] = &["ofport", "error", "link_state", "admin_state"];

/// What changing `column` of `table` means: the Open_vSwitch row is planned from `bridges`
/// alone (`next_cfg` and `cur_cfg` are progress); an interface from
/// [`INTERFACE_COLUMNS`](super::model::INTERFACE_COLUMNS); every other monitored column is one
/// plans read.
fn column_touches(table: &str, column: &str) -> Touched {
    match table {
        "Open_vSwitch" if column != "bridges" => Touched::Status,
        "Interface" if INTERFACE_METRICS_COLUMNS.contains(&column) => Touched::Statistics,
        "Interface" if INTERFACE_STATUS_COLUMNS.contains(&column) => Touched::Status,
        _ => Touched::Managed,
    }
}

/// Which rows a plan reads, so an update of any other row starts no pass: the owner mark and
/// the names the config wants. Without it (`plan`, `apply`), every row counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interest {
    owner: String,
    names: HashSet<String>,
}

impl Interest {
    pub fn of(desired: &Desired) -> Interest {
        let mut names = HashSet::new();
        for bridge in desired.bridges.values() {
            names.insert(bridge.name.clone());
            for port in bridge.ports.values() {
                names.insert(port.name.clone());
                names.extend(port.interfaces.keys().cloned());
            }
        }
        Interest {
            owner: desired.owner.clone(),
            names,
        }
    }

    /// Whether a plan reads `row` (a whole row, or an update2 diff of one): it carries the
    /// owner mark, or a name the config wants. A diff that adds or removes the mark names it.
    fn reads(&self, row: &Row) -> bool {
        let named = row
            .get("name")
            .and_then(Datum::as_str)
            .is_some_and(|n| self.names.contains(n));
        let marked = row
            .get("external_ids")
            .and_then(|ids| ids.map_get(OWNER_KEY))
            .and_then(Atom::as_str)
            .is_some_and(|o| o == self.owner);
        named || marked
    }
}

/// Whether an update of `uuid` in `table` concerns a plan: always for the root row and
/// controllers (few, and read whole); for bridges, ports and interfaces only rows the plan
/// reads, before or after the update. A foreign tool churning its own ports on its own bridge
/// touches none of them.
fn concerns(
    interest: Option<&Interest>,
    cache: &Cache,
    table: &str,
    uuid: &Uuid,
    update: &RowUpdate,
) -> bool {
    let Some(interest) = interest else {
        return true;
    };
    if !matches!(table, "Bridge" | "Port" | "Interface") {
        return true;
    }
    let before = cache.row(table, uuid).is_some_and(|r| interest.reads(r));
    before
        || match update {
            RowUpdate::Initial(r)
            | RowUpdate::Insert(r)
            | RowUpdate::Modify(r)
            | RowUpdate::Replace(r) => interest.reads(r),
            RowUpdate::Delete => false,
        }
}

/// What `updates` change: an insert or delete of a row plans read is managed; a modified row
/// counts by its most telling column; rows plans do not read (see [`Interest`]) count for
/// nothing. `cache` is the state before the update (an update of the older monitor protocol
/// carries whole rows, so it is compared).
pub fn touched(cache: &Cache, updates: &TableUpdates, interest: Option<&Interest>) -> Touched {
    let mut most = Touched::Nothing;
    for (table, rows) in updates {
        for (uuid, update) in rows {
            if !concerns(interest, cache, table, uuid, update) {
                continue;
            }
            let here = match update {
                RowUpdate::Modify(diff) => diff
                    .keys()
                    .map(|c| column_touches(table, c))
                    .max()
                    .unwrap_or_default(),
                RowUpdate::Replace(new) => {
                    let old = cache.row(table, uuid);
                    new.iter()
                        .filter(|(c, d)| old.and_then(|o| o.get(*c)) != Some(*d))
                        .map(|(c, _)| column_touches(table, c))
                        .max()
                        .unwrap_or_default()
                }
                RowUpdate::Initial(_) | RowUpdate::Insert(_) | RowUpdate::Delete => {
                    return Touched::Managed
                }
            };
            most = most.max(here);
        }
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::{parse_updates2, Datum, MonitorRequests, Row, Schema, Uuid};
    use serde_json::json;
    use std::sync::Arc;

    const I: &str = "00000000-0000-0000-0000-0000000000c1";
    const OWNED: &str = "00000000-0000-0000-0000-0000000000c2";
    const NEW: &str = "00000000-0000-0000-0000-0000000000c3";

    fn cache() -> Cache {
        let v = json!({"name": "Open_vSwitch", "version": "1", "tables": {
            "Interface": {"columns": {"name": {"type": "string"},
                "external_ids": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
                "mtu_request": {"type": {"key": "integer", "min": 0, "max": 1}},
                "mtu": {"type": {"key": "integer", "min": 0, "max": 1}},
                "statistics": {"type": {"key": "string", "value": "integer", "min": 0, "max": "unlimited"}},
                "link_state": {"type": {"key": "string", "min": 0, "max": 1}},
                "ofport": {"type": {"key": "integer", "min": 0, "max": 1}},
                "error": {"type": {"key": "string", "min": 0, "max": 1}}}},
            "Port": {"columns": {"name": {"type": "string"},
                "tag": {"type": {"key": "integer", "min": 0, "max": 1}}}},
            "Open_vSwitch": {"columns": {"bridges": {"type": {"key": "uuid", "min": 0, "max": "unlimited"}},
                "next_cfg": {"type": "integer"}, "cur_cfg": {"type": "integer"}}}}});
        let reqs: MonitorRequests = [("Interface".to_string(), Default::default())].into();
        let mut c = Cache::new(Arc::new(Schema::from_json(&v).unwrap()), &reqs);
        let init = json!({"Interface": {
            I: {"initial": {"name": "s1", "mtu": 1500}},
            OWNED: {"initial": {"name": "o1",
                "external_ids": ["map", [["ovs-appliance-owner", "default"]]]}}}});
        c.apply(&parse_updates2(&init).unwrap()).unwrap();
        c
    }

    fn touches(update: serde_json::Value) -> Touched {
        touched(&cache(), &parse_updates2(&update).unwrap(), None)
    }

    #[test]
    fn updates_count_by_the_most_telling_column() {
        let modify = |cols: serde_json::Value| touches(json!({"Interface": {I: {"modify": cols}}}));
        // vswitchd's refresh every 5 s: for metrics only.
        let stats = json!({"statistics": ["map", [["rx_packets", 5]]], "mtu": 1400});
        assert_eq!(modify(stats), Touched::Statistics);
        // A device coming up or going away: status, no plan.
        assert_eq!(
            modify(json!({"link_state": "up", "ofport": 3, "mtu": 1500})),
            Touched::Status
        );
        assert_eq!(modify(json!({"error": "could not open"})), Touched::Status);
        // A column the config sets: a plan, whatever else came with it.
        assert_eq!(modify(json!({"mtu_request": 1400})), Touched::Managed);
        assert_eq!(
            modify(json!({"name": "x", "mtu": 1, "link_state": "down"})),
            Touched::Managed
        );
        assert_eq!(
            touches(json!({"Interface": {I: {"delete": null}}})),
            Touched::Managed
        );
        assert_eq!(
            touches(json!({"Port": {I: {"insert": {"name": "p"}}}})),
            Touched::Managed
        );
        assert_eq!(
            touches(json!({"Port": {I: {"modify": {"tag": 20}}}})),
            Touched::Managed
        );
        // The root row: progress is status, the bridge list is planned.
        let root =
            |cols: serde_json::Value| touches(json!({"Open_vSwitch": {I: {"modify": cols}}}));
        assert_eq!(root(json!({"cur_cfg": 7})), Touched::Status);
        assert_eq!(root(json!({"next_cfg": 8})), Touched::Status);
        assert_eq!(
            root(json!({"bridges": ["set", []], "next_cfg": 8})),
            Touched::Managed
        );
        // Several tables in one update: the most any of them changed.
        assert_eq!(
            touches(json!({"Open_vSwitch": {I: {"modify": {"cur_cfg": 7}}},
                "Interface": {I: {"modify": {"statistics": ["map", []]}}}})),
            Touched::Status
        );
    }

    #[test]
    fn whole_row_updates_are_compared_with_the_cache() {
        let u = Uuid::parse(I).unwrap();
        let row = |name: &str, mtu: i64| -> Row {
            [
                ("name".to_string(), Datum::from(name)),
                ("mtu".to_string(), Datum::from(mtu)),
            ]
            .into()
        };
        let update = |r: Row| -> TableUpdates {
            [("Interface".to_string(), [(u, RowUpdate::Replace(r))].into())].into()
        };
        assert_eq!(
            touched(&cache(), &update(row("s1", 9000)), None),
            Touched::Statistics
        );
        assert_eq!(
            touched(&cache(), &update(row("s1", 1500)), None),
            Touched::Nothing
        );
        assert_eq!(
            touched(&cache(), &update(row("s2", 1500)), None),
            Touched::Managed
        );
    }

    #[test]
    fn updates_of_rows_no_plan_reads_start_no_pass() {
        let interest = Interest {
            owner: "default".into(),
            names: ["p1".to_string()].into(),
        };
        let with = |update: serde_json::Value| {
            touched(&cache(), &parse_updates2(&update).unwrap(), Some(&interest))
        };
        // Another tool's port and interface come, change and go: nothing.
        assert_eq!(
            with(json!({"Port": {NEW: {"insert": {"name": "fc1"}}},
                "Interface": {NEW: {"insert": {"name": "fc1"}}}})),
            Touched::Nothing
        );
        assert_eq!(
            with(json!({"Interface": {I: {"modify": {"mtu_request": 9000}}}})),
            Touched::Nothing
        );
        assert_eq!(
            with(json!({"Interface": {I: {"delete": null}}})),
            Touched::Nothing
        );
        // The appliance's rows, a name the config wants, the bridge list: a pass.
        assert_eq!(
            with(json!({"Interface": {OWNED: {"modify": {"mtu_request": 9000}}}})),
            Touched::Managed
        );
        assert_eq!(
            with(json!({"Interface": {OWNED: {"modify": {"link_state": "up"}}}})),
            Touched::Status
        );
        assert_eq!(
            with(json!({"Interface": {OWNED: {"delete": null}}})),
            Touched::Managed
        );
        assert_eq!(
            with(json!({"Port": {NEW: {"insert": {"name": "p1"}}}})),
            Touched::Managed
        );
        assert_eq!(
            with(json!({"Interface": {I: {"modify": {"name": "p1"}}}})),
            Touched::Managed
        );
        assert_eq!(
            with(json!({"Open_vSwitch": {I: {"modify": {"bridges": ["set", []]}}}})),
            Touched::Managed
        );
        // Without an interest (plan, apply) every row counts, as before.
        assert_eq!(
            touched(
                &cache(),
                &parse_updates2(&json!({"Port": {NEW: {"insert": {"name": "fc1"}}}})).unwrap(),
                None
            ),
            Touched::Managed
        );
    }
}
