//! Tier 4: a real Linux kernel. Boots Debian's cloud kernel in QEMU (TCG) with a debootstrapped
//! bookworm root (OVS, iproute2, kmod, iperf3; cached in /var/cache/ovs-appliance by
//! `build-root`) and the freshly built binary as its initramfs, the openvswitch module not
//! loaded, and runs the guest scripts in `guest/` at boot: module loading by the appliance
//! (`auto`, and the container's view with and without SYS_MODULE and /lib/modules), `check`
//! leaving the kernel as it was, traffic on the kernel datapath (veth, internal port, VLAN access
//! and trunk, patch, LACP bond, VXLAN and Geneve between two appliances), and kill -9 of ovs-vswitchd
//! under a 10 ms ping, and ovs-vswitchd started early after boot (a monotonic clock under 10 s)
//! passing traffic. Each case comes back as a `CASE <name> PASS|FAIL <detail>` line on the
//! second serial port; this test asserts every one and reports them all
//! (target/kernel-tier.txt) when any fails.

#[path = "../skip/mod.rs"]
mod skip;
mod vm;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One guest script, its limit inside the VM (`timeout` there), and every case it reports, in
/// order: a case that never reports fails too.
struct Group {
    script: &'static str,
    limit_s: u32,
    cases: &'static [&'static str],
}

const GROUPS: &[Group] = &[
    // Case 3 first: the module has never been loaded in this kernel yet.
    Group {
        script: "check",
        limit_s: 60,
        cases: &["check-does-not-load-module", "check-without-sys-module-77"],
    },
    // Case 1.
    Group {
        script: "module",
        limit_s: 90,
        cases: &[
            "auto-loads-module",
            "auto-bridges-system",
            "sigterm-keeps-module",
        ],
    },
    // Case 2.
    Group {
        script: "container",
        limit_s: 180,
        cases: &[
            "container-caps",
            "container-auto-falls-back",
            "container-auto-after-fallback",
            "container-system-needs-sys-module",
            "container-system-needs-modules",
            "container-sys-module-loads",
            "container-preloaded-needs-nothing",
        ],
    },
    // Case 4.
    Group {
        script: "traffic",
        limit_s: 240,
        cases: &[
            "traffic-bridges-system",
            "veth-ping",
            "veth-iperf3",
            "internal-port-ping",
            "vlan-access-isolation",
            "vlan-trunk-tagged",
            "patch-pair",
            "bond-lacp",
            "vxlan-tunnel",
            "geneve-tunnel",
        ],
    },
    // Case 5.
    Group {
        script: "restart",
        limit_s: 90,
        cases: &["kill9-vswitchd-under-ping"],
    },
    // Case 6.
    Group {
        script: "bootclock",
        limit_s: 90,
        cases: &["early-clock-traffic"],
    },
];

/// The whole VM, boot included, is killed past this and the test fails: the tier's budget is
/// 10 minutes, and a run takes 4 to 5 here.
const DEADLINE: Duration = Duration::from_secs(600);

/// `OVS_APPLIANCE_KERNEL_ONLY=check,restart` runs only those groups (while working on one);
/// refused under OVS_APPLIANCE_REQUIRE_ALL=1, where every case must run.
fn selected() -> Vec<&'static Group> {
    let Ok(only) = std::env::var("OVS_APPLIANCE_KERNEL_ONLY") else {
        return GROUPS.iter().collect();
    };
    assert!(
        std::env::var("OVS_APPLIANCE_REQUIRE_ALL").as_deref() != Ok("1"),
        "OVS_APPLIANCE_KERNEL_ONLY={only} would leave cases out, and OVS_APPLIANCE_REQUIRE_ALL=1"
    );
    let names: Vec<&str> = only.split(',').map(str::trim).collect();
    let groups: Vec<&Group> = GROUPS
        .iter()
        .filter(|g| names.contains(&g.script))
        .collect();
    assert!(
        !groups.is_empty(),
        "OVS_APPLIANCE_KERNEL_ONLY={only} names no group"
    );
    groups
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
    let groups = selected();
    let scripts: Vec<vm::Script> = groups
        .iter()
        .map(|g| vm::Script {
            name: g.script,
            limit_s: g.limit_s,
        })
        .collect();
    let boot = vm::boot(
        &root,
        Path::new(env!("CARGO_BIN_EXE_ovs-appliance")),
        &scripts,
        dir.path(),
        DEADLINE,
    )
    .unwrap_or_else(|e| panic!("the VM could not be started: {e}"));
    let cases: Vec<&str> = groups
        .iter()
        .flat_map(|g| g.cases.iter().copied())
        .collect();
    let (report, failures) = judge(&root, &boot, &cases);
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
fn judge(root: &vm::Root, boot: &vm::Boot, expected: &[&str]) -> (String, Vec<String>) {
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
    if let Some(console) = &boot.hung {
        let _ = writeln!(
            report,
            "a first boot hung before the guest's init ran and was killed; its console:\n{console}"
        );
    }
    for line in boot.prefixed("BOOT ") {
        let _ = writeln!(report, "boot: {line}");
    }
    let cases = boot.cases();
    for want in expected {
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
        if !expected.contains(&name.as_str()) {
            let verdict = if *passed { "PASS" } else { "FAIL" };
            let _ = writeln!(report, "{verdict} {name} (not in GROUPS): {detail}");
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
