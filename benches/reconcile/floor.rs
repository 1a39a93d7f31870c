//! The floor: the same single transaction the appliance sends, written straight to db.sock by
//! the minimal client in `raw.rs`, then the wait for ovs-vswitchd (`cur_cfg` reaching the
//! `next_cfg` the transaction set) on a monitor opened before the clock starts, as the
//! appliance's session is.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::proc::secs;
use crate::raw::Raw;

/// (committed, applied), both from just before the transaction is written.
pub fn apply(db_sock: &Path, ops: Vec<Value>) -> Result<(Duration, Duration)> {
    let mut c = Raw::connect(db_sock, secs(300))?;
    let mut seen = c.monitor(&[("Open_vSwitch", &["cur_cfg", "next_cfg"])])?;
    let t0 = Instant::now();
    let results = c.transact(ops)?;
    let committed = t0.elapsed();
    let next_cfg = results
        .last()
        .and_then(|r| r["rows"][0]["next_cfg"].as_i64())
        .context("no next_cfg in the select result")?;
    let applied = c.until(&mut seen, |s| s.cur_cfg >= next_cfg)?;
    Ok((committed, applied.max(t0 + committed) - t0))
}

/// `next_cfg` as the database holds it now.
pub fn next_cfg(db_sock: &Path) -> Result<i64> {
    let mut c = Raw::connect(db_sock, secs(30))?;
    let seen = c.monitor(&[("Open_vSwitch", &["cur_cfg", "next_cfg"])])?;
    Ok(seen.next_cfg)
}
