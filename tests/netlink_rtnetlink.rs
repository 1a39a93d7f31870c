//! Tier 2: `Rtnetlink` against the real kernel. Each test makes its own network namespace with
//! one device `d0` in it, deleted by a Drop guard even when the test panics, runs the calls on a
//! thread that has entered that namespace, and checks the result with `ip -j`.
//!
//! The device is a dummy where the kernel has the dummy driver, else a persistent tap: the
//! kind of device OVS's userspace datapath makes for internal ports.

use ovs_appliance::netlink::{address_changes, DeviceState, Error, IpCidr, Netlink, Rtnetlink};
use serde_json::Value;
use std::fs::File;
use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// True when the test can run; otherwise a skip by the one rule of `tests/skip/mod.rs`.
fn can_run() -> bool {
    let why = if !nix::unistd::Uid::effective().is_root() {
        Some("not root: network namespaces need CAP_SYS_ADMIN".to_string())
    } else if !["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        Some("`ip` (iproute2) is not installed".to_string())
    } else {
        None
    };
    skip::can_run(&why.into_iter().collect::<Vec<_>>())
}

#[path = "skip/mod.rs"]
mod skip;

/// Runs `ip ARGS` under a timeout; returns stdout, or the failure with stderr.
fn ip(args: &[&str]) -> Result<String, String> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    // `ip` prints far less than a pipe holds, so waiting before reading cannot block it.
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("ip {args:?}: timed out after {COMMAND_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("ip {args:?}: {}: {stderr}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace of this test alone, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    /// A namespace with a device `d0` in it, down and without addresses.
    fn with_device() -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let name = format!("ovsa-nl-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]).expect("create the namespace");
        let ns = Self { name };
        // The guard exists from here on, so a failure below still deletes the namespace.
        let dummy = ns.ip(&["link", "add", "d0", "type", "dummy"]);
        if let Err(dummy) = dummy {
            let tap = ns.ip(&["tuntap", "add", "d0", "mode", "tap"]);
            tap.unwrap_or_else(|tap| panic!("no device: {dummy}; {tap}"));
        }
        ns
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    fn shell(&self) -> NsShell {
        NsShell(self.name.clone())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("could not delete namespace {}: {e}", self.name);
        }
    }
}

/// What the body running inside the namespace uses to look at it with `ip -j`.
#[derive(Clone)]
struct NsShell(String);

impl NsShell {
    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        ip(&all).unwrap();
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-n", self.0.as_str(), "-j"];
        all.extend_from_slice(args);
        serde_json::from_str(&ip(&all).unwrap()).unwrap()
    }

    /// `ip -j addr show d0` as "local/prefixlen", sorted.
    fn addrs(&self) -> Vec<String> {
        let json = self.json(&["addr", "show", "d0"]);
        let info = json[0]["addr_info"].as_array().cloned().unwrap_or_default();
        let mut addrs: Vec<String> = info
            .iter()
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect();
        addrs.sort();
        addrs
    }

    /// IFF_UP as `ip -j link show d0` reports it.
    fn up(&self) -> bool {
        let json = self.json(&["link", "show", "d0"]);
        let flags = json[0]["flags"].as_array().unwrap();
        flags.iter().any(|f| f == "UP")
    }
}

/// Runs `body` with a fresh `Rtnetlink` opened inside `ns`, on a thread that entered the
/// namespace, under a current_thread runtime of its own (or a multi-thread one). A panic in
/// the body comes back to the test thread, after which the guard deletes the namespace.
fn in_netns<T, F, Fut>(ns: &Netns, multi_thread: bool, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Rtnetlink, NsShell) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let path = format!("/var/run/netns/{}", ns.name);
    let shell = ns.shell();
    let thread = std::thread::spawn(move || {
        let fd = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        };
        runtime.unwrap().block_on(async move {
            let nl = Rtnetlink::new().expect("Rtnetlink::new");
            let run = tokio::time::timeout(TEST_TIMEOUT, body(nl, shell));
            run.await.expect("the test body timed out")
        })
    });
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn cidr(s: &str) -> IpCidr {
    s.parse().unwrap()
}

fn cidrs(list: &[&str]) -> Vec<IpCidr> {
    list.iter().map(|s| cidr(s)).collect()
}

#[test]
fn adds_lists_and_removes_ipv4_and_ipv6() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_device();
    in_netns(&ns, false, |nl, sh| async move {
        let (v4, v6) = (cidr("192.0.2.1/24"), cidr("2001:db8::1/64"));
        nl.add_address("d0", &v4).await.unwrap();
        nl.add_address("d0", &v6).await.unwrap();
        assert_eq!(sh.addrs(), ["192.0.2.1/24", "2001:db8::1/64"]);
        assert_eq!(nl.addresses("d0").await.unwrap(), [v4.clone(), v6.clone()]);

        nl.del_address("d0", &v4).await.unwrap();
        assert_eq!(sh.addrs(), ["2001:db8::1/64"]);
        nl.del_address("d0", &v6).await.unwrap();
        assert!(sh.addrs().is_empty());
        assert!(nl.addresses("d0").await.unwrap().is_empty());
    });
}

