//! `cargo bench --bench supervisor`: cold start, restart after `kill -9` of ovs-vswitchd, and the
//! supervisor's memory, for `ovs-appliance run` beside `ovs-ctl start` and a hand-written launch
//! (benches/hand-launch.sh). BENCHMARKS.md says what is measured and how.
//!
//! Needs root, OVS (ovsdb-server, ovs-vswitchd, ovs-ctl), `ip` and `unshare`. Other sessions may
//! run OVS on this machine: every instance here has its own network namespace and temp run/db
//! dirs, and only processes this bench started are killed, by the pids in its own pidfiles,
//! checked against /proc/<pid>/comm. Guards clean up on error, panic and Ctrl-C.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::Signal;
use ovs_appliance::ovsdb::Client;
use serde_json::{json, Value};

/// The binary cargo built for this bench: the `bench` profile inherits `[profile.release]`, so
/// this is target/release/ovs-appliance.
const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");
const HAND_LAUNCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/hand-launch.sh");
const OVS_CTL: &str = "/usr/share/openvswitch/scripts/ovs-ctl";
const VSWITCHD: &str = "ovs-vswitchd";
const OVSDB: &str = "ovsdb-server";
const PORTS: usize = 100;
/// Every poll loop sleeps this long between attempts (tokio's timer makes it 1-2 ms).
const POLL: Duration = Duration::from_millis(1);
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after each restart: longer than the appliance's `restart_window` below, so every kill is
/// a first restart (no backoff), and long enough for vswitchd to re-add the 100 ports.
const SETTLE: Duration = Duration::from_millis(1500);
/// After this long the appliance has run one health check (health_interval is 5 s).
const IDLE: Duration = Duration::from_secs(6);

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("supervisor bench: run it with `cargo bench --bench supervisor`");
        return Ok(());
    }
    preflight()?;
    let runs: usize = match std::env::var("BENCH_RUNS") {
        Ok(n) => n.parse().context("BENCH_RUNS must be a positive integer")?,
        Err(_) => 7,
    };
    ensure!(runs > 0, "BENCH_RUNS must be at least 1");
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let bench = Bench {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        runs,
        stop,
    };
    let machine = machine();
    let created = host_dirs_for_ovs_ctl()?;
    let result = (|| -> Result<Vec<Row>> {
        let mut rows = cold_starts(&bench)?;
        rows.extend(restarts(&bench)?);
        Ok(rows)
    })();
    for dir in created {
        // Only if still empty: another session may have started using it meanwhile.
        let _ = fs::remove_dir(dir);
    }
    print_report(&machine, runs, &result?);
    Ok(())
}

struct Bench {
    rt: tokio::runtime::Runtime,
    runs: usize,
    stop: Arc<AtomicBool>,
}

impl Bench {
    fn interrupted(&self) -> Result<()> {
        ensure!(!self.stop.load(Ordering::Relaxed), "interrupted");
        Ok(())
    }
}

fn preflight() -> Result<()> {
    ensure!(nix::unistd::Uid::effective().is_root(), "needs root");
    for bin in [
        "ovsdb-server",
        VSWITCHD,
        "ovsdb-tool",
        "ovs-vsctl",
        "ip",
        "unshare",
    ] {
        let found = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| Path::new(d).join(bin).is_file());
        ensure!(found, "{bin} not on PATH");
    }
    ensure!(Path::new(OVS_CTL).is_file(), "{OVS_CTL} missing");
    ensure!(Path::new("/dev/net/tun").exists(), "/dev/net/tun missing");
    Ok(())
}

/// ovs-ctl's paths are fixed; it runs in a private mount namespace with our temp dirs bound over
/// them, which needs the mount points to exist on the host. Returns those it created.
fn host_dirs_for_ovs_ctl() -> Result<Vec<&'static str>> {
    let mut created = Vec::new();
    for dir in [
        "/var/run/openvswitch",
        "/var/log/openvswitch",
        "/etc/openvswitch",
    ] {
        if !Path::new(dir).exists() {
            fs::create_dir_all(dir).with_context(|| format!("mkdir {dir}"))?;
            created.push(dir);
        }
    }
    Ok(created)
}

