use super::*;
use crate::ovsdb::Operation;

fn uuid(n: u8) -> Uuid {
    format!("00000000-0000-0000-0000-0000000000{n:02x}")
        .parse()
        .unwrap()
}

fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn spec(bridge: &str) -> NetworkSpec {
    NetworkSpec {
        bridge: bridge.into(),
        vlan: Some(10),
        gateway4: "10.1.0.1/24".into(),
        ..NetworkSpec::default()
    }
}

/// br-cfg (the config's), br-drv (the driver's, holding network n1 and one endpoint), br-int
/// (someone else's).
fn snapshot() -> Snapshot {
    let n1 = serde_json::to_string(&spec("br-drv")).unwrap();
    let key = format!("{NETWORK_PREFIX}n1");
    let mut ports = BTreeMap::new();
    let port = |u: u8, name: &str, ext: &[(&str, &str)]| PortRow {
        uuid: uuid(u),
        name: name.into(),
        interfaces: vec![uuid(u + 100)],
        external_ids: ids(ext),
    };
    for p in [
        port(10, "br-drv", &[(MARK, "default")]),
        port(
            11,
            "ovsaaaaaaaaaaaa",
            &[
                (MARK, "default"),
                (NETWORK_ID, "n1"),
                (ENDPOINT_ID, "aaaaaaaaaaaaaaaa"),
            ],
        ),
        port(20, "br-cfg", &[(OWNER_KEY, "default")]),
    ] {
        ports.insert(p.uuid, p);
    }
    Snapshot {
        root: Some(uuid(1)),
        datapath: Some("netdev".into()),
        bridges: vec![
            BridgeRow {
                uuid: uuid(2),
                name: "br-drv".into(),
                ports: vec![uuid(10), uuid(11)],
                external_ids: ids(&[(MARK, "default"), (key.as_str(), n1.as_str())]),
            },
            BridgeRow {
                uuid: uuid(3),
                name: "br-cfg".into(),
                ports: vec![uuid(20)],
                external_ids: ids(&[(OWNER_KEY, "default")]),
            },
            BridgeRow {
                uuid: uuid(4),
                name: "br-int".into(),
                ports: vec![],
                external_ids: ids(&[]),
            },
        ],
        ports,
    }
}

#[test]
fn owners_networks_and_endpoints_are_read_back() {
    let snap = snapshot();
    let owner = |n: &str| snap.owner(snap.bridge(n).unwrap(), "default");
    assert_eq!(owner("br-drv"), BridgeOwner::Driver);
    assert_eq!(owner("br-cfg"), BridgeOwner::Config);
    assert_eq!(owner("br-int"), BridgeOwner::Foreign);
    // Another instance's rows are not this one's.
    assert_eq!(
        snap.owner(snap.bridge("br-cfg").unwrap(), "other"),
        BridgeOwner::Foreign
    );
    let (bridge, got) = snap.network("n1").unwrap();
    assert_eq!((bridge.name.as_str(), got), ("br-drv", spec("br-drv")));
    assert_eq!(snap.networks().len(), 1);
    let eps = snap.endpoints("default");
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].endpoint_id, "aaaaaaaaaaaaaaaa");
    assert_eq!(eps[0].bridge, uuid(2));
    assert!(snap.endpoints("other").is_empty());
}

#[test]
fn names_fit_in_ifnamsiz() {
    let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for name in [host_name(id), container_name(id), gateway_name(id)] {
        assert_eq!(name.len(), 15, "{name}");
        assert!(crate::config::device_name_problem(&name).is_none());
    }
    assert_ne!(host_name(id), container_name(id));
}

