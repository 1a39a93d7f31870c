//! Tier 2, end to end: a real OVN chassis on the appliance (issue 12). NB and SB ovsdb-servers,
//! ovn-northd and ovn-controller run in the test's namespace and temp dir; ovn-controller uses the
//! appliance's db.sock and creates br-int itself (netdev, as the appliance's bridges: there is
//! no kernel module here). Two logical ports are bound to two namespaces through br-int and a
//! localnet port reaches the appliance's own bridge `br-phys`. Traffic must keep flowing across
//! a kill -9 of ovs-vswitchd, a SIGHUP with a changed config and an appliance restart, and the
//! chassis identity and the keys OVN wrote must be unchanged afterwards.

mod common;

use common::net::{ns_ok, Host};
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SYSTEM_ID: &str = "chassis-ovsa-test";

/// The appliance's config: br-phys is owned (with the localnet host's port), br-int is not.
fn config(extra_bridge_ids: &str) -> String {
    format!(
        r#"datapath = "netdev"

[[bridges]]
name = "br-phys"
external_ids = {{ role = "provider"{extra_bridge_ids} }}
  [[bridges.ports]]
  name = "vphys"
"#
    )
}

/// OVN's daemons, each a child of the test killed by PID when dropped.
struct Ovn {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Ovn {
    fn spawn(&mut self, ns: &str, name: &str, envs: &[(&str, &Path)], args: &[String]) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.out"))).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        self.children.push((name.into(), child));
    }

    /// Panics (with the logs, in Drop) when one of OVN's daemons has exited.
    fn all_running(&mut self) {
        for (name, child) in self.children.iter_mut() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name} exited: {status}");
            }
        }
    }

    fn sock(&self, name: &str) -> String {
        format!("unix:{}", self.dir.join(format!("{name}.sock")).display())
    }

    /// An ovsdb-server for `schema` (nb or sb) with its socket and control socket in the dir.
    fn db(&mut self, ns: &str, which: &str) {
        let db = self.dir.join(format!("{which}.db"));
        let schema = format!("/usr/share/ovn/ovn-{which}.ovsschema");
        let out = run(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(schema),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "ovsdb-tool create {which}: {out:?}");
        let d = self.dir.clone();
        self.spawn(
            ns,
            which,
            &[],
            &[
                "ovsdb-server".into(),
                format!("--remote=p{}", self.sock(which)),
                format!("--unixctl={}", d.join(format!("{which}.ctl")).display()),
                format!("--log-file={}", d.join(format!("{which}.log")).display()),
                db.display().to_string(),
            ],
        );
        let sock = d.join(format!("{which}.sock"));
        wait_for(Duration::from_secs(10), "the OVN database socket", || {
            sock.exists().then_some(())
        });
    }

    fn nbctl(&self, args: &[&str]) -> String {
        let out = run(
            Command::new("ovn-nbctl")
                .arg(format!("--db={}", self.sock("nb")))
                .arg("--timeout=10")
                .args(args),
            Duration::from_secs(15),
        );
        assert!(out.status.success(), "ovn-nbctl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["ovn-controller.log", "northd.log", "ovn-controller.out"] {
            let body = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let tail: Vec<&str> = body.lines().rev().take(40).collect();
            text += &format!("--- {name} (last lines) ---\n");
            for l in tail.into_iter().rev() {
                text += l;
                text += "\n";
            }
        }
        text
    }
}

impl Drop for Ovn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Open_vSwitch row's external_ids as a map.
fn root_ids(app: &Appliance) -> BTreeMap<String, String> {
    map_of(app, &["get", "Open_vSwitch", ".", "external_ids"])
}

/// A map column read with ovs-vsctl, as {key: value} (values unquoted).
fn map_of(app: &Appliance, args: &[&str]) -> BTreeMap<String, String> {
    let text = app.vsctl_stdout(args);
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    let mut map = BTreeMap::new();
    // Values OVN and the appliance write here hold no ", " themselves.
    for pair in inner.split(", ").filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').expect("key=value");
        map.insert(k.trim_matches('"').into(), v.trim_matches('"').into());
    }
    map
}