// ---------------------------------------------------------------------------------------------
// 1. Cold start

#[derive(Clone, Copy, Debug, PartialEq)]
enum Launch {
    Appliance,
    OvsCtl,
    Hand,
}

fn cold_starts(b: &Bench) -> Result<Vec<Row>> {
    let all = [Launch::Appliance, Launch::OvsCtl, Launch::Hand];
    // One unrecorded round warms the page cache; then the three alternate, so that load from
    // elsewhere on the machine falls on all of them alike.
    for how in all {
        cold_start(b, how)?;
    }
    let mut took: [Vec<f64>; 3] = Default::default();
    for run in 1..=b.runs {
        for (i, how) in all.into_iter().enumerate() {
            b.interrupted()?;
            let t = cold_start(b, how)?;
            eprintln!("cold start {run}/{}: {how:?} {:.1} ms", b.runs, ms(t));
            took[i].push(ms(t));
        }
    }
    let [appliance, ovs_ctl, hand] = took;
    let to_hand = median(&appliance) / median(&hand);
    let to_ctl = median(&appliance) / median(&ovs_ctl);
    Ok(vec![
        Row::ms("cold start: `ovs-appliance run`", appliance),
        Row::ms("cold start: `ovs-ctl start`", ovs_ctl),
        Row::ms("cold start: hand-written script", hand),
        Row::ratio("cold start ratio appliance / hand-written", to_hand),
        Row::ratio("cold start ratio appliance / ovs-ctl", to_ctl),
    ])
}

/// One cold start on a fresh, empty database: from just before the launcher is spawned until
/// the database answers and vswitchd has connected (see `until_ready`).
fn cold_start(b: &Bench, how: Launch) -> Result<Duration> {
    let mut inst = Instance::new(how != Launch::OvsCtl)?;
    let mut cmd = match how {
        Launch::Appliance => inst.appliance_command("")?,
        Launch::OvsCtl => inst.ovs_ctl_command()?,
        Launch::Hand => inst.hand_command(),
    };
    inst.log_to(&mut cmd, "launcher.log")?;
    let t0 = Instant::now();
    let child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
    match how {
        Launch::Appliance => inst.appliance = Some(child),
        _ => inst.launchers.push(child),
    }
    let ready = b.rt.block_on(until_ready(&inst.db_sock(), &b.stop));
    let took = t0.elapsed();
    ready.with_context(|| format!("{how:?}: {}", inst.log("launcher.log")))?;
    inst.wait_launchers()?;
    Ok(took)
}

/// Ready: an OVSDB echo answers on db.sock AND the Open_vSwitch row's `datapath_types` is not
/// empty, which ovs-vswitchd writes once it has connected (what `ovs-vsctl show` plus a
/// connected vswitchd means), polled every 1-2 ms over one kept connection.
async fn until_ready(sock: &Path, stop: &AtomicBool) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut client: Option<Client> = None;
    loop {
        if client.as_ref().is_none_or(Client::is_closed) {
            client = Client::connect_unix(sock)
                .await
                .ok()
                .map(|c| c.with_timeout(Duration::from_secs(2)));
        }
        if let Some(c) = &client {
            match has_datapath_types(c).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(_) => client = None,
            }
        }
        ensure!(!stop.load(Ordering::Relaxed), "interrupted");
        ensure!(
            Instant::now() < deadline,
            "not ready within {START_TIMEOUT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn has_datapath_types(c: &Client) -> Result<bool> {
    c.echo().await?;
    let select = json!({"op": "select", "table": "Open_vSwitch", "where": [],
                        "columns": ["datapath_types"]});
    let reply = c.transact_raw("Open_vSwitch", vec![select]).await?;
    // A set of one is sent as the bare atom, others as ["set", [...]] (RFC 7047 5.1).
    Ok(match &reply[0]["rows"][0]["datapath_types"] {
        Value::String(_) => true,
        Value::Array(set) => set
            .get(1)
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty()),
        _ => false,
    })
}

