//! One reconcile pass: plan against the cache, send the plan as one transaction, wait until
//! ovs-vswitchd has applied it. A guard failure (someone changed a row we were about to change)
//! re-plans from the fresh cache instead of overwriting their change.

use super::model::Desired;
use super::plan::{plan, Plan};
use super::session::Session;
use super::txn::operations;
use super::Error;
use crate::ovsdb::TxnErrorKind;
use std::time::{Duration, Instant};

const ATTEMPTS: u32 = 5;

/// What a pass did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The plan that was sent (empty: nothing to do).
    pub plan: Plan,
    /// Operations in the transaction (0: none was sent).
    pub operations: usize,
    /// From start to the commit reply.
    pub committed: Option<Duration>,
    /// From start to ovs-vswitchd's cur_cfg reaching the new next_cfg.
    pub applied: Option<Duration>,
}

/// Plans and applies once. `apply_timeout` bounds the wait for ovs-vswitchd.
pub async fn reconcile_once(
    session: &mut Session,
    desired: &Desired,
    apply_timeout: Duration,
) -> Result<Applied, Error> {
    let began = Instant::now();
    for attempt in 1..=ATTEMPTS {
        session.drain()?;
        let observed = session.observed();
        if observed.root.is_none() {
            return Err(Error::NoRoot);
        }
        let plan = plan(desired, &observed);
        if plan.is_empty() {
            return Ok(Applied {
                plan,
                ..Applied::default()
            });
        }
        let ops = operations(&plan, desired, &observed);
        let results = match session.transact(&ops).await {
            Ok(results) => results,
            Err(Error::Ovsdb(e)) if e.txn_kind() == Some(&TxnErrorKind::TimedOut) => {
                let changes: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
                tracing::info!(attempt, ?changes, %e, "the database changed under the plan; re-planning");
                // Let the monitor deliver the change that beat us.
                let _ = tokio::time::timeout(Duration::from_millis(100), session.next()).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let committed = began.elapsed();
        let next_cfg = results
            .last()
            .and_then(|r| r.rows.as_ref())
            .and_then(|rows| rows.first())
            .and_then(|row| row.get("next_cfg"))
            .and_then(|d| d.as_i64())
            .unwrap_or(0);
        session.wait_applied(next_cfg, apply_timeout).await?;
        return Ok(Applied {
            operations: ops.len(),
            plan,
            committed: Some(committed),
            applied: Some(began.elapsed()),
        });
    }
    Err(Error::Contended { attempts: ATTEMPTS })
}
