//! A plan as one OVSDB transaction: guards first (so a concurrent change aborts it instead of
//! being clobbered), then the changes, then `next_cfg += 1` and a read of it, so the caller can
//! wait for ovs-vswitchd to report the same number in `cur_cfg`.

use super::keys::MapEdit;
use super::model::{name, stable_mac, Desired, DesiredBridge, DesiredPort, Observed, OWNER_KEY};
use super::plan::{Change, Plan};
use crate::ovsdb::{Atom, Condition, Datum, Mutation, Mutator, Operation, Row, Uuid, WaitUntil};

/// Builds operations; hands out `uuid-name`s for rows inserted in this transaction.
struct Builder<'a> {
    /// The observed values each touched row must still hold, merged per row. They all run
    /// before any change: a wait placed after a mutate of the same row would see the mutation.
    guards: std::collections::BTreeMap<(&'static str, Uuid), Row>,
    ops: Vec<Operation>,
    next: usize,
    observed: &'a Observed,
    root: Uuid,
    owner: String,
    /// `external_ids:system-id` of the root row: what makes internal ports' MACs this host's.
    system_id: Option<String>,
}

fn by_uuid(uuid: Uuid) -> Vec<Condition> {
    vec![Condition::eq("_uuid", Atom::Uuid(uuid))]
}

