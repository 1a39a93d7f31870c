//! Database schemas (RFC 7047 section 3.2), decoded only as far as the client needs: column types,
//! to tell a scalar from a set when applying update2 diffs and to restore reals that arrived
//! looking like integers.

use std::collections::BTreeMap;

use serde_json::Value;

use super::datum::short;
use super::{Atom, Datum, Error};

/// The type of one atom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

/// A column's type: key (and value for maps) with the allowed number of elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    pub key: AtomicType,
    pub value: Option<AtomicType>,
    pub min: u64,
    /// None: "unlimited".
    pub max: Option<u64>,
}

/// One table's columns. `_uuid` and `_version` are implicit and answered by [`TableSchema::column`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub columns: BTreeMap<String, ColumnType>,
    pub is_root: bool,
}

/// A database schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub name: String,
    pub version: String,
    pub tables: BTreeMap<String, TableSchema>,
}

const UUID_COLUMN: ColumnType = ColumnType {
    key: AtomicType::Uuid,
    value: None,
    min: 1,
    max: Some(1),
};

impl AtomicType {
    fn parse(v: &Value) -> Result<AtomicType, Error> {
        // A base type is a name, or an object whose "type" is the name (with constraints we skip).
        let name = match v {
            Value::Object(o) => o.get("type").and_then(Value::as_str),
            other => other.as_str(),
        };
        match name {
            Some("integer") => Ok(AtomicType::Integer),
            Some("real") => Ok(AtomicType::Real),
            Some("boolean") => Ok(AtomicType::Boolean),
            Some("string") => Ok(AtomicType::String),
            Some("uuid") => Ok(AtomicType::Uuid),
            _ => Err(Error::decode("schema type", short(v))),
        }
    }
}

impl ColumnType {
    /// Decodes a column's "type" member.
    pub fn from_json(v: &Value) -> Result<ColumnType, Error> {
        let Value::Object(o) = v else {
            let key = AtomicType::parse(v)?;
            return Ok(ColumnType {
                key,
                value: None,
                min: 1,
                max: Some(1),
            });
        };
        let key = AtomicType::parse(o.get("key").unwrap_or(&Value::Null))?;
        let value = o.get("value").map(AtomicType::parse).transpose()?;
        let min = match o.get("min") {
            None => 1,
            Some(m) => m
                .as_u64()
                .ok_or_else(|| Error::decode("schema min", short(m)))?,
        };
        let max = match o.get("max") {
            None => Some(1),
            Some(Value::String(s)) if s == "unlimited" => None,
            Some(m) => Some(
                m.as_u64()
                    .ok_or_else(|| Error::decode("schema max", short(m)))?,
            ),
        };
        Ok(ColumnType {
            key,
            value,
            min,
            max,
        })
    }

    /// Exactly one atom: update2 sends the new value itself, not a diff.
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == Some(1)
    }

    /// A map column.
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// The column's default value (RFC 7047 section 5.2.1: what insert fills in), which update2
    /// leaves out of "initial" and "insert" rows.
    /// A map column's default is the empty *map*: sent back as a `wait`'s expected value, an
    /// empty set is a syntax error for a map column, which wedged every later transaction.
    pub fn default_datum(&self) -> Datum {
        if self.is_map() {
            return Datum::Map(Vec::new());
        }
        if self.min == 0 {
            return Datum::empty();
        }
        let atom = match self.key {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(super::Uuid::default()),
        };
        Datum::from(atom)
    }
}

impl TableSchema {
    /// The type of `column`, including the implicit `_uuid` and `_version`.
    pub fn column(&self, column: &str) -> Option<&ColumnType> {
        match column {
            "_uuid" | "_version" => Some(&UUID_COLUMN),
            c => self.columns.get(c),
        }
    }
}

impl Schema {
    /// Decodes a schema as `get_schema` returns it (or as the .ovsschema file holds it).
    pub fn from_json(v: &Value) -> Result<Schema, Error> {
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let Some(Value::Object(tables)) = v.get("tables") else {
            return Err(Error::decode("schema", "no \"tables\" object"));
        };
        let mut out = BTreeMap::new();
        for (name, t) in tables {
            out.insert(name.clone(), table_from_json(name, t)?);
        }
        Ok(Schema {
            name: text("name"),
            version: text("version"),
            tables: out,
        })
    }

    /// The type of `table.column`.
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnType> {
        self.tables.get(table)?.column(column)
    }
}

