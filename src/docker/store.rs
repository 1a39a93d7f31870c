//! The driver's state, kept in OVSDB only: what it reads back from the rows (a [`Snapshot`]) and
//! the transactions that change them. Pure: the caller sends the operations.
//!
//! - A network is a key of its bridge's `external_ids`: `ovs-appliance-docker-network-<id>`,
//!   whose value is the [`NetworkSpec`] as JSON. A bridge the driver made for a network carries
//!   the driver's mark and goes with the last network on it.
//! - An endpoint is a Port and an Interface named after the host end of its veth, with the
//!   driver's mark, `docker-network-id` and `docker-endpoint-id` on both, and on the Interface
//!   `attached-mac`, `iface-id` (the endpoint id, as OVN and CNI tools read it) and the
//!   addresses Docker gave it.
//!
//! The driver's mark is `external_ids:ovs-appliance-docker=<instance>`, not the config's
//! `ovs-appliance-owner`: reconcile treats these rows as another tool's and never changes or
//! deletes them, and the driver never changes a row without its mark, except to add and remove
//! its own network keys and ports on a bridge of the config.

use super::api::NetworkSpec;
use crate::ovsdb::{
    Atom, Condition, Datum, Function, Mutation, Mutator, Operation, Row, Uuid, WaitUntil,
};
use crate::reconcile::OWNER_KEY;
use std::collections::BTreeMap;

/// The driver's mark on every row it makes.
pub const MARK: &str = "ovs-appliance-docker";
/// The prefix of a network's key on its bridge.
pub const NETWORK_PREFIX: &str = "ovs-appliance-docker-network-";
pub const NETWORK_ID: &str = "docker-network-id";
pub const ENDPOINT_ID: &str = "docker-endpoint-id";

/// The host end of an endpoint's veth (also its Port and Interface name).
pub fn host_name(endpoint_id: &str) -> String {
    format!("ovs{}", short(endpoint_id, 12))
}

/// The end handed to Docker, which moves it into the container and renames it `eth<N>`.
pub fn container_name(endpoint_id: &str) -> String {
    format!("ovc{}", short(endpoint_id, 12))
}

/// The internal port that holds a network's gateway address (`gateway_port=true`).
pub fn gateway_name(network_id: &str) -> String {
    format!("ovsgw{}", short(network_id, 10))
}

fn short(id: &str, n: usize) -> String {
    id.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(n)
        .collect()
}

fn network_key(network_id: &str) -> String {
    format!("{NETWORK_PREFIX}{network_id}")
}

/// One bridge as the driver reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeRow {
    pub uuid: Uuid,
    pub name: String,
    pub ports: Vec<Uuid>,
    pub external_ids: BTreeMap<String, String>,
}

/// One port, with its interfaces' uuids and the first interface's external_ids.
#[derive(Debug, Clone, PartialEq)]
pub struct PortRow {
    pub uuid: Uuid,
    pub name: String,
    pub interfaces: Vec<Uuid>,
    pub external_ids: BTreeMap<String, String>,
}

/// Who a bridge belongs to, as far as the driver may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeOwner {
    /// A bridge of this appliance's config: networks may use it, it is never deleted here.
    Config,
    /// Made by this driver for a network.
    Driver,
    /// Someone else's (OVN's br-int, one made by hand): never touched.
    Foreign,
}

/// A driver endpoint found in the database.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub network_id: String,
    pub endpoint_id: String,
    pub port: PortRow,
    pub bridge: Uuid,
}

/// What the driver needs of the database, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub root: Option<Uuid>,
    /// `external_ids:ovs-appliance-datapath` on the Open_vSwitch row: the datapath `run` chose.
    pub datapath: Option<String>,
    pub bridges: Vec<BridgeRow>,
    pub ports: BTreeMap<Uuid, PortRow>,
}

/// The selects [`Snapshot::from_results`] reads.
pub fn read_ops() -> Vec<Operation> {
    let select = |table: &str, columns: &[&str]| Operation::Select {
        table: table.into(),
        conditions: vec![],
        columns: Some(columns.iter().map(|c| c.to_string()).collect()),
    };
    vec![
        select("Open_vSwitch", &["_uuid", "external_ids"]),
        select("Bridge", &["_uuid", "name", "ports", "external_ids"]),
        select("Port", &["_uuid", "name", "interfaces", "external_ids"]),
    ]
}