// ---------------------------------------------------------------------------------------------
// 2. kill -9 of vswitchd with 100 ports, and 3. the supervisor's memory

/// Only the restart window differs from the defaults: 1 s instead of 5 min, so that every kill
/// below (SETTLE apart) is a first restart, immediate as after a long stable run, and the runs do
/// not exhaust the restart budget (5).
const RESTART_CONFIG: &str = "[supervisor]\nrestart_window = \"1s\"\n";

fn restarts(b: &Bench) -> Result<Vec<Row>> {
    let mut app = Instance::new(true)?;
    let mut cmd = app.appliance_command(RESTART_CONFIG)?;
    app.log_to(&mut cmd, "launcher.log")?;
    let started = Instant::now();
    app.appliance = Some(cmd.spawn()?);
    b.rt.block_on(until_ready(&app.db_sock(), &b.stop))
        .with_context(|| app.log("launcher.log"))?;

    // While the appliance idles, the by-hand instance is set up (in its own namespace).
    let mut hand = Instance::new(true)?;
    let mut cmd = hand.hand_command();
    hand.log_to(&mut cmd, "launcher.log")?;
    hand.launchers.push(cmd.spawn()?);
    hand.wait_launchers()?;

    std::thread::sleep(IDLE.saturating_sub(started.elapsed()));
    let idle_rss = app.appliance_status("VmRSS")?;
    add_ports(&app)?;
    add_ports(&hand)?;
    std::thread::sleep(SETTLE);

    let (mut noticed, mut up, mut by_hand) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=b.runs {
        b.interrupted()?;
        let (n, u) = appliance_restart(b, &app)?;
        std::thread::sleep(SETTLE);
        let h = hand_restart(b, &mut hand)?;
        std::thread::sleep(SETTLE);
        eprintln!(
            "restart {run}/{}: noticed {:.2} ms, appliance up {:.1} ms, by hand up {:.1} ms",
            b.runs,
            ms(n),
            ms(u),
            ms(h)
        );
        noticed.push(ms(n));
        up.push(ms(u));
        by_hand.push(ms(h));
    }
    let rss_after = app.appliance_status("VmRSS")?;
    let hwm = app.appliance_status("VmHWM")?;
    let ratio = median(&up) / median(&by_hand);
    Ok(vec![
        Row::ms("kill -9 vswitchd -> appliance logs the exit", noticed),
        Row::ms(
            "kill -9 vswitchd -> new vswitchd answers `version` (appliance)",
            up,
        ),
        Row::ms(
            "kill -9 vswitchd -> respawned by hand, answers `version`",
            by_hand,
        ),
        Row::ratio("restart ratio appliance / by hand", ratio),
        Row::mib("supervisor VmRSS, idle (both daemons up, 6 s)", idle_rss),
        Row::mib(
            &format!("supervisor VmRSS after {} restarts, 100 ports", b.runs),
            rss_after,
        ),
        Row::mib("supervisor VmHWM (peak RSS) over the whole run", hwm),
    ])
}

/// One batched ovs-vsctl: a netdev bridge with 100 internal ports; it returns once vswitchd has
/// applied it.
fn add_ports(inst: &Instance) -> Result<()> {
    let mut args = vec![
        format!("--db=unix:{}", inst.db_sock().display()),
        "--timeout=60".into(),
    ];
    args.extend(
        [
            "add-br",
            "br0",
            "--",
            "set",
            "bridge",
            "br0",
            "datapath_type=netdev",
        ]
        .map(String::from),
    );
    for i in 0..PORTS {
        let p = format!("p{i}");
        args.extend(["--".into(), "add-port".into(), "br0".into(), p.clone()]);
        args.extend([
            "--".into(),
            "set".into(),
            "interface".into(),
            p,
            "type=internal".into(),
        ]);
    }
    let out = run(
        Command::new("ovs-vsctl").args(&args),
        Duration::from_secs(90),
    )?;
    ensure!(out.status.success(), "ovs-vsctl add-br/add-port: {out:?}");
    Ok(())
}

