//! The OVSDB client's error type, and decoding of the errors ovsdb-server sends back.
//!
//! RFC 7047 section 3.1 lists the error strings a transaction can fail with; OVS adds a few
//! (ovsdb-server(5)). They are decoded into [`TxnErrorKind`] so callers can match on "timed out" or
//! "constraint violation" without string compares.

use std::path::PathBuf;

use serde_json::Value;

use super::framing::FrameError;

/// Everything that can go wrong talking to ovsdb-server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The unix socket could not be opened.
    #[error("failed to connect to ovsdb-server at {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("ovsdb connection I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The connection closed (server stopped or restarted) before the reply arrived.
    #[error("ovsdb connection closed before {method} got a reply: {reason}")]
    Disconnected { method: String, reason: String },
    /// The byte stream was not valid JSON values.
    #[error("ovsdb connection sent malformed JSON: {0}")]
    Framing(#[from] FrameError),
    /// The call did not get a reply in time.
    #[error("ovsdb {method} timed out after {after:?}")]
    Timeout {
        method: String,
        after: std::time::Duration,
    },
    /// The JSON-RPC reply had a non-null "error" (unknown method, unknown database, ...).
    #[error("ovsdb {method} failed: {error}")]
    Rpc { method: String, error: RpcError },
    /// One operation of a transaction failed; `index` is its position in the ops array
    /// (`index == ops.len()` means the commit itself failed, per RFC 7047 section 4.1.3).
    #[error("ovsdb transaction op {index} ({op}) failed: {kind}: {details}")]
    Transaction {
        index: usize,
        op: String,
        kind: TxnErrorKind,
        details: String,
    },
    /// A reply or notification did not have the shape RFC 7047 specifies.
    #[error("unexpected ovsdb {what}: {reason}")]
    Protocol { what: String, reason: String },
    /// A datum, row or schema could not be decoded.
    #[error("failed to decode ovsdb {what}: {reason}")]
    Decode { what: String, reason: String },
}

