//! The appliance's long-running tasks, owned: each is spawned under a name, and the first one
//! that ends or panics is reported with why. None of them should end while the appliance runs:
//! a reconcile watch or metrics poller that died silently left `/readyz` at its last value for
//! ever (issue 14), so `run` stops the daemons in order and exits 70 instead.
//!
//! `OVS_APPLIANCE_FAULT=<task>:<panic|end>[:<seconds>]` makes the named task panic or end after
//! that many seconds (default 0), for the tests that check this path with a real binary; it is
//! not meant for operators. Task names: `reconcile`, `metrics-poller`, `metrics-http`.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::task::{Id, JoinSet};

/// The variable that injects a task failure (tests only).
pub const FAULT_VAR: &str = "OVS_APPLIANCE_FAULT";

/// A task that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub task: &'static str,
    pub why: String,
}

/// The spawned tasks, by name.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<Result<(), String>>,
    names: HashMap<Id, &'static str>,
    fault: Option<Fault>,
}

impl Tasks {
    /// Tasks with the fault `OVS_APPLIANCE_FAULT` asks for, if any (a value that does not
    /// parse is logged and ignored).
    pub fn from_env() -> Tasks {
        let fault = std::env::var(FAULT_VAR)
            .ok()
            .and_then(|v| match Fault::parse(&v) {
                Some(f) => {
                    tracing::warn!(fault = %v, "{FAULT_VAR} is set: a task will fail on purpose");
                    Some(f)
                }
                None => {
                    tracing::warn!(fault = %v, "{FAULT_VAR} not understood; ignored");
                    None
                }
            });
        Tasks {
            fault,
            ..Tasks::default()
        }
    }

    /// Spawns `task` under `name`. Must be called inside a tokio runtime.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let fault = self.fault.clone().filter(|f| f.task == name);
        let handle = self.set.spawn(async move {
            match fault {
                None => task.await,
                Some(fault) => fault.strike(task).await,
            }
        });
        self.names.insert(handle.id(), name);
    }

    /// Resolves when the first task ends, with its name and why (its error, its panic
    /// message, or "returned"); pending for ever when there are none.
    pub async fn first_ended(&mut self) -> Ended {
        let Some(joined) = self.set.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, why) = match joined {
            Ok((id, Ok(()))) => (id, "returned".to_string()),
            Ok((id, Err(e))) => (id, e),
            Err(e) => (e.id(), panic_text(e)),
        };
        Ended {
            task: self.names.get(&id).copied().unwrap_or("unnamed"),
            why,
        }
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into());
    format!("panicked: {text}")
}

/// What `OVS_APPLIANCE_FAULT` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault {
    task: String,
    panic: bool,
    after: Duration,
}

impl Fault {
    fn parse(text: &str) -> Option<Fault> {
        let mut parts = text.split(':');
        let task = parts.next().filter(|t| !t.is_empty())?.to_string();
        let panic = match parts.next()? {
            "panic" => true,
            "end" => false,
            _ => return None,
        };
        let after = match parts.next() {
            Some(s) => {
                Duration::from_secs_f64(s.parse::<f64>().ok().filter(|s| (0.0..1e6).contains(s))?)
            }
            None => Duration::ZERO,
        };
        parts
            .next()
            .is_none()
            .then_some(Fault { task, panic, after })
    }

    /// Runs `task` until the fault strikes.
    async fn strike<F: Future<Output = Result<(), String>>>(self, task: F) -> Result<(), String> {
        tokio::select! {
            ended = task => return ended,
            () = tokio::time::sleep(self.after) => {}
        }
        if self.panic {
            panic!("{FAULT_VAR} asked for a panic of {}", self.task);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_or_are_refused() {
        let f = Fault::parse("reconcile:panic:2.5").unwrap();
        assert_eq!((f.task.as_str(), f.panic), ("reconcile", true));
        assert_eq!(f.after, Duration::from_millis(2500));
        assert_eq!(
            Fault::parse("metrics-poller:end").unwrap().after,
            Duration::ZERO
        );
        for bad in [
            "",
            "x",
            "x:boom",
            ":panic",
            "x:panic:-1",
            "x:panic:1:2",
            "x:end:nan",
        ] {
            assert_eq!(Fault::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_first_task_to_end_is_named_with_why() {
        let mut tasks = Tasks::default();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("fails", async { Err("lost its socket".to_string()) });
        let ended = tasks.first_ended().await;
        assert_eq!(
            ended,
            Ended {
                task: "fails",
                why: "lost its socket".into()
            }
        );

        let mut tasks = Tasks::default();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("panics", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("index out of bounds")
        });
        let ended = tasks.first_ended().await;
        assert_eq!(ended.task, "panics");
        assert_eq!(ended.why, "panicked: index out of bounds");

        let mut tasks = Tasks {
            fault: Fault::parse("poller:end"),
            ..Tasks::default()
        };
        tasks.spawn("other", std::future::pending());
        tasks.spawn("poller", std::future::pending());
        assert_eq!(
            tasks.first_ended().await,
            Ended {
                task: "poller",
                why: "returned".into()
            }
        );
    }
}
