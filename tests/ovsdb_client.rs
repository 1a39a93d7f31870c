//! Tier 2: the OVSDB client against a private ovsdb-server started by each test.

#[path = "ovsdb_harness/mod.rs"]
mod harness;

use harness::{within, Server};
use ovs_appliance::ovsdb::{
    Atom, Client, Condition, Datum, Error, LockEvent, Mutation, Mutator, OpResult, Operation, Row,
    TxnErrorKind, WaitUntil,
};
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

fn row(pairs: &[(&str, Datum)]) -> Row {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Adds bridge `name` with one internal port, attached to the root row, in one transaction.
async fn add_bridge(c: &Client, name: &str) -> Vec<OpResult> {
    let ops = [
        Operation::Insert {
            table: "Interface".into(),
            row: row(&[("name", name.into()), ("type", "internal".into())]),
            uuid_name: Some("iface".into()),
        },
        Operation::Insert {
            table: "Port".into(),
            row: row(&[
                ("name", name.into()),
                ("interfaces", Datum::named_uuid("iface")),
            ]),
            uuid_name: Some("port".into()),
        },
        Operation::Insert {
            table: "Bridge".into(),
            row: row(&[
                ("name", name.into()),
                ("ports", Datum::named_uuid("port")),
                (
                    "external_ids",
                    Datum::map([("ovs-appliance-owner", "test")]),
                ),
            ]),
            uuid_name: Some("br".into()),
        },
        Operation::Mutate {
            table: "Open_vSwitch".into(),
            conditions: vec![],
            mutations: vec![Mutation::new(
                "bridges",
                Mutator::Insert,
                Datum::named_uuid("br"),
            )],
        },
    ];
    within("add bridge", c.transact(DB, &ops)).await.unwrap()
}

#[tokio::test]
async fn typed_insert_select_mutate_delete() {
    let Some(srv) = Server::start() else { return };
    srv.vsctl(&["init"]);
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    let res = add_bridge(&c, "br-t").await;
    let br = res[2].uuid.expect("bridge uuid");
    assert_eq!(res[3].count, Some(1));
    assert_eq!(srv.vsctl(&["list-br"]).trim(), "br-t");

    let select = Operation::Select {
        table: "Bridge".into(),
        conditions: vec![Condition::eq("_uuid", br)],
        columns: Some(vec!["name".into(), "ports".into(), "external_ids".into()]),
    };
    let rows = c.transact(DB, std::slice::from_ref(&select)).await.unwrap()[0]
        .rows
        .clone()
        .unwrap();
    assert_eq!(rows[0]["name"].as_str(), Some("br-t"));
    assert_eq!(rows[0]["ports"].atoms().len(), 1, "one-element set decoded");
    let owner = rows[0]["external_ids"].map_get("ovs-appliance-owner");
    assert_eq!(owner.and_then(Atom::as_str), Some("test"));

    let mutate = Operation::Mutate {
        table: "Bridge".into(),
        conditions: vec![Condition::eq("name", "br-t")],
        mutations: vec![Mutation::new(
            "external_ids",
            Mutator::Insert,
            Datum::map([("k", "v")]),
        )],
    };
    assert_eq!(c.transact(DB, &[mutate]).await.unwrap()[0].count, Some(1));
    let got = srv.vsctl(&["get", "Bridge", "br-t", "external_ids:k"]);
    assert_eq!(got.trim(), "v");

    let delete = [
        Operation::Mutate {
            table: "Open_vSwitch".into(),
            conditions: vec![],
            mutations: vec![Mutation::new("bridges", Mutator::Delete, br)],
        },
        Operation::Delete {
            table: "Bridge".into(),
            conditions: vec![Condition::eq("_uuid", br)],
        },
        Operation::Comment {
            comment: "ovs-appliance test: delete br-t".into(),
        },
    ];
    let res = c.transact(DB, &delete).await.unwrap();
    assert_eq!(res[1].count, Some(1));
    assert_eq!(srv.vsctl(&["list-br"]).trim(), "");
}

#[tokio::test]
async fn typed_wait_timeout_and_abort_errors() {
    let Some(srv) = Server::start() else { return };
    let c = Client::connect_unix(&srv.sock).await.unwrap();
    let wait = Operation::Wait {
        table: "Bridge".into(),
        timeout_ms: Some(0),
        conditions: vec![Condition::eq("name", "absent")],
        columns: vec!["name".into()],
        until: WaitUntil::Eq,
        rows: vec![row(&[("name", "absent".into())])],
    };
    let err = c.transact(DB, &[wait]).await.unwrap_err();
    assert_eq!(err.txn_kind(), Some(&TxnErrorKind::TimedOut), "{err}");

    let abort = [
        Operation::Comment {
            comment: "x".into(),
        },
        Operation::Abort,
    ];
    let err = c.transact(DB, &abort).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transaction {
                index: 1,
                kind: TxnErrorKind::Aborted,
                ..
            }
        ),
        "{err}"
    );

    let assert_lock = [Operation::Assert {
        lock: "not_mine".into(),
    }];
    let err = c.transact(DB, &assert_lock).await.unwrap_err();
    assert_eq!(err.txn_kind(), Some(&TxnErrorKind::NotOwner), "{err}");

    let dup = [
        Operation::Insert {
            table: "Queue".into(),
            row: Row::new(),
            uuid_name: Some("q".into()),
        },
        Operation::Insert {
            table: "Queue".into(),
            row: Row::new(),
            uuid_name: Some("q".into()),
        },
    ];
    let err = c.transact(DB, &dup).await.unwrap_err();
    assert_eq!(
        err.txn_kind(),
        Some(&TxnErrorKind::DuplicateUuidName),
        "{err}"
    );

    let unknown = c
        .transact("No_Such_DB", &[Operation::Abort])
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, Error::Rpc { .. } | Error::Transaction { .. }),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn lock_then_assert_succeeds() {
    let Some(srv) = Server::start() else { return };
    let a = Client::connect_unix(&srv.sock).await.unwrap();
    let b = Client::connect_unix(&srv.sock).await.unwrap();
    let la = within("lock a", a.lock("reconcile")).await.unwrap();
    assert!(la.is_locked());
    let mut lb = within("lock b", b.lock("reconcile")).await.unwrap();
    assert!(!lb.is_locked());
    a.transact(
        DB,
        &[Operation::Assert {
            lock: "reconcile".into(),
        }],
    )
    .await
    .unwrap();
    within("unlock a", la.unlock()).await.unwrap();
    within("b acquires", lb.acquired()).await.unwrap();
    b.transact(
        DB,
        &[Operation::Assert {
            lock: "reconcile".into(),
        }],
    )
    .await
    .unwrap();
    let _stolen_by_a = within("steal", a.steal("reconcile")).await.unwrap();
    assert_eq!(
        within("b stolen", lb.next_event()).await,
        Some(LockEvent::Stolen)
    );
}
