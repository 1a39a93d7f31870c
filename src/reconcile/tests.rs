//! Table-driven tests of `plan` and `operations`, over observed states built by hand: no OVS.

use super::model::{name, refs, DesiredBridge};
use super::*;
use crate::config::Config;
use crate::ovsdb::{Atom, Datum, Operation, Row, Uuid};
use crate::preflight::Datapath;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn desired(toml: &str) -> Desired {
    let config = Config::from_toml(toml, Path::new("t.toml")).unwrap();
    Desired::from_config(&config, Datapath::Netdev)
}

/// The owner mark a desired bridge carries.
fn desired_owner(bridge: &DesiredBridge) -> Option<&str> {
    bridge.row["external_ids"]
        .map_get(OWNER_KEY)
        .and_then(Atom::as_str)
}

/// The database as it would be after `desired` was applied: rows with made-up uuids.
struct Db {
    obs: Observed,
    next: u32,
}

impl Db {
    fn new() -> Db {
        let mut db = Db {
            obs: Observed::default(),
            next: 0,
        };
        let root = db.uuid();
        let mut row = Row::new();
        row.insert("bridges".into(), Datum::empty());
        db.obs.root = Some((root, row));
        db
    }

    fn uuid(&mut self) -> Uuid {
        self.next += 1;
        let mut b = [0xaa; 16];
        b[..4].copy_from_slice(&self.next.to_be_bytes());
        Uuid::from_bytes(b)
    }

    fn from(desired: &Desired) -> Db {
        let mut db = Db::new();
        for bridge in desired.bridges.values() {
            db.add_bridge(bridge);
        }
        db
    }

    fn add_bridge(&mut self, bridge: &DesiredBridge) -> Uuid {
        let mut ports = Vec::new();
        for port in bridge.ports.values() {
            let members: Vec<Atom> = port
                .interfaces
                .values()
                .map(|row| {
                    let u = self.uuid();
                    self.obs.interfaces.insert(u, Arc::new(row.clone()));
                    Atom::Uuid(u)
                })
                .collect();
            let mut row = port.row.clone();
            row.insert("interfaces".into(), Datum::set(members));
            let u = self.uuid();
            self.obs.ports.insert(u, Arc::new(row));
            ports.push(Atom::Uuid(u));
        }
        let controllers: Vec<Atom> = bridge
            .controllers
            .iter()
            .map(|t| {
                let u = self.uuid();
                let mut row = Row::new();
                row.insert("target".into(), t.as_str().into());
                if let Some(owner) = desired_owner(bridge) {
                    let mark = Datum::map([(OWNER_KEY, owner)]);
                    row.insert("external_ids".into(), mark);
                }
                self.obs.controllers.insert(u, Arc::new(row));
                Atom::Uuid(u)
            })
            .collect();
        let mut row = bridge.row.clone();
        row.insert("ports".into(), Datum::set(ports));
        row.insert("controller".into(), Datum::set(controllers));
        let u = self.uuid();
        self.obs.bridges.insert(u, Arc::new(row));
        let root = &mut self.obs.root.as_mut().unwrap().1;
        let mut bridges: Vec<Atom> = root["bridges"].atoms().to_vec();
        bridges.push(Atom::Uuid(u));
        root.insert("bridges".into(), Datum::set(bridges));
        u
    }

    fn port_mut(&mut self, port: &str) -> &mut Row {
        Arc::make_mut(
            self.obs
                .ports
                .values_mut()
                .find(|r| name(r) == port)
                .unwrap(),
        )
    }

    fn bridge_uuid(&self, bridge: &str) -> Uuid {
        *self
            .obs
            .bridges
            .iter()
            .find(|(_, r)| name(r) == bridge)
            .unwrap()
            .0
    }

