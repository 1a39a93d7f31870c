//! The one owner of `waitpid`: every child's exit status, and every orphan, is reaped here.
//!
//! A `waitpid(-1)` reaper and any other waiter (tokio::process, std's `Child::wait`) cannot
//! coexist: whoever calls first steals the status. So children are spawned through `Reaper::spawn`,
//! which hands back a receiver for their status, and nothing else ever waits.

use super::exit::ExitStatus;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;

type Waiters = HashMap<i32, oneshot::Sender<ExitStatus>>;

/// The process-wide reaper: a thread woken by SIGCHLD. There is one per process because there is
/// one `waitpid(-1)` per process.
pub struct Reaper {
    waiters: Mutex<Waiters>,
}

/// A spawned child and the future of its exit status.
pub struct Spawned {
    pub child: Child,
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// What `Reaper::output` returns.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Reaper {
    /// The reaper, started on first use (SIGCHLD handler and thread), before any spawn.
    pub fn get() -> std::io::Result<&'static Reaper> {
        static REAPER: OnceLock<Reaper> = OnceLock::new();
        static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
        let reaper = REAPER.get_or_init(|| Reaper {
            waiters: Mutex::default(),
        });
        STARTED
            .get_or_init(|| {
                let mut signals =
                    signal_hook::iterator::Signals::new([signal_hook::consts::SIGCHLD])
                        .map_err(|e| format!("failed to install the SIGCHLD handler: {e}"))?;
                std::thread::Builder::new()
                    .name("reaper".into())
                    .spawn(move || {
                        // Signals coalesce, so each wake-up drains every exited child.
                        for _ in signals.forever() {
                            reaper.reap_all();
                        }
                    })
                    .map(|_| ())
                    .map_err(|e| format!("failed to start the reaper thread: {e}"))
            })
            .clone()
            .map_err(std::io::Error::other)?;
        // Children that ended before the handler existed sent no SIGCHLD we saw.
        reaper.reap_all();
        Ok(reaper)
    }

    /// Makes `pid` never reached: spawns `cmd` and registers it before the reaper can look.
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<Spawned> {
        let (tx, exit) = oneshot::channel();
        // Held across spawn so the reaper cannot waitpid in between: std's spawn waits for a
        // child whose exec failed, and must find it unreaped.
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn()?;
        waiters.insert(child.id() as i32, tx);
        Ok(Spawned { child, exit })
    }

    /// Runs a short command to its end, collecting its output; killed after `timeout`.
    pub async fn output(&self, cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let Spawned { mut child, exit } = self.spawn(cmd)?;
        let stdout = read_to_string(child.stdout.take());
        let stderr = read_to_string(child.stderr.take());
        let pid = Pid::from_raw(child.id() as i32);
        let status = match tokio::time::timeout(timeout, exit).await {
            Ok(status) => status.map_err(|_| std::io::Error::other("reaper stopped"))?,
            Err(_) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{:?} did not finish within {timeout:?}", cmd.get_program()),
                ));
            }
        };
        Ok(Output {
            status,
            stdout: stdout.await.unwrap_or_default(),
            stderr: stderr.await.unwrap_or_default(),
        })
    }

    fn reap_all(&self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => {
                    let (Some(pid), Some(exit)) = (status.pid(), ExitStatus::from_wait(status))
                    else {
                        continue;
                    };
                    match waiters.remove(&pid.as_raw()) {
                        Some(tx) => {
                            let _ = tx.send(exit);
                        }
                        None => tracing::debug!(pid = pid.as_raw(), %exit, "reaped an orphan"),
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break, // ECHILD: no children left
            }
        }
    }
}

fn read_to_string<R: Read + Send + 'static>(pipe: Option<R>) -> tokio::task::JoinHandle<String> {
    tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn collects_output_and_status() {
        let reaper = Reaper::get().unwrap();
        let out = reaper
            .output(
                Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(out.status, ExitStatus::Code(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[tokio::test]
    async fn reports_signals_and_kills_on_timeout() {
        let reaper = Reaper::get().unwrap();
        let spawned = reaper
            .spawn(Command::new("sh").args(["-c", "kill -9 $$"]))
            .unwrap();
        assert_eq!(spawned.exit.await.unwrap(), ExitStatus::Signal(9));
        let err = reaper
            .output(Command::new("sleep").arg("30"), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_failed_exec_is_an_error_not_a_panic() {
        let reaper = Reaper::get().unwrap();
        let err = reaper
            .output(
                &mut Command::new("/nonexistent/program"),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn orphans_are_reaped_not_left_as_zombies() {
        // As PID 1 orphans are ours; in a test, becoming a subreaper gives the same parenthood.
        nix::sys::prctl::set_child_subreaper(true).unwrap();
        let reaper = Reaper::get().unwrap();
        let out = reaper
            .output(
                Command::new("sh").args(["-c", "sleep 0.2 & echo $!"]),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        let orphan: i32 = out.stdout.trim().parse().unwrap();
        let gone = std::path::PathBuf::from(format!("/proc/{orphan}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while gone.exists() {
            let stat = std::fs::read_to_string(gone.join("stat")).unwrap_or_default();
            assert!(
                std::time::Instant::now() < deadline,
                "orphan {orphan} still there: {stat}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
