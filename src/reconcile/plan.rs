//! `plan(desired, observed)`: the changes that make the database match the config. Pure: it
//! reads two values and returns a third, so every case is a table-driven test without OVS.
//!
//! Ownership rule: a row without this appliance's owner mark is never changed or deleted. A
//! configured name that a foreign row already holds is a conflict, reported and left alone.

use super::keys::{self, MapEdit};
use super::model::{name, owned_by, ref_iter, refs, Desired, DesiredBridge, DesiredPort, Observed};
use crate::ovsdb::{Datum, Row, Uuid};
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
    /// `set` holds the changed managed columns but maps; `was` their observed values (the
    /// guard); `maps` the key edits of map columns (no guard: see `keys`).
    UpdateBridge {
        name: String,
        uuid: Uuid,
        set: Row,
        was: Row,
        maps: Vec<MapEdit>,
    },
    /// Controllers are rows of their own, kept in place (columns the config does not name,
    /// such as `connection_mode`, survive): `add` targets get new rows, `remove` are the
    /// appliance's rows for targets no longer configured, `adopt` unmarked rows for configured
    /// targets (made by an older version) that get the owner mark. Others' rows are kept.
    SetControllers {
        bridge: String,
        uuid: Uuid,
        add: Vec<String>,
        remove: Vec<(Uuid, String)>,
        adopt: Vec<Uuid>,
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
        maps: Vec<MapEdit>,
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
        maps: Vec<MapEdit>,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = |row: &Row, maps: &[MapEdit]| {
            row.keys()
                .cloned()
                .chain(maps.iter().flat_map(MapEdit::keys))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::AddBridge(b) => write!(f, "add bridge {} with {} port(s)", b.name, b.ports.len()),
            Self::RemoveBridge { name, .. } => write!(f, "remove bridge {name}"),
            Self::UpdateBridge {
                name, set, maps, ..
            } => {
                write!(f, "update bridge {name}: {}", cols(set, maps))
            }
            Self::SetControllers {
                bridge,
                add,
                remove,
                adopt,
                ..
            } => {
                let mut parts: Vec<String> = add.iter().map(|t| format!("+{t}")).collect();
                parts.extend(remove.iter().map(|(_, t)| format!("-{t}")));
                if !adopt.is_empty() {
                    parts.push(format!("mark {} as owned", adopt.len()));
                }
                write!(f, "controllers of {bridge}: {}", parts.join(", "))
            }
            Self::AddPort { bridge, port, .. } => write!(f, "add port {} to {bridge}", port.name),
            Self::RemovePort { bridge, name, .. } => write!(f, "remove port {name} from {bridge}"),
            Self::UpdatePort {
                name, set, maps, ..
            } => {
                write!(f, "update port {name}: {}", cols(set, maps))
            }
            Self::SetInterfaces {
                port, add, remove, ..
            } => write!(
                f,
                "change members of {port}: +{} -{}",
                add.len(),
                remove.len()
            ),
            Self::UpdateInterface {
                name, set, maps, ..
            } => {
                write!(f, "update interface {name}: {}", cols(set, maps))
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
    force_keys: bool,
    bridges: HashMap<&'a str, Uuid>,
    ports: HashMap<&'a str, Uuid>,
    port_bridge: HashMap<Uuid, Uuid>,
    interfaces: HashMap<&'a str, Uuid>,
}

impl<'a> Index<'a> {
    fn new(obs: &'a Observed, owner: &'a str, force_keys: bool) -> Self {
        let by_name = |t: &'a super::model::Rows| t.iter().map(|(u, r)| (name(r), *u)).collect();
        let port_bridge = obs
            .bridges
            .iter()
            .flat_map(|(b, row)| ref_iter(row, "ports").map(move |p| (p, *b)))
            .collect();
        Index {
            obs,
            owner,
            force_keys,
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

/// Which managed columns of `want` differ from `have`: (set, was), maps aside (they are edited
/// key by key, see `edits`). Compares in place and clones only what differs: at a thousand
/// ports the no-op pass is mostly this comparison.
fn diff(want: &Row, have: &Row) -> (Row, Row) {
    let empty = crate::ovsdb::Datum::empty();
    let mut set = Row::new();
    let mut was = Row::new();
    // Both rows are sorted by column: walk them side by side instead of looking each column up.
    let mut have = have.iter().peekable();
    for (column, value) in want {
        if matches!(value, Datum::Map(_)) {
            continue;
        }
        while have.next_if(|(c, _)| *c < column).is_some() {}
        let old = have
            .next_if(|(c, _)| *c == column)
            .map_or(&empty, |(_, d)| d);
        if old != value {
            set.insert(column.clone(), value.clone());
            was.insert(column.clone(), old.clone());
        }
    }
    (set, was)
}

/// The column and key edits that make owned row `have` match `want`, or None when it does;
/// keys another tool holds become conflicts in `plan`.
fn edits(
    ix: &Index,
    what: &str,
    want: &Row,
    have: &Row,
    plan: &mut Plan,
) -> Option<(Row, Row, Vec<MapEdit>)> {
    let (set, was) = diff(want, have);
    let keyed = keys::edit(what, want, have, ix.force_keys);
    plan.conflicts.extend(keyed.conflicts);
    (!set.is_empty() || !keyed.maps.is_empty()).then_some((set, was, keyed.maps))
}

pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let ix = Index::new(observed, &desired.owner, desired.force_keys);
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
    let what = format!("bridge {}", bridge.name);
    if let Some((set, was, maps)) = edits(ix, &what, &bridge.row, have, plan) {
        plan.changes.push(Change::UpdateBridge {
            name: bridge.name.clone(),
            uuid,
            set,
            was,
            maps,
        });
    }
    controllers(ix, bridge, uuid, plan);
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

/// Controllers of an owned bridge: the configured targets each have a row, the appliance's
/// rows for other targets go, and rows it did not make stay.
fn controllers(ix: &Index, bridge: &DesiredBridge, uuid: Uuid, plan: &mut Plan) {
    let rows: Vec<(Uuid, &Row, &str)> = ref_iter(&ix.obs.bridges[&uuid], "controller")
        .filter_map(|c| ix.obs.controllers.get(&c).map(|r| (c, &**r)))
        .map(|(c, r)| (c, r, r.get("target").and_then(Datum::as_str).unwrap_or("")))
        .collect();
    let owned_targets: BTreeSet<&str> = rows
        .iter()
        .filter(|(_, r, _)| ix.owned(r))
        .map(|(_, _, t)| *t)
        .collect();
    let add: Vec<String> = bridge
        .controllers
        .iter()
        .filter(|t| !rows.iter().any(|(_, _, have)| have == t))
        .cloned()
        .collect();
    let remove: Vec<(Uuid, String)> = rows
        .iter()
        .filter(|(_, r, t)| ix.owned(r) && !bridge.controllers.contains(*t))
        .map(|(c, _, t)| (*c, t.to_string()))
        .collect();
    let mut adopted = BTreeSet::new();
    let adopt: Vec<Uuid> = rows
        .iter()
        .filter(|(_, r, t)| {
            !ix.owned(r)
                && bridge.controllers.contains(*t)
                && !owned_targets.contains(t)
                && adopted.insert(*t)
        })
        .map(|(c, _, _)| *c)
        .collect();
    if !add.is_empty() || !remove.is_empty() || !adopt.is_empty() {
        plan.changes.push(Change::SetControllers {
            bridge: bridge.name.clone(),
            uuid,
            add,
            remove,
            adopt,
        });
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
    let what = format!("port {}", port.name);
    if let Some((set, was, maps)) = edits(ix, &what, &port.row, have, plan) {
        plan.changes.push(Change::UpdatePort {
            name: port.name.clone(),
            uuid,
            set,
            was,
            maps,
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
                let what = format!("interface {iface}");
                if let Some((set, was, maps)) = edits(ix, &what, want, &ix.obs.interfaces[i], plan)
                {
                    plan.changes.push(Change::UpdateInterface {
                        name: iface.clone(),
                        uuid: *i,
                        set,
                        was,
                        maps,
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
