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
use crate::ovsdb::{Atom, Datum, Operation, Row, Uuid};
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

mod ops;
pub use ops::*;

#[cfg(test)]
mod tests;
