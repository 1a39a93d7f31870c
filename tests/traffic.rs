//! Tier 2: traffic between namespaces through bridges the appliance made from its config:
//! ping, TCP (iperf3), VLAN access and trunk ports, a patch pair, an internal port's address.

mod common;

use common::net::{iperf3, ns_ok, Host};
use common::*;
use std::time::Duration;

/// An appliance on the netdev datapath with `bridges` (TOML), started once its hosts exist.
fn appliance(bridges: &str) -> Option<Appliance> {
    require_real_ovs().then(|| Appliance::new(&format!("datapath = \"netdev\"\n{bridges}")))
}

fn ports_present(app: &Appliance, bridge: &str, ports: &[&str]) {
    wait_for(Duration::from_secs(20), "the configured ports", || {
        let out = app.vsctl(&["list-ports", bridge]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        ports
            .iter()
            .all(|p| text.lines().any(|l| l == *p))
            .then_some(())
    });
}

const TWO_HOSTS: &str = r#"
[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "s1"
  [[bridges.ports]]
  name = "s2"
"#;

#[test]
fn ping_and_tcp_cross_a_netdev_bridge_with_the_tso_default() {
    let Some(mut app) = appliance(TWO_HOSTS) else {
        return;
    };
    let h1 = Host::new(&app.netns.name, "s1", "10.61.0.1/24");
    let h2 = Host::new(&app.netns.name, "s2", "10.61.0.2/24");
    app.start_ready();
    ports_present(&app, "br0", &["s1", "s2"]);
    h1.ping(&h2.addr);
    let tso = app.vsctl_stdout(&[
        "get",
        "Open_vSwitch",
        ".",
        "other_config:userspace-tso-enable",
    ]);
    assert_eq!(tso.trim(), "\"true\"");
    // No `tx off` anywhere: the userspace-tso default is what makes TCP work here.
    let bps = iperf3(&h1, &h2, 2).expect("TCP through the bridge");
    eprintln!(
        "iperf3 with userspace-tso-enable=true: {:.2} Gbit/s",
        bps / 1e9
    );
}

#[test]
fn tcp_works_with_tso_off_when_hosts_turn_tx_offload_off() {
    let Some(mut app) = appliance(TWO_HOSTS) else {
        return;
    };
    app.write_config(&format!(
        "datapath = \"netdev\"\nuserspace_tso = false\n{TWO_HOSTS}"
    ));
    let h1 = Host::new(&app.netns.name, "s1", "10.62.0.1/24");
    let h2 = Host::new(&app.netns.name, "s2", "10.62.0.2/24");
    h1.tx_off();
    h2.tx_off();
    app.start_ready();
    ports_present(&app, "br0", &["s1", "s2"]);
    let tso = app.vsctl_stdout(&[
        "get",
        "Open_vSwitch",
        ".",
        "other_config:userspace-tso-enable",
    ]);
    assert_eq!(tso.trim(), "\"false\"");
    h1.ping(&h2.addr);
    let bps = iperf3(&h1, &h2, 2).expect("TCP with tx off");
    eprintln!(
        "iperf3 with userspace-tso-enable=false and tx off: {:.2} Gbit/s",
        bps / 1e9
    );
}

#[test]
fn access_ports_of_one_vlan_reach_each_other_and_not_another_vlan() {
    let bridges = r#"
[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "s1"
  vlan = { mode = "access", tag = 10 }
  [[bridges.ports]]
  name = "s2"
  vlan = { mode = "access", tag = 10 }
  [[bridges.ports]]
  name = "s3"
  vlan = { mode = "access", tag = 20 }
"#;
    let Some(mut app) = appliance(bridges) else {
        return;
    };
    let h1 = Host::new(&app.netns.name, "s1", "10.63.0.1/24");
    let h2 = Host::new(&app.netns.name, "s2", "10.63.0.2/24");
    let h3 = Host::new(&app.netns.name, "s3", "10.63.0.3/24");
    app.start_ready();
    ports_present(&app, "br0", &["s1", "s2", "s3"]);
    h1.ping(&h2.addr);
    assert!(
        h1.cannot_ping(&h3.addr, 3),
        "VLAN 10 must not reach VLAN 20"
    );
    assert!(h3.cannot_ping(&h2.addr, 2));
}

/// The kernel here has no 8021q module, so no host can tag frames itself: the trunk joins two
/// bridges over a veth wire instead, and each bridge tags and untags at its access ports.
#[test]
fn a_trunk_carries_tagged_traffic() {
    let bridges = r#"
[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "s1"
  vlan = { mode = "access", tag = 10 }
  [[bridges.ports]]
  name = "s3"
  vlan = { mode = "access", tag = 30 }
  [[bridges.ports]]
  name = "t0"
  vlan = { mode = "trunk", trunks = [10, 20] }
[[bridges]]
name = "br1"
  [[bridges.ports]]
  name = "s2"
  vlan = { mode = "access", tag = 10 }
  [[bridges.ports]]
  name = "s4"
  vlan = { mode = "access", tag = 30 }
  [[bridges.ports]]
  name = "t1"
  vlan = { mode = "trunk", trunks = [10, 20] }
"#;
    let Some(mut app) = appliance(bridges) else {
        return;
    };
    let ns = app.netns.name.clone();
    ns_ok(
        &ns,
        &[
            "ip", "link", "add", "t0", "type", "veth", "peer", "name", "t1",
        ],
    );
    ns_ok(&ns, &["ip", "link", "set", "t0", "up"]);
    ns_ok(&ns, &["ip", "link", "set", "t1", "up"]);
    let h1 = Host::new(&ns, "s1", "10.64.0.1/24");
    let h2 = Host::new(&ns, "s2", "10.64.0.2/24");
    let h3 = Host::new(&ns, "s3", "10.64.0.3/24");
    let h4 = Host::new(&ns, "s4", "10.64.0.4/24");
    app.start_ready();
    ports_present(&app, "br0", &["s1", "s3", "t0"]);
    ports_present(&app, "br1", &["s2", "s4", "t1"]);
    h1.ping(&h2.addr);
    assert!(h3.cannot_ping(&h4.addr, 3), "VLAN 30 is not in the trunk");
}

#[test]
fn a_patch_pair_joins_two_bridges() {
    let bridges = r#"
[[bridges]]
name = "br-a"
  [[bridges.ports]]
  name = "s1"
  [[bridges.ports]]
  name = "pa"
  type = "patch"
  peer = "pb"
[[bridges]]
name = "br-b"
  [[bridges.ports]]
  name = "s2"
  [[bridges.ports]]
  name = "pb"
  type = "patch"
  peer = "pa"
"#;
    let Some(mut app) = appliance(bridges) else {
        return;
    };
    let h1 = Host::new(&app.netns.name, "s1", "10.65.0.1/24");
    let h2 = Host::new(&app.netns.name, "s2", "10.65.0.2/24");
    app.start_ready();
    ports_present(&app, "br-a", &["s1", "pa"]);
    ports_present(&app, "br-b", &["s2", "pb"]);
    h1.ping(&h2.addr);
}

#[test]
fn an_internal_port_gets_its_address_and_answers_ping() {
    let bridges = r#"
[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "s1"
  [[bridges.ports]]
  name = "mgmt0"
  type = "internal"
  addresses = ["10.66.0.254/24"]
  mtu = 1400
"#;
    let Some(mut app) = appliance(bridges) else {
        return;
    };
    let h1 = Host::new(&app.netns.name, "s1", "10.66.0.1/24");
    app.start_ready();
    ports_present(&app, "br0", &["s1", "mgmt0"]);
    h1.ping("10.66.0.254");
    let link = ns_ok(&app.netns.name, &["ip", "-j", "addr", "show", "mgmt0"]);
    let json: serde_json::Value = serde_json::from_str(&link).unwrap();
    let dev = &json[0];
    assert!(
        dev["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{dev}"
    );
    assert_eq!(dev["mtu"], 1400, "mtu_request reached the device: {dev}");
    let addrs: Vec<&str> = dev["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["local"].as_str())
        .collect();
    assert!(addrs.contains(&"10.66.0.254"), "{addrs:?}");
}
