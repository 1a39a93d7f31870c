//! `[[bridges]]` parsing and validation: each bad config is named by field path and value.

use super::*;

fn parse(text: &str) -> Result<Config, Error> {
    Config::from_toml(text, Path::new("test.toml"))
}

fn errors(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const GOOD: &str = r#"
[[bridges]]
name = "br-ex"
datapath = "netdev"
fail_mode = "secure"
protocols = ["OpenFlow13"]
controllers = ["tcp:127.0.0.1:6653"]
other_config = { hwaddr = "02:00:00:00:00:01" }

  [[bridges.ports]]
  name = "eth1"
  vlan = { mode = "trunk", trunks = [10, 20] }

  [[bridges.ports]]
  name = "mgmt0"
  type = "internal"
  addresses = ["192.0.2.1/24", "2001:db8::1/64"]
  mtu = 1400
  vlan = { mode = "access", tag = 10 }

  [[bridges.ports]]
  name = "to-int"
  type = "patch"
  peer = "to-ex"

  [[bridges.ports]]
  name = "vx0"
  type = "vxlan"
  options = { remote_ip = "198.51.100.7", key = "100" }

  [[bridges.ports]]
  name = "bond0"
  interfaces = ["eth2", "eth3"]
  bond_mode = "balance-tcp"
  lacp = "active"

[[bridges]]
name = "br-int"
  [[bridges.ports]]
  name = "to-ex"
  type = "patch"
  peer = "to-int"
"#;

#[test]
fn a_full_config_parses_and_validates() {
    let config = parse(GOOD).unwrap();
    assert_eq!(config.bridges.len(), 2);
    let ports = &config.bridges[0].ports;
    assert_eq!(ports[0].kind, PortType::System);
    assert_eq!(
        ports[0].vlan,
        Some(Vlan::Trunk {
            trunks: vec![10, 20]
        })
    );
    assert_eq!(ports[1].vlan, Some(Vlan::Access { tag: 10 }));
    assert_eq!(ports[3].kind, PortType::Vxlan);
    assert_eq!(ports[4].bond_mode, Some(BondMode::BalanceTcp));
    assert_eq!(config.bridges[0].fail_mode, Some(FailMode::Secure));
}

fn one_port(port: &str) -> String {
    format!("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\n{port}\n")
}

#[test]
fn each_bad_value_is_named_by_path() {
    let cases: &[(&str, &str)] = &[
        (
            "[[bridges]]\nname = \"a-very-long-bridge\"",
            "bridges[\"a-very-long-bridge\"].name: \"a-very-long-bridge\" is longer than 15 bytes",
        ),
        (
            &one_port("name = \"a/b\""),
            "bridges[\"br0\"].ports[\"a/b\"].name: \"a/b\" contains '/', ':'",
        ),
        (
            &one_port("name = \"a b\""),
            "bridges[\"br0\"].ports[\"a b\"].name: \"a b\" contains",
        ),
        (
            &one_port("name = \"a:b\""),
            "bridges[\"br0\"].ports[\"a:b\"].name: \"a:b\" contains",
        ),
        (
            &one_port("name = \"a\\u0000b\""),
            "bridges[\"br0\"].ports[\"a\\0b\"].name: \"a\\0b\" contains",
        ),
        (
            &one_port("name = \"..\""),
            "bridges[\"br0\"].ports[\"..\"].name: \"..\" is not a device name",
        ),
        (
            &one_port("name = \"p\"\nvlan = { mode = \"access\", tag = 4095 }"),
            "bridges[\"br0\"].ports[\"p\"].vlan.tag: VLAN 4095 is outside 0..=4094",
        ),
        (
            &one_port("name = \"p\"\ntype = \"patch\"\npeer = \"p\""),
            "bridges[\"br0\"].ports[\"p\"].peer: \"p\" names itself",
        ),
        (
            "[[bridges]]\nname = \"b\"\nexternal_ids = { ovs-appliance-owner = \"x\" }",
            "bridges[\"b\"].external_ids.ovs-appliance-owner: is the appliance's own",
        ),
        (
            &one_port("name = \"\""),
            "bridges[\"br0\"].ports[0].name: must not be empty",
        ),
        (
            &one_port("name = \"p\"\nvlan = { mode = \"access\", tag = 4096 }"),
            "bridges[\"br0\"].ports[\"p\"].vlan.tag: VLAN 4096 is outside 0..=4094",
        ),
        (
            &one_port("name = \"p\"\nvlan = { mode = \"trunk\", trunks = [1, 5000] }"),
            "bridges[\"br0\"].ports[\"p\"].vlan.trunks[1]: VLAN 5000",
        ),
        (
            &one_port("name = \"p\"\ntype = \"patch\""),
            "bridges[\"br0\"].ports[\"p\"].peer: a patch port needs its peer",
        ),
        (
            &one_port("name = \"p\"\ntype = \"patch\"\npeer = \"q\""),
            "bridges[\"br0\"].ports[\"p\"].peer: \"q\" is not a patch port in this config",
        ),
        (
            &one_port("name = \"t\"\ntype = \"geneve\""),
            "bridges[\"br0\"].ports[\"t\"].options.remote_ip: a geneve tunnel needs remote_ip",
        ),
        (
            &one_port("name = \"t\"\ntype = \"gre\"\noptions = { remote_ip = \"nowhere\" }"),
            "bridges[\"br0\"].ports[\"t\"].options.remote_ip: \"nowhere\" is not an IP address",
        ),
        (
            &one_port("name = \"i\"\ntype = \"internal\"\naddresses = [\"10.0.0.1\"]"),
            "bridges[\"br0\"].ports[\"i\"].addresses[0]: invalid address \"10.0.0.1\": missing \"/prefix\"",
        ),
        (
            &one_port("name = \"i\"\ntype = \"internal\"\naddresses = [\"10.0.0.1/33\"]"),
            "invalid address \"10.0.0.1/33\": prefix 33 is longer than 32",
        ),
        (
            &one_port("name = \"i\"\ntype = \"internal\"\naddresses = [\"10.0.0.300/24\"]"),
            "invalid address \"10.0.0.300/24\": \"10.0.0.300\" is not an IP address",
        ),
        (
            &one_port("name = \"b\"\ninterfaces = [\"eth1\"]"),
            "bridges[\"br0\"].ports[\"b\"].interfaces: a bond needs at least two interfaces, got 1",
        ),
        (
            &one_port("name = \"s\"\naddresses = [\"10.0.0.1/24\"]"),
            "bridges[\"br0\"].ports[\"s\"].addresses: is only for internal ports, not a system port",
        ),
        (
            &one_port("name = \"s\"\nmtu = 20\ntype = \"internal\""),
            "bridges[\"br0\"].ports[\"s\"].mtu: 20 is outside 68..=65535",
        ),
        (
            &one_port("name = \"s\"\nbond_mode = \"active-backup\""),
            "bridges[\"br0\"].ports[\"s\"].bond_mode: is only for bonds",
        ),
        (
            "[[bridges]]\nname = \"br0\"\nprotocols = [\"OpenFlow99\"]",
            "bridges[\"br0\"].protocols[0]: \"OpenFlow99\" is not one of",
        ),
        (
            "[[bridges]]\nname = \"br0\"\ncontrollers = [\"127.0.0.1\"]",
            "bridges[\"br0\"].controllers[0]: \"127.0.0.1\" is not a controller target",
        ),
    ];
    for (text, want) in cases {
        let msg = errors(text);
        assert!(msg.contains(want), "want {want:?} in:\n{msg}\nfor:\n{text}");
    }
}

#[test]
fn duplicate_names_anywhere_are_rejected() {
    let text = r#"
[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "p1"
  [[bridges.ports]]
  name = "br0"
[[bridges]]
name = "br1"
  [[bridges.ports]]
  name = "p1"
  [[bridges.ports]]
  name = "bond0"
  interfaces = ["eth1", "p1"]
"#;
    let msg = errors(text);
    for want in [
        "bridges[\"br0\"].ports[\"br0\"].name: \"br0\" is already used by bridges[\"br0\"].name",
        "bridges[\"br1\"].ports[\"p1\"].name: \"p1\" is already used by bridges[\"br0\"].ports[\"p1\"].name",
        "bridges[\"br1\"].ports[\"bond0\"].interfaces[1]: \"p1\" is already used",
    ] {
        assert!(msg.contains(want), "want {want:?} in:\n{msg}");
    }
}

#[test]
fn patch_peers_must_be_mutual() {
    let text = r#"
[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "a"
  type = "patch"
  peer = "b"
  [[bridges.ports]]
  name = "c"
  type = "patch"
  peer = "b"
[[bridges]]
name = "br1"
  [[bridges.ports]]
  name = "b"
  type = "patch"
  peer = "a"
"#;
    let msg = errors(text);
    assert!(
        msg.contains(
            "bridges[\"br0\"].ports[\"c\"].peer: \"b\" names \"a\" as its peer, not \"c\""
        ),
        "{msg}"
    );
    assert!(!msg.contains("ports[\"a\"].peer"), "a<->b is fine: {msg}");
}

#[test]
fn unknown_keys_in_bridges_and_ports_are_named() {
    assert!(errors("[[bridges]]\nname = \"b\"\nfailmode = \"secure\"").contains("failmode"));
    assert!(errors(&one_port("name = \"p\"\ntag = 10")).contains("tag"));
    assert!(errors(&one_port("name = \"p\"\ntype = \"veth\"")).contains("veth"));
    let vlan = errors(&one_port(
        "name = \"p\"\nvlan = { mode = \"access\", tags = [1] }",
    ));
    assert!(vlan.contains("tags"), "{vlan}");
}

#[test]
fn every_error_is_reported_at_once() {
    let msg = errors(
        "[[bridges]]\nname = \"br/0\"\n[[bridges.ports]]\nname = \"p\"\ntype = \"vxlan\"\nvlan = { mode = \"access\", tag = 9999 }",
    );
    assert!(msg.contains("bridges[\"br/0\"].name"), "{msg}");
    assert!(msg.contains("options.remote_ip"), "{msg}");
    assert!(msg.contains("vlan.tag"), "{msg}");
}

#[test]
fn the_refused_key_is_the_mark_reconcile_writes() {
    assert_eq!(
        super::validate_bridges::OWNER_KEY,
        crate::reconcile::OWNER_KEY
    );
}
