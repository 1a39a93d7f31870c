//! The supervision loop's decisions against a scripted [`Host`]: start order, the restart
//! budget and its window, backoff, the drain order and its escalations, and busy against hung.
//! Time is tokio's paused clock, so minutes of backoff and timeouts take no real time.

use super::*;
use crate::config::{HumanDuration, SupervisorConfig};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// The scripted world: which starts die, who ignores a stop request, who does not answer.
#[derive(Default)]
struct World {
    log: Vec<(Duration, String)>,
    began: Option<Instant>,
    next_pid: u32,
    live: HashMap<u32, (Daemon, oneshot::Sender<ExitStatus>)>,
    /// Starts of a daemon still to come that die at once.
    die_at_start: HashMap<Daemon, u32>,
    /// Daemons that take `exit` and SIGTERM and go on running (SIGKILL ends them).
    stubborn: HashSet<Daemon>,
    /// Daemons whose health checks go unanswered (after the health timeout), until the next
    /// start of that daemon.
    unanswered: HashSet<Daemon>,
    /// Daemons whose main thread is on CPU.
    working: HashSet<Daemon>,
    ticks: HashMap<u32, u64>,
    /// What `vswitchd_hold` answers (the host's clock early after boot).
    hold: Option<Duration>,
}

#[derive(Clone, Default)]
struct Fake(Rc<RefCell<World>>);

impl Fake {
    fn note(&self, what: String) {
        let mut w = self.0.borrow_mut();
        let at = w.began.get_or_insert_with(Instant::now).elapsed();
        w.log.push((at, what));
    }

    fn end(&self, pid: u32, status: ExitStatus) {
        if let Some((_, tx)) = self.0.borrow_mut().live.remove(&pid) {
            let _ = tx.send(status);
        }
    }

    fn pid_of(&self, daemon: Daemon) -> Option<u32> {
        let w = self.0.borrow();
        w.live
            .iter()
            .find(|(_, (d, _))| *d == daemon)
            .map(|(p, _)| *p)
    }

    /// The daemon dies on its own (as with kill -9 from outside).
    fn crash(&self, daemon: Daemon) {
        let pid = self.pid_of(daemon).expect("running");
        self.note(format!("crash {}", daemon.name()));
        self.end(pid, ExitStatus::Signal(9));
    }

    /// The events, without their times.
    fn events(&self) -> Vec<String> {
        self.0.borrow().log.iter().map(|(_, e)| e.clone()).collect()
    }

    /// When each event equal to `what` happened.
    fn times(&self, what: &str) -> Vec<Duration> {
        let w = self.0.borrow();
        w.log
            .iter()
            .filter(|(_, e)| e == what)
            .map(|(t, _)| *t)
            .collect()
    }

    fn count(&self, what: &str) -> usize {
        self.times(what).len()
    }
}

impl Host for Fake {
    fn spawn(&mut self, daemon: Daemon) -> std::io::Result<(u32, oneshot::Receiver<ExitStatus>)> {
        self.note(format!("spawn {}", daemon.name()));
        let (tx, rx) = oneshot::channel();
        let mut w = self.0.borrow_mut();
        w.unanswered.remove(&daemon);
        w.next_pid += 1;
        let pid = w.next_pid;
        match w.die_at_start.get_mut(&daemon).filter(|n| **n > 0) {
            Some(left) => {
                *left -= 1;
                let _ = tx.send(ExitStatus::Signal(6));
            }
            None => {
                w.live.insert(pid, (daemon, tx));
            }
        }
        Ok((pid, rx))
    }

    fn signal(&self, pid: u32, signal: Signal) {
        let Some(daemon) = self.0.borrow().live.get(&pid).map(|(d, _)| *d) else {
            return;
        };
        self.note(format!("{signal} {}", daemon.name()));
        let stubborn = self.0.borrow().stubborn.contains(&daemon);
        if signal == Signal::SIGKILL || !stubborn {
            self.end(pid, ExitStatus::Signal(signal as i32));
        }
    }

    async fn check(&self, daemon: Daemon, pid: u32, timeout: Duration) -> Result<(), String> {
        let (live, unanswered) = {
            let w = self.0.borrow();
            (w.live.contains_key(&pid), w.unanswered.contains(&daemon))
        };
        if !live {
            return Err("Connection refused".into());
        }
        if unanswered {
            tokio::time::sleep(timeout).await;
            return Err(format!("no answer within {timeout:?}"));
        }
        Ok(())
    }

