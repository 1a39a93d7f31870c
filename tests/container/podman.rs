//! The same image under Debian's Podman (4.3, rootful, runc): loaded from the engine's
//! `docker save`, run in the tier's network namespace with storage of its own (vfs, under the
//! tier's temp dir, so nothing is left mounted), with the README's Podman flags. Root here lacks
//! CAP_SYS_RESOURCE, so Podman's default ulimits fail: the tier gives it a containers.conf with
//! `default_ulimits = []`, as README says.

use crate::{check, common, Ctx, IMAGE};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// What README's Podman line adds to Docker's flags: NET_RAW, which Podman does not grant by
/// default.
const PODMAN_EXTRA: &[&str] = &["--cap-add", "NET_RAW"];

struct Podman<'a> {
    ctx: &'a Ctx,
    root: PathBuf,
}

impl Podman<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        // nsenter, not `ip netns exec`, which mounts a sysfs of the namespace's own over /sys
        // and so hides /sys/fs/cgroup from runc ("no cgroup mount found in mountinfo").
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.ctx.engine.netns()))
            .args(["--", "podman"])
            .arg("--root")
            .arg(self.root.join("root"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(["--storage-driver", "vfs", "--events-backend", "file"])
            .args(args)
            .env("CONTAINERS_CONF", self.root.join("containers.conf"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        common::run(&mut self.cmd(args), Duration::from_secs(300))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn exit_code(&self, name: &str, timeout: Duration) -> i64 {
        let start = Instant::now();
        loop {
            let state = self.ok(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                name,
            ]);
            if let Some(code) = state.strip_prefix("exited ") {
                return code.parse().unwrap();
            }
            assert!(start.elapsed() < timeout, "{name} still {state}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn all(ctx: &Ctx, failures: &mut Vec<String>) {
    let root = ctx.dir.path().join("podman");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("containers.conf"),
        "[containers]\ndefault_ulimits = []\n",
    )
    .unwrap();
    let podman = Podman { ctx, root };
    let loaded = std::cell::Cell::new(false);
    check(ctx, failures, "podman load of the engine's image", || {
        let tar = podman.root.join("image.tar");
        ctx.engine
            .docker_ok(&["save", "-o", tar.to_str().unwrap(), IMAGE]);
        podman.ok(&["load", "-i", tar.to_str().unwrap()]);
        std::fs::remove_file(&tar).unwrap();
        loaded.set(true);
    });
    if loaded.get() {
        check(
            ctx,
            failures,
            "podman: without NET_ADMIN, exit 77 naming the flag",
            || {
                let name = format!("{}-pm-nocap", ctx.tag);
                podman.ok(&[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "--net",
                    "host",
                    "--device",
                    "/dev/net/tun",
                    IMAGE,
                ]);
                let code = podman.exit_code(&name, Duration::from_secs(60));
                let logs = podman.ok(&["logs", &name]);
                podman.run(&["rm", "-f", &name]);
                assert_eq!(code, 77, "{logs}");
                assert!(logs.contains("--cap-add NET_ADMIN"), "{logs}");
            },
        );
        check(
            ctx,
            failures,
            "podman: README's flags bring the bridge up, healthy, podman stop exits 0",
            || lifecycle(ctx, &podman),
        );
    }
    // Whatever happened: no container left running, nothing left in the storage.
    podman.run(&["rm", "-af", "-t", "0"]);
    podman.run(&["rmi", "-af"]);
}

fn lifecycle(ctx: &Ctx, podman: &Podman) {
    let bridge = format!("{}pb0", ctx.tag);
    let cfg = ctx.config_dir(
        "podman",
        &format!("[[bridges]]\nname = \"{bridge}\"\n  [[bridges.ports]]\n  name = \"{}pp0\"\n  type = \"internal\"\n", ctx.tag),
    );
    let name = format!("{}-pm", ctx.tag);
    let mount = format!("{}:/etc/ovs-appliance:ro", cfg.display());
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend_from_slice(crate::cases::RUN_FLAGS);
    args.extend_from_slice(PODMAN_EXTRA);
    args.extend_from_slice(&["-v", &mount, IMAGE]);
    let began = Instant::now();
    podman.ok(&args);
    ctx.wait_links(
        &[bridge.clone(), format!("{}pp0", ctx.tag)],
        Duration::from_secs(60),
    );
    // No systemd here to run Podman's healthcheck timer: run the image's HEALTHCHECK by hand.
    while !podman.run(&["healthcheck", "run", &name]).status.success() {
        assert!(
            began.elapsed() < Duration::from_secs(90),
            "never healthy: {}",
            podman.ok(&["logs", &name])
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let stop = Instant::now();
    podman.ok(&["stop", "-t", "20", &name]);
    let stopped_in = stop.elapsed();
    let code = podman.exit_code(&name, Duration::from_secs(30));
    let logs = podman.ok(&["logs", &name]);
    podman.run(&["rm", "-f", &name]);
    assert_eq!(code, 0, "{logs}");
    ctx.note(format!(
        "podman: bridge up and healthy in {:.1} s, podman stop in {:.1} s, exit 0",
        (stop - began).as_secs_f64(),
        stopped_in.as_secs_f64()
    ));
    ctx.delete_links(&[bridge]);
}
