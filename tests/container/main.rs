//! Tier 3: the image under a real Docker engine. Builds `ovs-appliance:dev` with images/build
//! (a debootstrapped base, cached in /var/cache/ovs-appliance), then runs it under an engine of
//! the test's own whose "host" network is a namespace the test made, and checks what the README
//! promises: exit 77 without NET_ADMIN, bridges programmed and visible from the host, `docker
//! exec ovs-vsctl show`, healthy, a clean and fast `docker stop`, a database volume that outlives
//! its container, the netdev fallback and exit 69 for `datapath = "system"`, and the compose
//! stack up and down by compose v1 and by compose v2; then the same image under Podman. Then measures `docker run` to a 10-port bridge, and TCP through the
//! containerized OVS against OVS started by the appliance on the host.
//!
//! Every check runs and is reported (target/container-tier.txt) even when an earlier one failed.

#[path = "../common/mod.rs"]
mod common;
#[path = "../deploy/mod.rs"]
mod deploy;

mod cases;
mod driver;
mod engine;
mod measure;
mod podman;

use engine::Engine;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "ovs-appliance:dev";

/// What every case shares: the engine in its namespace, a temp dir, a short unique tag for
/// device and container names, and the report.
pub struct Ctx {
    pub engine: Engine,
    pub netns: common::Netns,
    pub dir: tempfile::TempDir,
    pub tag: String,
    report: Mutex<String>,
}

impl Ctx {
    pub fn note(&self, line: impl AsRef<str>) {
        let line = line.as_ref();
        eprintln!("container-tier: {line}");
        let _ = writeln!(self.report.lock().unwrap(), "{line}");
    }

    /// A config directory holding `config.toml` with `text`, for `-v DIR:/etc/ovs-appliance:ro`.
    pub fn config_dir(&self, name: &str, text: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), text).unwrap();
        dir
    }

    /// Link names in the engine's namespace (what the host sees).
    pub fn links(&self) -> Vec<String> {
        let out = common::run(
            Command::new("ip").args(["-n", self.engine.netns(), "-j", "link", "show"]),
            Duration::from_secs(10),
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        json.as_array()
            .map(|links| {
                links
                    .iter()
                    .filter_map(|l| l["ifname"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until every name in `want` is a link in the engine's namespace; returns how long.
    pub fn wait_links(&self, want: &[String], timeout: Duration) -> Duration {
        let start = Instant::now();
        common::wait_for(timeout, &format!("links {want:?}"), || {
            let have = self.links();
            want.iter().all(|w| have.contains(w)).then_some(())
        });
        start.elapsed()
    }

    /// Deletes these links from the engine's namespace (netdev taps outlive ovs-vswitchd).
    pub fn delete_links(&self, names: &[String]) {
        let have = self.links();
        for name in names.iter().filter(|n| have.contains(n)) {
            let _ = common::run(
                Command::new("ip").args(["-n", self.engine.netns(), "link", "del", name]),
                Duration::from_secs(10),
            );
        }
    }

    /// Waits for a container to exit; returns its exit code.
    pub fn wait_exit(&self, name: &str, timeout: Duration) -> i64 {
        common::wait_for(timeout, &format!("{name} to exit"), || {
            let state = self.engine.docker_ok(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                name,
            ]);
            let (status, code) = state.split_once(' ')?;
            (status == "exited").then(|| code.parse().unwrap())
        })
    }

    pub fn logs(&self, name: &str) -> String {
        let out = self.engine.docker(&["logs", name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Runs one check, catching its panic: the name and the outcome go to the report.
pub fn check(ctx: &Ctx, failures: &mut Vec<String>, name: &str, f: impl FnOnce()) {
    let start = Instant::now();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(()) => ctx.note(format!(
            "ok     {name} ({:.1} s)",
            start.elapsed().as_secs_f64()
        )),
        Err(e) => {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            ctx.note(format!("FAILED {name}: {why}"));
            failures.push(name.to_string());
        }
    }
}

fn prerequisites() -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("not root".to_string());
    }
    for bin in [
        "dockerd",
        "containerd",
        "runc",
        "docker-compose",
        "podman",
        "nsenter",
        "unshare",
        "cargo",
    ] {
        if !deploy::on_path(bin) {
            missing.push(format!("{bin} not on PATH (scripts/install-deps)"));
        }
    }
    let cached = Path::new("/var/cache/ovs-appliance/debian-trixie-minbase.tar").is_file();
    if !cached && !deploy::on_path("debootstrap") {
        missing.push("debootstrap not on PATH and no cached base".into());
    }
    deploy::require(&missing) && common::require_real_ovs()
}

/// images/build against an engine in the machine's own network namespace (the build's
/// apt-get needs the network); the image stays in the engine's data-root for phase two.
fn build_image(ctx_dir: &Path, report: &mut String) {
    let mut engine = Engine::start(&ctx_dir.join("engine"), None);
    let start = Instant::now();
    let mut cmd = Command::new(deploy::repo().join("images/build"));
    cmd.arg("--no-pull");
    engine.env(&mut cmd);
    // images/build with the client a user has first on PATH (here a static Docker CLI without
    // the buildx plugin), not the engine's own: it must build with any client.
    cmd.env_remove("DOCKER");
    let out = common::run(&mut cmd, Duration::from_secs(45 * 60));
    assert!(
        out.status.success(),
        "images/build failed:\n{}\n--- dockerd ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        engine.log()
    );
    let size: u64 = engine
        .docker_ok(&["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .parse()
        .unwrap();
    let _ = writeln!(
        report,
        "images/build: {:.0} s (cargo build --release included); {IMAGE} is {:.1} MB ({size} bytes)",
        start.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    assert!(size <= 150_000_000, "{IMAGE} is {size} bytes, over 150 MB");
    engine.stop();
}

#[test]
fn container_tier() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("ovsa-ct-")
        .tempdir()
        .unwrap();
    let mut report = String::new();
    build_image(dir.path(), &mut report);
    let netns = common::Netns::new();
    common::run(
        Command::new("ip").args(["-n", &netns.name, "link", "set", "lo", "up"]),
        Duration::from_secs(10),
    );
    let engine = Engine::start(&dir.path().join("engine"), Some(&netns.name));
    let ctx = Ctx {
        engine,
        netns,
        tag: format!("oc{}", std::process::id() % 10000),
        dir,
        report: Mutex::new(report),
    };
    let mut failures = Vec::new();
    cases::all(&ctx, &mut failures);
    driver::all(&ctx, &mut failures);
    podman::all(&ctx, &mut failures);
    measure::all(&ctx, &mut failures);
    let text = ctx.report.lock().unwrap().clone();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/container-tier.txt");
    let _ = std::fs::write(&path, &text);
    eprintln!("--- container tier ({}) ---\n{text}", path.display());
    assert!(failures.is_empty(), "failed: {failures:?}\n{text}");
}