fn string_map(row: &Row, column: &str) -> BTreeMap<String, String> {
    match row.get(column) {
        Some(Datum::Map(pairs)) => pairs
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn uuids(row: &Row, column: &str) -> Vec<Uuid> {
    row.get(column)
        .map(|d| d.atoms().iter().filter_map(Atom::as_uuid).collect())
        .unwrap_or_default()
}

fn text(row: &Row, column: &str) -> String {
    row.get(column)
        .and_then(Datum::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Snapshot {
    /// From the results of [`read_ops`], in order.
    pub fn from_results(results: &[Option<Vec<Row>>]) -> Snapshot {
        let rows = |i: usize| results.get(i).cloned().flatten().unwrap_or_default();
        let root = rows(0).into_iter().next();
        let bridges = rows(1)
            .iter()
            .filter_map(|r| {
                Some(BridgeRow {
                    uuid: r.get("_uuid")?.as_uuid()?,
                    name: text(r, "name"),
                    ports: uuids(r, "ports"),
                    external_ids: string_map(r, "external_ids"),
                })
            })
            .collect();
        let ports = rows(2)
            .iter()
            .filter_map(|r| {
                let uuid = r.get("_uuid")?.as_uuid()?;
                let port = PortRow {
                    uuid,
                    name: text(r, "name"),
                    interfaces: uuids(r, "interfaces"),
                    external_ids: string_map(r, "external_ids"),
                };
                Some((uuid, port))
            })
            .collect();
        Snapshot {
            root: root
                .as_ref()
                .and_then(|r| r.get("_uuid"))
                .and_then(Datum::as_uuid),
            datapath: root
                .as_ref()
                .map(|r| string_map(r, "external_ids"))
                .and_then(|ids| ids.get(crate::app::DATAPATH_KEY).cloned()),
            bridges,
            ports,
        }
    }

    pub fn bridge(&self, name: &str) -> Option<&BridgeRow> {
        self.bridges.iter().find(|b| b.name == name)
    }

    pub fn owner(&self, bridge: &BridgeRow, instance: &str) -> BridgeOwner {
        if bridge.external_ids.get(MARK).map(String::as_str) == Some(instance) {
            BridgeOwner::Driver
        } else if bridge.external_ids.get(OWNER_KEY).map(String::as_str) == Some(instance) {
            BridgeOwner::Config
        } else {
            BridgeOwner::Foreign
        }
    }

    /// The network and the bridge that holds it.
    pub fn network(&self, network_id: &str) -> Option<(&BridgeRow, NetworkSpec)> {
        let key = network_key(network_id);
        self.bridges.iter().find_map(|b| {
            let spec = serde_json::from_str(b.external_ids.get(&key)?).ok()?;
            Some((b, spec))
        })
    }

    /// Every network the driver holds, by id.
    pub fn networks(&self) -> Vec<(String, &BridgeRow, NetworkSpec)> {
        self.bridges
            .iter()
            .flat_map(|b| {
                b.external_ids.iter().filter_map(move |(k, v)| {
                    let id = k.strip_prefix(NETWORK_PREFIX)?;
                    Some((id.to_string(), b, serde_json::from_str(v).ok()?))
                })
            })
            .collect()
    }

    /// Every endpoint port of this driver instance, on any bridge.
    pub fn endpoints(&self, instance: &str) -> Vec<Endpoint> {
        self.bridges
            .iter()
            .flat_map(|b| b.ports.iter().map(move |p| (b.uuid, p)))
            .filter_map(|(bridge, p)| {
                let port = self.ports.get(p)?;
                let ids = &port.external_ids;
                if ids.get(MARK).map(String::as_str) != Some(instance) {
                    return None;
                }
                Some(Endpoint {
                    network_id: ids.get(NETWORK_ID)?.clone(),
                    endpoint_id: ids.get(ENDPOINT_ID)?.clone(),
                    port: port.clone(),
                    bridge,
                })
            })
            .collect()
    }

    pub fn endpoint(&self, instance: &str, endpoint_id: &str) -> Option<Endpoint> {
        self.endpoints(instance)
            .into_iter()
            .find(|e| e.endpoint_id == endpoint_id)
    }

    /// Whether any port on any bridge has this name (a name is unique in the Port table).
    pub fn port_named(&self, name: &str) -> Option<&PortRow> {
        self.ports.values().find(|p| p.name == name)
    }
}

fn marked(instance: &str, extra: &[(&str, &str)]) -> Datum {
    let mut pairs = vec![(MARK, instance)];
    pairs.extend_from_slice(extra);
    Datum::map(pairs)
}

fn by_uuid(uuid: Uuid) -> Vec<Condition> {
    vec![Condition::eq("_uuid", Datum::from(uuid))]
}

/// Fails the whole transaction at once unless a row of `table` matches `conditions`.
fn exists(table: &str, conditions: Vec<Condition>) -> Operation {
    Operation::Wait {
        table: table.into(),
        timeout_ms: Some(0),
        conditions,
        columns: vec!["_uuid".into()],
        until: WaitUntil::Ne,
        rows: vec![],
    }
}

/// Fails the whole transaction at once if a row of `table` matches `conditions`.
fn absent(table: &str, conditions: Vec<Condition>) -> Operation {
    Operation::Wait {
        table: table.into(),
        timeout_ms: Some(0),
        conditions,
        columns: vec!["_uuid".into()],
        until: WaitUntil::Eq,
        rows: vec![],
    }
}

/// `next_cfg += 1` and a select of it, last in a transaction whose effect on ovs-vswitchd the
/// caller waits for (see [`applied`]).
fn bump(root: Uuid) -> [Operation; 2] {
    [
        Operation::Mutate {
            table: "Open_vSwitch".into(),
            conditions: by_uuid(root),
            mutations: vec![Mutation::new("next_cfg", Mutator::Add, Datum::from(1i64))],
        },
        Operation::Select {
            table: "Open_vSwitch".into(),
            conditions: by_uuid(root),
            columns: Some(vec!["next_cfg".into()]),
        },
    ]
}

/// Waits, in ovsdb-server, up to `timeout_ms` for ovs-vswitchd to have applied `next_cfg`.
pub fn applied(next_cfg: i64, timeout_ms: u64) -> Vec<Operation> {
    vec![Operation::Wait {
        table: "Open_vSwitch".into(),
        timeout_ms: Some(timeout_ms),
        conditions: vec![Condition::new(
            "cur_cfg",
            Function::Ge,
            Datum::from(next_cfg),
        )],
        columns: vec!["_uuid".into()],
        until: WaitUntil::Ne,
        rows: vec![],
    }]
}

/// A port with one interface of the same name on `bridge`; `tag` is its access VLAN.
fn add_port(
    bridge: Vec<Condition>,
    name: &str,
    kind: &str,
    tag: Option<u16>,
    port_ids: Datum,
    iface_ids: Datum,
    mtu: Option<u32>,
) -> Vec<Operation> {
    let iface_ref = format!("iface_{}", name.replace('-', "_"));
    let port_ref = format!("port_{}", name.replace('-', "_"));
    let mut iface = Row::new();
    iface.insert("name".into(), name.into());
    iface.insert("type".into(), kind.into());
    iface.insert("external_ids".into(), iface_ids);
    if let (Some(mtu), "internal") = (mtu, kind) {
        iface.insert("mtu_request".into(), Datum::from(i64::from(mtu)));
    }
    let mut port = Row::new();
    port.insert("name".into(), name.into());
    port.insert("interfaces".into(), Datum::named_uuid(&iface_ref));
    port.insert("external_ids".into(), port_ids);
    if let Some(tag) = tag {
        port.insert("tag".into(), Datum::from(i64::from(tag)));
    }
    vec![
        // A port of that name anywhere (another bridge, another tool) stops it.
        absent("Port", vec![Condition::eq("name", name)]),
        Operation::Insert {
            table: "Interface".into(),
            row: iface,
            uuid_name: Some(iface_ref),
        },
        Operation::Insert {
            table: "Port".into(),
            row: port,
            uuid_name: Some(port_ref.clone()),
        },
        Operation::Mutate {
            table: "Bridge".into(),
            conditions: bridge,
            mutations: vec![Mutation::new(
                "ports",
                Mutator::Insert,
                Datum::named_uuid(&port_ref),
            )],
        },
    ]
}

/// The operations for CreateNetwork. `bridge` is the existing bridge (of the config or the
/// driver's), or None to make one with the driver's mark on `datapath`.
pub fn create_network(
    snap: &Snapshot,
    instance: &str,
    network_id: &str,
    spec: &NetworkSpec,
    bridge: Option<&BridgeRow>,
    datapath: &str,
) -> Vec<Operation> {
    let root = snap.root.expect("an Open_vSwitch row");
    let value = serde_json::to_string(spec).expect("a spec serialises");
    let key = network_key(network_id);
    let mut ops = Vec::new();
    let bridge_ref = match bridge {
        Some(b) => {
            // The bridge is still there and still the one we judged.
            ops.push(exists("Bridge", by_uuid(b.uuid)));
            ops.push(Operation::Mutate {
                table: "Bridge".into(),
                conditions: by_uuid(b.uuid),
                mutations: vec![Mutation::new(
                    "external_ids",
                    Mutator::Insert,
                    Datum::map([(key.as_str(), value.as_str())]),
                )],
            });
            BridgeRef::Uuid(b.uuid)
        }
        None => {
            ops.push(absent(
                "Bridge",
                vec![Condition::eq("name", spec.bridge.as_str())],
            ));
            ops.push(absent(
                "Port",
                vec![Condition::eq("name", spec.bridge.as_str())],
            ));
            let mut iface = Row::new();
            iface.insert("name".into(), spec.bridge.as_str().into());
            iface.insert("type".into(), "internal".into());
            iface.insert("external_ids".into(), marked(instance, &[]));
            let mut port = Row::new();
            port.insert("name".into(), spec.bridge.as_str().into());
            port.insert("interfaces".into(), Datum::named_uuid("local_iface"));
            port.insert("external_ids".into(), marked(instance, &[]));
            let mut row = Row::new();
            row.insert("name".into(), spec.bridge.as_str().into());
            row.insert("datapath_type".into(), datapath.into());
            row.insert("ports".into(), Datum::named_uuid("local_port"));
            row.insert(
                "external_ids".into(),
                marked(instance, &[(key.as_str(), value.as_str())]),
            );
            ops.push(Operation::Insert {
                table: "Interface".into(),
                row: iface,
                uuid_name: Some("local_iface".into()),
            });
            ops.push(Operation::Insert {
                table: "Port".into(),
                row: port,
                uuid_name: Some("local_port".into()),
            });
            ops.push(Operation::Insert {
                table: "Bridge".into(),
                row,
                uuid_name: Some("new_bridge".into()),
            });
            ops.push(Operation::Mutate {
                table: "Open_vSwitch".into(),
                conditions: by_uuid(root),
                mutations: vec![Mutation::new(
                    "bridges",
                    Mutator::Insert,
                    Datum::named_uuid("new_bridge"),
                )],
            });
            BridgeRef::Named("new_bridge")
        }
    };
    if spec.gateway_port {
        let name = gateway_name(network_id);
        let ids = marked(instance, &[(NETWORK_ID, network_id)]);
        // On the bridge named above, which may be new in this transaction.
        ops.extend(add_port(
            bridge_ref.conditions(),
            &name,
            "internal",
            spec.vlan,
            ids.clone(),
            ids,
            spec.mtu,
        ));
    }
    ops.extend(bump(root));
    ops
}

enum BridgeRef {
    Uuid(Uuid),
    Named(&'static str),
}

impl BridgeRef {
    fn conditions(&self) -> Vec<Condition> {
        match self {
            BridgeRef::Uuid(u) => by_uuid(*u),
            BridgeRef::Named(n) => vec![Condition::eq("_uuid", Datum::named_uuid(n))],
        }
    }
}

/// The operations for DeleteNetwork: its key, its gateway port and any endpoint of it still
/// there, and the bridge when the driver made it and nothing else is left on it. Returns the
/// operations and the names of the host devices (veths) to delete once they committed.
pub fn delete_network(
    snap: &Snapshot,
    instance: &str,
    network_id: &str,
) -> (Vec<Operation>, Vec<String>) {
    let Some((bridge, _)) = snap.network(network_id) else {
        return (Vec::new(), Vec::new());
    };
    let root = snap.root.expect("an Open_vSwitch row");
    let key = network_key(network_id);
    let mut ops = vec![Operation::Mutate {
        table: "Bridge".into(),
        conditions: by_uuid(bridge.uuid),
        mutations: vec![Mutation::new(
            "external_ids",
            Mutator::Delete,
            Datum::set([Atom::from(key.as_str())]),
        )],
    }];
    let gateway = gateway_name(network_id);
    let mut gone: Vec<Uuid> = bridge
        .ports
        .iter()
        .filter_map(|p| snap.ports.get(p))
        .filter(|p| {
            p.external_ids.get(MARK).map(String::as_str) == Some(instance)
                && p.external_ids.get(NETWORK_ID).map(String::as_str) == Some(network_id)
        })
        .map(|p| p.uuid)
        .collect();
    let devices: Vec<String> = gone
        .iter()
        .filter_map(|u| snap.ports.get(u))
        .filter(|p| p.name != gateway)
        .map(|p| p.name.clone())
        .collect();
    let others_left = bridge
        .external_ids
        .keys()
        .any(|k| k.starts_with(NETWORK_PREFIX) && *k != key);
    let remaining: Vec<&PortRow> = bridge
        .ports
        .iter()
        .filter(|p| !gone.contains(p))
        .filter_map(|p| snap.ports.get(p))
        .collect();
    let only_local = remaining.iter().all(|p| p.name == bridge.name);
    let delete_bridge =
        snap.owner(bridge, instance) == BridgeOwner::Driver && !others_left && only_local;
    if delete_bridge {
        gone.extend(remaining.iter().map(|p| p.uuid));
        ops.push(Operation::Mutate {
            table: "Open_vSwitch".into(),
            conditions: by_uuid(root),
            mutations: vec![Mutation::new(
                "bridges",
                Mutator::Delete,
                Datum::set([Atom::from(bridge.uuid)]),
            )],
        });
        // Nothing else appeared on it since it was read.
        ops.push(Operation::Wait {
            table: "Bridge".into(),
            timeout_ms: Some(0),
            conditions: by_uuid(bridge.uuid),
            columns: vec!["ports".into()],
            until: WaitUntil::Eq,
            rows: vec![Row::from([(
                "ports".to_string(),
                Datum::set(bridge.ports.iter().map(|u| Atom::from(*u))),
            )])],
        });
    } else if !gone.is_empty() {
        ops.push(Operation::Mutate {
            table: "Bridge".into(),
            conditions: by_uuid(bridge.uuid),
            mutations: vec![Mutation::new(
                "ports",
                Mutator::Delete,
                Datum::set(gone.iter().map(|u| Atom::from(*u))),
            )],
        });
    }
    ops.extend(bump(root));
    (ops, devices)
}

/// What an endpoint's rows record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint<'a> {
    pub network_id: &'a str,
    pub endpoint_id: &'a str,
    pub mac: &'a str,
    pub address: &'a str,
    pub address_ipv6: &'a str,
}

/// The operations for CreateEndpoint: the veth's host end as a Port and Interface on the
/// network's bridge, in one transaction that fails if the network's key is gone meanwhile.
pub fn add_endpoint(
    snap: &Snapshot,
    instance: &str,
    bridge: &BridgeRow,
    spec: &NetworkSpec,
    ep: &NewEndpoint,
) -> Vec<Operation> {
    let root = snap.root.expect("an Open_vSwitch row");
    let name = host_name(ep.endpoint_id);
    let key = network_key(ep.network_id);
    let value = bridge.external_ids.get(&key).cloned().unwrap_or_default();
    let both = [(NETWORK_ID, ep.network_id), (ENDPOINT_ID, ep.endpoint_id)];
    let mut iface = both.to_vec();
    iface.extend([("attached-mac", ep.mac), ("iface-id", ep.endpoint_id)]);
    if !ep.address.is_empty() {
        iface.push(("docker-address", ep.address));
    }
    if !ep.address_ipv6.is_empty() {
        iface.push(("docker-address-ipv6", ep.address_ipv6));
    }
    let mut ops = vec![exists(
        "Bridge",
        vec![
            Condition::eq("_uuid", Datum::from(bridge.uuid)),
            Condition::new(
                "external_ids",
                Function::Includes,
                Datum::map([(key.as_str(), value.as_str())]),
            ),
        ],
    )];
    ops.extend(add_port(
        by_uuid(bridge.uuid),
        &name,
        "",
        spec.vlan,
        marked(instance, &both),
        marked(instance, &iface),
        None,
    ));
    ops.extend(bump(root));
    ops
}

/// The operations that remove these ports from their bridges (their interfaces go with them:
/// rows nothing refers to are collected by ovsdb-server).
pub fn remove_ports(snap: &Snapshot, ports: &[(Uuid, Uuid)]) -> Vec<Operation> {
    let Some(root) = snap.root else {
        return Vec::new();
    };
    let mut by_bridge: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for (bridge, port) in ports {
        by_bridge.entry(*bridge).or_default().push(*port);
    }
    let mut ops: Vec<Operation> = by_bridge
        .into_iter()
        .map(|(bridge, ports)| Operation::Mutate {
            table: "Bridge".into(),
            conditions: by_uuid(bridge),
            mutations: vec![Mutation::new(
                "ports",
                Mutator::Delete,
                Datum::set(ports.into_iter().map(Atom::from)),
            )],
        })
        .collect();
    if !ops.is_empty() {
        ops.extend(bump(root));
    }
    ops
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