/// kill -9 of the appliance's vswitchd. Returns (the appliance's "daemon failed; restarting" log
/// timestamp minus the wall clock just before kill(), kill to the new vswitchd answering).
fn appliance_restart(b: &Bench, app: &Instance) -> Result<(Duration, Duration)> {
    let old = live_pid(&app.run_dir(), VSWITCHD).context("appliance's vswitchd not running")?;
    let log = app.path("launcher.log");
    let offset = fs::metadata(&log)?.len();
    let wall = SystemTime::now();
    let t0 = Instant::now();
    signal(old, Signal::SIGKILL)?;
    b.rt.block_on(until_new_vswitchd(&app.run_dir(), old, &b.stop))?;
    let up = t0.elapsed();
    let logged = wait_for(Duration::from_secs(5), || restart_logged(&log, offset))
        .context("no \"daemon failed; restarting\" line for ovs-vswitchd")?;
    let noticed = logged
        .duration_since(wall)
        .context("log timestamp before the kill")?;
    ensure!(
        noticed <= up,
        "log timestamp {noticed:?} after the restart ({up:?})"
    );
    Ok((noticed, up))
}

/// kill -9 of the by-hand vswitchd and an immediate respawn by the bench, as a person or a
/// script would; returns kill to the new vswitchd answering.
fn hand_restart(b: &Bench, inst: &mut Instance) -> Result<Duration> {
    let old = live_pid(&inst.run_dir(), VSWITCHD).context("by-hand vswitchd not running")?;
    let netns = File::open(inst.netns_path()?)?;
    let mut cmd = inst.vswitchd_by_hand()?;
    // A thread of our own enters the namespace and takes nice -10 (both are per thread on Linux,
    // and the child inherits them), so the respawn is one spawn, like the appliance's.
    let (t0, child) = std::thread::scope(|s| {
        s.spawn(|| -> Result<(Instant, Child)> {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            // SAFETY: setpriority takes no pointers; with who = 0 it sets this thread's nice.
            let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) };
            ensure!(rc == 0, "setpriority: {}", std::io::Error::last_os_error());
            let t0 = Instant::now();
            signal(old, Signal::SIGKILL)?;
            Ok((t0, cmd.spawn()?))
        })
        .join()
        .expect("respawn thread panicked")
    })?;
    inst.launchers.push(child);
    let new =
        b.rt.block_on(until_new_vswitchd(&inst.run_dir(), old, &b.stop));
    let took = t0.elapsed();
    let new = new?;
    let ns = fs::metadata(inst.netns_path()?)?.ino();
    let its = fs::metadata(format!("/proc/{new}/ns/net"))?.ino();
    ensure!(
        ns == its,
        "respawned vswitchd {new} is not in {}",
        inst.ns()?
    );
    inst.wait_launchers()?;
    Ok(took)
}

/// Polls the pidfile for a pid other than `old`, then that daemon's control socket until
/// `version` answers; returns the new pid.
async fn until_new_vswitchd(run_dir: &Path, old: i32, stop: &AtomicBool) -> Result<i32> {
    let deadline = Instant::now() + START_TIMEOUT;
    let pidfile = run_dir.join(format!("{VSWITCHD}.pid"));
    loop {
        if let Some(pid) = read_pid(&pidfile).filter(|p| *p != old) {
            let ctl = run_dir.join(format!("{VSWITCHD}.{pid}.ctl"));
            let call = ovs_appliance::unixctl::call(&ctl, "version", &[]);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), call).await {
                return Ok(pid);
            }
        }
        ensure!(!stop.load(Ordering::Relaxed), "interrupted");
        ensure!(
            Instant::now() < deadline,
            "vswitchd not back within {START_TIMEOUT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The timestamp of the first "daemon failed; restarting" line for ovs-vswitchd after `offset`.
fn restart_logged(log: &Path, offset: u64) -> Option<SystemTime> {
    let mut f = File::open(log).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let v: Value = serde_json::from_str(&line).ok()?;
            (v["message"] == "daemon failed; restarting" && v["daemon"] == VSWITCHD)
                .then(|| parse_utc(v["timestamp"].as_str()?))
                .flatten()
        })
}

