//! Is a daemon answering? One check each, without a subprocess: an OVSDB echo on db.sock for
//! ovsdb-server, a `version` JSON-RPC call on the control socket for ovs-vswitchd.

use super::daemon::{Daemon, Layout};
use crate::config::HumanDuration;
use std::time::{Duration, Instant};

/// One check of `daemon` (running as `pid`), failing after `timeout`. A stopped (SIGSTOP) or hung
/// daemon still accepts connections in the kernel but never answers: the timeout catches it.
pub async fn check(
    daemon: Daemon,
    pid: u32,
    layout: &Layout,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        match daemon {
            Daemon::OvsdbServer => {
                let client = crate::ovsdb::Client::connect_unix(&layout.db_sock())
                    .await
                    .map_err(|e| e.to_string())?;
                client.echo().await.map_err(|e| e.to_string())
            }
            Daemon::Vswitchd => {
                crate::unixctl::call(&layout.ctl_socket(daemon, pid), "version", &[])
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// The state letter and CPU ticks (user + system) of a process's main thread, from
/// `/proc/<pid>/task/<pid>/stat`. The main thread is the one that serves the control socket.
pub fn main_thread_cpu(proc_root: &std::path::Path, pid: u32) -> Option<(char, u64)> {
    let path = proc_root.join(format!("{pid}/task/{pid}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((state, utime + stime))
}

/// Whether vswitchd's main thread is doing work: it used CPU since the last check, or it is in an
/// uninterruptible wait inside the kernel ('D'), where deleting a netdev port spends most of its
/// ~18 ms (waiting for RCU grace periods; the CPU ticks then move only every few checks). A
/// stopped thread ('T', 't') or one asleep in userspace ('S' with no CPU) is not working.
pub fn working(now: Option<(char, u64)>, before: Option<u64>) -> bool {
    match (now, before) {
        (Some(('T' | 't', _)), _) => false,
        (Some(('D', _)), _) => true,
        (Some((_, ticks)), Some(old)) => ticks > old,
        _ => false,
    }
}

/// A health check's outcome once a busy daemon is told from a hung one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    Answered,
    /// Unanswered, but its main thread works: up, not restarted, reported as busy.
    Busy,
    Failed(String),
}

/// Tells a busy daemon from a hung one across health checks.
#[derive(Debug, Default)]
pub struct Busy {
    /// Since when unanswered checks have been excused.
    since: Option<Instant>,
    /// Main-thread CPU ticks at the last check.
    ticks: Option<u64>,
    /// The last unanswered check of the spell found the thread idle (see [`Busy::excuse`]).
    paused: bool,
}

impl Busy {
    /// `result` of `daemon`'s health check at `now`, with an unanswered check excused while
    /// the main thread of `pid` works (`thread` is its [`main_thread_cpu`] reading; see
    /// [`Busy::excuse`]), and the excuse logged.
    pub fn judge(
        &mut self,
        daemon: Daemon,
        pid: u32,
        thread: Option<(char, u64)>,
        now: Instant,
        limit: &HumanDuration,
        result: Result<(), String>,
    ) -> Judged {
        match self.excuse(thread, now, limit, result) {
            Ok(Some(why)) => {
                tracing::info!(daemon = daemon.name(), pid, %why, "working (its main thread is on CPU) and answers slowly; not counted as a failure");
                Judged::Busy
            }
            Ok(None) => Judged::Answered,
            Err(why) => Judged::Failed(why),
        }
    }

    /// An unanswered check while the main thread works (see [`working`]) is not a failure, up to
    /// `limit` counted from the first excused one: creating or deleting hundreds of netdev ports
    /// keeps vswitchd off its control socket for seconds. `thread` is this check's
    /// [`main_thread_cpu`] reading, `now` its time. Returns `Ok(None)` for an answered check,
    /// `Ok(Some(why))` for an excused one, and the failure otherwise.
    pub fn excuse(
        &mut self,
        thread: Option<(char, u64)>,
        now: Instant,
        limit: &HumanDuration,
        result: Result<(), String>,
    ) -> Result<Option<String>, String> {
        let before = std::mem::replace(&mut self.ticks, thread.map(|(_, t)| t));
        let why = match result {
            Ok(()) => {
                self.since = None;
                self.paused = false;
                return Ok(None);
            }
            Err(why) => why,
        };
        if working(thread, before) {
            self.paused = false;
        } else {
            // Inside a busy spell, one idle check is a pause, not a hang: while deleting ports
            // the main thread also sleeps in userspace, waiting on its other threads, for as long
            // as a check interval (seen once in CI: one check of a 300-port delete). A second
            // idle check in a row, or a stopped or vanished thread, ends the spell.
            let stopped = matches!(thread, None | Some(('T' | 't', _)));
            if self.since.is_none() || self.paused || stopped {
                self.since = None;
                self.paused = false;
                return Err(why);
            }
            self.paused = true;
        }
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) > limit.0 {
            return Err(format!(
                "{why}; busy (main thread on CPU) for longer than busy_timeout ({limit})"
            ));
        }
        Ok(Some(why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_on_cpu_or_waiting_in_the_kernel_is_working() {
        assert!(working(Some(('R', 11)), Some(10)));
        assert!(
            working(Some(('S', 11)), Some(10)),
            "it ran between the checks"
        );
        assert!(
            !working(Some(('S', 10)), Some(10)),
            "asleep in userspace: hung"
        );
        assert!(
            working(Some(('D', 10)), Some(10)),
            "deleting a port waits in the kernel"
        );
        assert!(!working(Some(('T', 10)), Some(5)), "SIGSTOPped");
        assert!(!working(Some(('t', 10)), Some(5)), "traced");
        assert!(!working(None, Some(5)), "gone");
        assert!(!working(Some(('R', 10)), None), "no earlier reading");
    }

    #[test]
    fn busy_is_excused_until_busy_timeout_from_the_first_excused_check() {
        let limit = HumanDuration::secs(10);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let late = || Err("no answer".to_string());
        let mut busy = Busy::default();
        assert_eq!(busy.excuse(Some(('R', 1)), at(0), &limit, Ok(())), Ok(None));
        assert!(busy
            .excuse(Some(('R', 5)), at(1), &limit, late())
            .unwrap()
            .is_some());
        assert!(busy
            .excuse(Some(('D', 5)), at(6), &limit, late())
            .unwrap()
            .is_some());
        let err = busy
            .excuse(Some(('R', 9)), at(12), &limit, late())
            .unwrap_err();
        assert!(err.contains("busy_timeout (10s)"), "{err}");
        // An answer ends the busy spell; a hung thread is not excused.
        assert_eq!(
            busy.excuse(Some(('R', 9)), at(13), &limit, Ok(())),
            Ok(None)
        );
        assert!(busy.excuse(Some(('S', 9)), at(14), &limit, late()).is_err());
        assert!(busy
            .excuse(Some(('R', 10)), at(30), &limit, late())
            .unwrap()
            .is_some());
        // Inside a spell, one idle check is a pause; two in a row are a hang.
        assert!(busy.excuse(Some(('R', 12)), at(35), &limit, late()).is_ok());
        assert!(busy.excuse(Some(('S', 12)), at(36), &limit, late()).is_ok());
        assert!(busy.excuse(Some(('R', 13)), at(37), &limit, late()).is_ok());
        assert!(busy.excuse(Some(('S', 13)), at(38), &limit, late()).is_ok());
        assert!(busy
            .excuse(Some(('S', 13)), at(39), &limit, late())
            .is_err());
        // A thread stopped or gone ends a spell at once.
        assert!(busy.excuse(Some(('R', 14)), at(40), &limit, late()).is_ok());
        assert!(busy
            .excuse(Some(('T', 14)), at(41), &limit, late())
            .is_err());
        assert!(busy.excuse(Some(('R', 15)), at(42), &limit, late()).is_ok());
        assert!(busy.excuse(None, at(43), &limit, late()).is_err());
    }

    #[test]
    fn reads_state_and_cpu_of_the_main_thread() {
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("42/task/42");
        std::fs::create_dir_all(&task).unwrap();
        let stat = "42 (ovs vswitchd) R 1 42 42 0 -1 4194560 5 0 0 0 120 30 0 0 10 -10 4 0 5";
        std::fs::write(task.join("stat"), stat).unwrap();
        assert_eq!(main_thread_cpu(dir.path(), 42), Some(('R', 150)));
        assert_eq!(main_thread_cpu(dir.path(), 43), None);
        let me = std::process::id();
        assert!(main_thread_cpu(std::path::Path::new("/proc"), me).is_some());
    }
}
