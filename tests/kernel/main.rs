//! Tier 4: a real Linux kernel. Boots Debian's cloud kernel in QEMU (TCG) with a debootstrapped
//! bookworm root (OVS, iproute2, kmod, iperf3; cached in /var/cache/ovs-appliance by
//! `build-root`) and the freshly built binary as its initramfs, the openvswitch module not
//! loaded, and runs the guest scripts in `guest/` at boot: module loading by the appliance
//! (`auto`, and the container's view with and without SYS_MODULE and /lib/modules), `check`
//! leaving the kernel as it was, traffic on the kernel datapath (veth, internal port, VLAN access
//! and trunk, patch, LACP bond, VXLAN between two appliances), and kill -9 of ovs-vswitchd
//! under a 10 ms ping. Each case comes back as a `CASE <name> PASS|FAIL <detail>` line on the
//! second serial port; this test asserts every one and reports them all
//! (target/kernel-tier.txt) when any fails.

#[path = "../skip/mod.rs"]
mod skip;
mod vm;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every case the guest scripts report, in order: a case that never reports fails too.
const CASES: &[&str] = &[
    // guest/check.sh (case 3)
    "check-does-not-load-module",
    "check-without-sys-module-77",
    // guest/module.sh (case 1)
    "auto-loads-module",
    "auto-bridges-system",
    "sigterm-keeps-module",
    // guest/container.sh (case 2)
    "container-caps",
    "container-auto-falls-back",
    "container-system-needs-sys-module",
    "container-system-needs-modules",
    "container-sys-module-loads",
    "container-preloaded-needs-nothing",
    // guest/traffic.sh (case 4)
    "traffic-bridges-system",
    "veth-ping",
    "veth-iperf3",
    "internal-port-ping",
    "vlan-access-isolation",
    "vlan-trunk-tagged",
    "patch-pair",
    "bond-lacp",
    "vxlan-tunnel",
    // guest/restart.sh (case 5)
    "kill9-vswitchd-under-ping",
];

/// The guest scripts and their limits inside the VM (`timeout` there).
const SCRIPTS: &[vm::Script] = &[
    vm::Script {
        name: "check",
        limit_s: 90,
    },
    vm::Script {
        name: "module",
        limit_s: 150,
    },
    vm::Script {
        name: "container",
        limit_s: 300,
    },
    vm::Script {
        name: "traffic",
        limit_s: 360,
    },
    vm::Script {
        name: "restart",
        limit_s: 150,
    },
];

/// Past this the VM is killed and the test fails: the scripts' limits, plus boot and slack.
fn deadline() -> Duration {
    let scripts: u32 = SCRIPTS.iter().map(|s| s.limit_s + 10).sum();
    Duration::from_secs(u64::from(scripts) + 120)
}

const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[test]
fn kernel_tier() {
    if !skip::can_run(&vm::missing_prerequisites()) {
        return;
    }
    let root = match vm::build_root(BUILD_TIMEOUT) {
        Ok(root) => root,
        Err(why) => {
            skip::can_run(&[format!("the VM root cannot be built: {why}")]);
            return;
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("ovsa-kt-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let boot = vm::boot(
        &root,
        Path::new(env!("CARGO_BIN_EXE_ovs-appliance")),
        SCRIPTS,
        dir.path(),
        deadline(),
    )
    .unwrap_or_else(|e| panic!("the VM could not be started: {e}"));
    let (report, failures) = judge(&root, &boot);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/kernel-tier.txt");
    let _ = std::fs::write(&path, &report);
    eprintln!("--- kernel tier ({}) ---\n{report}", path.display());
    assert!(
        failures.is_empty(),
        "kernel tier: {} failed: {failures:?}\n{report}\n--- console (last 40 lines) ---\n{}",
        failures.len(),
        boot.console_tail(40)
    );
}

/// The report (every case's verdict, the timings, a failed script's log) and what failed.
fn judge(root: &vm::Root, boot: &vm::Boot) -> (String, Vec<String>) {
    let mut report = String::new();
    let mut failures = Vec::new();
    let _ = writeln!(
        report,
        "kernel {} from {}; build-root {:.1} s; VM {:.1} s{}",
        root.release,
        root.dir.display(),
        root.took.as_secs_f64(),
        boot.took.as_secs_f64(),
        if boot.timed_out {
            " (KILLED at the deadline)"
        } else {
            ""
        }
    );
    for line in boot.prefixed("BOOT ") {
        let _ = writeln!(report, "boot: {line}");
    }
    let cases = boot.cases();
    for want in CASES {
        match cases.iter().find(|(name, _, _)| name == want) {
            Some((_, true, detail)) => {
                let _ = writeln!(report, "PASS {want}: {detail}");
            }
            Some((_, false, detail)) => {
                let _ = writeln!(report, "FAIL {want}: {detail}");
                failures.push(want.to_string());
            }
            None => {
                let _ = writeln!(report, "FAIL {want}: never reported");
                failures.push(want.to_string());
            }
        }
    }
    for (name, passed, detail) in &cases {
        if !CASES.contains(&name.as_str()) {
            let verdict = if *passed { "PASS" } else { "FAIL" };
            let _ = writeln!(report, "{verdict} {name} (not in CASES): {detail}");
            if !passed {
                failures.push(name.clone());
            }
        }
    }
    for line in boot.prefixed("SCRIPT ") {
        let _ = writeln!(report, "script {line}");
        if !line.contains(" rc=0 ") {
            failures.push(format!("script {line}"));
        }
    }
    if !boot.finished() {
        failures.push("the VM never reported DONE".into());
    }
    let logs = boot.prefixed("LOG ");
    if !logs.is_empty() {
        let _ = writeln!(
            report,
            "--- logs of failed scripts ---\n{}",
            logs.join("\n")
        );
    }
    (report, failures)
}
