//! Tier 2: the config reaches the database with the right columns, drift is repaired, foreign
//! rows survive, SIGHUP applies a new file or refuses a bad one, and a bad config changes
//! nothing.

mod common;

use common::net::Host;
use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const NETDEV: &str = "datapath = \"netdev\"\n";

fn appliance(bridges: &str) -> Option<Appliance> {
    require_real_ovs().then(|| Appliance::new(&format!("{NETDEV}{bridges}")))
}

/// `ovs-vsctl --format=json list TABLE` as name -> column -> value (OVSDB JSON).
fn table(app: &Appliance, table: &str) -> BTreeMap<String, BTreeMap<String, Value>> {
    let json: Value =
        serde_json::from_str(&app.vsctl_stdout(&["--format=json", "list", table])).unwrap();
    let headings: Vec<String> = json["headings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let cols: BTreeMap<String, Value> = headings
                .iter()
                .cloned()
                .zip(row.as_array().unwrap().iter().cloned())
                .collect();
            (cols["name"].as_str().unwrap().to_string(), cols)
        })
        .collect()
}

/// An OVSDB map value as key -> string value.
fn map(v: &Value) -> BTreeMap<String, String> {
    v[1].as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().into(),
                p[1].as_str()
                    .map(String::from)
                    .unwrap_or_else(|| p[1].to_string()),
            )
        })
        .collect()
}

fn wait_ports(app: &Appliance, bridge: &str, want: &[&str]) {
    wait_for(
        Duration::from_secs(20),
        &format!("ports {want:?} on {bridge}"),
        || {
            let text =
                String::from_utf8_lossy(&app.vsctl(&["list-ports", bridge]).stdout).into_owned();
            let mut have: Vec<&str> = text.lines().collect();
            have.sort();
            let mut want = want.to_vec();
            want.sort();
            (have == want).then_some(())
        },
    );
}

const EVERY_TYPE: &str = r#"
[[bridges]]
name = "br0"
fail_mode = "secure"
protocols = ["OpenFlow13", "OpenFlow14"]
controllers = ["tcp:127.0.0.1:6653"]
other_config = { disable-in-band = "true" }
external_ids = { team = "net" }
  [[bridges.ports]]
  name = "eth9"
  vlan = { mode = "trunk", trunks = [10, 20] }
  [[bridges.ports]]
  name = "mgmt0"
  type = "internal"
  mtu = 1450
  vlan = { mode = "access", tag = 10 }
  [[bridges.ports]]
  name = "tap0"
  type = "tap"
  [[bridges.ports]]
  name = "pa"
  type = "patch"
  peer = "pb"
  [[bridges.ports]]
  name = "vx0"
  type = "vxlan"
  options = { remote_ip = "10.70.9.9", key = "42" }
  [[bridges.ports]]
  name = "gnv0"
  type = "geneve"
  options = { remote_ip = "10.70.9.10" }
  [[bridges.ports]]
  name = "gre0"
  type = "gre"
  options = { remote_ip = "10.70.9.11" }
  [[bridges.ports]]
  name = "bond0"
  interfaces = ["eth7", "eth8"]
  bond_mode = "balance-slb"
  lacp = "active"
[[bridges]]
name = "br1"
datapath = "netdev"
  [[bridges.ports]]
  name = "pb"
  type = "patch"
  peer = "pa"
"#;

