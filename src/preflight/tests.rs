use super::*;
use crate::config::DatapathMode;
use ::caps::Capability::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

/// A fake host: OVS stubs on a PATH, fake /sys, /proc, /lib/modules and /dev trees.
struct Fixture {
    dir: tempfile::TempDir,
    paths: HostPaths,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let bin = root.join("bin");
        fs::create_dir_all(&bin).unwrap();
        for b in OVS_BINARIES {
            fs::write(bin.join(b), "#!/bin/sh\n").unwrap();
            fs::set_permissions(bin.join(b), fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::create_dir_all(root.join("sys/class/net")).unwrap();
        fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
        fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-t\n").unwrap();
        let paths = HostPaths {
            kernel: KernelPaths {
                sys: root.join("sys"),
                proc: root.join("proc"),
                modules: root.join("lib/modules"),
            },
            dev: root.join("dev"),
            modprobe: "modprobe-is-not-run-here".into(),
        };
        Self { dir, paths }
    }

    fn with_tun(self) -> Self {
        // A character device cannot be made without privileges; the real /dev is linked instead
        // when it has the device, which tests that need it check first.
        fs::remove_dir_all(&self.paths.dev).ok();
        std::os::unix::fs::symlink("/dev", &self.paths.dev).unwrap();
        self
    }

    fn path_var(&self) -> String {
        self.dir.path().join("bin").display().to_string()
    }
}

struct NoLoader;
impl ModuleLoader for NoLoader {
    fn load(&self, _: &str) -> Result<(), String> {
        Err("modprobe: not permitted".into())
    }
    fn probe(&self, _: &str) -> Result<(), String> {
        Err("modprobe --dry-run: not found".into())
    }
}

fn privileges(caps: &[::caps::Capability]) -> Privileges {
    Privileges {
        effective: caps.iter().copied().collect(),
        memlock_unlimited: false,
    }
}

const ALL: &[::caps::Capability] = &[
    CAP_NET_ADMIN,
    CAP_SYS_MODULE,
    CAP_SYS_NICE,
    CAP_IPC_LOCK,
    CAP_NET_RAW,
];

fn ovs(datapath: DatapathMode) -> OvsConfig {
    OvsConfig {
        datapath,
        ..OvsConfig::default()
    }
}

fn decide_with(
    fx: &Fixture,
    datapath: DatapathMode,
    caps: &[::caps::Capability],
) -> Result<Outcome, Error> {
    decide(
        &ovs(datapath),
        &fx.paths,
        &privileges(caps),
        &fx.path_var(),
        &NoLoader,
        Intent::Start,
    )
}

fn warnings(outcome: &Outcome) -> String {
    let lines: Vec<String> = outcome
        .findings
        .iter()
        .filter(|f| f.level == Level::Warn)
        .map(|f| f.message.clone())
        .collect();
    lines.join("\n")
}

#[test]
fn missing_net_admin_is_fatal_with_the_flag() {
    let fx = Fixture::new().with_tun();
    let err = decide_with(&fx, DatapathMode::Auto, &[CAP_SYS_MODULE]).unwrap_err();
    assert_eq!(err.exit_code(), 77);
    assert!(err.to_string().contains("--cap-add NET_ADMIN"), "{err}");
}

#[test]
fn missing_binaries_exit_69_naming_them() {
    let fx = Fixture::new().with_tun();
    fs::remove_file(fx.dir.path().join("bin/ovs-vswitchd")).unwrap();
    let err = decide_with(&fx, DatapathMode::Netdev, ALL).unwrap_err();
    assert_eq!(err.exit_code(), 69);
    assert!(err.to_string().contains("ovs-vswitchd"), "{err}");
    assert!(!err.to_string().contains("ovsdb-tool"), "{err}");
}

#[test]
fn auto_without_module_falls_back_loudly() {
    let fx = Fixture::new().with_tun();
    if !Path::new("/dev/net/tun").exists() {
        panic!("this test needs /dev/net/tun on the machine");
    }
    let outcome = decide_with(&fx, DatapathMode::Auto, ALL).unwrap();
    assert_eq!(outcome.datapath, Datapath::Netdev);
    let warn = warnings(&outcome);
    assert!(
        warn.contains("falling back to the userspace (netdev) datapath"),
        "{warn}"
    );
    assert!(warn.contains("-v /lib/modules:/lib/modules:ro"), "{warn}");
}

#[test]
fn system_without_module_exits_69_with_the_mount() {
    let fx = Fixture::new().with_tun();
    let err = decide_with(&fx, DatapathMode::System, ALL).unwrap_err();
    assert_eq!(err.exit_code(), 69);
    let msg = err.to_string();
    assert!(msg.contains("-v /lib/modules:/lib/modules:ro"), "{msg}");
    assert!(msg.contains("/etc/modules-load.d"), "{msg}");
}

#[test]
fn system_needing_a_load_without_sys_module_exits_77() {
    let fx = Fixture::new().with_tun();
    let dir = fx.paths.kernel.modules.join("6.1.0-t");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("modules.dep"),
        "kernel/net/openvswitch/openvswitch.ko:\n",
    )
    .unwrap();
    let err = decide_with(&fx, DatapathMode::System, &[CAP_NET_ADMIN]).unwrap_err();
    assert_eq!(err.exit_code(), 77);
    assert!(err.to_string().contains("--cap-add SYS_MODULE"), "{err}");
}