fn table_from_json(name: &str, t: &Value) -> Result<TableSchema, Error> {
    let Some(Value::Object(cols)) = t.get("columns") else {
        return Err(Error::decode(
            "schema",
            format!("table {name} has no columns"),
        ));
    };
    let mut columns = BTreeMap::new();
    for (c, def) in cols {
        let ty = def
            .get("type")
            .ok_or_else(|| Error::decode("schema", format!("{name}.{c} has no type")))
            .and_then(ColumnType::from_json)
            .map_err(|e| Error::decode("schema", format!("{name}.{c}: {e}")))?;
        columns.insert(c.clone(), ty);
    }
    Ok(TableSchema {
        columns,
        is_root: t.get("isRoot").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn coerce_atom(a: Atom, ty: AtomicType) -> Atom {
    match (a, ty) {
        // OVS prints reals with %.17g, so 1.0 arrives as 1 and decodes as an integer.
        (Atom::Integer(i), AtomicType::Real) => Atom::Real(i as f64),
        (a, _) => a,
    }
}

impl Datum {
    /// Restores the atom types the schema says (integers in real columns become reals).
    pub fn coerce(self, ty: &ColumnType) -> Datum {
        match self {
            Datum::Set(v) => Datum::Set(v.into_iter().map(|a| coerce_atom(a, ty.key)).collect()),
            Datum::Map(m) => {
                let vt = ty.value.unwrap_or(ty.key);
                Datum::Map(
                    m.into_iter()
                        .map(|(k, v)| (coerce_atom(k, ty.key), coerce_atom(v, vt)))
                        .collect(),
                )
            }
        }
    }

    /// Applies an update2 "modify" diff (ovsdb-server(5), "update2 notification"): a scalar is
    /// replaced; a set toggles each atom in the diff; a map removes a pair given with its current
    /// value, replaces the value of a key given with another value, and adds a new key.
    pub fn apply_diff(&mut self, diff: &Datum, ty: &ColumnType) {
        // ovsdb-server diffs only composite columns (max > 1); for a scalar or an optional
        // (min 0, max 1, e.g. Port.tag) it sends the new value: `"tag": ["set", []]` clears it.
        if ty.max == Some(1) {
            *self = diff.clone();
            return;
        }
        match (self, diff) {
            (Datum::Map(cur), Datum::Map(d)) => {
                for (k, v) in d {
                    match cur.iter().position(|(ck, _)| ck == k) {
                        Some(i) if &cur[i].1 == v => {
                            cur.remove(i);
                        }
                        Some(i) => cur[i].1 = v.clone(),
                        None => cur.push((k.clone(), v.clone())),
                    }
                }
            }
            (Datum::Set(cur), Datum::Set(d)) => {
                for a in d {
                    match cur.iter().position(|c| c == a) {
                        Some(i) => {
                            cur.remove(i);
                        }
                        None => cur.push(a.clone()),
                    }
                }
            }
            (cur, d) => {
                // An empty value decodes as a set even in a map column ("["set", []]" is not
                // typed), and an empty diff changes nothing.
                if cur.is_empty() {
                    *cur = d.clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vswitch() -> Option<Schema> {
        let text = std::fs::read_to_string("/usr/share/openvswitch/vswitch.ovsschema").ok()?;
        Some(Schema::from_json(&serde_json::from_str(&text).unwrap()).unwrap())
    }

    #[test]
    fn decodes_vswitch_schema() {
        let Some(s) = vswitch() else {
            crate::test_skip::can_run(&["vswitch.ovsschema not installed".to_string()]);
            return;
        };
        assert_eq!(s.name, "Open_vSwitch");
        let ports = s.column("Bridge", "ports").unwrap();
        assert_eq!(
            (ports.key, ports.min, ports.max),
            (AtomicType::Uuid, 0, None)
        );
        assert!(s.column("Bridge", "name").unwrap().is_scalar());
        assert!(s.column("Bridge", "external_ids").unwrap().is_map());
        assert!(s.column("Bridge", "_uuid").unwrap().is_scalar());
        assert!(s.tables["Open_vSwitch"].is_root);
    }

    fn ty(v: Value) -> ColumnType {
        ColumnType::from_json(&v).unwrap()
    }

    #[test]
    fn column_types() {
        let t = ty(
            serde_json::json!({"key": {"type": "integer", "minInteger": 0},
                                       "min": 0, "max": "unlimited"}),
        );
        assert_eq!((t.key, t.min, t.max), (AtomicType::Integer, 0, None));
        assert!(ty(serde_json::json!("string")).is_scalar());
        assert!(ColumnType::from_json(&serde_json::json!("float")).is_err());
        assert!(ColumnType::from_json(&serde_json::json!({"key": "string", "max": -1})).is_err());
    }

    #[test]
    fn diffs() {
        let set = ty(serde_json::json!({"key": "string", "min": 0, "max": "unlimited"}));
        let mut d = Datum::set(["a".into(), "b".into()]);
        d.apply_diff(&Datum::set(["b".into(), "c".into()]), &set);
        assert_eq!(d, Datum::set(["a".into(), "c".into()]));

        let map = ty(serde_json::json!({"key": "string", "value": "string",
                                         "min": 0, "max": "unlimited"}));
        let mut m = Datum::map([("k", "1"), ("gone", "x")]);
        m.apply_diff(&Datum::map([("k", "2"), ("gone", "x"), ("new", "n")]), &map);
        assert_eq!(m, Datum::map([("k", "2"), ("new", "n")]));

        let mut e = Datum::empty();
        e.apply_diff(&Datum::map([("a", "b")]), &map);
        assert_eq!(e, Datum::map([("a", "b")]));

        // An optional column gets its new value, as ovsdb-server sends it (seen with OVS 3.1:
        // clearing Port.tag arrives as `"tag": ["set", []]`).
        let opt = ty(serde_json::json!({"key": "integer", "min": 0, "max": 1}));
        let mut o = Datum::from(1);
        o.apply_diff(&Datum::from(2), &opt);
        assert_eq!(o, Datum::from(2));
        o.apply_diff(&Datum::empty(), &opt);
        assert_eq!(o, Datum::empty());
        o.apply_diff(&Datum::from(7), &opt);
        assert_eq!(o, Datum::from(7));

        let mut s = Datum::from("old");
        s.apply_diff(&Datum::from("new"), &ty(serde_json::json!("string")));
        assert_eq!(s, Datum::from("new"));
    }

    #[test]
    fn defaults() {
        assert_eq!(
            ty(serde_json::json!("integer")).default_datum(),
            Datum::from(0)
        );
        assert_eq!(
            ty(serde_json::json!("string")).default_datum(),
            Datum::from("")
        );
        let opt = ty(serde_json::json!({"key": "string", "min": 0}));
        assert!(opt.default_datum().is_empty());
    }

    #[test]
    fn coerce_reals() {
        let real = ty(serde_json::json!("real"));
        assert_eq!(Datum::from(1).coerce(&real), Datum::from(1.0));
    }
}