/// A ping every 20 ms from `from` to `to` during `f`, for at least `secs`: (sent, received).
fn ping_through(from: &Host, to: &str, secs: u32, f: impl FnOnce()) -> (u64, u64) {
    let child = Command::new("ip")
        .args(["netns", "exec", &from.netns.name])
        .args([
            "ping",
            "-i",
            "0.02",
            "-W",
            "1",
            "-w",
            &secs.to_string(),
            "-q",
            to,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    f();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {text}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// What OVN relies on, read before the disruptions and compared after each one.
struct Identity {
    ids: BTreeMap<String, String>,
    iface_ids: Vec<(String, String)>,
    patch_ports: BTreeMap<String, String>,
}

fn identity(app: &Appliance) -> Identity {
    let ids = root_ids(app)
        .into_iter()
        .filter(|(k, _)| k.starts_with("ovn-") || k == "system-id" || k == "hostname")
        // Sequence numbers and timestamps that OVN itself moves forward.
        .filter(|(k, _)| !k.starts_with("ovn-nb-cfg") && !k.ends_with("-ts"))
        .collect();
    let iface_ids = ["vlp1", "vlp2"]
        .iter()
        .map(|i| {
            let v = app.vsctl_stdout(&["get", "Interface", i, "external_ids:iface-id"]);
            (i.to_string(), v.trim().trim_matches('"').to_string())
        })
        .collect();
    // OVN's patch port on the owned bridge, and the key that tells OVN which localnet port it is.
    let patch_ports = app
        .vsctl_stdout(&["list-ports", "br-phys"])
        .lines()
        .filter(|p| p.starts_with("patch-"))
        .map(|p| {
            let v = app.vsctl_stdout(&["get", "Port", p, "external_ids:ovn-localnet-port"]);
            (p.to_string(), v.trim().trim_matches('"').to_string())
        })
        .collect();
    Identity {
        ids,
        iface_ids,
        patch_ports,
    }
}

fn assert_unchanged(app: &Appliance, before: &Identity, after_what: &str) {
    // OVN may need a moment to put back what it owns; the appliance must not have taken it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = identity(app);
        let same = now.ids == before.ids
            && now.iface_ids == before.iface_ids
            && now.patch_ports == before.patch_ports;
        if same {
            return;
        }
        if Instant::now() > deadline {
            assert_eq!(
                now.ids, before.ids,
                "after {after_what}: Open_vSwitch system-id/hostname/ovn-* keys changed"
            );
            assert_eq!(
                now.iface_ids, before.iface_ids,
                "after {after_what}: iface-id keys changed"
            );
            assert_eq!(
                now.patch_ports, before.patch_ports,
                "after {after_what}: OVN's localnet patch port on br-phys changed"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_ovn_chassis_on_the_appliance_keeps_forwarding_and_its_identity() {
    if !require_real_ovs_and(&["ovn-northd", "ovn-controller", "ovn-nbctl"]) {
        return;
    }
    let mut app = Appliance::new(&config(""));
    let ns = app.netns.name.clone();
    let mut ovn = Ovn {
        dir: app.dir.path().join("ovn"),
        children: Vec::new(),
    };
    std::fs::create_dir_all(&ovn.dir).unwrap();
    // The host behind the localnet port: on the owned bridge, no logical port of its own.
    let phys = Host::new(&ns, "vphys", "10.70.0.3/24");
    phys.tx_off();
    app.start_ready();

    ovn.db(&ns, "nb");
    ovn.db(&ns, "sb");
    let d = ovn.dir.clone();
    ovn.spawn(
        &ns,
        "northd",
        &[],
        &[
            "ovn-northd".into(),
            format!("--ovnnb-db={}", ovn.sock("nb")),
            format!("--ovnsb-db={}", ovn.sock("sb")),
            format!("--unixctl={}", d.join("northd.ctl").display()),
            format!("--log-file={}", d.join("northd.log").display()),
        ],
    );

    // Chassis settings, as an OVN deployment writes them on the Open_vSwitch row.
    let sb = ovn.sock("sb");
    let settings = [
        format!("external_ids:system-id={SYSTEM_ID}"),
        // A chassis hostname of the deployment's choosing (not the machine's): it must stay.
        "external_ids:hostname=ovn-chassis-test".into(),
        format!("external_ids:ovn-remote={sb}"),
        "external_ids:ovn-encap-type=geneve".into(),
        "external_ids:ovn-encap-ip=127.0.0.1".into(),
        "external_ids:ovn-bridge-mappings=physnet:br-phys".into(),
        "external_ids:ovn-bridge-datapath-type=netdev".into(),
    ];
    let mut args = vec!["set", "Open_vSwitch", "."];
    args.extend(settings.iter().map(String::as_str));
    app.vsctl_stdout(&args);

    // ovn-controller finds vswitchd's OpenFlow sockets (br-int.mgmt) through OVS_RUNDIR: the
    // appliance's run_dir, as the README says for any custom run_dir.
    let run_dir = app.run_dir();
    ovn.spawn(
        &ns,
        "ovn-controller",
        &[("OVS_RUNDIR", &run_dir), ("OVN_RUNDIR", &d)],
        &[
            "ovn-controller".into(),
            format!("unix:{}", run_dir.join("db.sock").display()),
            // Its control socket goes to OVN_RUNDIR (this version has no --unixctl).
            format!("--log-file={}", d.join("ovn-controller.log").display()),
        ],
    );

    ovn.nbctl(&["ls-add", "sw0"]);
    for (lp, mac, ip) in [
        ("lp1", "0a:00:00:70:00:01", "10.70.0.1"),
        ("lp2", "0a:00:00:70:00:02", "10.70.0.2"),
    ] {
        ovn.nbctl(&["lsp-add", "sw0", lp]);
        ovn.nbctl(&["lsp-set-addresses", lp, &format!("{mac} {ip}")]);
    }
    ovn.nbctl(&["lsp-add", "sw0", "ln"]);
    ovn.nbctl(&["lsp-set-type", "ln", "localnet"]);
    ovn.nbctl(&["lsp-set-addresses", "ln", "unknown"]);
    ovn.nbctl(&["lsp-set-options", "ln", "network_name=physnet"]);

    wait_for(
        Duration::from_secs(30),
        "ovn-controller to create br-int",
        || {
            ovn.all_running();
            app.vsctl_ok(&["br-exists", "br-int"]).then_some(())
        },
    );
    let dp = app.vsctl_stdout(&["get", "Bridge", "br-int", "datapath_type"]);
    assert_eq!(dp.trim(), "netdev", "br-int must be on the netdev datapath");

    let h1 = Host::new(&ns, "vlp1", "10.70.0.1/24");
    let h2 = Host::new(&ns, "vlp2", "10.70.0.2/24");
    for (h, lp, mac) in [
        (&h1, "lp1", "0a:00:00:70:00:01"),
        (&h2, "lp2", "0a:00:00:70:00:02"),
    ] {
        ns_ok(
            &h.netns.name,
            &["ip", "link", "set", &h.dev, "address", mac],
        );
        h.tx_off();
        app.vsctl_stdout(&[
            "add-port",
            "br-int",
            &h.switch_end,
            "--",
            "set",
            "Interface",
            &h.switch_end,
            &format!("external_ids:iface-id={lp}"),
        ]);
    }
    let up = wait_for(Duration::from_secs(30), "both logical ports up", || {
        let text = ovn.nbctl(&["--bare", "--columns=name,up", "list", "Logical_Switch_Port"]);
        (text.matches("true").count() >= 2).then_some(text)
    });
    eprintln!(
        "logical ports: {}",
        up.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    h1.ping(&h2.addr);
    h1.ping(&phys.addr);

    let before = identity(&app);
    assert_eq!(
        before.ids.get("system-id").map(String::as_str),
        Some(SYSTEM_ID)
    );
    assert!(
        !before.patch_ports.is_empty(),
        "OVN's patch port on br-phys"
    );
    eprintln!(
        "before: {:?} {:?} {:?}",
        before.ids, before.iface_ids, before.patch_ports
    );

    // 1. kill -9 of ovs-vswitchd: the appliance restarts it, OVN reinstalls its flows.
    let vswitchd = app.pid("ovs-vswitchd").expect("vswitchd");
    let (sent, got) = ping_through(&h1, &h2.addr, 10, || {
        kill(vswitchd, nix::sys::signal::Signal::SIGKILL);
        wait_for(Duration::from_secs(20), "a new ovs-vswitchd", || {
            app.pid("ovs-vswitchd").filter(|p| *p != vswitchd)
        });
    });
    eprintln!(
        "kill -9 ovs-vswitchd: {sent} sent, {got} received, gap ~{} ms",
        (sent - got) * 20
    );
    h1.ping(&h2.addr);
    h1.ping(&phys.addr);
    assert_unchanged(&app, &before, "kill -9 of ovs-vswitchd");

    // 2. SIGHUP with a changed config (one more key on the owned bridge).
    let (sent, got) = ping_through(&h1, &h2.addr, 6, || {
        app.write_config(&config(", rev = \"2\""));
        app.signal(nix::sys::signal::Signal::SIGHUP);
        wait_for(Duration::from_secs(20), "the new config applied", || {
            let ids = map_of(&app, &["get", "Bridge", "br-phys", "external_ids"]);
            (ids.get("rev").map(String::as_str) == Some("2")).then_some(())
        });
    });
    eprintln!(
        "SIGHUP with a changed config: {sent} sent, {got} received, gap ~{} ms",
        (sent - got) * 20
    );
    h1.ping(&h2.addr);
    h1.ping(&phys.addr);
    assert_unchanged(&app, &before, "SIGHUP with a changed config");

    // 3. An appliance restart: SIGTERM drains both daemons, then a fresh `run`.
    let (sent, got) = ping_through(&h1, &h2.addr, 20, || {
        app.signal(nix::sys::signal::Signal::SIGTERM);
        let status = app.wait_exit(Duration::from_secs(30));
        assert!(
            status.success(),
            "appliance stop: {status:?}\n{}",
            app.log()
        );
        app.start_ready();
    });
    eprintln!(
        "appliance restart: {sent} sent, {got} received, gap ~{} ms",
        (sent - got) * 20
    );
    h1.ping(&h2.addr);
    h1.ping(&phys.addr);
    assert_unchanged(&app, &before, "an appliance restart");
}

/// Item 7 of issue 12: with a custom run_dir, `status` prints the line that makes OVS's tools
/// find the appliance, and that line works.
#[test]
fn status_prints_the_environment_for_a_custom_run_dir_and_it_works() {
    if !require_real_ovs() {
        return;
    }
    let mut app = Appliance::new("datapath = \"netdev\"\n");
    app.start_ready();
    let out = app.oneshot(&[], "status");
    assert!(out.status.success(), "status: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let expected = format!(
        "export OVS_RUNDIR={} OVS_DBDIR={}",
        app.run_dir().display(),
        app.db_dir().display()
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("export "))
        .unwrap_or_else(|| panic!("no export line in status:\n{text}"));
    assert_eq!(line, expected);
    // Paste the line into a shell, as a user would: ovs-appctl then reaches vswitchd.
    let script = format!("{line}; ovs-appctl --timeout=5 version");
    let out = run(
        Command::new("sh")
            .args(["-c", &script])
            .env_remove("OVS_RUNDIR"),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{script}: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ovs-vswitchd"));
    // Without it the same tool looks in its built-in directory, not the appliance's.
    let out = run(
        Command::new("ovs-appctl")
            .args(["--timeout=2", "version"])
            .env("OVS_RUNDIR", app.dir.path().join("nowhere")),
        Duration::from_secs(10),
    );
    assert!(
        !out.status.success(),
        "a wrong OVS_RUNDIR must not reach vswitchd"
    );
}