#[test]
fn every_port_type_reaches_the_database_with_its_columns() {
    let Some(mut app) = appliance(EVERY_TYPE) else {
        return;
    };
    app.start_ready();
    wait_ports(
        &app,
        "br0",
        &[
            "eth9", "mgmt0", "tap0", "pa", "vx0", "gnv0", "gre0", "bond0",
        ],
    );
    let bridges = table(&app, "Bridge");
    let br0 = &bridges["br0"];
    assert_eq!(br0["datapath_type"], "netdev");
    assert_eq!(br0["fail_mode"], "secure");
    assert_eq!(
        br0["protocols"],
        serde_json::json!(["set", ["OpenFlow13", "OpenFlow14"]])
    );
    assert_eq!(map(&br0["other_config"])["disable-in-band"], "true");
    let ids = map(&br0["external_ids"]);
    assert_eq!(ids["team"], "net");
    assert_eq!(ids["ovs-appliance-owner"], "default");
    let target = app.vsctl_stdout(&["get-controller", "br0"]);
    assert_eq!(target.trim(), "tcp:127.0.0.1:6653");

    let ports = table(&app, "Port");
    assert_eq!(
        ports["eth9"]["trunks"],
        serde_json::json!(["set", [10, 20]])
    );
    assert_eq!(ports["eth9"]["vlan_mode"], "trunk");
    assert_eq!(ports["mgmt0"]["tag"], 10);
    assert_eq!(ports["mgmt0"]["vlan_mode"], "access");
    assert_eq!(ports["bond0"]["bond_mode"], "balance-slb");
    assert_eq!(ports["bond0"]["lacp"], "active");
    assert_eq!(ports["bond0"]["interfaces"][1].as_array().unwrap().len(), 2);

    let ifaces = table(&app, "Interface");
    let kind = |n: &str| ifaces[n]["type"].as_str().unwrap().to_string();
    assert_eq!(kind("eth9"), "");
    assert_eq!(kind("mgmt0"), "internal");
    assert_eq!(kind("tap0"), "tap");
    assert_eq!(kind("pa"), "patch");
    assert_eq!(kind("vx0"), "vxlan");
    assert_eq!(kind("gnv0"), "geneve");
    assert_eq!(kind("gre0"), "gre");
    assert_eq!(kind("eth7"), "");
    assert_eq!(map(&ifaces["pa"]["options"])["peer"], "pb");
    assert_eq!(map(&ifaces["pb"]["options"])["peer"], "pa");
    let vx = map(&ifaces["vx0"]["options"]);
    assert_eq!(
        (vx["remote_ip"].as_str(), vx["key"].as_str()),
        ("10.70.9.9", "42")
    );
    assert_eq!(ifaces["mgmt0"]["mtu_request"], 1450);
    for iface in ["eth9", "mgmt0", "vx0", "eth7", "pb"] {
        assert_eq!(
            map(&ifaces[iface]["external_ids"])["ovs-appliance-owner"],
            "default",
            "{iface}"
        );
    }
    // A system port whose device does not exist is configured anyway, and its error reported.
    wait_for(
        Duration::from_secs(10),
        "eth9 to fail with ofport -1",
        || {
            (app.vsctl_stdout(&["get", "Interface", "eth9", "ofport"])
                .trim()
                == "-1")
                .then_some(())
        },
    );
    let status = String::from_utf8_lossy(&app.oneshot(&[], "status").stdout).into_owned();
    assert!(
        status.contains("error: interface eth9: no such device"),
        "{status}"
    );
    assert!(status.contains("drift: none"), "{status}");
    // The supervisor's own judgment (up, busy or down), from the running appliance's /healthz.
    assert!(
        status.contains("appliance: ovs-vswitchd: up (pid "),
        "{status}"
    );
    assert!(app.log().contains("interface not working"), "{}", app.log());
}

#[test]
fn a_system_port_works_once_its_device_appears() {
    let Some(mut app) =
        appliance("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"late0\"\n")
    else {
        return;
    };
    app.start_ready();
    wait_ports(&app, "br0", &["late0"]);
    assert_eq!(
        app.vsctl_stdout(&["get", "Interface", "late0", "ofport"])
            .trim(),
        "-1"
    );
    let _host = Host::new(&app.netns.name, "late0", "10.71.0.1/24");
    wait_for(Duration::from_secs(20), "late0 to get an ofport", || {
        let ofport = app.vsctl_stdout(&["get", "Interface", "late0", "ofport"]);
        (ofport.trim().parse::<i64>().unwrap_or(-1) > 0).then_some(())
    });
}

