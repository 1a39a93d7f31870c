//! Tests of the datum codec: fixed wire examples, round-trip properties, and a decoder that never
//! panics on arbitrary JSON.

use super::*;
use proptest::prelude::*;
use serde_json::json;

const U: &str = "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11";

#[test]
fn wire_examples() {
    let u = Uuid::parse(U).unwrap();
    let cases = [
        (json!(5), Datum::from(5)),
        (json!(2.5), Datum::from(2.5)),
        (json!(true), Datum::from(true)),
        (json!("br0"), Datum::from("br0")),
        (json!(["uuid", U]), Datum::from(u)),
        (json!(["named-uuid", "row_1"]), Datum::named_uuid("row_1")),
        (json!(["set", []]), Datum::empty()),
        (json!(["set", [1, 2]]), Datum::set([1.into(), 2.into()])),
        (json!(["map", [["k", "v"]]]), Datum::map([("k", "v")])),
    ];
    for (wire, datum) in cases {
        assert_eq!(Datum::from_json(&wire).unwrap(), datum, "{wire}");
        assert_eq!(Datum::from_json(&datum.to_json()).unwrap(), datum);
    }
}

#[test]
fn one_element_set_is_a_bare_atom() {
    let one = Datum::from_json(&json!(["set", ["a"]])).unwrap();
    assert_eq!(one.to_json(), json!("a"));
    assert_eq!(one.as_str(), Some("a"));
    // A set of one uuid is the ["uuid", ..] atom, not a two-element set.
    let u = Datum::from_json(&json!(["set", [["uuid", U]]])).unwrap();
    assert_eq!(u.to_json(), json!(["uuid", U]));
}

#[test]
fn malformed_is_an_error() {
    for bad in [
        json!(null),
        json!({}),
        json!(["set"]),
        json!(["set", 1]),
        json!(["set", [["set", []]]]),
        json!(["map", [["k"]]]),
        json!(["map", [1]]),
        json!(["uuid", "nope"]),
        json!(["named-uuid", "1abc"]),
        json!(["named-uuid", 1]),
        json!(["uuid", U, "extra"]),
        json!(18446744073709551615u64),
        json!([]),
    ] {
        assert!(Datum::from_json(&bad).is_err(), "{bad}");
    }
}

#[test]
fn equality_ignores_order() {
    let a = Datum::Set(vec!["b".into(), "a".into()]);
    assert_eq!(a, Datum::set(["a".into(), "b".into()]));
    assert_eq!(Datum::Map(vec![]), Datum::empty());
    assert_ne!(Datum::from(1), Datum::from(1.0));
}

#[test]
fn rows() {
    let row = row_from_json(&json!({"name": "br0", "ports": ["set", []]})).unwrap();
    assert_eq!(row["name"].as_str(), Some("br0"));
    assert!(row["ports"].is_empty());
    assert_eq!(row_from_json(&row_to_json(&row)).unwrap(), row);
    let err = row_from_json(&json!({"name": null})).unwrap_err();
    assert!(err.to_string().contains("column name"), "{err}");
    assert!(row_from_json(&json!([])).is_err());
}

#[test]
fn map_lookup() {
    let m = Datum::map([("owner", "me")]);
    assert_eq!(m.map_get("owner").and_then(Atom::as_str), Some("me"));
    assert!(m.map_get("other").is_none());
}

fn atom() -> impl Strategy<Value = Atom> {
    prop_oneof![
        any::<i64>().prop_map(Atom::Integer),
        // Only finite reals exist in JSON; integral reals stay reals because serde_json prints
        // them with a decimal point.
        (-1e300f64..1e300).prop_map(Atom::Real),
        any::<bool>().prop_map(Atom::Boolean),
        ".*".prop_map(Atom::String),
        any::<[u8; 16]>().prop_map(|b| Atom::Uuid(Uuid::from_bytes(b))),
        "[a-zA-Z_][a-zA-Z0-9_]{0,12}".prop_map(Atom::NamedUuid),
    ]
}

pub(crate) fn datum() -> impl Strategy<Value = Datum> {
    prop_oneof![
        prop::collection::vec(atom(), 0..6).prop_map(Datum::set),
        prop::collection::vec((atom(), atom()), 0..6).prop_map(Datum::map),
    ]
}

/// Arbitrary JSON, biased towards the shapes the decoder looks for.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("set".to_string()),
            Just("map".to_string()),
            Just("uuid".to_string()),
            Just("named-uuid".to_string()),
            Just(U.to_string()),
            ".{0,8}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn datum_round_trips(d in datum()) {
        let wire = d.to_json();
        prop_assert_eq!(Datum::from_json(&wire).unwrap(), d.clone());
        // And through text, as it travels.
        let text = wire.to_string();
        let back: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(Datum::from_json(&back).unwrap(), d);
    }

    #[test]
    fn row_round_trips(r in prop::collection::btree_map("[a-z_]{1,8}", datum(), 0..5)) {
        prop_assert_eq!(row_from_json(&row_to_json(&r)).unwrap(), r);
    }

    /// Equality compares in place when both sides are sorted and falls back to sorting copies
    /// when not: either way it is set (and map) equality.
    #[test]
    fn equality_is_set_equality(
        a in prop::collection::vec(0i64..6, 0..6),
        b in prop::collection::vec(0i64..6, 0..6),
    ) {
        let same = a.iter().collect::<std::collections::BTreeSet<_>>()
            == b.iter().collect::<std::collections::BTreeSet<_>>();
        let raw = |v: &[i64]| Datum::Set(v.iter().map(|i| Atom::from(*i)).collect());
        let built = |v: &[i64]| Datum::set(v.iter().map(|i| Atom::from(*i)));
        prop_assert_eq!(raw(&a) == raw(&b), same);
        prop_assert_eq!(built(&a) == built(&b), same);
        prop_assert_eq!(raw(&a) == built(&b), same);
        // A map's keys are unique; their order is free.
        let mut keys = a.clone();
        keys.retain({
            let mut seen = std::collections::BTreeSet::new();
            move |k| seen.insert(*k)
        });
        let map = Datum::Map(keys.iter().map(|i| (Atom::from(*i), Atom::from("v"))).collect());
        prop_assert_eq!(map == Datum::map(b.iter().map(|i| (*i, "v"))), same);
    }

    #[test]
    fn uuid_round_trips(b in any::<[u8; 16]>()) {
        let u = Uuid::from_bytes(b);
        prop_assert_eq!(Uuid::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn decoder_never_panics(v in json_value()) {
        let _ = Datum::from_json(&v);
        let _ = row_from_json(&v);
    }
}
