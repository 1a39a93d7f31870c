use super::*;
use std::cell::RefCell;
use std::fs;

/// A fake host: temp /sys, /proc and /lib/modules trees.
struct FakeKernel {
    _dir: tempfile::TempDir,
    paths: KernelPaths,
}

impl FakeKernel {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = KernelPaths {
            sys: dir.path().join("sys"),
            proc: dir.path().join("proc"),
            modules: dir.path().join("lib/modules"),
        };
        fs::create_dir_all(paths.sys.join("module")).unwrap();
        fs::create_dir_all(paths.proc.join("sys/kernel")).unwrap();
        fs::write(paths.proc.join("sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
        fs::write(paths.proc.join("modules"), "veth 40960 0 - Live 0x0\n").unwrap();
        Self { _dir: dir, paths }
    }

    fn with_sys_module(self) -> Self {
        fs::create_dir_all(self.paths.sys.join("module/openvswitch")).unwrap();
        self
    }

    fn listed_in_proc(self) -> Self {
        let line = "openvswitch 192512 0 - Live 0x0\n";
        fs::write(self.paths.proc.join("modules"), line).unwrap();
        self
    }

    fn with_module_file(self, name: &str) -> Self {
        let dir = self.paths.modules.join("6.1.0-test");
        fs::create_dir_all(&dir).unwrap();
        let dep = format!(
            "kernel/net/core/x.ko:\nkernel/net/openvswitch/{name}: kernel/net/nsh/nsh.ko\n"
        );
        fs::write(dir.join("modules.dep"), dep).unwrap();
        self
    }
}

/// Records calls; on success makes /sys/module/openvswitch appear, as the kernel would.
struct FakeLoader {
    calls: RefCell<Vec<String>>,
    result: Result<(), String>,
    sys: Option<PathBuf>,
}

impl FakeLoader {
    fn ok(kernel: &FakeKernel) -> Self {
        Self {
            calls: RefCell::default(),
            result: Ok(()),
            sys: Some(kernel.paths.sys.clone()),
        }
    }
    fn failing(why: &str) -> Self {
        Self {
            calls: RefCell::default(),
            result: Err(why.into()),
            sys: None,
        }
    }
}

impl ModuleLoader for FakeLoader {
    fn load(&self, module: &str) -> Result<(), String> {
        self.calls.borrow_mut().push(module.into());
        if let (Ok(()), Some(sys)) = (&self.result, &self.sys) {
            fs::create_dir_all(sys.join("module").join(module)).unwrap();
        }
        self.result.clone()
    }

