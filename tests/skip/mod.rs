//! The one skip rule for every test tier (unit tests in `src/` include this file by `#[path]`,
//! as do the tier-2 and tier-3 harnesses), so no tier can skip differently.
//!
//! A test that cannot run calls `can_run(missing)`. Under `OVS_APPLIANCE_REQUIRE_ALL=1` (set
//! by `.ci/run`) a skip panics: the test fails. Otherwise it prints `skipped: why` to stderr
//! and appends the same line to `target/skipped-tests.txt`. The file exists because libtest
//! captures the output of passing tests, so a grep over `cargo test`'s output never sees a
//! skip; `.ci/run` removes the file before the run and fails if any test wrote it.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Where skips are recorded: `$CARGO_TARGET_DIR` when cargo was given one at build time, else
/// the crate's own `target/`.
pub fn skip_file() -> PathBuf {
    let target = option_env!("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("skipped-tests.txt")
}

/// True when nothing is missing. Otherwise panics under OVS_APPLIANCE_REQUIRE_ALL=1, or
/// records the skip (stderr and `skip_file()`) and returns false.
pub fn can_run(missing: &[String]) -> bool {
    let require_all = std::env::var("OVS_APPLIANCE_REQUIRE_ALL").as_deref() == Ok("1");
    can_run_with(missing, require_all, &skip_file())
}

/// `can_run` with its two inputs explicit, so the rule itself has tests.
pub fn can_run_with(missing: &[String], require_all: bool, file: &std::path::Path) -> bool {
    if missing.is_empty() {
        return true;
    }
    let why = missing.join(", ");
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    if require_all {
        panic!("OVS_APPLIANCE_REQUIRE_ALL=1 but {test} cannot run: {why}");
    }
    eprintln!("skipped: {test}: {why}");
    // A failure to record is reported, not hidden: the skip itself still happens.
    let recorded = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| writeln!(f, "skipped: {test}: {why}"));
    if let Err(e) = recorded {
        eprintln!("could not record the skip in {}: {e}", file.display());
    }
    false
}
