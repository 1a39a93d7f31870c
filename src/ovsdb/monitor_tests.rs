//! Tests of monitor request encoding and update decoding.

use super::*;
use crate::ovsdb::datum::tests::json_value;
use crate::ovsdb::Datum;
use proptest::prelude::*;
use serde_json::json;

const U1: &str = "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11";
const U2: &str = "00000000-0000-0000-0000-000000000002";

#[test]
fn cond_request_has_where_plain_does_not() {
    let req = MonitorRequest {
        columns: Some(vec!["name".into()]),
        conditions: Some(vec![Condition::eq("name", "br0")]),
        select: Some(MonitorSelect {
            initial: true,
            insert: true,
            delete: false,
            modify: true,
        }),
    };
    let reqs = MonitorRequests::from([("Bridge".to_string(), req)]);
    let cond = requests_json(&reqs, MonitorKind::Cond);
    assert_eq!(cond["Bridge"]["where"], json!([["name", "==", "br0"]]));
    assert_eq!(cond["Bridge"]["select"]["delete"], json!(false));
    let plain = requests_json(&reqs, MonitorKind::Plain);
    assert!(plain["Bridge"].get("where").is_none());
    assert_eq!(plain["Bridge"]["columns"], json!(["name"]));
}

#[test]
fn updates2_decode() {
    let v = json!({"Bridge": {
        U1: {"initial": {"name": "br0"}},
        U2: {"modify": {"ports": ["set", []]}}},
        "Port": {U1: {"delete": null}, U2: {"insert": {"name": "p"}}}});
    let u = parse_updates2(&v).unwrap();
    let b = &u["Bridge"];
    let u1 = Uuid::parse(U1).unwrap();
    let u2 = Uuid::parse(U2).unwrap();
    assert!(matches!(&b[&u1], RowUpdate::Initial(r) if r["name"] == Datum::from("br0")));
    assert!(matches!(&b[&u2], RowUpdate::Modify(r) if r["ports"].is_empty()));
    assert_eq!(u["Port"][&u1], RowUpdate::Delete);
    assert!(matches!(&u["Port"][&u2], RowUpdate::Insert(_)));
}

#[test]
fn updates_v1_decode() {
    let v = json!({"Bridge": {
        U1: {"new": {"name": "br0"}},
        U2: {"old": {"name": "a"}, "new": {"name": "b"}}},
        "Port": {U1: {"old": {"name": "p"}}}});
    let init = parse_updates(&v, true).unwrap();
    let u1 = Uuid::parse(U1).unwrap();
    let u2 = Uuid::parse(U2).unwrap();
    assert!(matches!(init["Bridge"][&u1], RowUpdate::Initial(_)));
    let later = parse_updates(&v, false).unwrap();
    assert!(matches!(later["Bridge"][&u1], RowUpdate::Insert(_)));
    assert!(
        matches!(&later["Bridge"][&u2], RowUpdate::Replace(r) if r["name"] == Datum::from("b"))
    );
    assert_eq!(later["Port"][&u1], RowUpdate::Delete);
}

#[test]
fn malformed_updates_are_errors() {
    for bad in [
        json!([]),
        json!({"Bridge": []}),
        json!({"Bridge": {"not-a-uuid": {"delete": null}}}),
        json!({"Bridge": {U1: {"frob": {}}}}),
        json!({"Bridge": {U1: {"insert": {}, "delete": null}}}),
        json!({"Bridge": {U1: {"insert": {"name": null}}}}),
    ] {
        assert!(parse_updates2(&bad).is_err(), "{bad}");
    }
    assert!(parse_updates(&json!({"Bridge": {U1: {}}}), false).is_err());
}

#[test]
fn notifications_decode_by_kind() {
    let body = json!({"Bridge": {U1: {"delete": null}}});
    let n2 = Notification {
        method: "update2".into(),
        params: vec![json!("m"), body.clone()],
    };
    assert_eq!(parse_notification(&n2, MonitorKind::Cond).unwrap().len(), 1);
    let n3 = Notification {
        method: "update3".into(),
        params: vec![json!("m"), json!("txn"), body],
    };
    assert_eq!(parse_notification(&n3, MonitorKind::Cond).unwrap().len(), 1);
    let wrong = Notification {
        method: "update".into(),
        params: vec![json!("m")],
    };
    assert!(parse_notification(&wrong, MonitorKind::Plain).is_err());
    assert!(parse_notification(&n2, MonitorKind::Plain).is_err());
}

proptest! {
    #[test]
    fn update_decoders_never_panic(v in json_value(), method in "update[23]?") {
        let _ = parse_updates2(&v);
        let _ = parse_updates(&v, false);
        let n = Notification { method, params: vec![json!("m"), v.clone(), v] };
        let _ = parse_notification(&n, MonitorKind::Cond);
        let _ = parse_notification(&n, MonitorKind::Plain);
    }
}