/// tracing-subscriber's JSON timestamp, `2026-11-27T18:36:56.710276Z` (UTC), as a SystemTime.
fn parse_utc(ts: &str) -> Option<SystemTime> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let num = |s: &str| s.parse::<i64>().ok();
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':');
    let (h, min, s) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3_600 + min * 60 + s;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms").
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------------------------
// Instances: temp dirs, a namespace, the processes started, all cleaned up in Drop.

/// One OVS instance: temp run/db dirs, its own network namespace (none for ovs-ctl, which makes
/// an anonymous one), and what was started for it. Drop stops the appliance (SIGTERM, then
/// SIGKILL), kills leftover launchers, then the daemons its pidfiles name, then the namespace.
struct Instance {
    dir: tempfile::TempDir,
    appliance: Option<Child>,
    launchers: Vec<Child>,
    netns: Option<Netns>,
}

impl Instance {
    fn new(with_netns: bool) -> Result<Instance> {
        let dir = tempfile::Builder::new().prefix("ovsa-bench-").tempdir()?;
        for sub in ["run", "db", "etc", "log"] {
            fs::create_dir(dir.path().join(sub))?;
        }
        let netns = if with_netns {
            Some(Netns::new()?)
        } else {
            None
        };
        Ok(Instance {
            dir,
            appliance: None,
            launchers: Vec::new(),
            netns,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn run_dir(&self) -> PathBuf {
        self.path("run")
    }
    fn db_sock(&self) -> PathBuf {
        self.path("run/db.sock")
    }
    fn ns(&self) -> Result<&str> {
        Ok(&self.netns.as_ref().context("instance has no netns")?.name)
    }
    fn netns_path(&self) -> Result<PathBuf> {
        Ok(Path::new("/run/netns").join(self.ns()?))
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn log_to(&self, cmd: &mut Command, name: &str) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(name))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(())
    }

    /// `ovs-appliance run` in the namespace; the config sets the paths, the netdev datapath and
    /// `extra` (TOML), and nothing else.
    fn appliance_command(&self, extra: &str) -> Result<Command> {
        let config = format!(
            "[ovs]\nrun_dir = \"{}\"\ndb_dir = \"{}\"\ndatapath = \"netdev\"\n{extra}",
            self.run_dir().display(),
            self.path("db").display()
        );
        fs::write(self.path("config.toml"), config)?;
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            self.ns()?,
            BIN,
            "--log-format",
            "json",
            "run",
        ])
        .arg("--config")
        .arg(self.path("config.toml"));
        Ok(cmd)
    }

