//! One reconcile pass: plan against the cache, send the plan as one transaction, wait until
//! ovs-vswitchd has applied it. A guard failure (someone changed a row we were about to change)
//! re-plans from the fresh cache instead of overwriting their change.

use super::model::Desired;
use super::plan::{plan, Plan};
use super::session::Session;
use super::txn::operations;
use super::Error;
use crate::ovsdb::{OpResult, TxnErrorKind};
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
        tracing::debug!(operations = ops.len(), "phase: planned");
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
        tracing::debug!("phase: committed");
        let next_cfg = next_cfg_of(&results)?;
        session.wait_applied(next_cfg, apply_timeout).await?;
        tracing::debug!(next_cfg, "phase: applied");
        return Ok(Applied {
            operations: ops.len(),
            plan,
            committed: Some(committed),
            applied: Some(began.elapsed()),
        });
    }
    Err(Error::Contended { attempts: ATTEMPTS })
}

/// The `next_cfg` the transaction's last operation (its select) returned. Missing, the change
/// cannot be waited for: an error, where 0 (every `cur_cfg` is at least that) reported the
/// change applied at once (issue 14).
fn next_cfg_of(results: &[OpResult]) -> Result<i64, Error> {
    results
        .last()
        .and_then(|r| r.rows.as_ref())
        .and_then(|rows| rows.first())
        .and_then(|row| row.get("next_cfg"))
        .and_then(|d| d.as_i64())
        .ok_or(Error::NoNextCfg {
            results: results.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::{Datum, Row};

    fn select(row: Option<Row>) -> OpResult {
        OpResult {
            rows: row.map(|r| vec![r]),
            ..OpResult::default()
        }
    }

    #[test]
    fn a_reply_without_next_cfg_is_an_error_not_applied() {
        let row: Row = [("next_cfg".to_string(), Datum::from(7i64))]
            .into_iter()
            .collect();
        assert_eq!(
            next_cfg_of(&[OpResult::default(), select(Some(row))]).unwrap(),
            7
        );
        for results in [
            vec![],
            vec![select(None)],
            vec![select(Some(Row::new()))],
            vec![OpResult::default()],
        ] {
            let e = next_cfg_of(&results).unwrap_err();
            assert!(matches!(e, Error::NoNextCfg { .. }), "{e}");
        }
    }
}
