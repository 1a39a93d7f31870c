//! Tier 2: the reconnecting client across a kill -9 and restart of its private ovsdb-server.

#[path = "ovsdb_harness/mod.rs"]
mod harness;

use std::time::Duration;

use harness::{within, Server};
use ovs_appliance::ovsdb::{
    MonitorEvent, MonitorRequest, MonitorRequests, Operation, ReconnectOptions, ReconnectingClient,
    RowUpdate,
};
use tokio::sync::mpsc::UnboundedReceiver;

const DB: &str = "Open_vSwitch";

fn opts() -> ReconnectOptions {
    ReconnectOptions {
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        call_timeout: Some(Duration::from_secs(10)),
        probe_interval: Some(Duration::from_secs(1)),
        stable_after: Duration::from_secs(1),
    }
}

fn names(ev: &MonitorEvent) -> Vec<String> {
    let (MonitorEvent::Snapshot(u) | MonitorEvent::Update(u)) = ev else {
        return Vec::new();
    };
    let mut v: Vec<String> = u
        .get("Bridge")
        .into_iter()
        .flat_map(|t| t.values())
        .filter_map(|r| match r {
            RowUpdate::Initial(r) | RowUpdate::Insert(r) => r["name"].as_str().map(str::to_string),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

async fn next(rx: &mut UnboundedReceiver<MonitorEvent>) -> MonitorEvent {
    within("monitor event", rx.recv())
        .await
        .expect("monitor stream ended")
}

#[tokio::test]
async fn monitor_resubscribes_after_server_restart() {
    let Some(mut srv) = Server::start() else {
        return;
    };
    srv.vsctl(&["init"]);
    let rc = ReconnectingClient::new(&srv.sock, opts());
    let reqs = MonitorRequests::from([("Bridge".to_string(), MonitorRequest::columns(&["name"]))]);
    let mut rx = rc.monitor(DB, reqs);
    let first = next(&mut rx).await;
    assert!(matches!(first, MonitorEvent::Snapshot(_)), "{first:?}");
    assert!(names(&first).is_empty());

    srv.vsctl(&["add-br", "before"]);
    assert_eq!(names(&next(&mut rx).await), ["before"]);

    srv.kill9();
    let ev = next(&mut rx).await;
    assert!(matches!(ev, MonitorEvent::Disconnected(_)), "{ev:?}");
    srv.restart();
    let snap = next(&mut rx).await;
    assert!(matches!(snap, MonitorEvent::Snapshot(_)), "{snap:?}");
    assert_eq!(
        names(&snap),
        ["before"],
        "the database survived the restart"
    );

    srv.vsctl(&["add-br", "after"]);
    assert_eq!(names(&next(&mut rx).await), ["after"]);

    // The same handle transacts on the new connection.
    let res = within(
        "transact",
        rc.transact(
            DB,
            &[Operation::Comment {
                comment: "hi".into(),
            }],
        ),
    )
    .await
    .unwrap();
    assert_eq!(res.len(), 1);
}

#[tokio::test]
async fn waits_for_a_server_that_starts_late() {
    let Some(mut srv) = Server::start() else {
        return;
    };
    srv.kill9();
    let _ = std::fs::remove_file(&srv.sock);
    let rc = ReconnectingClient::new(&srv.sock, opts());
    assert!(rc.current().is_none());
    let mut rx = rc.monitor(
        DB,
        MonitorRequests::from([("Bridge".into(), MonitorRequest::all())]),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.restart();
    assert!(matches!(next(&mut rx).await, MonitorEvent::Snapshot(_)));
    within("client", rc.client()).await.echo().await.unwrap();
}

#[tokio::test]
async fn rejected_monitor_reports_failed() {
    let Some(srv) = Server::start() else { return };
    let rc = ReconnectingClient::new(&srv.sock, opts());
    let mut rx = rc.monitor(
        DB,
        MonitorRequests::from([("No_Such_Table".into(), MonitorRequest::all())]),
    );
    let ev = next(&mut rx).await;
    assert!(matches!(ev, MonitorEvent::Failed(_)), "{ev:?}");
}

#[tokio::test]
async fn call_timeout_and_echo_probe_detect_a_hung_server() {
    use nix::sys::signal::Signal;
    let Some(srv) = Server::start() else { return };
    let rc = ReconnectingClient::new(
        &srv.sock,
        ReconnectOptions {
            probe_interval: Some(Duration::from_millis(300)),
            ..opts()
        },
    );
    let mut rx = rc.monitor(
        DB,
        MonitorRequests::from([("Bridge".into(), MonitorRequest::all())]),
    );
    assert!(matches!(next(&mut rx).await, MonitorEvent::Snapshot(_)));
    let c = within("client", rc.client()).await;

    srv.signal(Signal::SIGSTOP);
    let err = c
        .with_timeout(Duration::from_millis(200))
        .echo()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ovs_appliance::ovsdb::Error::Timeout { .. }),
        "{err:?}"
    );
    let ev = next(&mut rx).await;
    assert!(
        matches!(ev, MonitorEvent::Disconnected(_)),
        "probe should drop the hung connection: {ev:?}"
    );

    srv.signal(Signal::SIGCONT);
    let ev = next(&mut rx).await;
    assert!(matches!(ev, MonitorEvent::Snapshot(_)), "{ev:?}");
}
