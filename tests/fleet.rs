//! Tier 2: many hosts, one config. Three appliances, each in its own network namespace (a
//! "host") joined to an underlay switch, are started with the same config file and a different
//! environment (`NODE_IP`, `OVERLAY_IP`, and their own run and database directories). Each
//! builds an underlay bridge holding its address and an overlay bridge with one flow-based VXLAN
//! port (`remote_ip = "flow"`, `local_ip = "${NODE_IP}"`); forwarding rules added with
//! `ovs-ofctl` (as an overlay controller would) pick the tunnel's far end per destination, and
//! every host reaches every other through the overlay: a full mesh from one tunnel port a host.

mod common;

use common::net::{ns_ok, ns_run};
use common::*;
use std::time::Duration;

/// The file every host runs. Nothing in it differs between hosts: paths and addresses come
/// from the environment.
const FLEET: &str = r#"
[ovs]
run_dir = "${RUN_DIR}"
db_dir = "${DB_DIR}"
datapath = "netdev"

# The underlay: the host's uplink and, on an internal port, its address. The netdev datapath
# sends tunnel packets out of the bridge that holds the route to the far end.
[[bridges]]
name = "br-phy"
  [[bridges.ports]]
  name = "ul0"
  [[bridges.ports]]
  name = "phy-ip"
  type = "internal"
  addresses = ["${NODE_IP}/24"]

# The overlay: one VXLAN port whatever the number of hosts; flows choose the destination.
[[bridges]]
name = "br-ovl"
fail_mode = "secure"
external_ids = { node-ip = "${NODE_IP}" }
  [[bridges.ports]]
  name = "vx0"
  type = "vxlan"
  options = { local_ip = "${NODE_IP}", remote_ip = "flow", key = "100" }
  [[bridges.ports]]
  name = "vm0"
  type = "internal"
  addresses = ["${OVERLAY_IP}/24"]
  mtu = 1400
"#;

const HOSTS: u8 = 3;

fn underlay_ip(n: u8) -> String {
    format!("172.16.0.{n}")
}

fn overlay_ip(n: u8) -> String {
    format!("192.168.60.{n}")
}

/// The rules an overlay controller would give host `n`: from the tunnel to the local port; to
/// each other host's overlay address (IP and ARP), into the tunnel towards its underlay address.
fn flows(n: u8) -> Vec<String> {
    let mut flows = vec!["in_port=vx0,actions=output:vm0".to_string()];
    for m in (1..=HOSTS).filter(|m| *m != n) {
        for proto in ["ip,nw_dst", "arp,arp_tpa"] {
            flows.push(format!(
                "in_port=vm0,{proto}={},actions=set_field:{}->tun_dst,output:vx0",
                overlay_ip(m),
                underlay_ip(m)
            ));
        }
    }
    flows
}

#[test]
fn three_hosts_with_one_config_file_reach_each_other_over_a_flow_based_overlay() {
    if !require_real_ovs() {
        return;
    }
    let shared = tempfile::tempdir().unwrap();
    let config = shared.path().join("fleet.toml");
    std::fs::write(&config, FLEET).unwrap();
    // The underlay switch: a Linux bridge in a namespace of its own.
    let underlay = Netns::new();
    ns_ok(
        &underlay.name,
        &["ip", "link", "add", "sw", "type", "bridge"],
    );
    ns_ok(&underlay.name, &["ip", "link", "set", "sw", "up"]);

    let mut hosts: Vec<Appliance> = Vec::new();
    for n in 1..=HOSTS {
        let mut app = Appliance::new("");
        app.shared_config = Some(config.clone());
        app.env = vec![
            ("RUN_DIR".into(), app.run_dir().display().to_string()),
            ("DB_DIR".into(), app.db_dir().display().to_string()),
            ("NODE_IP".into(), underlay_ip(n)),
            ("OVERLAY_IP".into(), overlay_ip(n)),
        ];
        let port = format!("p{n}");
        ns_ok(
            &app.netns.name,
            &[
                "ip",
                "link",
                "add",
                "ul0",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &underlay.name,
            ],
        );
        ns_ok(&app.netns.name, &["ip", "link", "set", "ul0", "up"]);
        ns_ok(
            &underlay.name,
            &["ip", "link", "set", &port, "master", "sw", "up"],
        );
        app.start_ready();
        hosts.push(app);
    }

    for (i, app) in hosts.iter().enumerate() {
        let n = i as u8 + 1;
        // One config, three hosts: each expanded it with its own environment.
        let ids = app.vsctl_stdout(&["get", "Bridge", "br-ovl", "external_ids:node-ip"]);
        assert_eq!(ids.trim().trim_matches('"'), underlay_ip(n));
        let vx = app.vsctl_stdout(&["get", "Interface", "vx0", "options"]);
        assert!(
            vx.contains(&format!("local_ip=\"{}\"", underlay_ip(n))),
            "{vx}"
        );
        assert!(vx.contains("remote_ip=flow"), "{vx}");
        let ports = app.vsctl_stdout(&["list-ports", "br-ovl"]);
        assert_eq!(ports.split_whitespace().collect::<Vec<_>>(), ["vm0", "vx0"]);
        // The underlay answers before the overlay is tried.
        let peer = underlay_ip(if n == 1 { 2 } else { 1 });
        wait_for(Duration::from_secs(20), "the underlay", || {
            ns_run(
                &app.netns.name,
                &["ping", "-c1", "-W1", &peer],
                Duration::from_secs(3),
            )
            .status
            .success()
            .then_some(())
        });
        for flow in flows(n) {
            let out = run(
                std::process::Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &app.netns.name,
                        "ovs-ofctl",
                        "add-flow",
                        "br-ovl",
                        &flow,
                    ])
                    .env("OVS_RUNDIR", app.run_dir()),
                Duration::from_secs(10),
            );
            assert!(out.status.success(), "add-flow {flow}: {out:?}");
        }
    }

    // The full mesh: every host reaches every other through its one tunnel port.
    for (i, app) in hosts.iter().enumerate() {
        for m in (1..=HOSTS).filter(|m| *m != i as u8 + 1) {
            let to = overlay_ip(m);
            wait_for(
                Duration::from_secs(20),
                &format!("host {} -> {to}", i + 1),
                || {
                    ns_run(
                        &app.netns.name,
                        &["ping", "-c1", "-W1", &to],
                        Duration::from_secs(3),
                    )
                    .status
                    .success()
                    .then_some(())
                },
            );
        }
    }
    // And nothing else carries it: without its rules, host 1 reaches no one.
    let out = run(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &hosts[0].netns.name,
                "ovs-ofctl",
                "del-flows",
                "br-ovl",
            ])
            .env("OVS_RUNDIR", hosts[0].run_dir()),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{out:?}");
    let unreachable = ns_run(
        &hosts[0].netns.name,
        &["ping", "-c2", "-W1", &overlay_ip(2)],
        Duration::from_secs(5),
    );
    assert!(
        !unreachable.status.success(),
        "the overlay works without its flows?"
    );
}
