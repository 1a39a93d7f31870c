//! A Docker engine of the test's own: Debian's dockerd with its own data-root, exec-root, pidfile
//! and unix socket, no bridge and no iptables, started in a network namespace the test made (so
//! `--net host` containers get that namespace, not the machine's) and in a mount namespace of its
//! own with a private /run (so nothing it mounts or creates under /run reaches the host). It is
//! stopped by its pid; anything left in its namespaces is killed by pid, never by name.

use crate::common::run;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's docker.io client, which matches its engine (another docker client earlier on PATH
/// may lack the BuildKit support images/build relies on).
pub fn docker_bin() -> &'static str {
    if Path::new("/usr/bin/docker").is_file() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

pub struct Engine {
    pub dir: PathBuf,
    netns: Option<String>,
    dockerd: Option<Child>,
    /// Inodes of the engine's mount namespace and (when it has one of ours) network namespace.
    mnt_ns: u64,
    net_ns: Option<u64>,
}

impl Engine {
    /// Starts dockerd with its state under `dir` (kept across engines on the same dir), inside
    /// the named network namespace or, with None, the current one.
    pub fn start(dir: &Path, netns: Option<&str>) -> Engine {
        Engine::start_with_plugins(dir, netns, None)
    }

    /// As [`Engine::start`], with `plugins` (a directory of the test's) bind-mounted on the
    /// engine's /run/docker/plugins, where dockerd looks for plugin sockets.
    pub fn start_with_plugins(dir: &Path, netns: Option<&str>, plugins: Option<&Path>) -> Engine {
        fs::create_dir_all(dir).unwrap();
        // The trust key would otherwise go to /etc/docker/key.json.
        let key = dir.join("key.json");
        let config = format!("{{\"deprecated-key-path\": \"{}\"}}\n", key.display());
        fs::write(dir.join("daemon.json"), config).unwrap();
        fs::write(dir.join("start.sh"), START_SCRIPT).unwrap();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("dockerd.log"))
            .unwrap();
        let mut cmd = Command::new("nsenter");
        if let Some(ns) = netns {
            cmd.arg(format!("--net=/run/netns/{ns}"));
        }
        cmd.args(["--", "unshare", "--mount", "--propagation", "slave", "--"])
            .args(["sh", "-eu"])
            .arg(dir.join("start.sh"))
            .arg(dir)
            .arg(plugins.map(|p| p.display().to_string()).unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("start dockerd");
        let pid = child.id();
        let mut engine = Engine {
            dir: dir.to_path_buf(),
            netns: netns.map(String::from),
            dockerd: Some(child),
            mnt_ns: 0,
            net_ns: netns.map(|ns| fs::metadata(format!("/run/netns/{ns}")).unwrap().ino()),
        };
        engine.wait_ready(pid);
        engine
    }

