//! `plan(desired, observed)`: the changes that make the database match the config. Pure: it
//! reads two values and returns a third, so every case is a table-driven test without OVS.
//!
//! Ownership rule: a row without this appliance's owner mark is never changed or deleted. A
//! configured name that a foreign row already holds is a conflict, reported and left alone.

use super::model::{name, owned_by, ref_iter, refs, Desired, DesiredBridge, DesiredPort, Observed};
use crate::ovsdb::{Row, Uuid};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// One change to the database.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    AddBridge(DesiredBridge),
    RemoveBridge {
        name: String,
        uuid: Uuid,
        ports: Vec<Uuid>,
        interfaces: Vec<Uuid>,
    },
    /// `set` holds the changed managed columns; `was` their observed values (the guard).
    UpdateBridge {
        name: String,
        uuid: Uuid,
        set: Row,
        was: Row,
    },
    SetControllers {
        bridge: String,
        uuid: Uuid,
        targets: Vec<String>,
        was: Row,
    },
    AddPort {
        bridge: String,
        bridge_uuid: Uuid,
        port: DesiredPort,
    },
    RemovePort {
        bridge: String,
        bridge_uuid: Uuid,
        name: String,
        uuid: Uuid,
        interfaces: Vec<Uuid>,
    },
    UpdatePort {
        name: String,
        uuid: Uuid,
        set: Row,
        was: Row,
    },
    /// A bond's members changed: insert `add`, drop `remove`, keep `keep`.
    SetInterfaces {
        port: String,
        uuid: Uuid,
        add: Vec<Row>,
        remove: Vec<Uuid>,
        keep: Vec<Uuid>,
        was: Row,
    },
    UpdateInterface {
        name: String,
        uuid: Uuid,
        set: Row,
        was: Row,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = |row: &Row| row.keys().cloned().collect::<Vec<_>>().join(", ");
        match self {
            Self::AddBridge(b) => write!(f, "add bridge {} with {} port(s)", b.name, b.ports.len()),
            Self::RemoveBridge { name, .. } => write!(f, "remove bridge {name}"),
            Self::UpdateBridge { name, set, .. } => {
                write!(f, "update bridge {name}: {}", cols(set))
            }
            Self::SetControllers {
                bridge, targets, ..
            } => {
                write!(f, "set controllers of {bridge} to [{}]", targets.join(", "))
            }
            Self::AddPort { bridge, port, .. } => write!(f, "add port {} to {bridge}", port.name),
            Self::RemovePort { bridge, name, .. } => write!(f, "remove port {name} from {bridge}"),
            Self::UpdatePort { name, set, .. } => write!(f, "update port {name}: {}", cols(set)),
            Self::SetInterfaces {
                port, add, remove, ..
            } => write!(
                f,
                "change members of {port}: +{} -{}",
                add.len(),
                remove.len()
            ),
            Self::UpdateInterface { name, set, .. } => {
                write!(f, "update interface {name}: {}", cols(set))
            }
        }
    }
}

/// What `plan` found: changes to send, and names it must leave alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub conflicts: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Lookups over the observed rows, rebuilt each pass (hash maps: at a thousand ports, building
/// and probing these is a good part of a no-op pass).
struct Index<'a> {
    obs: &'a Observed,
    owner: &'a str,
    bridges: HashMap<&'a str, Uuid>,
    ports: HashMap<&'a str, Uuid>,
    port_bridge: HashMap<Uuid, Uuid>,
    interfaces: HashMap<&'a str, Uuid>,
}

impl<'a> Index<'a> {
    fn new(obs: &'a Observed, owner: &'a str) -> Self {
        let by_name = |t: &'a super::model::Rows| t.iter().map(|(u, r)| (name(r), *u)).collect();
        let port_bridge = obs
            .bridges
            .iter()
            .flat_map(|(b, row)| ref_iter(row, "ports").map(move |p| (p, *b)))
            .collect();
        Index {
            obs,
            owner,
            bridges: by_name(&obs.bridges),
            ports: by_name(&obs.ports),
            port_bridge,
            interfaces: by_name(&obs.interfaces),
        }
    }

    fn owned(&self, row: &Row) -> bool {
        owned_by(row, self.owner)
    }
}

