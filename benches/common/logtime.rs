//! Timestamps of the appliance's JSON log (tracing-subscriber's, UTC with microseconds), shared
//! by the benches that time the appliance's steps from its own log lines (each includes this file
//! with `#[path]`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Result};

/// tracing-subscriber's JSON timestamp, `2026-11-27T18:36:56.710276Z` (UTC), as a SystemTime.
pub fn parse_utc(ts: &str) -> Option<SystemTime> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let num = |s: &str| s.parse::<i64>().ok();
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':');
    let (h, min, s) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3_600 + min * 60 + s;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms").
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Checked once at start: a wrong date would silently skew every "noticed" figure.
pub fn self_check() -> Result<()> {
    let at = |s| parse_utc(s).and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    ensure!(
        at("1970-01-01T00:00:00Z") == Some(Duration::ZERO),
        "parse_utc epoch"
    );
    ensure!(
        at("2024-02-29T23:59:59.5Z") == Some(Duration::from_millis(1_709_251_199_500)),
        "parse_utc leap day"
    );
    Ok(())
}
