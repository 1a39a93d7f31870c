//! Typed transaction operations (RFC 7047 section 5.2) and their results, with the JSON they
//! serialise to. The reconciler builds these; `Client::transact` sends them.

use serde_json::{json, Map, Value};

use super::datum::{row_from_json, row_to_json, short};
use super::{Datum, Error, Row, Uuid};

/// A condition function (RFC 7047 section 5.1, `<function>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
    Includes,
    Excludes,
}

/// `[column, function, value]`: selects rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub column: String,
    pub function: Function,
    pub value: Datum,
}

/// A mutator (RFC 7047 section 5.1, `<mutator>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Insert,
    Delete,
}

/// `[column, mutator, value]`: changes a column in place (e.g. insert a port into Bridge.ports
/// without rewriting the whole set, so concurrent writers don't clobber each other).
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub column: String,
    pub mutator: Mutator,
    pub value: Datum,
}

/// The "until" of a wait operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    Eq,
    Ne,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Insert {
        table: String,
        row: Row,
        /// Lets later operations refer to the new row as `["named-uuid", name]`.
        uuid_name: Option<String>,
    },
    Select {
        table: String,
        conditions: Vec<Condition>,
        /// None: every column.
        columns: Option<Vec<String>>,
    },
    Update {
        table: String,
        conditions: Vec<Condition>,
        row: Row,
    },
    Mutate {
        table: String,
        conditions: Vec<Condition>,
        mutations: Vec<Mutation>,
    },
    Delete {
        table: String,
        conditions: Vec<Condition>,
    },
    Wait {
        table: String,
        /// Milliseconds; None waits forever, Some(0) fails at once when unmet.
        timeout_ms: Option<u64>,
        conditions: Vec<Condition>,
        columns: Vec<String>,
        until: WaitUntil,
        rows: Vec<Row>,
    },
    Commit {
        durable: bool,
    },
    Abort,
    Comment {
        comment: String,
    },
    Assert {
        lock: String,
    },
}

/// The result of one successful operation; which fields are set depends on the op.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpResult {
    /// insert: the new row's uuid.
    pub uuid: Option<Uuid>,
    /// select: the rows.
    pub rows: Option<Vec<Row>>,
    /// update, mutate, delete: how many rows matched.
    pub count: Option<u64>,
}

const FUNCTIONS: [(Function, &str); 8] = [
    (Function::Lt, "<"),
    (Function::Le, "<="),
    (Function::Eq, "=="),
    (Function::Ne, "!="),
    (Function::Ge, ">="),
    (Function::Gt, ">"),
    (Function::Includes, "includes"),
    (Function::Excludes, "excludes"),
];

const MUTATORS: [(Mutator, &str); 7] = [
    (Mutator::Add, "+="),
    (Mutator::Sub, "-="),
    (Mutator::Mul, "*="),
    (Mutator::Div, "/="),
    (Mutator::Mod, "%="),
    (Mutator::Insert, "insert"),
    (Mutator::Delete, "delete"),
];

