//! The Docker network driver: with `[docker] network_driver = "NAME"` the appliance answers
//! Docker's remote network driver protocol (libnetwork's `remote` driver: HTTP POSTs with JSON
//! bodies) on `<plugins_dir>/<NAME>.sock`, where dockerd finds it. `docker network create -d
//! NAME -o bridge=BR` makes a network on an OVS bridge; each container on it gets a veth pair
//! whose host end is a port of that bridge.
//!
//! State lives in OVSDB only (`store`): after the appliance restarts, or crashes, it reads its
//! networks and endpoints back from the rows, so Docker never meets "no such network".
//!
//! - `api`: the protocol's bodies and the network options, checked (pure)
//! - `store`: rows to state and the transactions that change them (pure)
//! - `link`: the veth pairs (rtnetlink)
//! - `driver`: what each request does
//! - `server`: the unix socket and HTTP, bounded

mod api;
mod driver;
mod link;
mod server;
mod store;

pub use driver::Driver;
pub use server::{serve, Listener};

use std::path::{Path, PathBuf};

/// The socket dockerd looks for: `<plugins_dir>/<name>.sock`.
pub fn socket_path(plugins_dir: &Path, name: &str) -> PathBuf {
    plugins_dir.join(format!("{name}.sock"))
}
