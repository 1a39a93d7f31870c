//! Tier 2: the appliance shares its database with other tools. Keys that OVN, CNI plugins or
//! people add to owned rows survive every pass, a SIGHUP and a restart; the appliance removes
//! only keys it set; a key another tool holds is a conflict, reported and left alone unless
//! `force_keys`; controllers are kept in place.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::time::Duration;

const PREFIX: &str = "datapath = \"netdev\"\n";

fn config(other_config: &str, key: &str, controllers: &str) -> String {
    format!(
        r#"
[[bridges]]
name = "br0"
controllers = [{controllers}]
other_config = {{ {other_config} }}
external_ids = {{ team = "net" }}
  [[bridges.ports]]
  name = "p1"
  type = "internal"
  [[bridges.ports]]
  name = "vx0"
  type = "vxlan"
  options = {{ remote_ip = "10.70.9.9", key = "{key}" }}
"#
    )
}

/// `ovs-vsctl get`, trimmed and unquoted (ovs-vsctl quotes only strings that need it); empty
/// when the key or row is absent.
fn get(app: &Appliance, table: &str, record: &str, column: &str) -> String {
    let out = app.vsctl(&["--if-exists", "get", table, record, column]);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    serde_json::from_str::<String>(&text).unwrap_or(text)
}

fn wait_value(app: &Appliance, table: &str, record: &str, column: &str, want: &str) {
    wait_for(
        Duration::from_secs(20),
        &format!("{table} {record} {column} = {want}"),
        || (get(app, table, record, column) == want).then_some(()),
    );
}

/// Every key other tools set below, still there with its value.
fn foreign_keys_intact(app: &Appliance) {
    let want = [
        ("Port", "p1", "external_ids:iface-id", "lsp1"),
        (
            "Interface",
            "p1",
            "external_ids:attached-mac",
            "0a:00:00:00:00:01",
        ),
        (
            "Bridge",
            "br0",
            "external_ids:ovn-bridge-mappings",
            "phys:br0",
        ),
        ("Bridge", "br0", "other_config:mac-table-size", "4096"),
        ("Interface", "vx0", "options:tos", "inherit"),
    ];
    for (table, record, column, value) in want {
        assert_eq!(
            get(app, table, record, column),
            value,
            "{table} {record} {column}\n{}",
            app.log()
        );
    }
}

