//! Tier 2: unixctl against the control socket of a private ovsdb-server.

#[path = "ovsdb_harness/mod.rs"]
mod harness;

use harness::{within, Server};
use ovs_appliance::unixctl;

#[tokio::test]
async fn version_and_memory_show() {
    let Some(srv) = Server::start() else { return };
    let v = within("version", unixctl::call(&srv.ctl, "version", &[]))
        .await
        .unwrap();
    assert!(v.contains("ovsdb-server"), "{v}");
    let conn = unixctl::Conn::connect(&srv.ctl).await.unwrap();
    let m = within("memory/show", conn.call("memory/show", &[]))
        .await
        .unwrap();
    assert!(m.contains("cells") || m.contains("atoms"), "{m}");
    let again = within("version again", conn.call("version", &[]))
        .await
        .unwrap();
    assert_eq!(again, v);
}

#[tokio::test]
async fn unknown_command_is_typed_error() {
    let Some(srv) = Server::start() else { return };
    let err = within("bogus", unixctl::call(&srv.ctl, "no-such/command", &["x"]))
        .await
        .unwrap_err();
    assert!(matches!(err, unixctl::Error::Command { .. }), "{err:?}");
    assert!(err.is_unknown_command(), "{err}");
}

#[tokio::test]
async fn pending_call_fails_when_daemon_dies() {
    let Some(mut srv) = Server::start() else {
        return;
    };
    let conn = unixctl::Conn::connect(&srv.ctl).await.unwrap();
    srv.kill9();
    let err = within("call after kill", conn.call("version", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, unixctl::Error::Disconnected { .. }),
        "{err:?}"
    );
}