    /// A port made by someone else (no owner mark) on `bridge`.
    fn foreign_port(&mut self, bridge: &str, port: &str) {
        let mut iface = Row::new();
        iface.insert("name".into(), port.into());
        let i = self.uuid();
        self.obs.interfaces.insert(i, Arc::new(iface));
        let mut row = Row::new();
        row.insert("name".into(), port.into());
        row.insert("interfaces".into(), Datum::set([Atom::Uuid(i)]));
        let p = self.uuid();
        self.obs.ports.insert(p, Arc::new(row));
        let b = self.bridge_uuid(bridge);
        let bridge = Arc::make_mut(self.obs.bridges.get_mut(&b).unwrap());
        let mut ports = bridge["ports"].atoms().to_vec();
        ports.push(Atom::Uuid(p));
        bridge.insert("ports".into(), Datum::set(ports));
    }
}

const BASE: &str = r#"
[[bridges]]
name = "br0"
fail_mode = "standalone"
protocols = ["OpenFlow13"]
controllers = ["tcp:127.0.0.1:6653"]
other_config = { stp-enable = "false" }
  [[bridges.ports]]
  name = "p1"
  vlan = { mode = "access", tag = 10 }
  [[bridges.ports]]
  name = "mgmt0"
  type = "internal"
  mtu = 1400
  addresses = ["192.0.2.1/24"]
  [[bridges.ports]]
  name = "bond0"
  interfaces = ["eth1", "eth2"]
  bond_mode = "active-backup"
  lacp = "off"
  [[bridges.ports]]
  name = "vx0"
  type = "vxlan"
  options = { remote_ip = "198.51.100.1", key = "5" }
"#;

fn summary(plan: &Plan) -> Vec<String> {
    plan.changes.iter().map(ToString::to_string).collect()
}

#[test]
fn nothing_wanted_nothing_there_is_a_no_op() {
    let plan = plan(&desired(""), &Db::new().obs);
    assert!(plan.is_empty() && plan.conflicts.is_empty());
}

#[test]
fn a_new_bridge_is_added_with_its_ports_and_local_port() {
    let want = desired(BASE);
    let plan = plan(&want, &Db::new().obs);
    assert_eq!(summary(&plan), ["add bridge br0 with 5 port(s)"]);
    let Change::AddBridge(b) = &plan.changes[0] else {
        unreachable!()
    };
    assert!(
        b.ports.contains_key("br0"),
        "the bridge's own internal port"
    );
    assert_eq!(b.ports["bond0"].interfaces.len(), 2);
}

#[test]
fn applied_state_plans_nothing() {
    let want = desired(BASE);
    let plan = plan(&want, &Db::from(&want).obs);
    assert!(plan.is_empty(), "{:?}", summary(&plan));
}

#[test]
fn every_attribute_change_is_one_update_of_that_column() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "fail_mode = \"standalone\"",
            "fail_mode = \"secure\"",
            "update bridge br0: fail_mode",
        ),
        (
            "protocols = [\"OpenFlow13\"]",
            "protocols = [\"OpenFlow14\"]",
            "update bridge br0: protocols",
        ),
        (
            "other_config = { stp-enable = \"false\" }",
            "other_config = { stp-enable = \"true\" }",
            "update bridge br0: other_config[stp-enable]",
        ),
        (
            "name = \"br0\"\n",
            "name = \"br0\"\nexternal_ids = { team = \"net\" }\n",
            "update bridge br0: external_ids[team], external_ids[ovs-appliance-keys]",
        ),
        (
            "name = \"br0\"\n",
            "name = \"br0\"\ndatapath = \"system\"\n",
            "update bridge br0: datapath_type",
        ),
        (
            "controllers = [\"tcp:127.0.0.1:6653\"]",
            "controllers = []",
            "controllers of br0: -tcp:127.0.0.1:6653",
        ),
        ("tag = 10", "tag = 20", "update port p1: tag"),
        (
            "vlan = { mode = \"access\", tag = 10 }",
            "vlan = { mode = \"trunk\", trunks = [10, 20] }",
            "update port p1: tag, trunks, vlan_mode",
        ),
        (
            "bond_mode = \"active-backup\"",
            "bond_mode = \"balance-slb\"",
            "update port bond0: bond_mode",
        ),
        (
            "lacp = \"off\"",
            "lacp = \"active\"",
            "update port bond0: lacp",
        ),
        (
            "mtu = 1400",
            "mtu = 9000",
            "update interface mgmt0: mtu_request",
        ),
        (
            "key = \"5\"",
            "key = \"6\"",
            "update interface vx0: options[key]",
        ),
        (
            "type = \"vxlan\"",
            "type = \"geneve\"",
            "update interface vx0: type",
        ),
        (
            "[\"eth1\", \"eth2\"]",
            "[\"eth1\", \"eth3\"]",
            "change members of bond0: +1 -1",
        ),
    ];
    let before = desired(BASE);
    for (from, to, want) in cases {
        assert!(BASE.contains(from), "{from}");
        let after = desired(&BASE.replacen(from, to, 1));
        let plan = plan(&after, &Db::from(&before).obs);
        assert_eq!(summary(&plan), [*want], "{from} -> {to}");
    }
}