#[test]
fn map_keys_are_owned_one_by_one_and_controllers_kept_in_place() {
    if !require_real_ovs() {
        return;
    }
    let first = config(
        r#"disable-in-band = "true", mac-aging-time = "300""#,
        "42",
        r#""tcp:127.0.0.1:6653""#,
    );
    let mut app = Appliance::new(&format!("{PREFIX}{first}"));
    app.start_ready();
    wait_value(&app, "Interface", "vx0", "options:key", "42");
    wait_value(&app, "Bridge", "br0", "other_config:mac-aging-time", "300");

    // OVN, a CNI plugin and a person add keys of their own to owned rows.
    assert!(app.vsctl_ok(&["set", "Port", "p1", "external_ids:iface-id=lsp1"]));
    assert!(app.vsctl_ok(&[
        "set",
        "Interface",
        "p1",
        "external_ids:attached-mac=\"0a:00:00:00:00:01\""
    ]));
    assert!(app.vsctl_ok(&[
        "set",
        "Bridge",
        "br0",
        "external_ids:ovn-bridge-mappings=phys:br0",
        "other_config:mac-table-size=4096"
    ]));
    assert!(app.vsctl_ok(&["set", "Interface", "vx0", "options:tos=inherit"]));
    // And a column the config does not name on the appliance's controller row.
    let controller = get(&app, "Bridge", "br0", "controller");
    let controller = controller
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    assert!(app.vsctl_ok(&[
        "set",
        "Controller",
        &controller,
        "connection_mode=out-of-band"
    ]));

    // A key the appliance owns, changed by hand, is put back: a pass ran over all of the above.
    assert!(app.vsctl_ok(&["set", "Bridge", "br0", "other_config:mac-aging-time=999"]));
    wait_value(&app, "Bridge", "br0", "other_config:mac-aging-time", "300");
    foreign_keys_intact(&app);

    // SIGHUP: one key dropped, one changed, one controller added.
    let second = config(
        r#"disable-in-band = "true""#,
        "43",
        r#""tcp:127.0.0.1:6653", "tcp:127.0.0.1:6654""#,
    );
    app.write_config(&format!("{PREFIX}{second}"));
    app.signal(Signal::SIGHUP);
    wait_value(&app, "Interface", "vx0", "options:key", "43");
    wait_value(&app, "Bridge", "br0", "other_config:mac-aging-time", "");
    wait_for(Duration::from_secs(20), "two controllers", || {
        let text = app.vsctl_stdout(&["get-controller", "br0"]);
        (text.lines().count() == 2).then_some(())
    });
    foreign_keys_intact(&app);
    assert_eq!(
        get(&app, "Controller", &controller, "connection_mode"),
        "out-of-band",
        "the controller row was kept in place"
    );
    assert_eq!(
        get(&app, "Controller", &controller, "target"),
        "tcp:127.0.0.1:6653"
    );
    // What the appliance set is on record in the row itself.
    assert_eq!(
        get(&app, "Bridge", "br0", "external_ids:ovs-appliance-keys"),
        r#"{"external_ids":["team"],"other_config":["disable-in-band"]}"#
    );

    // A key another tool holds, which the config then names with another value: a conflict,
    // reported by the log, plan and status, and left alone.
    assert!(app.vsctl_ok(&["set", "Bridge", "br0", "other_config:mac-table-size=4096"]));
    let third = config(
        r#"disable-in-band = "true", mac-table-size = "8192""#,
        "43",
        r#""tcp:127.0.0.1:6653", "tcp:127.0.0.1:6654""#,
    );
    app.write_config(&format!("{PREFIX}{third}"));
    app.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(20), "the conflict in the log", || {
        app.log()
            .contains("bridge br0: other_config:mac-table-size is")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    foreign_keys_intact(&app);
    let plan = String::from_utf8_lossy(&app.oneshot(&[], "plan").stdout).into_owned();
    assert!(
        plan.contains("! bridge br0: other_config:mac-table-size"),
        "{plan}"
    );
    let status = String::from_utf8_lossy(&app.oneshot(&[], "status").stdout).into_owned();
    assert!(
        status.contains("bridge br0: other_config:mac-table-size"),
        "{status}"
    );

    // A restart changes none of it.
    app.signal(Signal::SIGTERM);
    assert!(app.wait_exit(Duration::from_secs(20)).success());
    app.start_ready();
    wait_value(&app, "Interface", "vx0", "options:key", "43");
    std::thread::sleep(Duration::from_millis(500));
    foreign_keys_intact(&app);
    assert_eq!(
        get(&app, "Controller", &controller, "connection_mode"),
        "out-of-band"
    );

    // force_keys lets the config win.
    app.write_config(&format!("{PREFIX}force_keys = true\n{third}"));
    app.signal(Signal::SIGHUP);
    wait_value(&app, "Bridge", "br0", "other_config:mac-table-size", "8192");
    // Other tools' other keys are still there.
    assert_eq!(get(&app, "Port", "p1", "external_ids:iface-id"), "lsp1");
    assert_eq!(get(&app, "Interface", "vx0", "options:tos"), "inherit");
}

/// `ovs_appliance_reconcile_runs_total`, once it has stopped moving for half a second.
fn settled_runs(app: &Appliance) -> f64 {
    use common::scrape::{scrape, value};
    let runs = |text: &str| value(text, "ovs_appliance_reconcile_runs_total", &[]);
    wait_for(Duration::from_secs(20), "the pass count to settle", || {
        let first = runs(&scrape(app, 9476));
        std::thread::sleep(Duration::from_millis(500));
        (runs(&scrape(app, 9476)) == first).then_some(first)
    })
    .expect("ovs_appliance_reconcile_runs_total is exported")
}

#[test]
fn another_tools_churn_on_its_own_rows_starts_no_pass() {
    if !require_real_ovs() {
        return;
    }
    let own = "[[bridges]]\nname = \"br0\"\n  [[bridges.ports]]\n  name = \"p1\"\n  type = \"internal\"\n";
    let mut app = Appliance::new(&format!("{PREFIX}{own}"));
    app.start_ready();
    wait_value(&app, "Port", "p1", "name", "p1");
    // A new foreign bridge changes the root's bridge list, which plans read: one pass.
    assert!(app.vsctl_ok(&[
        "add-br",
        "br-foreign",
        "--",
        "set",
        "Bridge",
        "br-foreign",
        "datapath_type=netdev"
    ]));
    let before = settled_runs(&app);
    // Then 30 transactions on its own ports (patch ports: no devices), as an IDL would churn.
    for n in 0..15 {
        let name = format!("fc{n}");
        assert!(app.vsctl_ok(&[
            "add-port",
            "br-foreign",
            &name,
            "--",
            "set",
            "Interface",
            &name,
            "type=patch",
            "options:peer=nowhere",
            "external_ids:tool=churn"
        ]));
        assert!(app.vsctl_ok(&["set", "Port", &name, "tag=7"]));
    }
    for n in 0..15 {
        assert!(app.vsctl_ok(&["del-port", "br-foreign", &format!("fc{n}")]));
    }
    let after = settled_runs(&app);
    assert_eq!(after, before, "foreign-only updates started passes");
    // The count moves when a row the plan reads changes (so the check above can fail).
    assert!(app.vsctl_ok(&["set", "Port", "p1", "tag=99"]));
    wait_value(&app, "Port", "p1", "tag", "[]");
    assert!(settled_runs(&app) > after);
}

#[test]
fn a_repaired_internal_port_comes_back_with_its_mac() {
    if !require_real_ovs() {
        return;
    }
    let own = "[[bridges]]\nname = \"br0\"\n  [[bridges.ports]]\n  name = \"mgmt0\"\n  type = \"internal\"\n  addresses = [\"10.72.0.1/24\"]\n";
    let mut app = Appliance::new(&format!("{PREFIX}{own}"));
    app.start_ready();
    let mac = || -> Option<String> {
        let m = get(&app, "Interface", "mgmt0", "mac_in_use");
        (m.len() == 17).then_some(m)
    };
    let first = wait_for(Duration::from_secs(20), "mgmt0's MAC", mac);
    assert_eq!(
        get(&app, "Interface", "mgmt0", "mac"),
        first,
        "set by the appliance"
    );
    let byte = u8::from_str_radix(&first[..2], 16).unwrap();
    assert_eq!(byte & 0x03, 0x02, "locally administered unicast: {first}");
    // Deleted by hand, repaired: the same MAC, so neighbours' ARP entries stay right.
    let before = get(&app, "Interface", "mgmt0", "_uuid");
    assert!(app.vsctl_ok(&["del-port", "br0", "mgmt0"]));
    let again = wait_for(Duration::from_secs(20), "mgmt0 made again", || {
        let uuid = get(&app, "Interface", "mgmt0", "_uuid");
        (!uuid.is_empty() && uuid != before).then(mac).flatten()
    });
    assert_eq!(again, first);
    // The kernel device has it too.
    let link = String::from_utf8_lossy(
        &run(
            std::process::Command::new("ip").args(["-n", &app.netns.name, "link", "show", "mgmt0"]),
            Duration::from_secs(5),
        )
        .stdout,
    )
    .into_owned();
    assert!(link.contains(&first), "{link}");
}

#[test]
fn the_hosts_identity_survives_a_killed_ovsdb_server() {
    if !require_real_ovs() {
        return;
    }
    let supervisor = "[supervisor]\nhealth_interval = \"100ms\"\nhealth_timeout = \"300ms\"\nhealth_failures = 2\n";
    let mut app = Appliance::new(&format!("{PREFIX}{supervisor}"));
    app.start_ready();
    // A chassis name of the deployment's choosing, as OVN users set it, and the system-id.
    assert!(app.vsctl_ok(&[
        "set",
        "Open_vSwitch",
        ".",
        "external_ids:hostname=chassis-7",
        "external_ids:ovn-encap-ip=10.73.0.1"
    ]));
    let system_id = get(&app, "Open_vSwitch", ".", "external_ids:system-id");
    assert!(!system_id.is_empty());
    let db = app.pid("ovsdb-server").unwrap();
    kill(db, Signal::SIGKILL);
    wait_for(Duration::from_secs(15), "ovsdb-server back", || {
        app.pid("ovsdb-server").filter(|p| *p != db)
    });
    app.wait_ready();
    assert_eq!(
        get(&app, "Open_vSwitch", ".", "external_ids:hostname"),
        "chassis-7"
    );
    assert_eq!(
        get(&app, "Open_vSwitch", ".", "external_ids:ovn-encap-ip"),
        "10.73.0.1"
    );
    assert_eq!(
        get(&app, "Open_vSwitch", ".", "external_ids:system-id"),
        system_id
    );
}
