//! Tier 2: `/readyz` tells the truth about owned interfaces (issue 14 item 3). OVS refuses or
//! cannot open some interfaces the config names: a system port whose device does not exist,
//! and an internal port whose name another device already holds (the tap cannot be made).
//! Readiness is 503 while any owned interface has an error, and its body names each one and
//! whether it is a missing device or a refusal; the log tells the two apart.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const PORT: u16 = 9476;

const CONFIG: &str = r#"datapath = "netdev"

[[bridges]]
name = "br0"
  [[bridges.ports]]
  name = "nodev0"
  [[bridges.ports]]
  name = "taken0"
  type = "internal"
"#;

fn ip(ns: &str, args: &[&str]) {
    let out = run(
        Command::new("ip").args(["-n", ns]).args(args),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

#[test]
fn readyz_names_interfaces_that_do_not_work_and_the_log_tells_missing_from_refused() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new(CONFIG);
    let ns = app.netns.name.clone();
    // A veth end holds the name the internal port wants.
    ip(
        &ns,
        &[
            "link", "add", "taken0", "type", "veth", "peer", "name", "taken0p",
        ],
    );
    app.start_ready();
    let readyz = || http::get(&ns, PORT, "/readyz");
    let body = wait_for(
        Duration::from_secs(30),
        "/readyz naming both interfaces",
        || {
            let r = readyz()?;
            (r.body.contains("nodev0") && r.body.contains("taken0")).then_some(r)
        },
    );
    let errors = app.vsctl_stdout(&["--columns=name,error", "list", "Interface"]);
    eprintln!(
        "/readyz {}:\n{}\nInterface errors:\n{errors}",
        body.status, body.body
    );
    assert_eq!(body.status, 503, "{}", body.body);
    assert!(body.body.contains("config: applied"), "{}", body.body);
    let line = |name: &str| {
        body.body
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("nodev0").contains("no such device"), "{}", body.body);
    assert!(line("taken0").contains("refused"), "{}", body.body);
    let log = app.log();
    let logged = |name: &str, what: &str| {
        log.lines()
            .any(|l| l.contains(&format!("interface={name}")) && l.contains(what))
    };
    assert!(
        logged("nodev0", "will work once the device exists"),
        "{log}"
    );
    assert!(logged("taken0", "refused"), "{log}");
    assert!(
        !logged("taken0", "will work once the device exists"),
        "a refusal is not a missing device:\n{log}"
    );
    // The missing device appears: its error clears; the refusal stays, so still 503.
    ip(
        &ns,
        &[
            "link", "add", "nodev0", "type", "veth", "peer", "name", "nodev0p",
        ],
    );
    let later = wait_for(Duration::from_secs(30), "nodev0 working", || {
        let r = readyz()?;
        (!r.body.contains("nodev0")).then_some(r)
    });
    assert_eq!(later.status, 503, "{}", later.body);
    assert!(later.body.contains("taken0"), "{}", later.body);
}
