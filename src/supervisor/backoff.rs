//! Restart pacing: jittered, capped exponential backoff, and the restart budget per window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The delay before the restart that follows `recent` restarts in the current window.
///
/// The first restart is immediate: a daemon that crashed once after a stable run should be back
/// as fast as a human could respawn it. After that the delay doubles from `initial` up to `max`,
/// and is drawn from [delay/2, delay] so that restarts of many appliances do not line up.
pub fn delay(recent: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    if recent == 0 {
        return Duration::ZERO;
    }
    let exponent = (recent - 1).min(32);
    let full = initial.saturating_mul(1u32 << exponent.min(31)).min(max);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// Restarts within a sliding window; more than `limit` means a restart loop.
#[derive(Debug)]
pub struct Budget {
    limit: u32,
    window: Duration,
    restarts: VecDeque<Instant>,
}

impl Budget {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            restarts: VecDeque::new(),
        }
    }

    /// Restarts already made in the window that ends at `now`.
    pub fn recent(&mut self, now: Instant) -> u32 {
        while let Some(&first) = self.restarts.front() {
            if now.duration_since(first) >= self.window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.len() as u32
    }

    /// Records a restart at `now`; false when it would exceed the budget.
    pub fn try_spend(&mut self, now: Instant) -> bool {
        if self.recent(now) >= self.limit {
            return false;
        }
        self.restarts.push_back(now);
        true
    }
}

/// A small xorshift generator for jitter: no need for cryptographic randomness here.
#[derive(Debug)]
pub struct Jitter(u64);

impl Jitter {
    pub fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Self(nanos | 1)
    }

    /// A number in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_restart_is_immediate_then_doubles() {
        let (i, m) = (100 * MS, 10_000 * MS);
        assert_eq!(delay(0, i, m, 0.7), Duration::ZERO);
        assert_eq!(delay(1, i, m, 1.0), 100 * MS);
        assert_eq!(delay(2, i, m, 1.0), 200 * MS);
        assert_eq!(delay(3, i, m, 1.0), 400 * MS);
        assert_eq!(delay(3, i, m, 0.0), 200 * MS);
        assert_eq!(delay(30, i, m, 1.0), m);
    }

    proptest! {
        #[test]
        fn delay_stays_within_half_and_full_of_the_capped_value(
            recent in 1u32..100, initial_ms in 1u64..10_000, max_ms in 1u64..100_000, j in 0.0f64..1.0
        ) {
            let (initial, max) = (Duration::from_millis(initial_ms), Duration::from_millis(max_ms.max(initial_ms)));
            let d = delay(recent, initial, max, j);
            prop_assert!(d <= max);
            let exp = initial.saturating_mul(1u32 << (recent - 1).min(31)).min(max);
            prop_assert!(d >= exp / 2 && d <= exp);
        }

        #[test]
        fn delay_never_decreases_with_more_restarts(recent in 1u32..60, initial_ms in 1u64..1000) {
            let (initial, max) = (Duration::from_millis(initial_ms), Duration::from_millis(60_000));
            prop_assert!(delay(recent + 1, initial, max, 1.0) >= delay(recent, initial, max, 1.0));
        }

        #[test]
        fn jitter_is_in_unit_interval(seed in any::<u64>()) {
            let mut j = Jitter(seed | 1);
            for _ in 0..100 {
                let x = j.next();
                prop_assert!((0.0..1.0).contains(&x));
            }
        }
    }

    #[test]
    fn budget_counts_within_the_window_only() {
        let start = Instant::now();
        let mut b = Budget::new(2, Duration::from_secs(10));
        assert!(b.try_spend(start));
        assert!(b.try_spend(start + Duration::from_secs(1)));
        assert!(
            !b.try_spend(start + Duration::from_secs(2)),
            "third in window"
        );
        assert_eq!(b.recent(start + Duration::from_secs(10)), 1);
        assert!(b.try_spend(start + Duration::from_secs(11)));
    }
}
