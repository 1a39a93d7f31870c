//! ovs-appliance: a containerized Open vSwitch host appliance.
//!
//! Data flows one way: config -> preflight -> supervisor -> reconcile -> metrics.
//! `main.rs` is only the command line; everything it runs lives here.

pub mod app;
pub mod config;
pub mod docker;
pub mod ignition;
pub mod kubernetes;
pub mod metrics;
pub mod netlink;
pub mod ovsdb;
pub mod preflight;
pub mod reconcile;
pub mod rundir;
pub mod supervisor;
pub mod unixctl;

#[cfg(test)]
mod fuzz_tests;

/// The one skip rule of every test tier, shared with `tests/` (see that file).
#[cfg(test)]
#[path = "../tests/skip/mod.rs"]
pub(crate) mod test_skip;

#[cfg(test)]
mod test_skip_tests {
    use super::test_skip::can_run_with;

    #[test]
    fn a_skip_is_recorded_in_the_file_ci_reads() {
        let dir = std::env::temp_dir().join(format!("skip-rule-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("skipped-tests.txt");
        assert!(can_run_with(&[], false, &file));
        assert!(!file.exists(), "nothing missing is no skip");
        assert!(!can_run_with(&["ip not on PATH".into()], false, &file));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("a_skip_is_recorded") && text.contains("ip not on PATH"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[should_panic(expected = "OVS_APPLIANCE_REQUIRE_ALL=1")]
    fn a_skip_fails_when_everything_is_required() {
        let file = std::env::temp_dir().join("never-written-skips.txt");
        can_run_with(&["not root".into()], true, &file);
    }
}
