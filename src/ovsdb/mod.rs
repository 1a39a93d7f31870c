//! RFC 7047 (OVSDB management protocol) client on tokio: framing, JSON-RPC, transact, monitor,
//! echo, lock, and the datum codec. It talks only to an ovsdb-server socket; it knows nothing of
//! the appliance's config or of which bridges should exist.

mod cache;
mod client;
mod datum;
mod error;
pub mod framing;
mod lock;
mod monitor;
mod ops;
mod ops_decode;
mod reconnect;
mod rpc;
mod schema;
mod uuid;

/// The JSON-RPC connection, shared with `crate::unixctl` (not part of the public API).
pub(crate) mod rpc_internal {
    pub(crate) use super::rpc::{CallError, Rpc};
}

pub use cache::Cache;
pub use client::Client;
pub use datum::{row_from_json, row_to_json, Atom, Datum, Row};
pub use error::{Error, RpcError, TxnErrorKind};
pub use lock::{Lock, LockEvent};
pub use monitor::{
    parse_updates, parse_updates2, Monitor, MonitorKind, MonitorRequest, MonitorRequests,
    MonitorSelect, RowUpdate, TableUpdates,
};
pub use ops::{Condition, Function, Mutation, Mutator, OpResult, Operation, WaitUntil};
pub use reconnect::{MonitorEvent, ReconnectOptions, ReconnectingClient};
pub use rpc::Notification;
pub use schema::{AtomicType, ColumnType, Schema, TableSchema};
pub use uuid::Uuid;
