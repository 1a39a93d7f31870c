//! Tier 2: monitors against a private ovsdb-server, changes made with ovs-vsctl.

#[path = "ovsdb_harness/mod.rs"]
mod harness;

use std::sync::Arc;

use harness::{within, Server};
use ovs_appliance::ovsdb::{
    Cache, Client, Condition, Monitor, MonitorKind, MonitorRequest, MonitorRequests, RowUpdate,
};

const DB: &str = "Open_vSwitch";

fn requests() -> MonitorRequests {
    MonitorRequests::from([
        (
            "Open_vSwitch".to_string(),
            MonitorRequest::columns(&["bridges", "next_cfg"]),
        ),
        (
            "Bridge".to_string(),
            MonitorRequest::columns(&["name", "ports", "external_ids"]),
        ),
        (
            "Port".to_string(),
            MonitorRequest::columns(&["name", "interfaces"]),
        ),
        ("Interface".to_string(), MonitorRequest::all()),
    ])
}

fn bridge_names(c: &Cache) -> Vec<String> {
    let mut v: Vec<String> = c
        .table("Bridge")
        .filter_map(|(_, r)| r["name"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Applies updates until `done` holds.
async fn until(m: &mut Monitor, cache: &mut Cache, done: impl Fn(&Cache) -> bool) {
    while !done(cache) {
        let u = within("monitor update", m.recv())
            .await
            .expect("monitor ended");
        cache.apply(&u.unwrap()).unwrap();
    }
}

async fn initial_then_updates(kind: MonitorKind) {
    let Some(srv) = Server::start() else { return };
    srv.vsctl(&["init"]);
    srv.vsctl(&["add-br", "pre"]);
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    let schema = Arc::new(c.get_schema(DB).await.unwrap());
    let mut m = within("monitor", c.monitor_with(DB, &requests(), kind))
        .await
        .unwrap();
    assert_eq!(m.kind(), kind);
    assert!(m.initial["Bridge"]
        .values()
        .all(|u| matches!(u, RowUpdate::Initial(_))));
    let mut cache = Cache::new(schema, &requests());
    cache.apply(&m.initial).unwrap();
    assert_eq!(bridge_names(&cache), ["pre"]);

    srv.vsctl(&["add-br", "x"]);
    until(&mut m, &mut cache, |c| bridge_names(c) == ["pre", "x"]).await;
    srv.vsctl(&[
        "add-port",
        "x",
        "p1",
        "--",
        "set",
        "Interface",
        "p1",
        "type=internal",
    ]);
    srv.vsctl(&["br-set-external-id", "x", "owner", "t"]);
    until(&mut m, &mut cache, |c| {
        c.table("Bridge")
            .any(|(_, r)| r["ports"].atoms().len() == 2 && !r["external_ids"].is_empty())
    })
    .await;
    srv.vsctl(&["del-port", "x", "p1"]);
    srv.vsctl(&["del-br", "pre"]);
    until(&mut m, &mut cache, |c| {
        bridge_names(c) == ["x"]
            && c.table("Bridge")
                .all(|(_, r)| r["ports"].atoms().len() == 1)
    })
    .await;
    assert_eq!(
        cache.table("Interface").count(),
        1,
        "p1 and pre's interface gone"
    );
    m.cancel().await.unwrap();
}

#[tokio::test]
async fn monitor_cond_initial_and_updates() {
    initial_then_updates(MonitorKind::Cond).await;
}

#[tokio::test]
async fn plain_monitor_initial_and_updates() {
    initial_then_updates(MonitorKind::Plain).await;
}

#[tokio::test]
async fn monitor_prefers_cond_and_filters_rows() {
    let Some(srv) = Server::start() else { return };
    srv.vsctl(&["init"]);
    srv.vsctl(&["add-br", "a"]);
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    let reqs = MonitorRequests::from([(
        "Bridge".to_string(),
        MonitorRequest {
            columns: Some(vec!["name".into()]),
            conditions: Some(vec![Condition::eq("name", "b")]),
            select: None,
        },
    )]);
    let mut m = within("monitor", c.monitor(DB, &reqs)).await.unwrap();
    assert_eq!(m.kind(), MonitorKind::Cond);
    assert!(
        m.initial.get("Bridge").is_none_or(|t| t.is_empty()),
        "{:?}",
        m.initial
    );
    srv.vsctl(&["add-br", "c"]);
    srv.vsctl(&["add-br", "b"]);
    let u = within("update", m.recv()).await.unwrap().unwrap();
    let rows: Vec<_> = u["Bridge"].values().collect();
    assert_eq!(rows.len(), 1);
    assert!(matches!(rows[0], RowUpdate::Insert(r) if r["name"].as_str() == Some("b")));
}

#[tokio::test]
async fn monitor_stream_ends_when_server_dies() {
    let Some(mut srv) = Server::start() else {
        return;
    };
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    let mut m = c.monitor(DB, &requests()).await.unwrap();
    drop(c);
    srv.kill9();
    assert!(within("end of stream", m.recv()).await.is_none());
}