#[test]
fn drift_by_hand_is_planned_back() {
    let want = desired(BASE);
    let mut db = Db::from(&want);
    db.port_mut("p1").insert("tag".into(), Datum::from(99i64));
    let plan = plan(&want, &db.obs);
    assert_eq!(summary(&plan), ["update port p1: tag"]);
    let Change::UpdatePort { set, was, .. } = &plan.changes[0] else {
        unreachable!()
    };
    assert_eq!(set["tag"], Datum::from(10i64));
    assert_eq!(
        was["tag"],
        Datum::from(99i64),
        "the guard holds what we saw"
    );

    // A port deleted by hand comes back.
    let p1 = *db
        .obs
        .ports
        .iter()
        .find(|(_, r)| name(r) == "p1")
        .unwrap()
        .0;
    db.obs.ports.remove(&p1);
    let b = db.bridge_uuid("br0");
    let bridge = Arc::make_mut(db.obs.bridges.get_mut(&b).unwrap());
    let ports: Vec<Atom> = refs(bridge, "ports")
        .into_iter()
        .filter(|u| *u != p1)
        .map(Atom::Uuid)
        .collect();
    bridge.insert("ports".into(), Datum::set(ports));
    assert_eq!(
        summary(&super::plan(&want, &db.obs)),
        ["add port p1 to br0"]
    );
}

#[test]
fn removing_a_port_from_the_config_removes_it_and_only_it() {
    let before = desired(BASE);
    let after = desired(&BASE.replace(
        "  [[bridges.ports]]\n  name = \"p1\"\n  vlan = { mode = \"access\", tag = 10 }\n",
        "",
    ));
    let mut db = Db::from(&before);
    db.foreign_port("br0", "handmade");
    let plan = plan(&after, &db.obs);
    assert_eq!(summary(&plan), ["remove port p1 from br0"]);
    let Change::RemovePort { interfaces, .. } = &plan.changes[0] else {
        unreachable!()
    };
    assert_eq!(interfaces.len(), 1);
}

#[test]
fn foreign_rows_are_never_touched() {
    let want = desired(BASE);
    let mut db = Db::new();
    // br0 made by hand: same name, no owner mark.
    let mut foreign = want.bridges["br0"].clone();
    foreign.row.insert(
        "external_ids".into(),
        Datum::map(Vec::<(&str, &str)>::new()),
    );
    for port in foreign.ports.values_mut() {
        port.row.insert(
            "external_ids".into(),
            Datum::map(Vec::<(&str, &str)>::new()),
        );
    }
    db.add_bridge(&foreign);
    let plan = plan(&want, &db.obs);
    assert!(plan.is_empty(), "{:?}", summary(&plan));
    assert_eq!(plan.conflicts.len(), 1);
    assert!(plan.conflicts[0].contains("bridge br0 exists but was not made by this appliance"));

    // A foreign bridge the config does not name is not removed.
    let plan = super::plan(&desired(""), &db.obs);
    assert!(plan.is_empty() && plan.conflicts.is_empty());
}

