//! The corpus in tests/bad-configs/: one file per validation rule, its first line
//! `# expect: <text the error must contain>`. Each is refused by `validate` with exit 65 and by
//! `run` before anything is created (run under a temp dir: its run_dir and db_dir stay absent).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ovs-appliance");

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn expected(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: first line is not `# expect: ...`", file.display()))
        .to_string()
}

/// Runs the binary, killed (by its own pid) after `limit`; a config that was refused exits long
/// before that.
fn run(args: &[&str], cwd: &Path, limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("OVS_APPLIANCE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_corpus_has_one_file_per_rule() {
    assert!(corpus().len() >= 40, "only {} files", corpus().len());
}

#[test]
fn validate_refuses_each_with_exit_65_naming_the_field() {
    let mut wrong = Vec::new();
    for file in corpus() {
        let out = run(
            &["validate", "--config", file.to_str().unwrap()],
            Path::new("/"),
            Duration::from_secs(10),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = expected(&file);
        if out.status.code() != Some(65) || !stderr.contains(&want) {
            wrong.push(format!(
                "{}: exit {:?}, wanted 65 and {want:?} in: {stderr}",
                file.display(),
                out.status.code()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn run_refuses_each_before_creating_anything() {
    let mut wrong = Vec::new();
    for file in corpus() {
        let tmp = std::env::temp_dir().join(format!(
            "bad-config-run-{}-{}",
            std::process::id(),
            file.file_stem().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&tmp).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        // Point the state dirs into the temp dir, so even a config that were accepted could
        // not touch the host's: a new [ovs] table at the end, or keys under the existing one.
        let dirs = format!(
            "run_dir = \"{0}/run\"\ndb_dir = \"{0}/db\"\n",
            tmp.display()
        );
        let text = if text.contains("run_dir") || text.contains("db_dir") {
            text // relative on purpose: they resolve inside `tmp`, the working directory
        } else if text.contains("[ovs]\n") {
            text.replacen("[ovs]\n", &format!("[ovs]\n{dirs}"), 1)
        } else {
            format!("{text}\n[ovs]\n{dirs}")
        };
        let config = tmp.join("config.toml");
        std::fs::write(&config, text).unwrap();
        let out = run(
            &["run", "--config", config.to_str().unwrap()],
            &tmp,
            Duration::from_secs(10),
        );
        let mut left: Vec<String> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "config.toml")
            .collect();
        left.sort();
        if out.status.code() != Some(65) || !left.is_empty() {
            wrong.push(format!(
                "{}: exit {:?}, created {left:?}: {}",
                file.display(),
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn validate_refuses_a_fifo_and_a_device_at_once() {
    let tmp = std::env::temp_dir().join(format!("bad-config-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let fifo = tmp.join("config.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    for (path, what) in [
        (fifo.as_path(), "a FIFO"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        let start = Instant::now();
        let out = run(
            &["validate", "--config", path.to_str().unwrap()],
            &tmp,
            Duration::from_secs(10),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{stderr}");
        assert!(stderr.contains(what), "{stderr}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Not a bad config, but the same promise: with no db.sock at the run_dir, `plan`, `status`
/// and `apply` say at once that nothing listens there (exit 69), not after a 5 s timeout.
#[test]
fn one_shot_commands_without_a_db_socket_fail_at_once() {
    let tmp = std::env::temp_dir().join(format!("no-db-sock-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let config = tmp.join("config.toml");
    std::fs::write(&config, format!("[ovs]\nrun_dir = \"{}\"\n", tmp.display())).unwrap();
    for cmd in ["plan", "status", "apply"] {
        let start = Instant::now();
        let out = run(
            &[cmd, "--config", config.to_str().unwrap()],
            &tmp,
            Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{cmd}: {stderr}");
        assert!(stderr.contains("nothing listens on"), "{cmd}: {stderr}");
        assert!(stderr.contains("[ovs].run_dir"), "{cmd}: {stderr}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{cmd} took {:?}",
            start.elapsed()
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}