impl Builder<'_> {
    fn name(&mut self) -> String {
        self.next += 1;
        format!("row{}", self.next)
    }

    fn insert(&mut self, table: &str, row: Row) -> Atom {
        let name = self.name();
        self.ops.push(Operation::Insert {
            table: table.into(),
            row,
            uuid_name: Some(name.clone()),
        });
        Atom::NamedUuid(name)
    }

    /// Fails the transaction at once unless the row still holds `was`.
    fn guard(&mut self, table: &'static str, uuid: Uuid, was: &Row) {
        let merged = self.guards.entry((table, uuid)).or_default();
        for (column, value) in was {
            merged
                .entry(column.clone())
                .or_insert_with(|| value.clone());
        }
    }

    fn wait_ops(&self) -> Vec<Operation> {
        self.guards
            .iter()
            .map(|((table, uuid), was)| Operation::Wait {
                table: (*table).into(),
                timeout_ms: Some(0),
                conditions: by_uuid(*uuid),
                columns: was.keys().cloned().collect(),
                until: WaitUntil::Eq,
                rows: vec![was.clone()],
            })
            .collect()
    }

    /// Guards one column of an observed row.
    fn guard_column(&mut self, table: &'static str, uuid: Uuid, row: Option<&Row>, column: &str) {
        let value = row
            .and_then(|r| r.get(column))
            .cloned()
            .unwrap_or_else(Datum::empty);
        let mut was = Row::new();
        was.insert(column.into(), value);
        self.guard(table, uuid, &was);
    }

    fn update(&mut self, table: &str, uuid: Uuid, row: Row) {
        self.ops.push(Operation::Update {
            table: table.into(),
            conditions: by_uuid(uuid),
            row,
        });
    }

    fn mutate(&mut self, table: &str, uuid: Uuid, column: &str, mutator: Mutator, value: Datum) {
        self.ops.push(Operation::Mutate {
            table: table.into(),
            conditions: by_uuid(uuid),
            mutations: vec![Mutation::new(column, mutator, value)],
        });
    }

    /// Scalar columns by `update` (guarded by `was`), map keys by `mutate` (delete the pairs as
    /// observed, insert the new ones: see `keys`).
    fn edit(&mut self, table: &'static str, uuid: Uuid, set: &Row, was: &Row, maps: &[MapEdit]) {
        if !set.is_empty() {
            self.guard(table, uuid, was);
            self.update(table, uuid, set.clone());
        }
        let mut mutations = Vec::new();
        for edit in maps {
            if !edit.remove.is_empty() {
                let pairs = edit.remove.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                mutations.push(Mutation::new(
                    &edit.column,
                    Mutator::Delete,
                    Datum::map(pairs),
                ));
            }
            if !edit.insert.is_empty() {
                let pairs = edit.insert.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                mutations.push(Mutation::new(
                    &edit.column,
                    Mutator::Insert,
                    Datum::map(pairs),
                ));
            }
        }
        if !mutations.is_empty() {
            self.ops.push(Operation::Mutate {
                table: table.into(),
                conditions: by_uuid(uuid),
                mutations,
            });
        }
    }

    fn delete(&mut self, table: &str, uuid: Uuid) {
        self.ops.push(Operation::Delete {
            table: table.into(),
            conditions: by_uuid(uuid),
        });
    }

    /// A new port of `bridge` and its interfaces. A configured internal port gets a MAC of its
    /// own that stays the same when it is made again (deleted by hand and repaired, or a bridge
    /// re-created): otherwise the kernel picks a random one each time, and hosts that cached the
    /// old one in ARP lose traffic until the entry expires. The bridge's local port is left to
    /// OVS, which derives it (and the datapath ID) from the bridge's other ports.
    fn port(&mut self, port: &DesiredPort, bridge: &str) -> Atom {
        let members: Vec<Atom> = port
            .interfaces
            .values()
            .map(|row| {
                let mut row = row.clone();
                let internal = row.get("type").and_then(Datum::as_str) == Some("internal");
                if let (true, Some(system_id)) = (internal && name(&row) != bridge, &self.system_id)
                {
                    let mac = stable_mac(system_id, name(&row));
                    row.insert("mac".into(), mac.as_str().into());
                }
                self.insert("Interface", row)
            })
            .collect();
        let mut row = port.row.clone();
        row.insert("interfaces".into(), Datum::set(members));
        self.insert("Port", row)
    }

    /// New Controller rows, with the owner mark.
    fn controllers(&mut self, targets: &[String]) -> Datum {
        let rows: Vec<Atom> = targets
            .iter()
            .map(|t| {
                let mut row = Row::new();
                row.insert("target".into(), t.as_str().into());
                row.insert(
                    "external_ids".into(),
                    Datum::map([(OWNER_KEY, self.owner.as_str())]),
                );
                self.insert("Controller", row)
            })
            .collect();
        Datum::set(rows)
    }

    fn bridge(&mut self, bridge: &DesiredBridge) {
        let ports: Vec<Atom> = bridge
            .ports
            .values()
            .map(|p| self.port(p, &bridge.name))
            .collect();
        let targets: Vec<String> = bridge.controllers.iter().cloned().collect();
        let mut row = bridge.row.clone();
        row.insert("ports".into(), Datum::set(ports));
        row.insert("controller".into(), self.controllers(&targets));
        let new = self.insert("Bridge", row);
        self.mutate(
            "Open_vSwitch",
            self.root,
            "bridges",
            Mutator::Insert,
            Datum::set([new]),
        );
    }

    fn change(&mut self, change: &Change) {
        match change {
            Change::AddBridge(bridge) => self.bridge(bridge),
            Change::RemoveBridge {
                uuid,
                ports,
                interfaces,
                ..
            } => {
                self.mutate(
                    "Open_vSwitch",
                    self.root,
                    "bridges",
                    Mutator::Delete,
                    Datum::set([Atom::Uuid(*uuid)]),
                );
                self.delete("Bridge", *uuid);
                ports.iter().for_each(|p| self.delete("Port", *p));
                interfaces.iter().for_each(|i| self.delete("Interface", *i));
            }
            Change::UpdateBridge {
                uuid,
                set,
                was,
                maps,
                ..
            } => self.edit("Bridge", *uuid, set, was, maps),
            Change::SetControllers {
                uuid,
                add,
                remove,
                adopt,
                ..
            } => {
                // No guard: each reference is added or removed on its own, so a controller
                // another tool adds meanwhile stays.
                if !remove.is_empty() {
                    let gone = remove.iter().map(|(c, _)| Atom::Uuid(*c));
                    self.mutate(
                        "Bridge",
                        *uuid,
                        "controller",
                        Mutator::Delete,
                        Datum::set(gone),
                    );
                }
                if !add.is_empty() {
                    let new = self.controllers(add);
                    self.mutate("Bridge", *uuid, "controller", Mutator::Insert, new);
                }
                for c in adopt {
                    let mark = Datum::map([(OWNER_KEY, self.owner.as_str())]);
                    self.mutate("Controller", *c, "external_ids", Mutator::Insert, mark);
                }
            }
            Change::AddPort {
                bridge,
                bridge_uuid,
                port,
            } => {
                self.guard_column(
                    "Bridge",
                    *bridge_uuid,
                    self.observed.bridges.get(bridge_uuid).map(|r| &**r),
                    "ports",
                );
                let new = self.port(port, bridge);
                self.mutate(
                    "Bridge",
                    *bridge_uuid,
                    "ports",
                    Mutator::Insert,
                    Datum::set([new]),
                );
            }
            Change::RemovePort {
                bridge_uuid,
                uuid,
                interfaces,
                ..
            } => {
                self.guard_column(
                    "Bridge",
                    *bridge_uuid,
                    self.observed.bridges.get(bridge_uuid).map(|r| &**r),
                    "ports",
                );
                self.mutate(
                    "Bridge",
                    *bridge_uuid,
                    "ports",
                    Mutator::Delete,
                    Datum::set([Atom::Uuid(*uuid)]),
                );
                self.delete("Port", *uuid);
                interfaces.iter().for_each(|i| self.delete("Interface", *i));
            }
            Change::UpdatePort {
                uuid,
                set,
                was,
                maps,
                ..
            } => self.edit("Port", *uuid, set, was, maps),
            Change::SetInterfaces {
                uuid,
                add,
                remove,
                keep,
                was,
                ..
            } => {
                self.guard("Port", *uuid, was);
                let mut members: Vec<Atom> = keep.iter().map(|i| Atom::Uuid(*i)).collect();
                members.extend(add.iter().map(|row| self.insert("Interface", row.clone())));
                let mut row = Row::new();
                row.insert("interfaces".into(), Datum::set(members));
                self.update("Port", *uuid, row);
                remove.iter().for_each(|i| self.delete("Interface", *i));
            }
            Change::UpdateInterface {
                uuid,
                set,
                was,
                maps,
                ..
            } => self.edit("Interface", *uuid, set, was, maps),
        }
    }
}

