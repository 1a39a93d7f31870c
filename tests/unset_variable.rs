//! Tier 2: a config naming an environment variable that is unset (and has no default) is
//! refused by every command that reads it, with exit 65 naming the field and the variable, and
//! nothing is applied: not by `apply` or `plan` against a live database, not by a SIGHUP of the
//! running appliance. (`run` refusing it before creating anything is in tests/bad_configs.rs.)

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::time::Duration;

const NETDEV: &str = "datapath = \"netdev\"\n";
/// Set for the running appliance, so its own config is valid.
const SET: &str = "OVSA_TEST_NODE";
/// Never set: the test removes it from every environment it starts.
const UNSET: &str = "OVSA_TEST_UNSET_PEER";

fn config(extra_port: &str) -> String {
    format!(
        "{NETDEV}[[bridges]]\nname = \"br0\"\nexternal_ids = {{ node = \"${{{SET}}}\" }}\n  [[bridges.ports]]\n  name = \"p1\"\n  type = \"internal\"\n{extra_port}"
    )
}

/// The configuration columns and next_cfg (which any transaction of ours would move), as
/// `ovs-vsctl` lists them.
fn dump(app: &Appliance) -> String {
    let tables = [
        (
            "Open_vSwitch",
            "_uuid,bridges,next_cfg,external_ids,other_config",
        ),
        ("Bridge", "_uuid,name,ports,external_ids,other_config"),
        ("Port", "_uuid,name,interfaces,tag,external_ids"),
        ("Interface", "_uuid,name,type,options,external_ids"),
    ];
    tables
        .iter()
        .map(|(table, columns)| {
            app.vsctl_stdout(&[
                "--format=json",
                &format!("--columns={columns}"),
                "list",
                table,
            ])
        })
        .collect()
}

#[test]
fn an_unset_variable_is_refused_naming_field_and_variable_and_nothing_is_applied() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(&config(""));
    app.env.push((SET.into(), "node-1".into()));
    app.start_ready();
    wait_for(
        Duration::from_secs(20),
        "br0 with p1, marked node-1",
        || {
            let ports = app.vsctl_stdout(&["list-ports", "br0"]);
            let node = app.vsctl_stdout(&["get", "Bridge", "br0", "external_ids:node"]);
            (ports.trim() == "p1" && node.trim().trim_matches('"') == "node-1").then_some(())
        },
    );
    let before = dump(&app);

    // A tunnel to a peer named by a variable nobody set.
    app.write_config(&config(&format!(
        "  [[bridges.ports]]\n  name = \"vx0\"\n  type = \"vxlan\"\n  options = {{ remote_ip = \"${{{UNSET}}}\" }}\n"
    )));
    let want = format!(
        "bridges[\"br0\"].ports[\"vx0\"].options.remote_ip: names the environment variable {UNSET}, which is not set"
    );
    for cmd in ["validate", "plan", "apply"] {
        let mut command = app.command(&[], cmd);
        command.env_remove(UNSET);
        let out = run(&mut command, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{cmd}: {stderr}");
        assert!(stderr.contains(&want), "{cmd}: want {want:?} in {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{cmd} printed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(dump(&app), before, "the database changed after {cmd}");
    }

    // The running appliance re-reads the file on SIGHUP, refuses it and keeps what it runs.
    app.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the reload to be refused", || {
        app.log().contains("config reload refused").then_some(())
    });
    let log = app.log().replace("\\\"", "\"");
    assert!(log.contains(&want), "{log}");
    // A reconcile pass has had time to run had the file been taken.
    std::thread::sleep(Duration::from_secs(1));
    assert!(app.still_running(), "{}", app.log());
    assert_eq!(dump(&app), before, "the database changed after SIGHUP");
    assert!(!app.vsctl_ok(&["port-to-br", "vx0"]), "vx0 was added");
}