#[test]
fn add_and_del_are_idempotent() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_device();
    in_netns(&ns, false, |nl, sh| async move {
        for a in cidrs(&["192.0.2.1/24", "2001:db8::1/64"]) {
            nl.add_address("d0", &a).await.unwrap();
            nl.add_address("d0", &a).await.expect("adding twice is Ok");
        }
        assert_eq!(sh.addrs(), ["192.0.2.1/24", "2001:db8::1/64"]);
        // Another prefix length names another address: deleting it deletes nothing.
        for a in cidrs(&["192.0.2.1/16", "2001:db8::1/48", "198.51.100.1/24"]) {
            nl.del_address("d0", &a).await.expect("absent is Ok");
        }
        assert_eq!(sh.addrs(), ["192.0.2.1/24", "2001:db8::1/64"]);
        for a in cidrs(&["192.0.2.1/24", "2001:db8::1/64"]) {
            nl.del_address("d0", &a).await.unwrap();
            nl.del_address("d0", &a)
                .await
                .expect("deleting twice is Ok");
        }
        assert!(sh.addrs().is_empty());
    });
}

#[test]
fn set_up_sets_the_admin_state() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_device();
    in_netns(&ns, false, |nl, sh| async move {
        let up = || async { nl.devices().await.unwrap()["d0"].up };
        assert!(!sh.up());
        assert!(!up().await);
        nl.set_up("d0").await.unwrap();
        assert!(sh.up());
        assert!(up().await);
        nl.set_up("d0").await.expect("already up is Ok");
        sh.ip(&["link", "set", "d0", "down"]);
        assert!(!up().await);
    });
}

#[test]
fn a_missing_device_is_no_such_device() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_device();
    in_netns(&ns, false, |nl, _| async move {
        let a = cidr("192.0.2.1/24");
        let results = [
            nl.addresses("nope0").await.map(drop),
            nl.add_address("nope0", &a).await,
            nl.del_address("nope0", &a).await,
            nl.set_up("nope0").await,
        ];
        assert!(!nl.devices().await.unwrap().contains_key("nope0"));
        for r in results {
            match r {
                Err(Error::NoSuchDevice { device }) => assert_eq!(device, "nope0"),
                other => panic!("want NoSuchDevice, got {other:?}"),
            }
        }
    });
}

#[test]
fn lists_foreign_addresses_but_not_link_local() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_device();
    in_netns(&ns, false, |nl, sh| async move {
        sh.ip(&["addr", "add", "198.51.100.7/24", "dev", "d0"]);
        sh.ip(&["addr", "add", "fe80::5/64", "dev", "d0"]);
        // Point-to-point: the device's own address is IFA_LOCAL, the peer's IFA_ADDRESS.
        sh.ip(&[
            "addr",
            "add",
            "10.1.1.1",
            "peer",
            "10.1.1.2/32",
            "dev",
            "d0",
        ]);
        let want = cidrs(&["10.1.1.1/32", "198.51.100.7/24"]);
        assert_eq!(nl.addresses("d0").await.unwrap(), want);
        // Read all at once, every device of the namespace with its own addresses.
        let devices = nl.devices().await.unwrap();
        assert_eq!(devices["d0"].addresses, want);
        // lo is down in a new namespace: no address of its own, and none of d0's.
        assert_eq!(devices["lo"], DeviceState::default(), "{devices:?}");
    });
}

#[test]
fn ipv6_with_another_prefix_is_a_conflict() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_device();
    in_netns(&ns, false, |nl, sh| async move {
        sh.ip(&["addr", "add", "2001:db8::1/48", "dev", "d0"]);
        let err = nl.add_address("d0", &cidr("2001:db8::1/64")).await;
        match err {
            Err(Error::AddressConflict { present, .. }) => {
                assert_eq!(present, cidr("2001:db8::1/48"))
            }
            other => panic!("want AddressConflict, got {other:?}"),
        }
        assert_eq!(sh.addrs(), ["2001:db8::1/48"]);
    });
}

/// What the reconciler does: removals first, then additions; a foreign address stays.
#[test]
fn address_changes_applied_to_a_real_device() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_device();
    in_netns(&ns, true, |nl, sh| async move {
        sh.ip(&["addr", "add", "198.51.100.7/24", "dev", "d0"]);
        let ours_before = cidrs(&["192.0.2.1/24", "2001:db8::1/48"]);
        for a in &ours_before {
            nl.add_address("d0", a).await.unwrap();
        }
        let wanted = cidrs(&["2001:db8::1/64", "192.0.2.1/24", "192.0.2.2/24"]);
        let task = tokio::spawn(async move {
            let present = nl.addresses("d0").await?;
            let (add, remove) = address_changes(&wanted, &present, &ours_before);
            for a in &remove {
                nl.del_address("d0", a).await?;
            }
            for a in &add {
                nl.add_address("d0", a).await?;
            }
            Ok::<_, Error>((add.len(), remove.len()))
        });
        assert_eq!(task.await.unwrap().unwrap(), (2, 1));
        let want = [
            "192.0.2.1/24",
            "192.0.2.2/24",
            "198.51.100.7/24",
            "2001:db8::1/64",
        ];
        assert_eq!(sh.addrs(), want);
    });
}
