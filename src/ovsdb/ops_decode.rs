//! Decoding of RFC 7047 operation objects back into [`Operation`]: lets tools read a plan that
//! was written as JSON, and lets the tests check that encoding loses nothing.

use serde_json::{Map, Value};

use super::datum::{is_id, row_from_json, short};
use super::ops::{Condition, Mutation, Operation, WaitUntil};
use super::{Error, Row};

type Obj = Map<String, Value>;

fn field<'a>(o: &'a Obj, k: &str, op: &str) -> Result<&'a Value, Error> {
    o.get(k)
        .ok_or_else(|| Error::decode("operation", format!("{op} has no \"{k}\"")))
}

fn string(o: &Obj, k: &str, op: &str) -> Result<String, Error> {
    let v = field(o, k, op)?;
    v.as_str().map(str::to_string).ok_or_else(|| {
        Error::decode(
            "operation",
            format!("{op}.{k}: {} is not a string", short(v)),
        )
    })
}

fn list<T>(
    o: &Obj,
    k: &str,
    op: &str,
    f: impl Fn(&Value) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let v = field(o, k, op)?;
    let a = v.as_array().ok_or_else(|| {
        Error::decode(
            "operation",
            format!("{op}.{k}: {} is not an array", short(v)),
        )
    })?;
    a.iter().map(f).collect()
}

fn strings(v: &Value) -> Result<String, Error> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::decode("column name", short(v)))
}

fn conditions(o: &Obj, op: &str) -> Result<Vec<Condition>, Error> {
    list(o, "where", op, Condition::from_json)
}

fn row(o: &Obj, op: &str) -> Result<Row, Error> {
    row_from_json(field(o, "row", op)?)
}

impl Operation {
    /// Decodes an RFC 7047 operation object.
    pub fn from_json(v: &Value) -> Result<Operation, Error> {
        let Value::Object(o) = v else {
            return Err(Error::decode(
                "operation",
                format!("{} is not an object", short(v)),
            ));
        };
        let op = string(o, "op", "operation")?;
        let op = op.as_str();
        let table = || string(o, "table", op);
        Ok(match op {
            "insert" => Operation::Insert {
                table: table()?,
                row: row(o, op)?,
                uuid_name: match o.get("uuid-name") {
                    None => None,
                    Some(Value::String(s)) if is_id(s) => Some(s.clone()),
                    Some(other) => return Err(Error::decode("uuid-name", short(other))),
                },
            },
            "select" => Operation::Select {
                table: table()?,
                conditions: conditions(o, op)?,
                columns: match o.get("columns") {
                    None => None,
                    Some(_) => Some(list(o, "columns", op, strings)?),
                },
            },
            "update" => Operation::Update {
                table: table()?,
                conditions: conditions(o, op)?,
                row: row(o, op)?,
            },
            "mutate" => Operation::Mutate {
                table: table()?,
                conditions: conditions(o, op)?,
                mutations: list(o, "mutations", op, Mutation::from_json)?,
            },
            "delete" => Operation::Delete {
                table: table()?,
                conditions: conditions(o, op)?,
            },
            "wait" => wait_from_json(o, table()?)?,
            "commit" => Operation::Commit {
                durable: field(o, "durable", op)?
                    .as_bool()
                    .ok_or_else(|| Error::decode("operation", "commit.durable is not a boolean"))?,
            },
            "abort" => Operation::Abort,
            "comment" => Operation::Comment {
                comment: string(o, "comment", op)?,
            },
            "assert" => Operation::Assert {
                lock: string(o, "lock", op)?,
            },
            other => return Err(Error::decode("operation", format!("unknown op {other:?}"))),
        })
    }
}

fn wait_from_json(o: &Obj, table: String) -> Result<Operation, Error> {
    let op = "wait";
    let timeout_ms = match o.get("timeout") {
        None => None,
        Some(t) => Some(
            t.as_u64()
                .ok_or_else(|| Error::decode("operation", format!("wait.timeout: {}", short(t))))?,
        ),
    };
    let until = match string(o, "until", op)?.as_str() {
        "==" => WaitUntil::Eq,
        "!=" => WaitUntil::Ne,
        other => return Err(Error::decode("operation", format!("wait.until {other:?}"))),
    };
    Ok(Operation::Wait {
        table,
        timeout_ms,
        conditions: conditions(o, op)?,
        columns: list(o, "columns", op, strings)?,
        until,
        rows: list(o, "rows", op, row_from_json)?,
    })
}
