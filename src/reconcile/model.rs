//! The two sides of a reconcile, in OVSDB terms: `Desired` (the config, as the rows it implies)
//! and `Observed` (the rows the monitor cache holds). Both are plain data; nothing here does I/O.

use super::keys::record_all;
use crate::config::{self, Config, PortType, Vlan};
use crate::ovsdb::{Atom, Cache, Datum, Row, Uuid};
use crate::preflight::Datapath;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The external_ids key that marks what the appliance created.
pub const OWNER_KEY: &str = "ovs-appliance-owner";

/// The columns the appliance manages, per table. Everything else (statistics, ofport, status,
/// columns other tools set) is left as it is.
pub const BRIDGE_COLUMNS: &[&str] = &[
    "name",
    "datapath_type",
    "fail_mode",
    "protocols",
    "other_config",
    "external_ids",
];
pub const PORT_COLUMNS: &[&str] = &[
    "name",
    "tag",
    "trunks",
    "vlan_mode",
    "bond_mode",
    "lacp",
    "external_ids",
];
pub const INTERFACE_COLUMNS: &[&str] = &["name", "type", "options", "mtu_request", "external_ids"];

/// One bridge as the config wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredBridge {
    pub name: String,
    /// The managed columns (BRIDGE_COLUMNS).
    pub row: Row,
    pub controllers: BTreeSet<String>,
    pub ports: BTreeMap<String, DesiredPort>,
}

/// One port as the config wants it, with its interfaces (one, or a bond's members).
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPort {
    pub name: String,
    pub row: Row,
    pub interfaces: BTreeMap<String, Row>,
    /// Internal ports: addresses to set on the device.
    pub addresses: Vec<String>,
}

/// Everything the config wants, keyed by bridge name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desired {
    pub owner: String,
    /// `[ovs] force_keys`: a map key another tool set is overwritten when the config names it
    /// (otherwise it is a conflict, left alone).
    pub force_keys: bool,
    pub bridges: BTreeMap<String, DesiredBridge>,
}

