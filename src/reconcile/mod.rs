//! Reconcile: make the host's bridges and ports match the config, in one transaction, and keep
//! them matched. `plan` is pure; `apply` sends only what the plan says; `watch` re-plans on
//! every change the monitor reports. It reports its cache and passes through `Telemetry`.
//!
//! Owns the rows it marks with `external_ids:ovs-appliance-owner`; never changes any other row.
//! Talks to ovsdb-server (and the kernel for internal port addresses), never to processes.

mod addresses;
mod apply;
mod keys;
mod model;
mod plan;
mod session;
mod status;
mod telemetry;
mod touched;
mod txn;
mod watch;

pub use addresses::{Addresses, NoHooks};
pub use apply::{reconcile_once, Applied};
pub use keys::{MapEdit, KEYS_KEY};
pub use model::{Desired, Observed, OWNER_KEY};
pub use plan::{plan, Change, Plan};
pub use session::{Event, Session};
pub use status::{describe, interface_errors, InterfaceError, Trouble};
pub use telemetry::{NoTelemetry, PassOutcome, PassReport, Telemetry, TelemetryHandle};
pub use touched::{touched, Touched, INTERFACE_METRICS_COLUMNS};
pub use txn::operations;
pub use watch::{watch, AfterPass, DesiredSource, WatchSettings};

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to connect to ovsdb-server: {0}")]
    Connect(String),
    #[error(transparent)]
    Ovsdb(crate::ovsdb::Error),
    #[error("the OVSDB monitor failed: {0}")]
    Monitor(String),
    #[error("the OVSDB monitor ended")]
    MonitorEnded,
    #[error("the database has no Open_vSwitch row yet")]
    NoRoot,
    #[error("ovs-vswitchd did not apply the change within {timeout:?} (next_cfg {next_cfg}, cur_cfg {cur_cfg})")]
    NotApplied {
        next_cfg: i64,
        cur_cfg: i64,
        timeout: Duration,
    },
    #[error("the database kept changing under the transaction; gave up after {attempts} attempts")]
    Contended { attempts: u32 },
    #[error("the transaction committed but its reply has no next_cfg to wait for ({results} operation results); whether ovs-vswitchd applied it is unknown")]
    NoNextCfg { results: usize },
}

#[cfg(test)]
mod tests;
