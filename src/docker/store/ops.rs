//! The transactions that change the driver's rows, each guarded by what it read (pure: the
//! caller sends them).

use super::{
    gateway_name, host_name, network_key, BridgeOwner, BridgeRow, PortRow, Snapshot, ENDPOINT_ID,
    MARK, NETWORK_ID, NETWORK_PREFIX,
};
use crate::docker::api::NetworkSpec;
use crate::ovsdb::{
    Atom, Condition, Datum, Function, Mutation, Mutator, Operation, Row, Uuid, WaitUntil,
};
use std::collections::BTreeMap;

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
