//! What reconcile reports as it works, for whoever watches it (metrics). Reconcile only calls
//! out; it never reads anything back, so data keeps flowing one way.

use super::status::InterfaceError;
use crate::ovsdb::Cache;
use std::sync::Arc;
use std::time::Duration;

/// How a reconcile pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassOutcome {
    /// The host already matched: nothing was sent.
    Unchanged,
    /// A transaction was sent and applied. `drift` is true when the pass repaired a change made
    /// behind the appliance's back (not the first apply, a daemon restart or a config reload).
    Applied { drift: bool },
    /// The pass failed; it is retried.
    Failed,
}

/// One reconcile pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub duration: Duration,
    pub outcome: PassOutcome,
}

/// Receives reconcile's reports. Called on the reconcile task: implementations must be quick
/// and must not block.
pub trait Telemetry: Send + Sync {
    /// The monitor cache after every change the monitor delivered.
    fn observed(&self, _cache: &Cache) {}
    /// One OVSDB transaction and how long it took to get its reply.
    fn transaction(&self, _elapsed: Duration, _ok: bool) {}
    /// One reconcile pass.
    fn pass(&self, _report: &PassReport) {}
    /// Whether the host matches the config now: true after a pass that left nothing to do or
    /// applied everything with no conflict; false before the first pass, after a failed one, and
    /// while a change of the database waits for its pass.
    fn converged(&self, _converged: bool, _conflicts: usize) {}
    /// The owned interfaces that do not work (OVS's `Interface.error`, or ofport -1), after
    /// every pass and every status change; empty when all work.
    fn interface_errors(&self, _errors: &[InterfaceError]) {}
}

/// Reports to nobody.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTelemetry;

impl Telemetry for NoTelemetry {}

/// The shared handle reconcile keeps.
pub type TelemetryHandle = Arc<dyn Telemetry>;

/// A handle that reports to nobody.
pub fn none() -> TelemetryHandle {
    Arc::new(NoTelemetry)
}
