//! The OVSDB client handle: connect, echo, transact, list_dbs, get_schema, lock.
//!
//! Monitors live in `monitor.rs`, reconnection in `reconnect.rs`; this file only turns RFC 7047
//! methods into calls on the connection task and decodes their replies.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::UnixStream;

use super::error::{check_txn_results, Error, RpcError};
use super::ops::{OpResult, Operation};
use super::rpc::{CallError, RouteKey, Rpc};
use super::Schema;

/// A connection to one ovsdb-server. Cheap to clone; all clones share one socket, and calls from
/// several tasks may be in flight at once (replies are matched by id).
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) rpc: Rpc,
    timeout: Option<Duration>,
}

impl Client {
    /// Connects to a unix socket such as `/var/run/openvswitch/db.sock`.
    pub async fn connect_unix(path: &Path) -> Result<Client, Error> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| Error::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Client {
            rpc: Rpc::start(stream),
            timeout: None,
        })
    }

    /// A handle on the same connection whose calls fail with [`Error::Timeout`] after `timeout`.
    /// A call that timed out is not cancelled on the server: a transaction may still commit.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            rpc: self.rpc.clone(),
            timeout: Some(timeout),
        }
    }

    /// Resolves when the connection has closed; returns why.
    pub async fn closed(&self) -> String {
        self.rpc.closed().await
    }

    /// Closes the connection for every clone: pending calls fail, monitors end.
    pub fn disconnect(&self) {
        self.rpc.close();
    }

    /// True once the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.rpc.is_closed()
    }

    /// Calls `method` and returns the "result" member of the reply.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        self.call_routed(method, params, None).await
    }

    pub(crate) async fn call_routed(
        &self,
        method: &str,
        params: Value,
        subscribe: Option<(
            RouteKey,
            tokio::sync::mpsc::UnboundedSender<super::Notification>,
        )>,
    ) -> Result<Value, Error> {
        let fut = self.rpc.call_subscribed(method, params, subscribe);
        let res = match self.timeout {
            None => fut.await,
            Some(after) => tokio::time::timeout(after, fut)
                .await
                .map_err(|_| Error::Timeout {
                    method: method.to_string(),
                    after,
                })?,
        };
        res.map_err(|e| match e {
            CallError::Closed(reason) => Error::Disconnected {
                method: method.to_string(),
                reason,
            },
            CallError::Remote(err) => Error::Rpc {
                method: method.to_string(),
                error: RpcError::from_json(&err),
            },
        })
    }

    /// Round trip with an "echo" request (RFC 7047 section 4.1.11).
    pub async fn echo(&self) -> Result<(), Error> {
        let params = json!(["ovs-appliance"]);
        let got = self.call("echo", params.clone()).await?;
        if got != params {
            return Err(Error::protocol("echo reply", format!("{got} != {params}")));
        }
        Ok(())
    }

    /// Names of the databases the server holds (RFC 7047 section 4.1.1).
    pub async fn list_dbs(&self) -> Result<Vec<String>, Error> {
        let v = self.call("list_dbs", json!([])).await?;
        serde_json::from_value(v).map_err(|e| Error::protocol("list_dbs reply", e.to_string()))
    }

    /// The schema of `db` as JSON (RFC 7047 section 4.1.2); see [`super::Schema`] to decode it.
    pub async fn get_schema_json(&self, db: &str) -> Result<Value, Error> {
        self.call("get_schema", json!([db])).await
    }

    /// Sends a transaction of raw RFC 7047 operation objects and returns the per-op results.
    ///
    /// An op-level error becomes [`Error::Transaction`] naming the failed op. The rest of the
    /// transaction was rolled back by the server in that case (RFC 7047 section 4.1.3).
    pub async fn transact_raw(&self, db: &str, ops: Vec<Value>) -> Result<Vec<Value>, Error> {
        let mut params = Vec::with_capacity(ops.len() + 1);
        params.push(Value::from(db));
        params.extend(ops.iter().cloned());
        let reply = self.call("transact", Value::Array(params)).await?;
        let Value::Array(results) = reply else {
            return Err(Error::protocol("transact reply", "result is not an array"));
        };
        check_txn_results(&ops, &results)?;
        Ok(results)
    }

    /// Sends a transaction of typed operations; one [`OpResult`] per operation.
    pub async fn transact(&self, db: &str, ops: &[Operation]) -> Result<Vec<OpResult>, Error> {
        let raw = self
            .transact_raw(db, ops.iter().map(Operation::to_json).collect())
            .await?;
        // A successful commit has exactly one result per op; anything past that would be the
        // commit error, already turned into Err above.
        raw.iter()
            .take(ops.len())
            .map(OpResult::from_json)
            .collect()
    }

    /// The decoded schema of `db`.
    pub async fn get_schema(&self, db: &str) -> Result<Schema, Error> {
        Schema::from_json(&self.get_schema_json(db).await?)
    }
}
