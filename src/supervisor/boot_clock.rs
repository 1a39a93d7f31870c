//! ovs-vswitchd started in the first 10 s of the host's monotonic clock gets no upcall handler on
//! the kernel datapath.
//!
//! Measured with OVS 3.1 in the tier-4 VM (an appliance started 5 s after boot): its log said
//! "Overriding n-handler-threads to 0" at every reconfigure until its monotonic clock passed 10 s,
//! `dpctl/show` counted every upcall as lost, and two namespaces on the bridge could not ping.
//! Started at 11 s, the same run said "to 2" and passed traffic. In per-CPU dispatch mode the
//! handlers are ovs-vswitchd's count of CPU cores; a threshold of exactly 10 s fits a count that
//! is refreshed every 10 s from a last refresh taken as time 0. A host that boots fast (a cloud
//! VM, a unit started early) hits it, and so does a container in a time namespace whose clock
//! starts low.
//!
//! The appliance holds ovs-vswitchd back until the clock passes [`SAFE_FROM`]; ovsdb-server,
//! the metrics listener and everything else start as usual.

use std::time::Duration;

/// The first monotonic reading at which ovs-vswitchd counts its CPU cores (10 s), with a margin.
pub const SAFE_FROM: Duration = Duration::from_millis(10_500);

/// How long to hold ovs-vswitchd back, at monotonic clock reading `now`.
pub fn hold(now: Duration) -> Option<Duration> {
    SAFE_FROM.checked_sub(now).filter(|d| !d.is_zero())
}

/// CLOCK_MONOTONIC as ovs-vswitchd reads it (in this process's time namespace, which its
/// children share).
pub fn monotonic_now() -> Option<Duration> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    Some(Duration::new(
        u64::try_from(ts.tv_sec()).ok()?,
        u32::try_from(ts.tv_nsec()).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_only_before_the_clock_passes_ten_seconds_and_a_half() {
        assert_eq!(
            hold(Duration::from_secs(3)),
            Some(Duration::from_millis(7_500))
        );
        assert_eq!(
            hold(Duration::from_millis(10_499)),
            Some(Duration::from_millis(1))
        );
        assert_eq!(hold(SAFE_FROM), None);
        assert_eq!(hold(Duration::from_secs(3600)), None);
    }

    #[test]
    fn reads_the_monotonic_clock() {
        let a = monotonic_now().expect("CLOCK_MONOTONIC");
        let b = monotonic_now().expect("CLOCK_MONOTONIC");
        assert!(b >= a);
    }
}