    /// `ovs-ctl start` in a mount and network namespace of its own, our dirs bound over its
    /// fixed paths; the namespaces die with the daemons.
    fn ovs_ctl_command(&self) -> Result<Command> {
        let d = self.dir.path().display();
        let script = format!(
            "mount --bind {d}/run /var/run/openvswitch && mount --bind {d}/etc /etc/openvswitch \
             && mount --bind {d}/log /var/log/openvswitch && exec {OVS_CTL} start --system-id=random"
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "-n", "--propagation", "private", "sh", "-c", &script]);
        Ok(cmd)
    }

    fn hand_command(&self) -> Command {
        let mut cmd = Command::new("ip");
        let ns = self.ns().expect("hand-launched instances have a netns");
        cmd.args(["netns", "exec", ns, "bash", HAND_LAUNCH])
            .arg(self.run_dir())
            .arg(self.path("db"));
        cmd
    }

    /// The respawn by hand: the vswitchd line of hand-launch.sh, spawned by the bench itself.
    fn vswitchd_by_hand(&self) -> Result<Command> {
        let run = self.run_dir();
        let mut cmd = Command::new(VSWITCHD);
        cmd.arg(format!("unix:{}", self.db_sock().display()))
            .arg("--mlockall")
            .arg(format!("--pidfile={}/{VSWITCHD}.pid", run.display()))
            .args(["--detach", "--no-chdir"])
            .arg(format!("--log-file={}/{VSWITCHD}.log", run.display()))
            .env("OVS_RUNDIR", &run)
            .env("OVS_DBDIR", self.path("db"))
            .env("OVS_LOGDIR", &run);
        self.log_to(&mut cmd, "respawn.log")?;
        Ok(cmd)
    }

    /// Waits for every launcher (script, ovs-ctl, a detaching daemon's parent) to exit, and
    /// checks each succeeded.
    fn wait_launchers(&mut self) -> Result<()> {
        for mut child in self.launchers.drain(..) {
            let status = wait_for(START_TIMEOUT, || child.try_wait().ok().flatten())
                .context("launcher did not exit")?;
            ensure!(status.success(), "launcher failed: {status}");
        }
        Ok(())
    }

    /// A line of /proc/<appliance>/status in KiB (VmRSS, VmHWM).
    fn appliance_status(&self, key: &str) -> Result<u64> {
        let pid = self.appliance.as_ref().context("no appliance")?.id();
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        ensure!(
            comm(pid as i32).as_deref() == Some("ovs-appliance"),
            "pid {pid} is not ovs-appliance"
        );
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
            .with_context(|| format!("{key} not in /proc/{pid}/status"))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut app) = self.appliance.take() {
            // The orderly stop (vswitchd `exit`, then ovsdb-server) is what a container gets.
            let _ = signal(app.id() as i32, Signal::SIGTERM);
            if wait_for(Duration::from_secs(15), || app.try_wait().ok().flatten()).is_none() {
                let _ = app.kill();
                let _ = app.wait();
            }
        }
        for mut child in self.launchers.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for daemon in [VSWITCHD, OVSDB] {
            kill_daemon(&self.run_dir(), daemon);
        }
    }
}

/// SIGKILL to the daemon our pidfile names, if /proc says it is that program, and first to its
/// parent when that is an ovs-ctl `--monitor` process (which would restart it).
fn kill_daemon(run_dir: &Path, daemon: &str) {
    let Some(pid) = live_pid(run_dir, daemon) else {
        return;
    };
    if let Some(ppid) = stat(pid).map(|s| s.1) {
        if comm(ppid).as_deref() == Some("monitor") {
            let _ = signal(ppid, Signal::SIGKILL);
        }
    }
    let _ = signal(pid, Signal::SIGKILL);
    let gone = || (!matches!(stat(pid), Some((state, _)) if state != 'Z')).then_some(());
    if wait_for(Duration::from_secs(5), gone).is_none() {
        eprintln!("warning: {daemon} {pid} still alive after SIGKILL");
    }
}

/// A network namespace `ovsa-bench-<our pid>-<n>`, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Result<Netns> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("ovsa-bench-{}-{n}", std::process::id());
        let out = run(
            Command::new("ip").args(["netns", "add", &name]),
            Duration::from_secs(10),
        )?;
        ensure!(out.status.success(), "ip netns add {name}: {out:?}");
        Ok(Netns { name })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let del = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !del.is_ok_and(|o| o.status.success()) {
            eprintln!("warning: ip netns del {} failed", self.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

fn signal(pid: i32, sig: Signal) -> Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
        .with_context(|| format!("kill -{sig} {pid}"))
}

fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
}

/// (state, ppid) from /proc/<pid>/stat.
fn stat(pid: i32) -> Option<(char, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let mut fields = text.get(text.rfind(')')? + 2..)?.split(' ');
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

fn read_pid(pidfile: &Path) -> Option<i32> {
    fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// The pid in `<run_dir>/<daemon>.pid` when that process is alive and is `daemon`.
fn live_pid(run_dir: &Path, daemon: &str) -> Option<i32> {
    let pid = read_pid(&run_dir.join(format!("{daemon}.pid")))?;
    let alive = matches!(stat(pid), Some((state, _)) if state != 'Z');
    (alive && comm(pid).as_deref() == Some(daemon)).then_some(pid)
}

/// Runs a command to its end, killed after `timeout`.
fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))?;
    if wait_for(timeout, || child.try_wait().ok().flatten()).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{cmd:?} did not finish within {timeout:?}");
    }
    Ok(child.wait_with_output()?)
}