/// The transaction for `plan`; empty when there is nothing to change. The last operation is a
/// select of `next_cfg` whose value ovs-vswitchd will copy to `cur_cfg` once it has applied it.
pub fn operations(plan: &Plan, desired: &Desired, observed: &Observed) -> Vec<Operation> {
    let Some((root, root_row)) = observed.root.as_ref() else {
        return Vec::new();
    };
    if plan.is_empty() {
        return Vec::new();
    }
    let mut b = Builder {
        guards: Default::default(),
        ops: Vec::new(),
        next: 0,
        observed,
        root: *root,
        owner: desired.owner.clone(),
        system_id: root_row
            .get("external_ids")
            .and_then(|ids| ids.map_get("system-id"))
            .and_then(Atom::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string),
    };
    let touches_root = plan
        .changes
        .iter()
        .any(|c| matches!(c, Change::AddBridge(_) | Change::RemoveBridge { .. }));
    if touches_root {
        b.guard_column("Open_vSwitch", *root, Some(root_row), "bridges");
    }
    b.ops.push(Operation::Comment {
        comment: format!(
            "ovs-appliance {}: {} change(s)",
            desired.owner,
            plan.changes.len()
        ),
    });
    for change in &plan.changes {
        b.change(change);
    }
    b.mutate(
        "Open_vSwitch",
        *root,
        "next_cfg",
        Mutator::Add,
        Datum::from(1i64),
    );
    b.ops.push(Operation::Select {
        table: "Open_vSwitch".into(),
        conditions: by_uuid(*root),
        columns: Some(vec!["next_cfg".into()]),
    });
    let mut ops = b.wait_ops();
    ops.append(&mut b.ops);
    ops
}