impl Error {
    pub(crate) fn protocol(what: &str, reason: impl Into<String>) -> Error {
        Error::Protocol {
            what: what.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn decode(what: &str, reason: impl Into<String>) -> Error {
        Error::Decode {
            what: what.to_string(),
            reason: reason.into(),
        }
    }

    /// The transaction error kind, when this is an op-level failure.
    pub fn txn_kind(&self) -> Option<&TxnErrorKind> {
        match self {
            Error::Transaction { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// True when the connection is gone and a reconnect (not a retry on this client) is needed.
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            Error::Disconnected { .. } | Error::Io(_) | Error::Framing(_)
        )
    }
}

/// A JSON-RPC level error: ovsdb-server sends either a bare string or an
/// `{"error": .., "details": ..}` object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub error: String,
    pub details: Option<String>,
}

impl RpcError {
    pub(crate) fn from_json(v: &Value) -> RpcError {
        match v {
            Value::String(s) => RpcError {
                error: s.clone(),
                details: None,
            },
            Value::Object(o) => RpcError {
                error: o
                    .get("error")
                    .and_then(Value::as_str)
                    .map_or_else(|| v.to_string(), str::to_string),
                details: o.get("details").and_then(Value::as_str).map(str::to_string),
            },
            other => RpcError {
                error: other.to_string(),
                details: None,
            },
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.details {
            Some(d) => write!(f, "{} ({d})", self.error),
            None => f.write_str(&self.error),
        }
    }
}

/// The "error" string of a failed operation (RFC 7047 section 3.1 and 5.2, ovsdb-server(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnErrorKind {
    ReferentialIntegrityViolation,
    ConstraintViolation,
    ResourcesExhausted,
    IoError,
    DuplicateUuidName,
    DomainError,
    RangeError,
    TimedOut,
    NotSupported,
    Aborted,
    NotOwner,
    /// "syntax error", "unknown table", "unknown column", ... and anything newer.
    Other(String),
}

impl TxnErrorKind {
    /// Maps the server's string; unknown strings are kept verbatim.
    pub fn parse(s: &str) -> TxnErrorKind {
        match s {
            "referential integrity violation" => TxnErrorKind::ReferentialIntegrityViolation,
            "constraint violation" => TxnErrorKind::ConstraintViolation,
            "resources exhausted" => TxnErrorKind::ResourcesExhausted,
            "I/O error" => TxnErrorKind::IoError,
            "duplicate uuid-name" => TxnErrorKind::DuplicateUuidName,
            "domain error" => TxnErrorKind::DomainError,
            "range error" => TxnErrorKind::RangeError,
            "timed out" => TxnErrorKind::TimedOut,
            "not supported" => TxnErrorKind::NotSupported,
            "aborted" => TxnErrorKind::Aborted,
            "not owner" => TxnErrorKind::NotOwner,
            other => TxnErrorKind::Other(other.to_string()),
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            TxnErrorKind::ReferentialIntegrityViolation => "referential integrity violation",
            TxnErrorKind::ConstraintViolation => "constraint violation",
            TxnErrorKind::ResourcesExhausted => "resources exhausted",
            TxnErrorKind::IoError => "I/O error",
            TxnErrorKind::DuplicateUuidName => "duplicate uuid-name",
            TxnErrorKind::DomainError => "domain error",
            TxnErrorKind::RangeError => "range error",
            TxnErrorKind::TimedOut => "timed out",
            TxnErrorKind::NotSupported => "not supported",
            TxnErrorKind::Aborted => "aborted",
            TxnErrorKind::NotOwner => "not owner",
            TxnErrorKind::Other(s) => s,
        }
    }
}

impl std::fmt::Display for TxnErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Finds the first failed op in a transact result array and turns it into [`Error::Transaction`].
///
/// `ops` are the operations sent, used only to name the failing op's kind in the message.
pub(crate) fn check_txn_results(ops: &[Value], results: &[Value]) -> Result<(), Error> {
    for (index, r) in results.iter().enumerate() {
        let Some(err) = r.get("error") else { continue };
        let op = match ops.get(index) {
            Some(o) => o
                .get("op")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            None => "commit".to_string(),
        };
        let kind = TxnErrorKind::parse(err.as_str().unwrap_or_default());
        let details = r
            .get("details")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return Err(Error::Transaction {
            index,
            op,
            kind,
            details,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn op_error_names_index_and_kind() {
        let ops = vec![json!({"op": "insert"}), json!({"op": "wait"})];
        let results = vec![
            json!({"uuid": ["uuid", "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11"]}),
            json!({"error": "timed out", "details": "\"wait\" timed out"}),
        ];
        let err = check_txn_results(&ops, &results).unwrap_err();
        match &err {
            Error::Transaction {
                index, op, kind, ..
            } => {
                assert_eq!((*index, op.as_str()), (1, "wait"));
                assert_eq!(kind, &TxnErrorKind::TimedOut);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("op 1 (wait) failed: timed out"));
    }

    #[test]
    fn commit_error_is_past_the_last_op() {
        let ops = vec![json!({"op": "insert"})];
        let results = vec![
            json!({"uuid": ["uuid", "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11"]}),
            json!({"error": "referential integrity violation", "details": "x"}),
        ];
        let err = check_txn_results(&ops, &results).unwrap_err();
        assert!(matches!(err, Error::Transaction { index: 1, ref op, .. } if op == "commit"));
    }

    #[test]
    fn kinds_round_trip() {
        for s in [
            "constraint violation",
            "not owner",
            "unknown column",
            "I/O error",
        ] {
            assert_eq!(TxnErrorKind::parse(s).as_str(), s);
        }
    }

    #[test]
    fn rpc_error_shapes() {
        assert_eq!(
            RpcError::from_json(&json!("unknown method")).error,
            "unknown method"
        );
        let e = RpcError::from_json(&json!({"error": "unknown database", "details": "nope"}));
        assert_eq!(e.to_string(), "unknown database (nope)");
    }
}