    fn main_thread(&self, pid: u32) -> Option<(char, u64)> {
        let mut w = self.0.borrow_mut();
        let daemon = w.live.get(&pid).map(|(d, _)| *d)?;
        let working = w.working.contains(&daemon);
        let ticks = w.ticks.entry(pid).or_default();
        if working {
            *ticks += 1;
        }
        Some((if working { 'R' } else { 'S' }, *ticks))
    }

    async fn init_row(&mut self, _timeout: Duration) -> Result<String, String> {
        self.note("init_row".into());
        Ok("4a1c0000-0000-4000-8000-000000000001".into())
    }

    async fn ask_exit(&self, daemon: Daemon, pid: u32) -> bool {
        self.note(format!("exit {}", daemon.name()));
        if !self.0.borrow().stubborn.contains(&daemon) {
            self.end(pid, ExitStatus::Code(0));
        }
        true
    }

    fn ended(&mut self, daemon: Daemon, _pid: u32) {
        self.note(format!("ended {}", daemon.name()));
    }

    fn vswitchd_hold(&self) -> Option<Duration> {
        self.0.borrow().hold
    }

    async fn flows_before_vswitchd(&mut self) {
        self.note("flows: flag".into());
    }

    async fn flows_after_vswitchd(&mut self) {
        self.note("flows: restore".into());
    }

    async fn flows_snapshot(&mut self) {
        self.note("flows: snapshot".into());
    }
}

fn timing() -> SupervisorConfig {
    SupervisorConfig {
        health_interval: HumanDuration::secs(5),
        health_timeout: HumanDuration::secs(2),
        health_failures: 3,
        start_timeout: HumanDuration::secs(30),
        backoff_initial: HumanDuration::millis(250),
        backoff_max: HumanDuration::secs(30),
        restart_limit: 3,
        restart_window: HumanDuration::secs(60),
        drain_timeout: HumanDuration::secs(10),
        busy_timeout: HumanDuration::secs(300),
    }
}

/// A supervisor on `fake`, and the handles a test drives it with.
struct Rig {
    fake: Fake,
    sup: Supervisor<Fake>,
    stop: tokio::sync::mpsc::UnboundedSender<()>,
    shutdown: Shutdown,
    ready: tokio::sync::watch::Receiver<u64>,
    state: super::super::StateRx,
}

fn rig(fake: Fake, timing: SupervisorConfig) -> Rig {
    let (ready_tx, ready) = tokio::sync::watch::channel(0);
    let (state_tx, state) = tokio::sync::watch::channel(state::State::default());
    let (stop, shutdown) = tokio::sync::mpsc::unbounded_channel();
    fake.note("begin".into());
    let sup = Supervisor::with_host(fake.clone(), timing, ready_tx, state_tx);
    Rig {
        fake,
        sup,
        stop,
        shutdown,
        ready,
        state,
    }
}

async fn up(ready: &mut tokio::sync::watch::Receiver<u64>, times: u64) {
    ready
        .wait_for(|n| *n >= times)
        .await
        .expect("supervisor alive");
}

