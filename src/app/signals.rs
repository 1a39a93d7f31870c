//! Signal intake: SIGTERM and SIGINT ask for a stop, SIGHUP for a config reload. Each signal is
//! one message on a channel, so a second SIGTERM is seen as such.

use nix::sys::signal::{SigSet, Signal};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// SIGHUP, SIGINT and SIGTERM, blocked from the first line of `main` until `run` has its
/// handlers: a blocked signal waits (pending) instead of taking its default action, which ends
/// the process (issue 13: a SIGHUP in the first ~5 ms, before preflight was done, killed it;
/// and as PID 1 an early SIGTERM was lost). Dropping it unblocks them: the pending ones are
/// then delivered to the handlers, or, for commands without handlers, act as usual.
pub struct Held(SigSet);

pub fn hold() -> Held {
    let mut set = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGTERM] {
        set.add(s);
    }
    // Only this thread's mask changes; threads started from here on inherit it (the log
    // writer keeps it: a signal goes to a thread that does not block it). Children get an
    // empty mask: std resets it between fork and exec.
    if let Err(e) = set.thread_block() {
        eprintln!("failed to block signals until their handlers exist: {e}");
    }
    Held(set)
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.thread_unblock();
    }
}

pub fn shutdown() -> std::io::Result<mpsc::UnboundedReceiver<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "stop requested");
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

pub fn reload() -> std::io::Result<mpsc::UnboundedReceiver<()>> {
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(signal = "SIGHUP", "config reload requested");
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}
