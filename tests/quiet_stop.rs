//! Tier 2: an orderly stop is not a warning (issue 14 item 12). SIGTERM used to log WARN
//! "ovsdb connection lost; reconnecting" three times as ovsdb-server went away on purpose.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::time::Duration;

#[test]
fn sigterm_logs_no_warning_about_the_ovsdb_connection() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new("datapath = \"netdev\"\n[[bridges]]\nname = \"br0\"\n");
    app.start_ready();
    // Reconcile has connected and applied the bridge.
    wait_for(Duration::from_secs(20), "br0 applied", || {
        app.log().contains("config applied").then_some(())
    });
    app.signal(Signal::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(15));
    let log = app.log();
    assert_eq!(status.code(), Some(0), "{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("connection"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert!(
        log.contains("connection lost"),
        "the loss is still told, at INFO:\n{log}"
    );
}