/// Polls `f` every 5 ms until it returns Some, or None after `timeout`. Not for timed paths.
fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------
// Report

enum Figure {
    Ms(Vec<f64>),
    Ratio(f64),
    Mib(u64),
}

struct Row {
    label: String,
    value: Figure,
}

impl Row {
    fn ms(label: &str, v: Vec<f64>) -> Row {
        Row {
            label: label.into(),
            value: Figure::Ms(v),
        }
    }
    fn ratio(label: &str, r: f64) -> Row {
        Row {
            label: label.into(),
            value: Figure::Ratio(r),
        }
    }
    fn mib(label: &str, kib: u64) -> Row {
        Row {
            label: label.into(),
            value: Figure::Mib(kib),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

struct Machine {
    cores: usize,
    kernel: String,
    debian: String,
    ovs: String,
    load: String,
}

fn machine() -> Machine {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default().trim().to_string();
    let ovs = Command::new(VSWITCHD)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: read("/proc/sys/kernel/osrelease"),
        debian: read("/etc/debian_version"),
        ovs,
        load: read("/proc/loadavg"),
    }
}

fn print_report(m: &Machine, runs: usize, rows: &[Row]) {
    let env = std::env::var("BENCH_RUNS")
        .map(|n| format!("BENCH_RUNS={n} "))
        .unwrap_or_default();
    println!("\n## ovs-appliance supervisor bench\n");
    println!("- command: `{env}cargo bench --bench supervisor` ({runs} runs each)");
    println!("- binary: {BIN}");
    println!(
        "- machine: {} cores (nproc), kernel {}, Debian {}",
        m.cores, m.kernel, m.debian
    );
    println!("- OVS: {}", m.ovs);
    println!(
        "- load average before / after: {} / {}\n",
        m.load,
        read_load()
    );
    println!("| measure | median | min | max | n |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for row in rows {
        match &row.value {
            Figure::Ms(v) => {
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                println!(
                    "| {} | {:.1} ms | {min:.1} ms | {max:.1} ms | {} |",
                    row.label,
                    median(v),
                    v.len()
                );
            }
            Figure::Ratio(r) => println!("| {} | {r:.2}x | | | |", row.label),
            Figure::Mib(kib) => {
                println!(
                    "| {} | {:.1} MiB | | | 1 |",
                    row.label,
                    *kib as f64 / 1024.0
                )
            }
        }
    }
    print_targets(rows);
}

fn read_load() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn print_targets(rows: &[Row]) {
    let find = |label: &str| {
        rows.iter()
            .find(|r| r.label.starts_with(label))
            .map(|r| &r.value)
    };
    let value = |label: &str| match find(label) {
        Some(Figure::Ms(v)) => median(v),
        Some(Figure::Ratio(r)) => *r,
        Some(Figure::Mib(kib)) => *kib as f64 / 1024.0,
        None => f64::NAN,
    };
    let cold = value("cold start ratio appliance / hand");
    let noticed = value("kill -9 vswitchd -> appliance logs");
    let restart = value("restart ratio");
    let rss = value("supervisor VmRSS after");
    let peak = value("supervisor VmHWM");
    let checks = [
        (
            "cold start: appliance no slower than hand-written",
            format!("{cold:.2}x"),
            cold <= 1.0,
        ),
        (
            "exit noticed in < 50 ms (median)",
            format!("{noticed:.2} ms"),
            noticed < 50.0,
        ),
        (
            "restart within 1.1x of by hand (medians)",
            format!("{restart:.2}x"),
            restart <= 1.1,
        ),
        (
            "supervisor RSS after the restarts <= 20 MiB",
            format!("{rss:.1} MiB"),
            rss <= 20.0,
        ),
        (
            "supervisor peak RSS <= 20 MiB",
            format!("{peak:.1} MiB"),
            peak <= 20.0,
        ),
    ];
    println!("\n| target | value | met |");
    println!("| --- | ---: | --- |");
    for (what, value, met) in checks {
        println!(
            "| {what} | {value} | {} |",
            if met { "yes" } else { "**no**" }
        );
    }
}
