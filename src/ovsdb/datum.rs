//! The OVSDB datum codec (RFC 7047 section 5.1): atoms, sets, maps, uuid and named-uuid, and rows.
//!
//! Wire quirks handled here: a one-element set arrives as the bare atom; an empty optional is
//! `["set", []]`; a uuid is `["uuid", "..."]`, a reference to a row inserted earlier in the same
//! transaction is `["named-uuid", "id"]`. Decoding is total: malformed JSON gives an error, never
//! a panic (see the property tests).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::{Error, Uuid};

/// One scalar value.
#[derive(Debug, Clone)]
pub enum Atom {
    Integer(i64),
    /// Must be finite: JSON has no NaN or infinity, so those encode as `null` and fail to decode.
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
    /// A `uuid-name` given to an insert earlier in the same transaction.
    NamedUuid(String),
}

/// A column value: a set of atoms (scalars and optionals are sets of 1 and 0..1) or a map.
///
/// Equality ignores element order: the server may send a set in any order.
#[derive(Debug, Clone)]
pub enum Datum {
    Set(Vec<Atom>),
    Map(Vec<(Atom, Atom)>),
}

/// A row: column name to value. Only the columns that were sent or selected are present.
pub type Row = BTreeMap<String, Datum>;

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
            Atom::NamedUuid(_) => 5,
        }
    }

    /// Encodes to RFC 7047 JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => Value::from(*i),
            Atom::Real(r) => Number::from_f64(*r).map_or(Value::Null, Value::Number),
            Atom::Boolean(b) => Value::Bool(*b),
            Atom::String(s) => Value::String(s.clone()),
            Atom::Uuid(u) => Value::Array(vec!["uuid".into(), u.to_string().into()]),
            Atom::NamedUuid(n) => Value::Array(vec!["named-uuid".into(), n.clone().into()]),
        }
    }

    /// Decodes RFC 7047 JSON. An integral number is an integer: a real column's value `1` comes
    /// back as `Integer(1)` without the schema (see [`Datum::coerce`]).
    pub fn from_json(v: &Value) -> Result<Atom, Error> {
        match v {
            Value::Bool(b) => Ok(Atom::Boolean(*b)),
            Value::String(s) => Ok(Atom::String(s.clone())),
            Value::Number(n) => number_atom(n),
            Value::Array(a) => match (a.first().and_then(Value::as_str), a.get(1), a.len()) {
                (Some("uuid"), Some(Value::String(s)), 2) => Ok(Atom::Uuid(Uuid::parse(s)?)),
                (Some("named-uuid"), Some(Value::String(s)), 2) if is_id(s) => {
                    Ok(Atom::NamedUuid(s.clone()))
                }
                _ => Err(Error::decode(
                    "atom",
                    format!("{} is not an atom", short(v)),
                )),
            },
            _ => Err(Error::decode(
                "atom",
                format!("{} is not an atom", short(v)),
            )),
        }
    }

    /// The string, for a string atom.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, for an integer atom.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The uuid, for a uuid atom.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }
}

fn number_atom(n: &Number) -> Result<Atom, Error> {
    if let Some(i) = n.as_i64() {
        return Ok(Atom::Integer(i));
    }
    if n.is_u64() {
        return Err(Error::decode(
            "atom",
            format!("integer {n} out of 64-bit range"),
        ));
    }
    match n.as_f64() {
        Some(r) if r.is_finite() => Ok(Atom::Real(r)),
        _ => Err(Error::decode("atom", format!("number {n} is not finite"))),
    }
}

/// RFC 7047 `<id>`: what a uuid-name may be.
pub(crate) fn is_id(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A bounded rendering of a JSON value for error messages.
pub(crate) fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut cut = 77;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

impl Ord for Atom {
    /// A total order (reals by `total_cmp`), so sets can be sorted and compared.
    fn cmp(&self, other: &Atom) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Atom) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Atom) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Atom {}

impl From<&str> for Atom {
    fn from(s: &str) -> Atom {
        Atom::String(s.to_string())
    }
}
impl From<String> for Atom {
    fn from(s: String) -> Atom {
        Atom::String(s)
    }
}
impl From<i64> for Atom {
    fn from(i: i64) -> Atom {
        Atom::Integer(i)
    }
}
impl From<bool> for Atom {
    fn from(b: bool) -> Atom {
        Atom::Boolean(b)
    }
}
impl From<f64> for Atom {
    fn from(r: f64) -> Atom {
        Atom::Real(r)
    }
}
impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Atom {
        Atom::Uuid(u)
    }
}

impl Datum {
    /// The empty set: an unset optional column.
    pub fn empty() -> Datum {
        Datum::Set(Vec::new())
    }

    /// A set, sorted and without duplicates as OVSDB requires.
    pub fn set(atoms: impl IntoIterator<Item = Atom>) -> Datum {
        let mut v: Vec<Atom> = atoms.into_iter().collect();
        v.sort();
        v.dedup();
        Datum::Set(v)
    }

    /// A map, sorted by key; a later duplicate key wins.
    pub fn map<K: Into<Atom>, V: Into<Atom>>(pairs: impl IntoIterator<Item = (K, V)>) -> Datum {
        let m: BTreeMap<Atom, Atom> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Datum::Map(m.into_iter().collect())
    }

    /// A reference to the row inserted with `uuid-name` `name` in the same transaction.
    pub fn named_uuid(name: &str) -> Datum {
        Datum::Set(vec![Atom::NamedUuid(name.to_string())])
    }