#[test]
fn loaded_module_gives_system_without_sys_module_being_fatal() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.paths.kernel.sys.join("module/openvswitch")).unwrap();
    let outcome = decide_with(&fx, DatapathMode::System, &[CAP_NET_ADMIN]).unwrap();
    assert_eq!(outcome.datapath, Datapath::System);
    assert!(warnings(&outcome).contains("--cap-add SYS_MODULE"));
}

#[test]
fn netdev_without_tun_names_the_device_flag() {
    let fx = Fixture::new();
    let err = decide_with(&fx, DatapathMode::Netdev, ALL).unwrap_err();
    assert_eq!(err.exit_code(), 69);
    assert!(err.to_string().contains("--device /dev/net/tun"), "{err}");
}

#[test]
fn kernel_datapath_does_not_need_tun() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.paths.kernel.sys.join("module/openvswitch")).unwrap();
    assert!(decide_with(&fx, DatapathMode::Auto, ALL).is_ok());
}

#[test]
fn missing_sys_nice_drops_the_priority_with_a_warning() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.paths.kernel.sys.join("module/openvswitch")).unwrap();
    let full = decide_with(&fx, DatapathMode::Auto, ALL).unwrap();
    assert_eq!(full.nice, Some(-10));
    let outcome = decide_with(&fx, DatapathMode::Auto, &[CAP_NET_ADMIN, CAP_NET_RAW]).unwrap();
    assert_eq!(outcome.nice, None);
    assert!(warnings(&outcome).contains("--cap-add SYS_NICE"));
}

#[test]
fn mlockall_auto_follows_ipc_lock_and_memlock() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.paths.kernel.sys.join("module/openvswitch")).unwrap();
    let with_lock = decide_with(&fx, DatapathMode::Auto, ALL).unwrap();
    assert!(with_lock.mlockall);
    let without = decide_with(&fx, DatapathMode::Auto, &[CAP_NET_ADMIN, CAP_NET_RAW]).unwrap();
    assert!(!without.mlockall);
    let warn = warnings(&without);
    assert_eq!(
        warn.matches("--no-mlockall").count(),
        1,
        "said once: {warn}"
    );

    let mut unlimited = privileges(&[CAP_NET_ADMIN]);
    unlimited.memlock_unlimited = true;
    let outcome = decide(
        &ovs(DatapathMode::Auto),
        &fx.paths,
        &unlimited,
        &fx.path_var(),
        &NoLoader,
        Intent::Start,
    )
    .unwrap();
    assert!(outcome.mlockall);

    let mut never = ovs(DatapathMode::Auto);
    never.mlockall = crate::config::Mlockall::Never;
    let outcome = decide(
        &never,
        &fx.paths,
        &privileges(ALL),
        &fx.path_var(),
        &NoLoader,
        Intent::Start,
    )
    .unwrap();
    assert!(!outcome.mlockall);
}

#[test]
fn missing_net_raw_warns_about_system_ports() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.paths.kernel.sys.join("module/openvswitch")).unwrap();
    let outcome = decide_with(&fx, DatapathMode::Auto, &[CAP_NET_ADMIN]).unwrap();
    let warn = warnings(&outcome);
    assert!(
        warn.contains("CAP_NET_RAW missing") && warn.contains("--cap-add NET_RAW"),
        "{warn}"
    );
}

use std::path::Path;
