//! Tier 2: the OVSDB client against a private ovsdb-server started by each test.

#[path = "ovsdb_harness.rs"]
mod harness;

use harness::{within, Server};
use ovs_appliance::ovsdb::{Client, Error, TxnErrorKind};
use serde_json::json;

const DB: &str = "Open_vSwitch";

#[tokio::test]
async fn echo_and_list_dbs() {
    let Some(srv) = Server::start() else { return };
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    within("echo", c.echo()).await.unwrap();
    let dbs = within("list_dbs", c.list_dbs()).await.unwrap();
    assert!(dbs.contains(&DB.to_string()), "{dbs:?}");
}

#[tokio::test]
async fn raw_insert_select_with_named_uuid() {
    let Some(srv) = Server::start() else { return };
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    let ops = vec![
        json!({"op": "insert", "table": "Interface", "row": {"name": "p0"}, "uuid-name": "i"}),
        json!({"op": "insert", "table": "Port",
               "row": {"name": "p0", "interfaces": ["named-uuid", "i"]}, "uuid-name": "p"}),
        json!({"op": "insert", "table": "Bridge",
               "row": {"name": "br0", "ports": ["named-uuid", "p"]}}),
        json!({"op": "select", "table": "Bridge", "where": [["name", "==", "br0"]],
               "columns": ["name"]}),
    ];
    let res = within("transact", c.transact_raw(DB, ops)).await.unwrap();
    assert_eq!(res.len(), 4);
    assert_eq!(res[3]["rows"][0]["name"], json!("br0"));
}

#[tokio::test]
async fn raw_wait_timeout_zero_is_typed_error() {
    let Some(srv) = Server::start() else { return };
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    let ops = vec![json!({"op": "wait", "table": "Bridge", "timeout": 0,
        "where": [], "columns": ["name"], "until": "==", "rows": [{"name": "nope"}]})];
    let err = within("wait", c.transact_raw(DB, ops)).await.unwrap_err();
    match err {
        Error::Transaction { index, kind, .. } => {
            assert_eq!(index, 0);
            assert_eq!(kind, TxnErrorKind::TimedOut);
        }
        other => panic!("expected Transaction error, got {other:?}"),
    }
}

#[tokio::test]
async fn pending_calls_fail_when_server_dies() {
    let Some(mut srv) = Server::start() else {
        return;
    };
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    c.echo().await.unwrap();
    srv.kill9();
    let err = within("echo after kill", c.echo()).await.unwrap_err();
    assert!(err.is_disconnect(), "{err:?}");
    within("closed", c.closed()).await;
    assert!(c.is_closed());
}

#[tokio::test]
async fn fifty_concurrent_transacts() {
    let Some(srv) = Server::start() else { return };
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let c = c.clone();
        set.spawn(async move {
            // Queue is a root table: its rows are not garbage-collected when unreferenced.
            let ops = vec![json!({"op": "insert", "table": "Queue",
                "row": {"external_ids": ["map", [["n", format!("{i}")]]]}})];
            c.transact_raw(DB, ops).await
        });
    }
    let mut ok = 0;
    while let Some(r) = within("join", set.join_next()).await {
        r.unwrap().unwrap();
        ok += 1;
    }
    assert_eq!(ok, 50);
    let sel = vec![json!({"op": "select", "table": "Queue", "where": [], "columns": ["_uuid"]})];
    let res = c.transact_raw(DB, sel).await.unwrap();
    assert_eq!(res[0]["rows"].as_array().unwrap().len(), 50);
}