/// Which managed columns of `want` differ from `have`: (set, was). Compares in place and clones
/// only what differs: at a thousand ports the no-op pass is mostly this comparison.
fn diff(want: &Row, have: &Row) -> Option<(Row, Row)> {
    let empty = crate::ovsdb::Datum::empty();
    let mut set = Row::new();
    let mut was = Row::new();
    // Both rows are sorted by column: walk them side by side instead of looking each column up.
    let mut have = have.iter().peekable();
    for (column, value) in want {
        while have.next_if(|(c, _)| *c < column).is_some() {}
        let old = have
            .next_if(|(c, _)| *c == column)
            .map_or(&empty, |(_, d)| d);
        if old != value {
            set.insert(column.clone(), value.clone());
            was.insert(column.clone(), old.clone());
        }
    }
    (!set.is_empty()).then_some((set, was))
}

pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let ix = Index::new(observed, &desired.owner);
    let mut plan = Plan::default();
    let mut moved = BTreeSet::new();
    for bridge in desired.bridges.values() {
        match ix.bridges.get(bridge.name.as_str()) {
            Some(uuid) if !ix.owned(&observed.bridges[uuid]) => plan.conflicts.push(format!(
                "bridge {} exists but was not made by this appliance (no external_ids:{}={}): left alone",
                bridge.name,
                super::model::OWNER_KEY,
                desired.owner
            )),
            Some(uuid) => existing_bridge(&ix, bridge, *uuid, &mut plan, &mut moved),
            None => {
                let mut add = bridge.clone();
                add.ports.retain(|_, port| port_is_free(&ix, port, &bridge.name, &mut plan, &mut moved));
                plan.changes.push(Change::AddBridge(add));
            }
        }
    }
    remove_unwanted(&ix, desired, &mut plan, &moved);
    plan
}

fn existing_bridge(
    ix: &Index,
    bridge: &DesiredBridge,
    uuid: Uuid,
    plan: &mut Plan,
    moved: &mut BTreeSet<Uuid>,
) {
    let have = &ix.obs.bridges[&uuid];
    if let Some((set, was)) = diff(&bridge.row, have) {
        plan.changes.push(Change::UpdateBridge {
            name: bridge.name.clone(),
            uuid,
            set,
            was,
        });
    }
    let targets: BTreeSet<String> = refs(have, "controller")
        .iter()
        .filter_map(|c| ix.obs.controllers.get(c))
        .filter_map(|r| r.get("target").and_then(|t| t.as_str()).map(str::to_string))
        .collect();
    if targets != bridge.controllers {
        let mut was = Row::new();
        was.insert(
            "controller".into(),
            have.get("controller")
                .cloned()
                .unwrap_or_else(crate::ovsdb::Datum::empty),
        );
        plan.changes.push(Change::SetControllers {
            bridge: bridge.name.clone(),
            uuid,
            targets: bridge.controllers.iter().cloned().collect(),
            was,
        });
    }
    for port in bridge.ports.values() {
        match ix.ports.get(port.name.as_str()) {
            Some(p) if ix.port_bridge.get(p) == Some(&uuid) && ix.owned(&ix.obs.ports[p]) => {
                existing_port(ix, port, *p, plan)
            }
            _ => {
                if port_is_free(ix, port, &bridge.name, plan, moved) {
                    plan.changes.push(Change::AddPort {
                        bridge: bridge.name.clone(),
                        bridge_uuid: uuid,
                        port: port.clone(),
                    });
                }
            }
        }
    }
}

/// Whether `port` can be created: its names are free, or held by owned rows elsewhere, which
/// are then removed in the same transaction (a move). Conflicts are recorded.
fn port_is_free(
    ix: &Index,
    port: &DesiredPort,
    bridge: &str,
    plan: &mut Plan,
    moved: &mut BTreeSet<Uuid>,
) -> bool {
    if let Some(p) = ix.ports.get(port.name.as_str()) {
        if !ix.owned(&ix.obs.ports[p]) {
            plan.conflicts.push(format!(
                "port {} (wanted on {bridge}) exists but was not made by this appliance: left alone",
                port.name
            ));
            return false;
        }
        if moved.insert(*p) {
            if let Some(from) = ix.port_bridge.get(p) {
                plan.changes.push(remove_port(ix, *from, *p));
            }
        }
    }
    for iface in port.interfaces.keys() {
        let Some(i) = ix.interfaces.get(iface.as_str()) else {
            continue;
        };
        let in_moved_port = ix
            .ports
            .get(port.name.as_str())
            .is_some_and(|p| refs(&ix.obs.ports[p], "interfaces").contains(i));
        if !in_moved_port && !ix.owned(&ix.obs.interfaces[i]) {
            plan.conflicts.push(format!(
                "interface {iface} (wanted in port {} on {bridge}) exists but was not made by this appliance: left alone",
                port.name
            ));
            return false;
        }
    }
    true
}