#[tokio::test(start_paused = true)]
async fn starts_in_order_and_drains_vswitchd_first() {
    let Rig {
        fake,
        sup,
        stop,
        mut shutdown,
        mut ready,
        state,
    } = rig(Fake::default(), timing());
    let driver = async {
        up(&mut ready, 1).await;
        assert!(state.borrow().healthy());
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(sup.run(&mut shutdown), driver);
    assert!(result.is_ok());
    assert_eq!(
        fake.events(),
        [
            "begin",
            "spawn ovsdb-server",
            "init_row",
            "flows: flag",
            "spawn ovs-vswitchd",
            "flows: restore",
            "flows: snapshot",
            "exit ovs-vswitchd",
            "ended ovs-vswitchd",
            "exit ovsdb-server",
            "ended ovsdb-server",
        ]
    );
    assert!(!state.borrow().vswitchd.up && state.borrow().vswitchd.pid.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_restart_loop_spends_the_budget_with_growing_delays_then_drains_what_is_left() {
    let fake = Fake::default();
    fake.0
        .borrow_mut()
        .die_at_start
        .insert(Daemon::Vswitchd, u32::MAX);
    let Rig {
        fake,
        sup,
        mut shutdown,
        ..
    } = rig(fake, timing());
    let result = sup.run(&mut shutdown).await;
    match result {
        Err(Error::RestartLoop {
            daemon, restarts, ..
        }) => {
            assert_eq!((daemon, restarts), ("ovs-vswitchd", 3))
        }
        other => panic!("expected a restart loop, got {other:?}"),
    }
    // The first start and restart_limit (3) restarts; ovsdb-server is not restarted for it.
    let starts = fake.times("spawn ovs-vswitchd");
    assert_eq!(starts.len(), 4, "{:?}", fake.events());
    assert_eq!(fake.count("spawn ovsdb-server"), 1);
    // The first restart is immediate; then backoff_initial doubled, each jittered into
    // [delay/2, delay].
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let ms = |d: Duration| d.as_millis();
    assert_eq!(ms(gaps[0]), 0, "{gaps:?}");
    assert!((125..=250).contains(&ms(gaps[1])), "{gaps:?}");
    assert!((250..=500).contains(&ms(gaps[2])), "{gaps:?}");
    // Giving up stops ovsdb-server in order, as a SIGTERM would.
    let events = fake.events();
    assert_eq!(
        events[events.len() - 2..],
        ["exit ovsdb-server", "ended ovsdb-server"]
    );
}

#[tokio::test(start_paused = true)]
async fn restarts_older_than_the_window_no_longer_count() {
    let mut t = timing();
    t.restart_limit = 1;
    let Rig {
        fake,
        sup,
        mut shutdown,
        mut ready,
        ..
    } = rig(Fake::default(), t);
    let driver = async {
        up(&mut ready, 1).await;
        fake.crash(Daemon::Vswitchd);
        up(&mut ready, 2).await;
        // One restart spent; past the 60 s window it is forgotten and one more is allowed.
        tokio::time::sleep(Duration::from_secs(61)).await;
        fake.crash(Daemon::Vswitchd);
        up(&mut ready, 3).await;
        // A second one inside the window exceeds a limit of 1.
        fake.crash(Daemon::Vswitchd);
    };
    let (result, ()) = tokio::join!(sup.run(&mut shutdown), driver);
    assert!(
        matches!(result, Err(Error::RestartLoop { restarts: 1, .. })),
        "{result:?}"
    );
    assert_eq!(fake.count("spawn ovs-vswitchd"), 3);
}

#[tokio::test(start_paused = true)]
async fn an_ovsdb_server_failure_stops_vswitchd_first_and_starts_both_again_in_order() {
    let Rig {
        fake,
        sup,
        stop,
        mut shutdown,
        mut ready,
        ..
    } = rig(Fake::default(), timing());
    let driver = async {
        up(&mut ready, 1).await;
        fake.crash(Daemon::OvsdbServer);
        up(&mut ready, 2).await;
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(sup.run(&mut shutdown), driver);
    assert!(result.is_ok());
    let events = fake.events();
    let from = events
        .iter()
        .position(|e| e == "crash ovsdb-server")
        .unwrap();
    assert_eq!(
        events[from..from + 10],
        [
            "crash ovsdb-server",
            "flows: snapshot",
            "SIGTERM ovs-vswitchd",
            "ended ovs-vswitchd",
            "ended ovsdb-server",
            "spawn ovsdb-server",
            "init_row",
            "flows: flag",
            "spawn ovs-vswitchd",
            "flows: restore",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_daemon_that_ignores_the_stop_is_killed_at_the_drain_timeout_and_the_rest_without_asking()
{
    let fake = Fake::default();
    fake.0.borrow_mut().stubborn.insert(Daemon::Vswitchd);
    let Rig {
        fake,
        sup,
        stop,
        mut shutdown,
        mut ready,
        ..
    } = rig(fake, timing());
    let driver = async {
        up(&mut ready, 1).await;
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(sup.run(&mut shutdown), driver);
    assert!(result.is_ok());
    let events = fake.events();
    let from = events
        .iter()
        .position(|e| e == "exit ovs-vswitchd")
        .unwrap();
    assert_eq!(
        events[from..],
        [
            "exit ovs-vswitchd",
            "SIGKILL ovs-vswitchd",
            "ended ovs-vswitchd",
            "SIGKILL ovsdb-server",
            "ended ovsdb-server",
        ]
    );
    let asked = fake.times("exit ovs-vswitchd")[0];
    let killed = fake.times("SIGKILL ovs-vswitchd")[0];
    assert_eq!((killed - asked).as_secs(), 10, "drain_timeout");
}

#[tokio::test(start_paused = true)]
async fn a_second_stop_request_kills_at_once() {
    let fake = Fake::default();
    fake.0.borrow_mut().stubborn.insert(Daemon::Vswitchd);
    let Rig {
        fake,
        sup,
        stop,
        mut shutdown,
        mut ready,
        ..
    } = rig(fake, timing());
    let driver = async {
        up(&mut ready, 1).await;
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(sup.run(&mut shutdown), driver);
    assert!(result.is_ok());
    let asked = fake.times("exit ovs-vswitchd")[0];
    let killed = fake.times("SIGKILL ovs-vswitchd")[0];
    assert_eq!((killed - asked).as_secs(), 1);
    assert_eq!(fake.count("exit ovsdb-server"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_busy_daemon_is_up_busy_and_kept_and_a_hung_one_is_restarted() {
    let Rig {
        fake,
        sup,
        stop,
        mut shutdown,
        mut ready,
        state,
    } = rig(Fake::default(), timing());
    let driver = async {
        up(&mut ready, 1).await;
        {
            let mut w = fake.0.borrow_mut();
            w.unanswered.insert(Daemon::Vswitchd);
            w.working.insert(Daemon::Vswitchd);
        }
        // Twelve checks go unanswered while its main thread works: excused, reported busy.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let s = state.borrow().clone();
        assert!(s.vswitchd.up && s.vswitchd.busy, "{s:?}");
        assert!(s.healthy());
        assert!(!s.ovsdb_server.busy);
        assert_eq!(fake.count("spawn ovs-vswitchd"), 1);
        // It answers again: no longer busy.
        fake.0.borrow_mut().unanswered.clear();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let s = state.borrow().clone();
        assert!(s.vswitchd.up && !s.vswitchd.busy, "{s:?}");
        // Unanswered with its thread asleep: hung; health_failures (3) checks later, restarted.
        fake.0.borrow_mut().unanswered.insert(Daemon::Vswitchd);
        fake.0.borrow_mut().working.clear();
        // The next check starts within an interval (5 s) and fails at its timeout (2 s).
        tokio::time::sleep(Duration::from_secs(8)).await;
        let s = state.borrow().clone();
        assert!(!s.vswitchd.up && !s.vswitchd.busy, "{s:?}");
        up(&mut ready, 2).await;
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(sup.run(&mut shutdown), driver);
    assert!(result.is_ok());
    assert_eq!(fake.count("spawn ovs-vswitchd"), 2);
    assert_eq!(fake.count("SIGKILL ovs-vswitchd"), 1);
}

#[tokio::test(start_paused = true)]
async fn early_after_boot_vswitchd_is_held_back_and_ovsdb_server_is_not() {
    let fake = Fake::default();
    fake.0.borrow_mut().hold = Some(Duration::from_secs(7));
    let Rig {
        fake,
        sup,
        stop,
        mut shutdown,
        mut ready,
        ..
    } = rig(fake, timing());
    let driver = async {
        up(&mut ready, 1).await;
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(sup.run(&mut shutdown), driver);
    assert!(result.is_ok());
    let db = fake.times("spawn ovsdb-server")[0];
    let vs = fake.times("spawn ovs-vswitchd")[0];
    assert!(db < Duration::from_secs(1), "{db:?}");
    assert!(
        vs - db >= Duration::from_secs(7),
        "ovsdb-server at {db:?}, ovs-vswitchd at {vs:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_the_hold_ends_without_starting_vswitchd() {
    let fake = Fake::default();
    fake.0.borrow_mut().hold = Some(Duration::from_secs(7));
    let Rig {
        fake,
        sup,
        stop,
        mut shutdown,
        ..
    } = rig(fake, timing());
    let driver = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(sup.run(&mut shutdown), driver);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(fake.count("spawn ovs-vswitchd"), 0, "{:?}", fake.events());
    assert!(
        fake.pid_of(Daemon::OvsdbServer).is_none(),
        "ovsdb-server left running"
    );
    let ended = fake
        .0
        .borrow()
        .began
        .map(|b| b.elapsed())
        .unwrap_or_default();
    assert!(
        ended < Duration::from_secs(7),
        "the stop waited for the hold: {ended:?}"
    );
}