#[test]
fn a_configured_port_name_held_by_a_foreign_port_is_a_conflict() {
    let want = desired(BASE);
    let mut db = Db::from(&desired("[[bridges]]\nname = \"br0\""));
    db.foreign_port("br0", "p1");
    let plan = plan(&want, &db.obs);
    assert!(
        !summary(&plan).iter().any(|c| c.contains("p1")),
        "{:?}",
        summary(&plan)
    );
    assert!(
        plan.conflicts.iter().any(|c| c.contains("port p1")),
        "{:?}",
        plan.conflicts
    );
}

#[test]
fn a_removed_bridge_goes_unless_it_holds_foreign_ports() {
    let before = desired(BASE);
    let mut db = Db::from(&before);
    assert_eq!(summary(&plan(&desired(""), &db.obs)), ["remove bridge br0"]);
    db.foreign_port("br0", "handmade");
    let plan = plan(&desired(""), &db.obs);
    assert!(plan.is_empty());
    assert!(
        plan.conflicts[0].contains("handmade"),
        "{:?}",
        plan.conflicts
    );
}

#[test]
fn a_port_moved_between_bridges_is_removed_and_added_in_one_plan() {
    let two = "[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"p1\"\n[[bridges]]\nname = \"br1\"\n";
    let moved = "[[bridges]]\nname = \"br0\"\n[[bridges]]\nname = \"br1\"\n[[bridges.ports]]\nname = \"p1\"\n";
    let plan = plan(&desired(moved), &Db::from(&desired(two)).obs);
    assert_eq!(
        summary(&plan),
        ["remove port p1 from br0", "add port p1 to br1"]
    );
}

#[test]
fn operations_guard_first_and_end_with_next_cfg() {
    let before = desired(BASE);
    let after = desired(
        &BASE
            .replace("tag = 10", "tag = 11")
            .replace("mtu = 1400", "mtu = 1500"),
    );
    let db = Db::from(&before);
    let plan = plan(&after, &db.obs);
    let ops = operations(&plan, &after, &db.obs);
    let names: Vec<&str> = ops.iter().map(Operation::name).collect();
    assert_eq!(
        names,
        ["wait", "wait", "comment", "update", "update", "mutate", "select"],
        "{ops:?}"
    );
    assert!(operations(&Plan::default(), &after, &db.obs).is_empty());
}

#[test]
fn adding_ports_to_one_bridge_guards_it_once() {
    let before = desired("[[bridges]]\nname = \"br0\"");
    let after = desired("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"a\"\n[[bridges.ports]]\nname = \"b\"\n");
    let db = Db::from(&before);
    let ops = operations(&plan(&after, &db.obs), &after, &db.obs);
    let waits = ops.iter().filter(|o| o.name() == "wait").count();
    assert_eq!(waits, 1, "{ops:?}");
    let inserts = ops.iter().filter(|o| o.name() == "insert").count();
    assert_eq!(inserts, 4, "two ports, two interfaces");
}