fn lookup<T: Copy + PartialEq>(table: &[(T, &'static str)], t: T) -> &'static str {
    table.iter().find(|(k, _)| *k == t).map_or("?", |(_, s)| s)
}

fn reverse<T: Copy>(table: &[(T, &'static str)], s: &str, what: &str) -> Result<T, Error> {
    table
        .iter()
        .find(|(_, n)| *n == s)
        .map(|(k, _)| *k)
        .ok_or_else(|| Error::decode(what, format!("unknown {what} {s:?}")))
}

impl Condition {
    /// `column == value`.
    pub fn eq(column: &str, value: impl Into<Datum>) -> Condition {
        Condition::new(column, Function::Eq, value)
    }

    /// A condition with any function.
    pub fn new(column: &str, function: Function, value: impl Into<Datum>) -> Condition {
        Condition {
            column: column.to_string(),
            function,
            value: value.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!([
            self.column,
            lookup(&FUNCTIONS, self.function),
            self.value.to_json()
        ])
    }

    pub fn from_json(v: &Value) -> Result<Condition, Error> {
        let (column, f, value) = triple(v, "condition")?;
        Ok(Condition {
            column,
            function: reverse(&FUNCTIONS, &f, "function")?,
            value,
        })
    }
}

impl Mutation {
    /// A mutation of `column`.
    pub fn new(column: &str, mutator: Mutator, value: impl Into<Datum>) -> Mutation {
        Mutation {
            column: column.to_string(),
            mutator,
            value: value.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!([
            self.column,
            lookup(&MUTATORS, self.mutator),
            self.value.to_json()
        ])
    }

    pub fn from_json(v: &Value) -> Result<Mutation, Error> {
        let (column, m, value) = triple(v, "mutation")?;
        Ok(Mutation {
            column,
            mutator: reverse(&MUTATORS, &m, "mutator")?,
            value,
        })
    }
}

fn triple(v: &Value, what: &str) -> Result<(String, String, Datum), Error> {
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(c), Value::String(f), d]) => {
            Ok((c.clone(), f.clone(), Datum::from_json(d)?))
        }
        _ => Err(Error::decode(
            what,
            format!("{} is not [column, op, value]", short(v)),
        )),
    }
}

fn conds_json(c: &[Condition]) -> Value {
    Value::Array(c.iter().map(Condition::to_json).collect())
}

impl Operation {
    /// The op's name on the wire ("insert", "select", ...).
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Insert { .. } => "insert",
            Operation::Select { .. } => "select",
            Operation::Update { .. } => "update",
            Operation::Mutate { .. } => "mutate",
            Operation::Delete { .. } => "delete",
            Operation::Wait { .. } => "wait",
            Operation::Commit { .. } => "commit",
            Operation::Abort => "abort",
            Operation::Comment { .. } => "comment",
            Operation::Assert { .. } => "assert",
        }
    }

    /// Serialises to an RFC 7047 operation object.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("op".into(), self.name().into());
        let mut put = |k: &str, v: Value| {
            o.insert(k.to_string(), v);
        };
        match self {
            Operation::Insert {
                table,
                row,
                uuid_name,
            } => {
                put("table", table.as_str().into());
                put("row", row_to_json(row));
                if let Some(n) = uuid_name {
                    put("uuid-name", n.as_str().into());
                }
            }
            Operation::Select {
                table,
                conditions,
                columns,
            } => {
                put("table", table.as_str().into());
                put("where", conds_json(conditions));
                if let Some(c) = columns {
                    put("columns", json!(c));
                }
            }
            Operation::Update {
                table,
                conditions,
                row,
            } => {
                put("table", table.as_str().into());
                put("where", conds_json(conditions));
                put("row", row_to_json(row));
            }
            Operation::Mutate {
                table,
                conditions,
                mutations,
            } => {
                put("table", table.as_str().into());
                put("where", conds_json(conditions));
                put(
                    "mutations",
                    mutations.iter().map(Mutation::to_json).collect(),
                );
            }
            Operation::Delete { table, conditions } => {
                put("table", table.as_str().into());
                put("where", conds_json(conditions));
            }
            Operation::Wait { .. } => wait_json(self, &mut put),
            Operation::Commit { durable } => put("durable", (*durable).into()),
            Operation::Abort => {}
            Operation::Comment { comment } => put("comment", comment.as_str().into()),
            Operation::Assert { lock } => put("lock", lock.as_str().into()),
        }
        Value::Object(o)
    }
}

fn wait_json(op: &Operation, put: &mut impl FnMut(&str, Value)) {
    let Operation::Wait {
        table,
        timeout_ms,
        conditions,
        columns,
        until,
        rows,
    } = op
    else {
        return;
    };
    put("table", table.as_str().into());
    if let Some(t) = timeout_ms {
        put("timeout", (*t).into());
    }
    put("where", conds_json(conditions));
    put("columns", json!(columns));
    put(
        "until",
        if *until == WaitUntil::Eq { "==" } else { "!=" }.into(),
    );
    put("rows", rows.iter().map(row_to_json).collect());
}

impl OpResult {
    /// Decodes one element of a transact result array.
    pub fn from_json(v: &Value) -> Result<OpResult, Error> {
        let mut r = OpResult::default();
        let Value::Object(o) = v else {
            // Ops after a failed one come back as null; those never reach here (the error wins).
            return if v.is_null() {
                Ok(r)
            } else {
                Err(Error::decode("op result", short(v)))
            };
        };
        if let Some(u) = o.get("uuid") {
            let d = Datum::from_json(u)?;
            r.uuid = Some(
                d.as_uuid()
                    .ok_or_else(|| Error::decode("op result uuid", short(u)))?,
            );
        }
        if let Some(rows) = o.get("rows") {
            let rows = rows
                .as_array()
                .ok_or_else(|| Error::decode("op result rows", short(rows)))?;
            r.rows = Some(rows.iter().map(row_from_json).collect::<Result<_, _>>()?);
        }
        if let Some(c) = o.get("count") {
            r.count = Some(
                c.as_u64()
                    .ok_or_else(|| Error::decode("op result count", short(c)))?,
            );
        }
        Ok(r)
    }
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