#[test]
fn a_network_on_a_new_bridge_is_one_transaction_guarded_by_the_name() {
    let snap = snapshot();
    let mut s = spec("br-new");
    s.gateway_port = true;
    let ops = create_network(&snap, "default", "n2", &s, None, "netdev");
    let json: Vec<String> = ops.iter().map(|o| o.to_json().to_string()).collect();
    // Refused at once if a bridge or port of that name appears meanwhile.
    assert!(json[0].contains("\"wait\"") && json[0].contains("br-new"));
    assert!(json[1].contains("\"Port\""));
    let bridge = ops
        .iter()
        .find_map(|o| match o {
            Operation::Insert { table, row, .. } if table == "Bridge" => Some(row),
            _ => None,
        })
        .unwrap();
    let ext = bridge["external_ids"].clone();
    assert_eq!(ext.map_get(MARK).and_then(Atom::as_str), Some("default"));
    assert!(ext
        .map_get(&format!("{NETWORK_PREFIX}n2"))
        .and_then(Atom::as_str)
        .unwrap()
        .contains("\"vlan\":10"));
    assert_eq!(bridge["datapath_type"].as_str(), Some("netdev"));
    // The gateway port is an internal port with the VLAN's tag, on the new bridge.
    let gw = gateway_name("n2");
    assert!(json
        .iter()
        .any(|j| j.contains(&gw) && j.contains("internal")));
    assert!(json.iter().any(|j| j.contains("\"tag\":10")));
    assert!(json.iter().any(|j| j.contains("named-uuid")
        && j.contains("new_bridge")
        && j.contains("mutate")
        && j.contains("\"Bridge\"")));
    assert!(json.last().unwrap().contains("next_cfg"));
}

#[test]
fn deleting_the_last_network_of_a_driver_bridge_deletes_the_bridge() {
    let snap = snapshot();
    let (ops, devices) = delete_network(&snap, "default", "n1");
    assert_eq!(devices, ["ovsaaaaaaaaaaaa"]);
    let json: Vec<String> = ops.iter().map(|o| o.to_json().to_string()).collect();
    assert!(json[0].contains("external_ids") && json[0].contains("delete"));
    assert!(json
        .iter()
        .any(|j| j.contains("Open_vSwitch") && j.contains("\"bridges\"")));
    // Unknown network: nothing to do.
    assert_eq!(delete_network(&snap, "default", "zz").0.len(), 0);
}

#[test]
fn a_config_bridge_keeps_living_without_networks() {
    let mut snap = snapshot();
    let key = format!("{NETWORK_PREFIX}n3");
    let cfg = snap
        .bridges
        .iter_mut()
        .find(|b| b.name == "br-cfg")
        .unwrap();
    cfg.external_ids
        .insert(key, serde_json::to_string(&spec("br-cfg")).unwrap());
    let (ops, devices) = delete_network(&snap, "default", "n3");
    assert!(devices.is_empty());
    let json: Vec<String> = ops.iter().map(|o| o.to_json().to_string()).collect();
    assert!(!json.iter().any(|j| j.contains("\"bridges\"")), "{json:?}");
    assert!(!json.iter().any(|j| j.contains("\"ports\"")), "{json:?}");
}

#[test]
fn an_endpoint_is_a_port_and_interface_guarded_by_its_network() {
    let snap = snapshot();
    let (bridge, s) = snap.network("n1").unwrap();
    let ep = NewEndpoint {
        network_id: "n1",
        endpoint_id: "bbbbbbbbbbbbbbbbbbbb",
        mac: "02:bb:bb:bb:bb:bb",
        address: "10.1.0.5/24",
        address_ipv6: "",
    };
    let ops = add_endpoint(&snap, "default", bridge, &s, &ep);
    let json: Vec<String> = ops.iter().map(|o| o.to_json().to_string()).collect();
    assert!(json[0].contains("includes") && json[0].contains("ovs-appliance-docker-network-n1"));
    let iface = ops
        .iter()
        .find_map(|o| match o {
            Operation::Insert { table, row, .. } if table == "Interface" => Some(row),
            _ => None,
        })
        .unwrap();
    let ext = &iface["external_ids"];
    let get = |k: &str| ext.map_get(k).and_then(Atom::as_str).map(String::from);
    assert_eq!(get("iface-id").as_deref(), Some("bbbbbbbbbbbbbbbbbbbb"));
    assert_eq!(get("attached-mac").as_deref(), Some("02:bb:bb:bb:bb:bb"));
    assert_eq!(get(NETWORK_ID).as_deref(), Some("n1"));
    assert_eq!(get("docker-address").as_deref(), Some("10.1.0.5/24"));
    assert_eq!(iface["name"].as_str(), Some("ovsbbbbbbbbbbbb"));
    assert!(json.iter().any(|j| j.contains("\"tag\":10")));
}