#[test]
fn controllers_are_kept_in_place_and_only_the_appliances_are_removed() {
    let want = desired(BASE);
    let mut db = Db::from(&want);
    let br0 = db.bridge_uuid("br0");
    // Another tool's controller on the owned bridge, and a column of ours set by hand.
    let theirs = db.uuid();
    let mut row = Row::new();
    row.insert("target".into(), "tcp:127.0.0.1:7000".into());
    db.obs.controllers.insert(theirs, Arc::new(row));
    let bridge = Arc::make_mut(db.obs.bridges.get_mut(&br0).unwrap());
    let mut refs: Vec<Atom> = bridge["controller"].atoms().to_vec();
    refs.push(Atom::Uuid(theirs));
    bridge.insert("controller".into(), Datum::set(refs));
    for row in db.obs.controllers.values_mut() {
        Arc::make_mut(row).insert("connection_mode".into(), "out-of-band".into());
    }
    assert!(plan(&want, &db.obs).is_empty(), "nothing to do");

    let more = desired(&BASE.replace(
        "controllers = [\"tcp:127.0.0.1:6653\"]",
        "controllers = [\"tcp:127.0.0.1:6653\", \"tcp:127.0.0.1:6654\"]",
    ));
    let p = plan(&more, &db.obs);
    assert_eq!(summary(&p), ["controllers of br0: +tcp:127.0.0.1:6654"]);
    let ops = operations(&p, &more, &db.obs);
    // No guard on the controller column (another tool may add one meanwhile), no update of it:
    // one reference inserted, with a new marked row.
    assert!(
        ops.iter()
            .all(|o| !matches!(o, Operation::Wait { .. } | Operation::Update { .. })),
        "{ops:?}"
    );
    let inserted = ops.iter().find_map(|o| match o {
        Operation::Insert { table, row, .. } if table == "Controller" => Some(row),
        _ => None,
    });
    assert_eq!(
        inserted.unwrap()["external_ids"]
            .map_get(OWNER_KEY)
            .and_then(Atom::as_str),
        Some("default")
    );

    let none = desired(&BASE.replace("controllers = [\"tcp:127.0.0.1:6653\"]", "controllers = []"));
    let p = plan(&none, &db.obs);
    assert_eq!(summary(&p), ["controllers of br0: -tcp:127.0.0.1:6653"]);
    let Change::SetControllers { remove, .. } = &p.changes[0] else {
        unreachable!()
    };
    assert!(remove.iter().all(|(u, _)| *u != theirs), "theirs stays");
}

#[test]
fn a_controller_made_by_an_older_version_is_adopted_not_replaced() {
    let want = desired(BASE);
    let mut db = Db::from(&want);
    for row in db.obs.controllers.values_mut() {
        Arc::make_mut(row).remove("external_ids");
    }
    let p = plan(&want, &db.obs);
    assert_eq!(summary(&p), ["controllers of br0: mark 1 as owned"]);
    let ops = operations(&p, &want, &db.obs);
    assert!(
        ops.iter()
            .all(|o| !matches!(o, Operation::Insert { .. } | Operation::Delete { .. })),
        "{ops:?}"
    );
}

#[test]
fn internal_ports_get_a_mac_of_this_host_that_stays_when_they_are_made_again() {
    use super::model::stable_mac;
    let mac = stable_mac("5a3b-host-a", "mgmt0");
    assert_eq!(
        mac,
        stable_mac("5a3b-host-a", "mgmt0"),
        "the same every time"
    );
    assert_ne!(
        mac,
        stable_mac("5a3b-host-b", "mgmt0"),
        "another host, another MAC"
    );
    assert_ne!(mac, stable_mac("5a3b-host-a", "mgmt1"));
    let first = u8::from_str_radix(&mac[..2], 16).unwrap();
    assert_eq!(first & 0x03, 0x02, "locally administered unicast: {mac}");
    assert_eq!(mac.len(), 17);

    let want = desired(BASE);
    let mut db = Db::new();
    let root = &mut db.obs.root.as_mut().unwrap().1;
    root.insert(
        "external_ids".into(),
        Datum::map([("system-id", "5a3b-host-a")]),
    );
    let p = plan(&want, &db.obs);
    let ops = operations(&p, &want, &db.obs);
    let macs: BTreeMap<&str, Option<&Datum>> = ops
        .iter()
        .filter_map(|o| match o {
            Operation::Insert { table, row, .. } if table == "Interface" => {
                Some((name(row), row.get("mac")))
            }
            _ => None,
        })
        .collect();
    assert_eq!(macs["mgmt0"], Some(&Datum::from(mac.as_str())));
    assert_eq!(macs["br0"], None, "the bridge's local port is left to OVS");
    assert_eq!(macs["p1"], None, "system ports keep their device's MAC");
}