fn existing_port(ix: &Index, port: &DesiredPort, uuid: Uuid, plan: &mut Plan) {
    let have = &ix.obs.ports[&uuid];
    if let Some((set, was)) = diff(&port.row, have) {
        plan.changes.push(Change::UpdatePort {
            name: port.name.clone(),
            uuid,
            set,
            was,
        });
    }
    let members: Vec<(&str, Uuid)> = ref_iter(have, "interfaces")
        .filter_map(|i| ix.obs.interfaces.get(&i).map(|r| (name(r), i)))
        .collect();
    let member = |iface: &str| members.iter().find(|(n, _)| *n == iface).map(|(_, i)| i);
    let mut keep = Vec::new();
    let mut add = Vec::new();
    for (iface, want) in &port.interfaces {
        match member(iface) {
            Some(i) => {
                keep.push(*i);
                if let Some((set, was)) = diff(want, &ix.obs.interfaces[i]) {
                    plan.changes.push(Change::UpdateInterface {
                        name: iface.clone(),
                        uuid: *i,
                        set,
                        was,
                    });
                }
            }
            None => add.push(want.clone()),
        }
    }
    let remove: Vec<Uuid> = members
        .iter()
        .filter(|(n, _)| !port.interfaces.contains_key(*n))
        .map(|(_, i)| *i)
        .collect();
    if !add.is_empty() || !remove.is_empty() {
        let mut was = Row::new();
        was.insert("interfaces".into(), have["interfaces"].clone());
        plan.changes.push(Change::SetInterfaces {
            port: port.name.clone(),
            uuid,
            add,
            remove,
            keep,
            was,
        });
    }
}

fn remove_port(ix: &Index, bridge: Uuid, port: Uuid) -> Change {
    Change::RemovePort {
        bridge: name(&ix.obs.bridges[&bridge]).to_string(),
        bridge_uuid: bridge,
        name: name(&ix.obs.ports[&port]).to_string(),
        uuid: port,
        interfaces: refs(&ix.obs.ports[&port], "interfaces")
            .into_iter()
            .collect(),
    }
}

/// Owned bridges and ports the config no longer names.
fn remove_unwanted(ix: &Index, desired: &Desired, plan: &mut Plan, moved: &BTreeSet<Uuid>) {
    for (uuid, row) in &ix.obs.bridges {
        if !ix.owned(row) {
            continue;
        }
        let Some(wanted) = desired.bridges.get(name(row)) else {
            let ports = refs(row, "ports");
            let foreign: Vec<&str> = ports
                .iter()
                .filter_map(|p| ix.obs.ports.get(p))
                .filter(|p| !ix.owned(p) && name(p) != name(row))
                .map(|p| name(p))
                .collect();
            if foreign.is_empty() {
                plan.changes.push(remove_bridge(ix, *uuid, &ports, moved));
            } else {
                plan.conflicts.push(format!(
                    "bridge {} is no longer configured but holds ports this appliance did not make ({}): left in place",
                    name(row),
                    foreign.join(", ")
                ));
            }
            continue;
        };
        for p in ref_iter(row, "ports") {
            let Some(port) = ix.obs.ports.get(&p) else {
                continue;
            };
            if ix.owned(port) && !moved.contains(&p) && !wanted.ports.contains_key(name(port)) {
                plan.changes.push(remove_port(ix, *uuid, p));
            }
        }
    }
}

fn remove_bridge(ix: &Index, uuid: Uuid, ports: &BTreeSet<Uuid>, moved: &BTreeSet<Uuid>) -> Change {
    let ports: Vec<Uuid> = ports
        .iter()
        .filter(|p| !moved.contains(p))
        .copied()
        .collect();
    let interfaces = ports
        .iter()
        .filter_map(|p| ix.obs.ports.get(p))
        .flat_map(|p| refs(p, "interfaces"))
        .collect();
    Change::RemoveBridge {
        name: name(&ix.obs.bridges[&uuid]).to_string(),
        uuid,
        ports,
        interfaces,
    }
}