    fn wait_ready(&mut self, pid: u32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.dockerd.as_mut().unwrap().try_wait().unwrap() {
                panic!("dockerd exited ({status}):\n{}", self.log());
            }
            if self.mnt_ns == 0 {
                self.mnt_ns = engine_mnt_ns(pid as i32);
            }
            let out = self.docker(&["version", "--format", "{{.Server.Version}}"]);
            if out.status.success() {
                // Read before dockerd had exec'd (the client can take longer to answer than
                // dockerd to start, on a loaded machine): it is dockerd now.
                if self.mnt_ns == 0 {
                    self.mnt_ns = engine_mnt_ns(pid as i32);
                }
                assert_ne!(
                    self.mnt_ns, 0,
                    "dockerd is not in a mount namespace of its own"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn netns(&self) -> &str {
        self.netns
            .as_deref()
            .expect("an engine in a namespace of ours")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Environment every client of this engine gets (docker, docker-compose, images/build).
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.join("client"))
            .env("DOCKER", docker_bin())
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1");
    }

    pub fn docker_cmd(&self) -> Command {
        let mut cmd = Command::new(docker_bin());
        self.env(&mut cmd);
        cmd
    }

    /// `docker ARGS` to its end, within two minutes.
    pub fn docker(&self, args: &[&str]) -> Output {
        run(self.docker_cmd().args(args), Duration::from_secs(120))
    }

    /// `docker ARGS`, stdout trimmed; panics on failure.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Removes every container, then stops dockerd by its pid (it stops its containerd), then
    /// kills by pid whatever is still in the engine's namespaces.
    pub fn stop(&mut self) {
        let Some(mut child) = self.dockerd.take() else {
            return;
        };
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", "-v", id]);
        }
        terminate(&mut child, Duration::from_secs(30));
        self.kill_leftovers();
    }

    /// Stops dockerd by its pid as a host shutdown would, leaving its containers' records
    /// (and their restart policies) for the next engine on the same dir; kills only what is
    /// left in its mount namespace (the network namespace may hold the test's own processes).
    pub fn stop_daemon(&mut self) {
        let Some(mut child) = self.dockerd.take() else {
            return;
        };
        terminate(&mut child, Duration::from_secs(60));
        let net_ns = self.net_ns.take();
        self.kill_leftovers();
        self.net_ns = net_ns;
    }

    fn kill_leftovers(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<i32> = crate::common::processes()
                .iter()
                .map(|p| p.pid)
                .filter(|&pid| pid != std::process::id() as i32)
                .filter(|&pid| {
                    (self.mnt_ns != 0 && ns_inode(pid, "mnt") == Some(self.mnt_ns))
                        || (self.net_ns.is_some() && ns_inode(pid, "net") == self.net_ns)
                })
                .collect();
            if left.is_empty() || Instant::now() > deadline {
                return;
            }
            for pid in left {
                crate::common::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The mount namespace dockerd runs in once `unshare` has made it: 0 until then. Never the
/// test's own (before the exec chain reaches dockerd, the pid is still in the host's).
fn engine_mnt_ns(pid: i32) -> u64 {
    let is_dockerd =
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "dockerd");
    match (
        is_dockerd,
        ns_inode(pid, "mnt"),
        ns_inode(std::process::id() as i32, "mnt"),
    ) {
        (true, Some(engine), Some(own)) if engine != own => engine,
        _ => 0,
    }
}

/// SIGTERM to dockerd by its pid, then up to `grace` for it to exit, then SIGKILL.
fn terminate(child: &mut Child, grace: Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ns_inode(pid: i32, kind: &str) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

/// Runs in the engine's fresh mount namespace: a private /run (dockerd, containerd and runc
/// keep sockets and state there), the resolver file carried over for builds, then dockerd.
/// `$1` is the engine's directory, `$2` (may be empty) a directory to show as
/// /run/docker/plugins.
const START_SCRIPT: &str = r#"
dir=$1
plugins=${2:-}
resolv=$(readlink -f /etc/resolv.conf)
cp "$resolv" "$dir/resolv.conf"
mount -t tmpfs -o mode=0755 ovsa-engine-run /run
if [ -n "$plugins" ]; then
  mkdir -p /run/docker/plugins
  mount --bind "$plugins" /run/docker/plugins
fi
case "$resolv" in
  /run/*) mkdir -p "$(dirname "$resolv")"; cp "$dir/resolv.conf" "$resolv" ;;
esac
exec dockerd \
  --config-file "$dir/daemon.json" \
  --data-root "$dir/data" \
  --exec-root "$dir/exec" \
  --pidfile "$dir/dockerd.pid" \
  -H "unix://$dir/docker.sock" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  --userland-proxy=false --shutdown-timeout 5 --log-level warn
"#;

impl Engine {
    /// Imports a root holding the host's busybox and the applets tests use (sh, sleep, ping,
    /// ip, cat, ls) as image `tag`: a client container with no registry.
    pub fn import_busybox(&self, dir: &Path, tag: &str) {
        let root = dir.join("busybox-root");
        fs::create_dir_all(root.join("bin")).unwrap();
        let busybox = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .map(|d| Path::new(d).join("busybox"))
            .find(|p| p.is_file())
            .expect("busybox on PATH");
        fs::copy(&busybox, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "ping", "ip", "cat", "ls"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = dir.join("busybox.tar");
        let out = run(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "tar: {out:?}");
        self.docker_ok(&[
            "import",
            "-c",
            "ENV PATH=/bin",
            &tar.display().to_string(),
            tag,
        ]);
    }
}
