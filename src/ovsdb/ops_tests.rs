//! Tests of the operation encoding: exact wire shapes, round trips, and a decoder that never panics.

use super::*;
use crate::ovsdb::datum::tests::{datum, json_value};
use crate::ovsdb::Atom;
use proptest::prelude::*;
use serde_json::json;

#[test]
fn insert_with_named_uuid_wire_shape() {
    let op = Operation::Insert {
        table: "Port".into(),
        row: Row::from([
            ("name".to_string(), Datum::from("p0")),
            ("interfaces".to_string(), Datum::named_uuid("iface")),
        ]),
        uuid_name: Some("port".into()),
    };
    assert_eq!(
        op.to_json(),
        json!({"op": "insert", "table": "Port", "uuid-name": "port",
               "row": {"name": "p0", "interfaces": ["named-uuid", "iface"]}})
    );
}

#[test]
fn mutate_and_wait_wire_shape() {
    let op = Operation::Mutate {
        table: "Open_vSwitch".into(),
        conditions: vec![],
        mutations: vec![Mutation::new("next_cfg", Mutator::Add, 1)],
    };
    assert_eq!(
        op.to_json(),
        json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
               "mutations": [["next_cfg", "+=", 1]]})
    );
    let w = Operation::Wait {
        table: "Bridge".into(),
        timeout_ms: Some(0),
        conditions: vec![Condition::eq("name", "br0")],
        columns: vec!["name".into()],
        until: WaitUntil::Eq,
        rows: vec![Row::from([("name".to_string(), Datum::from("br0"))])],
    };
    assert_eq!(
        w.to_json(),
        json!({"op": "wait", "table": "Bridge", "timeout": 0, "where": [["name", "==", "br0"]],
               "columns": ["name"], "until": "==", "rows": [{"name": "br0"}]})
    );
}

#[test]
fn results_decode() {
    let u = "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11";
    let r = OpResult::from_json(&json!({"uuid": ["uuid", u]})).unwrap();
    assert_eq!(r.uuid.unwrap().to_string(), u);
    let r = OpResult::from_json(&json!({"rows": [{"name": "a"}]})).unwrap();
    assert_eq!(r.rows.unwrap()[0]["name"], Datum::from("a"));
    assert_eq!(
        OpResult::from_json(&json!({"count": 3})).unwrap().count,
        Some(3)
    );
    assert_eq!(
        OpResult::from_json(&json!({})).unwrap(),
        OpResult::default()
    );
    assert!(OpResult::from_json(&json!({"count": -1})).is_err());
    assert!(OpResult::from_json(&json!({"uuid": "x"})).is_err());
    assert!(OpResult::from_json(&json!(7)).is_err());
}

#[test]
fn decode_rejects_bad_ops() {
    for bad in [
        json!({"op": "insert", "table": "T"}),
        json!({"op": "insert", "table": "T", "row": {}, "uuid-name": "1x"}),
        json!({"op": "frobnicate"}),
        json!({"op": "select", "table": "T", "where": [["a", "~", 1]]}),
        json!({"op": "wait", "table": "T", "where": [], "columns": [], "until": "<", "rows": []}),
        json!({"op": "commit", "durable": "yes"}),
        json!(["op"]),
    ] {
        assert!(Operation::from_json(&bad).is_err(), "{bad}");
    }
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_]{1,8}"
}

fn row() -> impl Strategy<Value = Row> {
    prop::collection::btree_map(name(), datum(), 0..3)
}

fn condition() -> impl Strategy<Value = Condition> {
    let f = prop::sample::select(FUNCTIONS.iter().map(|p| p.0).collect::<Vec<_>>());
    (name(), f, datum()).prop_map(|(c, f, d)| Condition::new(&c, f, d))
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let m = prop::sample::select(MUTATORS.iter().map(|p| p.0).collect::<Vec<_>>());
    (name(), m, datum()).prop_map(|(c, m, d)| Mutation::new(&c, m, d))
}

fn operation() -> impl Strategy<Value = Operation> {
    let conds = || prop::collection::vec(condition(), 0..3);
    prop_oneof![
        (name(), row(), prop::option::of("[a-zA-Z_][a-z0-9_]{0,6}")).prop_map(|(t, r, u)| {
            Operation::Insert {
                table: t,
                row: r,
                uuid_name: u,
            }
        }),
        (
            name(),
            conds(),
            prop::option::of(prop::collection::vec(name(), 0..3))
        )
            .prop_map(|(t, c, cols)| Operation::Select {
                table: t,
                conditions: c,
                columns: cols
            }),
        (name(), conds(), row()).prop_map(|(t, c, r)| Operation::Update {
            table: t,
            conditions: c,
            row: r
        }),
        (name(), conds(), prop::collection::vec(mutation(), 0..3)).prop_map(|(t, c, m)| {
            Operation::Mutate {
                table: t,
                conditions: c,
                mutations: m,
            }
        }),
        (name(), conds()).prop_map(|(t, c)| Operation::Delete {
            table: t,
            conditions: c
        }),
        (
            name(),
            prop::option::of(any::<u64>()),
            conds(),
            any::<bool>(),
            prop::collection::vec(row(), 0..2)
        )
            .prop_map(|(t, ms, c, eq, rows)| Operation::Wait {
                table: t,
                timeout_ms: ms,
                conditions: c,
                columns: vec!["name".into()],
                until: if eq { WaitUntil::Eq } else { WaitUntil::Ne },
                rows,
            }),
        any::<bool>().prop_map(|d| Operation::Commit { durable: d }),
        Just(Operation::Abort),
        ".*".prop_map(|c| Operation::Comment { comment: c }),
        name().prop_map(|l| Operation::Assert { lock: l }),
    ]
}

proptest! {
    #[test]
    fn operation_round_trips(op in operation()) {
        let text = op.to_json().to_string();
        let back = Operation::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        prop_assert_eq!(back, op);
    }

    #[test]
    fn op_decoders_never_panic(v in json_value()) {
        let _ = Operation::from_json(&v);
        let _ = OpResult::from_json(&v);
        let _ = Condition::from_json(&v);
        let _ = Mutation::from_json(&v);
        let _ = Atom::from_json(&v);
    }
}