    /// Encodes to RFC 7047 JSON; a one-element set is written as the bare atom, as OVS does.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Set(v) if v.len() == 1 => v[0].to_json(),
            Datum::Set(v) => tagged("set", v.iter().map(Atom::to_json).collect()),
            Datum::Map(m) => tagged(
                "map",
                m.iter()
                    .map(|(k, v)| Value::Array(vec![k.to_json(), v.to_json()]))
                    .collect(),
            ),
        }
    }

    /// Decodes RFC 7047 JSON: an atom, `["set", [..]]` or `["map", [[k, v], ..]]`.
    pub fn from_json(v: &Value) -> Result<Datum, Error> {
        let Value::Array(a) = v else {
            return Ok(Datum::Set(vec![Atom::from_json(v)?]));
        };
        match (a.first().and_then(Value::as_str), a.get(1), a.len()) {
            (Some("set"), Some(Value::Array(items)), 2) => items
                .iter()
                .map(Atom::from_json)
                .collect::<Result<_, _>>()
                .map(Datum::Set),
            (Some("map"), Some(Value::Array(pairs)), 2) => pairs
                .iter()
                .map(map_pair)
                .collect::<Result<_, _>>()
                .map(Datum::Map),
            _ => Atom::from_json(v).map(|a| Datum::Set(vec![a])),
        }
    }

    /// The single atom of a scalar or a set optional that is set.
    pub fn as_atom(&self) -> Option<&Atom> {
        match self {
            Datum::Set(v) if v.len() == 1 => Some(&v[0]),
            _ => None,
        }
    }

    /// The string of a one-string datum (e.g. a `name` column).
    pub fn as_str(&self) -> Option<&str> {
        self.as_atom().and_then(Atom::as_str)
    }

    /// The integer of a one-integer datum.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_atom().and_then(Atom::as_i64)
    }

    /// The uuid of a one-uuid datum.
    pub fn as_uuid(&self) -> Option<Uuid> {
        self.as_atom().and_then(Atom::as_uuid)
    }

    /// The atoms of a set (empty for a map).
    pub fn atoms(&self) -> &[Atom] {
        match self {
            Datum::Set(v) => v,
            Datum::Map(_) => &[],
        }
    }

    /// The value under string key `key` of a map (e.g. `external_ids`).
    pub fn map_get(&self, key: &str) -> Option<&Atom> {
        match self {
            Datum::Map(m) => m
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|p| &p.1),
            Datum::Set(_) => None,
        }
    }

    /// True for the empty set or map.
    pub fn is_empty(&self) -> bool {
        match self {
            Datum::Set(v) => v.is_empty(),
            Datum::Map(m) => m.is_empty(),
        }
    }

    fn sorted(&self) -> Datum {
        match self {
            Datum::Set(v) => Datum::set(v.iter().cloned()),
            Datum::Map(m) => {
                let mut m = m.clone();
                m.sort();
                Datum::Map(m)
            }
        }
    }
}

fn tagged(tag: &str, items: Vec<Value>) -> Value {
    Value::Array(vec![tag.into(), Value::Array(items)])
}

fn map_pair(p: &Value) -> Result<(Atom, Atom), Error> {
    match p.as_array().map(Vec::as_slice) {
        Some([k, v]) => Ok((Atom::from_json(k)?, Atom::from_json(v)?)),
        _ => Err(Error::decode(
            "map pair",
            format!("{} is not [key, value]", short(p)),
        )),
    }
}

/// Strictly ascending: sorted and without duplicates, as [`Datum::set`] and [`Datum::map`] build
/// and as ovsdb-server sends.
fn canonical<T: Ord>(items: &[T]) -> bool {
    items.windows(2).all(|w| w[0] < w[1])
}

impl PartialEq for Datum {
    fn eq(&self, other: &Datum) -> bool {
        // The common case compares in place: a reconcile pass makes some 20,000 of these
        // comparisons at a thousand ports, and copying both sides to sort them was most of it.
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) if canonical(a) && canonical(b) => return a == b,
            (Datum::Map(a), Datum::Map(b)) if canonical(a) && canonical(b) => return a == b,
            (a, b) if a.is_empty() && b.is_empty() => return true,
            _ => {}
        }
        match (self.sorted(), other.sorted()) {
            (Datum::Set(a), Datum::Set(b)) => a == b,
            (Datum::Map(a), Datum::Map(b)) => a == b,
            // An empty map and an empty set are the same empty value on the wire.
            (a, b) => a.is_empty() && b.is_empty(),
        }
    }
}

impl<T: Into<Atom>> From<T> for Datum {
    fn from(a: T) -> Datum {
        Datum::Set(vec![a.into()])
    }
}

/// Encodes a row as a JSON object.
pub fn row_to_json(row: &Row) -> Value {
    Value::Object(
        row.iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<Map<_, _>>(),
    )
}

/// Decodes a JSON object of column values.
pub fn row_from_json(v: &Value) -> Result<Row, Error> {
    let Value::Object(o) = v else {
        return Err(Error::decode(
            "row",
            format!("{} is not an object", short(v)),
        ));
    };
    o.iter()
        .map(|(k, v)| {
            Datum::from_json(v)
                .map(|d| (k.clone(), d))
                .map_err(|e| Error::decode("row", format!("column {k}: {e}")))
        })
        .collect()
}

#[cfg(test)]
#[path = "datum_tests.rs"]
pub(crate) mod tests;