const DRIFT: &str = r#"
[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "p1"
  type = "internal"
  vlan = { mode = "access", tag = 10 }
  [[bridges.ports]]
  name = "p2"
  type = "internal"
"#;

#[test]
fn drift_by_hand_is_repaired_and_foreign_rows_survive() {
    let Some(mut app) = appliance(DRIFT) else {
        return;
    };
    app.start_ready();
    wait_ports(&app, "br0", &["p1", "p2"]);

    assert!(app.vsctl_ok(&["del-port", "br0", "p1"]));
    wait_ports(&app, "br0", &["p1", "p2"]);
    assert!(app.vsctl_ok(&["set", "Port", "p1", "tag=99"]));
    wait_for(Duration::from_secs(10), "tag restored", || {
        (app.vsctl_stdout(&["get", "Port", "p1", "tag"]).trim() == "10").then_some(())
    });
    assert!(app.vsctl_ok(&["clear", "Port", "p1", "tag"]));
    wait_for(Duration::from_secs(10), "cleared tag restored", || {
        (app.vsctl_stdout(&["get", "Port", "p1", "tag"]).trim() == "10").then_some(())
    });

    // Things made by hand, without the owner mark, are left alone.
    assert!(app.vsctl_ok(&[
        "add-br",
        "br-hand",
        "--",
        "set",
        "Bridge",
        "br-hand",
        "datapath_type=netdev"
    ]));
    assert!(app.vsctl_ok(&[
        "add-port",
        "br0",
        "hand0",
        "--",
        "set",
        "Interface",
        "hand0",
        "type=internal"
    ]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(app.vsctl_stdout(&["list-br"]).contains("br-hand"));
    wait_ports(&app, "br0", &["p1", "p2", "hand0"]);
    let log = app.log();
    assert!(log.contains("drift repaired"), "{log}");
    assert!(!log.contains("gave up"), "no reconcile loop: {log}");

    // Removing p2 from the config (SIGHUP) removes it and only it.
    app.write_config(&format!(
        "{NETDEV}{}",
        DRIFT.replace(
            "  [[bridges.ports]]\n  name = \"p2\"\n  type = \"internal\"\n",
            ""
        )
    ));
    app.signal(Signal::SIGHUP);
    wait_ports(&app, "br0", &["p1", "hand0"]);
    assert!(app.vsctl_stdout(&["list-br"]).contains("br-hand"));

    // A config that fails validation is refused on SIGHUP; the running state is kept.
    app.write_config(&format!("{NETDEV}[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"p1\"\nvlan = {{ mode = \"access\", tag = 5000 }}\n"));
    app.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the reload to be refused", || {
        app.log().contains("config reload refused").then_some(())
    });
    // Named by bridge and port (the log may escape the quotes).
    let log = app.log().replace("\\\"", "\"");
    assert!(
        log.contains("bridges[\"br0\"].ports[\"p1\"].vlan.tag: VLAN 5000"),
        "{log}"
    );
    assert_eq!(app.vsctl_stdout(&["get", "Port", "p1", "tag"]).trim(), "10");
}

#[test]
fn a_daemon_restart_is_followed_by_a_full_reconcile() {
    let Some(mut app) = appliance(DRIFT) else {
        return;
    };
    app.write_config(&format!("{NETDEV}[supervisor]\nhealth_interval = \"100ms\"\nhealth_timeout = \"300ms\"\nhealth_failures = 2\n{DRIFT}"));
    app.start_ready();
    wait_ports(&app, "br0", &["p1", "p2"]);
    // Made while ovsdb-server is down and up again, a change must still be repaired.
    let db = app.pid("ovsdb-server").unwrap();
    kill(db, Signal::SIGKILL);
    wait_for(Duration::from_secs(15), "ovsdb-server back", || {
        app.pid("ovsdb-server").filter(|p| *p != db)
    });
    app.wait_ready();
    assert!(app.vsctl_ok(&["del-port", "br0", "p2"]));
    wait_ports(&app, "br0", &["p1", "p2"]);
    assert!(app.log().contains("full reconcile"), "{}", app.log());
}

#[test]
fn an_edit_made_while_a_change_is_applied_is_repaired() {
    // No health check during the test: ovs-vswitchd is stopped on purpose for a moment.
    let supervisor = "[supervisor]\nhealth_interval = \"60s\"\n";
    let Some(mut app) = appliance(&format!("{supervisor}{DRIFT}")) else {
        return;
    };
    app.start_ready();
    // Applied, not only committed: ovs-vswitchd must not be stopped under the first pass.
    wait_for(Duration::from_secs(20), "the start applied", || {
        app.log().contains("config applied").then_some(())
    });
    wait_ports(&app, "br0", &["p1", "p2"]);
    let vswitchd = app.pid("ovs-vswitchd").unwrap();

    // With ovs-vswitchd stopped, a reload commits p3 and then waits for cur_cfg; an operator's
    // del-port lands in that wait. Nothing after it changes a planned column: only the pass
    // that checks the reload's own change can see that p1 is gone.
    kill(vswitchd, Signal::SIGSTOP);
    let added = "  [[bridges.ports]]\n  name = \"p3\"\n  type = \"internal\"\n";
    app.write_config(&format!("{NETDEV}{supervisor}{DRIFT}{added}"));
    app.signal(Signal::SIGHUP);
    wait_ports(&app, "br0", &["p1", "p2", "p3"]);
    assert!(app.vsctl_ok(&["--no-wait", "del-port", "br0", "p1"]));
    std::thread::sleep(Duration::from_millis(500));
    // The reload is still waiting: only the start's apply is logged.
    assert_eq!(
        app.log().matches("config applied").count(),
        1,
        "{}",
        app.log()
    );
    kill(vswitchd, Signal::SIGCONT);

    wait_ports(&app, "br0", &["p1", "p2", "p3"]);
    // The repair is logged once ovs-vswitchd has applied it, after p1 is back in the database.
    wait_for(Duration::from_secs(20), "the repair logged", || {
        app.log().contains("drift repaired").then_some(())
    });
    assert_eq!(app.pid("ovs-vswitchd"), Some(vswitchd), "not restarted");
    let log = app.log();
    assert_eq!(log.matches("config applied").count(), 2, "{log}");
    assert!(!log.contains("full reconcile"), "{log}");
}

/// The configuration columns (not the status ovs-vswitchd keeps writing), and next_cfg, which
/// any transaction of ours would have moved.
fn dump(app: &Appliance) -> String {
    let tables = [
        ("Open_vSwitch", "_uuid,bridges,next_cfg,external_ids,other_config"),
        ("Bridge", "_uuid,name,ports,datapath_type,fail_mode,protocols,controller,external_ids,other_config"),
        ("Port", "_uuid,name,interfaces,tag,trunks,vlan_mode,bond_mode,lacp,external_ids"),
        ("Interface", "_uuid,name,type,options,mtu_request,external_ids"),
        ("Controller", "_uuid,target"),
    ];
    let mut out = String::new();
    for (t, columns) in tables {
        out.push_str(&app.vsctl_stdout(&[
            "--format=json",
            &format!("--columns={columns}"),
            "list",
            t,
        ]));
    }
    out
}

#[test]
fn bad_configs_are_refused_naming_the_field_and_change_nothing() {
    let Some(mut app) = appliance(DRIFT) else {
        return;
    };
    app.start_ready();
    wait_ports(&app, "br0", &["p1", "p2"]);
    let good = std::fs::read_to_string(app.config()).unwrap();
    let cases = [
        ("[[bridges]]\nname = \"this-name-is-too-long\"\n", "bridges[\"this-name-is-too-long\"].name: \"this-name-is-too-long\" is longer than 15 bytes"),
        ("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"t\"\ntype = \"vxlan\"\n", "bridges[\"br0\"].ports[\"t\"].options.remote_ip"),
        ("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"x\"\ntype = \"patch\"\npeer = \"y\"\n", "bridges[\"br0\"].ports[\"x\"].peer: \"y\" is not a patch port"),
        ("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"m\"\ntype = \"internal\"\naddresses = [\"10.1.1.1/40\"]\n", "bridges[\"br0\"].ports[\"m\"].addresses[0]"),
        ("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"b\"\ninterfaces = [\"e1\"]\n", "a bond needs at least two interfaces"),
        ("[[bridges]]\nname = \"br0\"\nbogus = 1\n", "bogus"),
    ];
    let before = dump(&app);
    for (bad, want) in cases {
        app.write_config(&format!("{NETDEV}{bad}"));
        for cmd in ["validate", "apply", "plan"] {
            let out = app.oneshot(&[], cmd);
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(65), "{cmd} {bad}: {text}");
            assert!(text.contains(want), "{cmd}: want {want:?} in {text}");
        }
        assert_eq!(dump(&app), before, "database unchanged after {bad}");
    }
    std::fs::write(app.config(), good).unwrap();

    // `run` refuses each too, before creating anything.
    for (bad, want) in cases {
        let fresh = Appliance::new(&format!("{NETDEV}{bad}"));
        let out = fresh.oneshot(&[], "run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(65), "run {bad}: {text}");
        assert!(text.contains(want), "run: want {want:?} in {text}");
        assert!(
            !fresh.db_dir().join("conf.db").exists(),
            "nothing was created for {bad}"
        );
    }
}

#[test]
fn plan_and_apply_show_and_send_what_run_would() {
    let Some(mut app) = appliance("") else { return };
    app.start_ready();
    // Another instance name: the running appliance (whose config has no bridges) must leave
    // what this one-shot `apply` makes alone, since it does not own it.
    app.write_config(&format!("{NETDEV}instance = \"cli\"\n{DRIFT}"));
    let plan = app.oneshot(&[], "plan");
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "{text}");
    assert!(text.contains("~ add bridge br0 with 3 port(s)"), "{text}");
    let mut cmd = app.command(&[], "plan");
    cmd.arg("--json");
    let out = run(&mut cmd, Duration::from_secs(30));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["changes"][0], "add bridge br0 with 3 port(s)");
    assert!(v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|op| op["op"] == "insert" && op["table"] == "Bridge"));

    let applied = app.oneshot(&[], "apply");
    let text = String::from_utf8_lossy(&applied.stdout).into_owned();
    assert!(applied.status.success(), "{text}");
    assert!(text.contains("applied by ovs-vswitchd"), "{text}");
    wait_ports(&app, "br0", &["p1", "p2"]);
    let again = String::from_utf8_lossy(&app.oneshot(&[], "plan").stdout).into_owned();
    assert!(again.contains("no changes"), "{again}");
}