fn string_map(map: &BTreeMap<String, String>) -> Datum {
    Datum::map(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn optional(value: Option<Atom>) -> Datum {
    Datum::set(value)
}

fn owned_ids(extra: &BTreeMap<String, String>, owner: &str) -> Datum {
    let mut ids = extra.clone();
    ids.insert(OWNER_KEY.into(), owner.into());
    string_map(&ids)
}

impl Desired {
    /// The rows `config` implies, with `datapath` for bridges that do not name one.
    pub fn from_config(config: &Config, datapath: Datapath) -> Desired {
        let owner = config.ovs.instance.clone();
        let bridges = config
            .bridges
            .iter()
            .map(|b| (b.name.clone(), bridge(b, datapath, &owner)))
            .collect();
        Desired {
            owner,
            force_keys: config.ovs.force_keys,
            bridges,
        }
    }

    /// Every port name the config wants, with its bridge.
    pub fn port_bridges(&self) -> BTreeMap<&str, &str> {
        self.bridges
            .values()
            .flat_map(|b| b.ports.keys().map(|p| (p.as_str(), b.name.as_str())))
            .collect()
    }
}

fn bridge(b: &config::Bridge, default: Datapath, owner: &str) -> DesiredBridge {
    let datapath = match b.datapath {
        Some(config::BridgeDatapath::System) => "system",
        Some(config::BridgeDatapath::Netdev) => "netdev",
        None => default.as_ovs(),
    };
    let mut row = Row::new();
    row.insert("name".into(), b.name.as_str().into());
    row.insert("datapath_type".into(), datapath.into());
    let fail_mode = b.fail_mode.map(|f| Atom::from(f.as_ovs()));
    row.insert("fail_mode".into(), optional(fail_mode));
    let protocols = b.protocols.iter().map(|p| Atom::from(p.as_str()));
    row.insert("protocols".into(), Datum::set(protocols));
    row.insert("other_config".into(), string_map(&b.other_config));
    row.insert("external_ids".into(), owned_ids(&b.external_ids, owner));
    record_all(&mut row);
    let mut ports: BTreeMap<String, DesiredPort> = b
        .ports
        .iter()
        .map(|p| (p.name.clone(), port(p, owner)))
        .collect();
    // The bridge's own internal port, which `ovs-vsctl add-br` also creates explicitly.
    let local = config::Port {
        name: b.name.clone(),
        kind: PortType::Internal,
        ..config::Port::default()
    };
    ports.insert(b.name.clone(), port(&local, owner));
    DesiredBridge {
        name: b.name.clone(),
        row,
        controllers: b.controllers.iter().cloned().collect(),
        ports,
    }
}

fn port(p: &config::Port, owner: &str) -> DesiredPort {
    let mut row = Row::new();
    row.insert("name".into(), p.name.as_str().into());
    let (tag, trunks, mode) = match &p.vlan {
        Some(Vlan::Access { tag }) => (Some(i64::from(*tag)), vec![], Some("access")),
        Some(Vlan::Trunk { trunks }) => (
            None,
            trunks.iter().map(|t| i64::from(*t)).collect(),
            Some("trunk"),
        ),
        None => (None, vec![], None),
    };
    row.insert("tag".into(), optional(tag.map(Atom::from)));
    row.insert(
        "trunks".into(),
        Datum::set(trunks.into_iter().map(Atom::from)),
    );
    row.insert("vlan_mode".into(), optional(mode.map(Atom::from)));
    let bond_mode = p.bond_mode.map(|m| Atom::from(m.as_ovs()));
    row.insert("bond_mode".into(), optional(bond_mode));
    row.insert(
        "lacp".into(),
        optional(p.lacp.map(|l| Atom::from(l.as_ovs()))),
    );
    row.insert("external_ids".into(), owned_ids(&BTreeMap::new(), owner));
    record_all(&mut row);
    let names: Vec<&str> = if p.is_bond() {
        p.interfaces.iter().map(String::as_str).collect()
    } else {
        vec![p.name.as_str()]
    };
    let interfaces = names
        .into_iter()
        .map(|name| (name.to_string(), interface(p, name, owner)))
        .collect();
    DesiredPort {
        name: p.name.clone(),
        row,
        interfaces,
        addresses: p.addresses.clone(),
    }
}

fn interface(p: &config::Port, name: &str, owner: &str) -> Row {
    let mut row = Row::new();
    row.insert("name".into(), name.into());
    row.insert("type".into(), p.kind.as_ovs().into());
    let mut options = p.options.clone();
    if p.kind == PortType::Patch {
        if let Some(peer) = &p.peer {
            options.insert("peer".into(), peer.clone());
        }
    }
    row.insert("options".into(), string_map(&options));
    let mtu = p.mtu.map(|m| Atom::from(i64::from(m)));
    row.insert("mtu_request".into(), optional(mtu));
    row.insert("external_ids".into(), owned_ids(&BTreeMap::new(), owner));
    record_all(&mut row);
    row
}

/// Rows by uuid, shared with the cache they came from: taking a snapshot copies no row.
pub type Rows = BTreeMap<Uuid, Arc<Row>>;

/// The rows of the monitored tables, as the monitor cache holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The Open_vSwitch row.
    pub root: Option<(Uuid, Row)>,
    pub bridges: Rows,
    pub ports: Rows,
    pub interfaces: Rows,
    pub controllers: Rows,
}

impl Observed {
    pub fn from_cache(cache: &Cache) -> Observed {
        let table = |name: &str| -> Rows {
            cache
                .shared_table(name)
                .map(|(u, r)| (*u, Arc::clone(r)))
                .collect()
        };
        Observed {
            root: cache
                .table("Open_vSwitch")
                .next()
                .map(|(u, r)| (*u, r.clone())),
            bridges: table("Bridge"),
            ports: table("Port"),
            interfaces: table("Interface"),
            controllers: table("Controller"),
        }
    }
}

/// The MAC of internal port `port` on the host whose `system-id` is `system_id`: 48 bits of a
/// 64-bit FNV-1a hash of both (fixed by definition, unlike std's hasher, so it never changes
/// with the toolchain), marked locally administered and unicast. Another host (another
/// system-id) gets another MAC for a port of the same name.
pub fn stable_mac(system_id: &str, port: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in system_id.bytes().chain([0]).chain(port.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&hash.to_be_bytes()[2..]);
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A row's name column.
pub fn name(row: &Row) -> &str {
    row.get("name").and_then(Datum::as_str).unwrap_or_default()
}

/// Whether `row` carries this appliance's owner mark.
pub fn owned_by(row: &Row, owner: &str) -> bool {
    row.get("external_ids")
        .and_then(|ids| ids.map_get(OWNER_KEY))
        .and_then(Atom::as_str)
        == Some(owner)
}

/// The uuids in a set-of-references column.
pub fn refs(row: &Row, column: &str) -> BTreeSet<Uuid> {
    ref_iter(row, column).collect()
}

/// The uuids in a set-of-references column, without collecting them.
pub fn ref_iter<'a>(row: &'a Row, column: &str) -> impl Iterator<Item = Uuid> + 'a {
    row.get(column)
        .map_or(&[][..], Datum::atoms)
        .iter()
        .filter_map(Atom::as_uuid)
}