    /// Changes nothing, as `modprobe --dry-run`.
    fn probe(&self, module: &str) -> Result<(), String> {
        self.calls.borrow_mut().push(format!("probe {module}"));
        self.result.clone()
    }
}

const SYSTEM: Resolution = Resolution::Use {
    datapath: Datapath::System,
    loading: Loading::NotNeeded,
};

/// `resolve` as `run` calls it.
fn start(
    mode: DatapathMode,
    paths: &KernelPaths,
    sys_module: bool,
    loader: &dyn ModuleLoader,
) -> Resolution {
    resolve(mode, paths, sys_module, loader, Intent::Start)
}

#[test]
fn state_distinguishes_loaded_builtin_absent() {
    assert_eq!(module_state(&FakeKernel::new().paths), ModuleState::Absent);
    let k = FakeKernel::new().with_sys_module();
    assert_eq!(module_state(&k.paths), ModuleState::BuiltIn);
    let k = FakeKernel::new().with_sys_module().listed_in_proc();
    assert_eq!(module_state(&k.paths), ModuleState::Loaded);
}

#[test]
fn present_module_is_used_without_loading() {
    for k in [
        FakeKernel::new().with_sys_module(),
        FakeKernel::new().with_sys_module().listed_in_proc(),
    ] {
        let loader = FakeLoader::failing("must not be called");
        for mode in [DatapathMode::Auto, DatapathMode::System] {
            assert_eq!(start(mode, &k.paths, false, &loader), SYSTEM);
        }
        assert!(loader.calls.borrow().is_empty());
    }
}

#[test]
fn netdev_never_touches_the_module() {
    let k = FakeKernel::new().with_module_file("openvswitch.ko");
    let loader = FakeLoader::ok(&k);
    let got = start(DatapathMode::Netdev, &k.paths, true, &loader);
    assert_eq!(
        got,
        Resolution::Use {
            datapath: Datapath::Netdev,
            loading: Loading::NotNeeded
        }
    );
    assert!(loader.calls.borrow().is_empty());
}

#[test]
fn loadable_module_is_loaded_with_sys_module() {
    for file in ["openvswitch.ko", "openvswitch.ko.xz", "openvswitch.ko.zst"] {
        let k = FakeKernel::new().with_module_file(file);
        let loader = FakeLoader::ok(&k);
        let got = start(DatapathMode::Auto, &k.paths, true, &loader);
        assert_eq!(
            got,
            Resolution::Use {
                datapath: Datapath::System,
                loading: Loading::Loaded
            },
            "{file}"
        );
        assert_eq!(*loader.calls.borrow(), vec!["openvswitch".to_string()]);
    }
}

#[test]
fn missing_sys_module_falls_back_under_auto_and_refuses_under_system() {
    let k = FakeKernel::new().with_module_file("openvswitch.ko");
    let loader = FakeLoader::ok(&k);
    let auto = start(DatapathMode::Auto, &k.paths, false, &loader);
    assert_eq!(auto, Resolution::FellBack(Unavailable::NoSysModule));
    let system = start(DatapathMode::System, &k.paths, false, &loader);
    assert_eq!(system, Resolution::Refused(Unavailable::NoSysModule));
    assert!(loader.calls.borrow().is_empty());
}

#[test]
fn no_modules_tree_names_the_path() {
    let k = FakeKernel::new();
    let loader = FakeLoader::ok(&k);
    let Resolution::FellBack(Unavailable::Cannot(why)) =
        start(DatapathMode::Auto, &k.paths, true, &loader)
    else {
        panic!("expected a fall back");
    };
    assert!(why.contains("lib/modules/6.1.0-test"), "{why}");
    assert!(loader.calls.borrow().is_empty());
}

#[test]
fn module_not_in_modules_dep() {
    let k = FakeKernel::new().with_module_file("vxlan.ko");
    let loader = FakeLoader::ok(&k);
    let got = start(DatapathMode::System, &k.paths, true, &loader);
    let Resolution::Refused(Unavailable::Cannot(why)) = got else {
        panic!("expected a refusal, got {got:?}");
    };
    assert!(why.contains("not listed in"), "{why}");
}

#[test]
fn loader_failure_is_reported() {
    let k = FakeKernel::new().with_module_file("openvswitch.ko");
    let loader = FakeLoader::failing("modprobe openvswitch failed: Operation not permitted");
    let got = start(DatapathMode::Auto, &k.paths, true, &loader);
    let Resolution::FellBack(why) = got else {
        panic!("expected a fall back, got {got:?}");
    };
    assert!(why.to_string().contains("Operation not permitted"), "{why}");
}

#[test]
fn loader_success_without_sys_entry_is_not_trusted() {
    let k = FakeKernel::new().with_module_file("openvswitch.ko");
    let loader = FakeLoader {
        calls: RefCell::default(),
        result: Ok(()),
        sys: None,
    };
    let got = start(DatapathMode::System, &k.paths, true, &loader);
    assert!(
        matches!(got, Resolution::Refused(Unavailable::Cannot(_))),
        "{got:?}"
    );
}

#[test]
fn report_probes_and_loads_nothing() {
    for mode in [DatapathMode::Auto, DatapathMode::System] {
        let k = FakeKernel::new().with_module_file("openvswitch.ko");
        let loader = FakeLoader::ok(&k);
        let got = resolve(mode, &k.paths, true, &loader, Intent::Report);
        assert_eq!(
            got,
            Resolution::Use {
                datapath: Datapath::System,
                loading: Loading::Loadable
            }
        );
        assert_eq!(
            *loader.calls.borrow(),
            vec!["probe openvswitch".to_string()]
        );
        assert_eq!(
            module_state(&k.paths),
            ModuleState::Absent,
            "nothing loaded"
        );
    }
}

#[test]
fn report_says_what_run_would_meet() {
    let k = FakeKernel::new().with_module_file("openvswitch.ko");
    let loader = FakeLoader::failing("modprobe --dry-run openvswitch failed: not found");
    let got = resolve(
        DatapathMode::System,
        &k.paths,
        true,
        &loader,
        Intent::Report,
    );
    let Resolution::Refused(Unavailable::Cannot(why)) = got else {
        panic!("expected a refusal, got {got:?}");
    };
    assert!(why.contains("--dry-run"), "{why}");
    let nocap = FakeLoader::ok(&k);
    let got = resolve(DatapathMode::Auto, &k.paths, false, &nocap, Intent::Report);
    assert_eq!(got, Resolution::FellBack(Unavailable::NoSysModule));
    assert!(nocap.calls.borrow().is_empty());
    let present = FakeKernel::new().with_sys_module().listed_in_proc();
    let got = resolve(
        DatapathMode::System,
        &present.paths,
        false,
        &nocap,
        Intent::Report,
    );
    assert_eq!(got, SYSTEM);
}