/// Issue: a guard on a column at its default (a map ovsdb-server sent no value for) was encoded
/// as an empty *set*, ovsdb-server refused the `wait`, and no transaction went through again.
/// Every column type the plan guards goes from empty to set, for rows the running appliance
/// inserted itself (SIGHUP) and for rows that arrive in the first snapshot (restart).
#[test]
fn columns_at_their_default_can_be_set_later_whatever_their_type() {
    let plain = |bridge: &str, port: &str| {
        format!("[[bridges]]\nname = \"{bridge}\"\n  [[bridges.ports]]\n  name = \"{port}\"\n  type = \"internal\"\n")
    };
    // map (other_config), optional (fail_mode, tag, mtu_request), set (protocols, trunks)
    let full = |bridge: &str, port: &str, trunk: &str| {
        format!(
            "[[bridges]]\nname = \"{bridge}\"\nfail_mode = \"secure\"\nprotocols = [\"OpenFlow13\"]\n\
             other_config = {{ disable-in-band = \"true\" }}\n\
             \x20 [[bridges.ports]]\n  name = \"{port}\"\n  type = \"internal\"\n  mtu = 1400\n  vlan = {{ mode = \"access\", tag = 10 }}\n\
             \x20 [[bridges.ports]]\n  name = \"{trunk}\"\n  type = \"internal\"\n  vlan = {{ mode = \"trunk\", trunks = [20, 30] }}\n"
        )
    };
    let check = |app: &Appliance, bridge: &str, port: &str, trunk: &str| {
        wait_for(
            Duration::from_secs(20),
            &format!("{bridge}'s columns set"),
            || {
                let get = |t: &str, r: &str, c: &str| {
                    String::from_utf8_lossy(&app.vsctl(&["get", t, r, c]).stdout)
                        .trim()
                        .to_string()
                };
                let got = [
                    get("Bridge", bridge, "other_config:disable-in-band"),
                    get("Bridge", bridge, "fail_mode"),
                    get("Bridge", bridge, "protocols"),
                    get("Port", port, "tag"),
                    get("Interface", port, "mtu_request"),
                    get("Port", trunk, "trunks"),
                ];
                (got == [
                    "\"true\"",
                    "secure",
                    "[OpenFlow13]",
                    "10",
                    "1400",
                    "[20, 30]",
                ])
                .then_some(())
            },
        )
    };
    let Some(mut app) = appliance(&(plain("br0", "p1") + &plain("br1", "q1"))) else {
        return;
    };
    app.start_ready();
    wait_ports(&app, "br0", &["p1"]);
    wait_ports(&app, "br1", &["q1"]);
    // br0 and p1 were inserted by this appliance after its first snapshot: SIGHUP sets them.
    app.write_config(&format!(
        "{NETDEV}{}{}",
        full("br0", "p1", "p2"),
        plain("br1", "q1")
    ));
    app.signal(Signal::SIGHUP);
    check(&app, "br0", "p1", "p2");
    app.signal(Signal::SIGTERM);
    assert!(app.wait_exit(Duration::from_secs(20)).success());
    // br1 and q1 now arrive in the first snapshot with those columns at their defaults.
    app.write_config(&format!(
        "{NETDEV}{}{}",
        full("br0", "p1", "p2"),
        full("br1", "q1", "q2")
    ));
    app.start_ready();
    check(&app, "br1", "q1", "q2");
    let log = app.log();
    assert!(!log.contains("reconcile pass failed"), "{log}");
    assert!(!log.contains("syntax error"), "{log}");
}
