//! Signal intake: SIGTERM and SIGINT ask for a stop, SIGHUP for a config reload. Each signal is
//! one message on a channel, so a second SIGTERM is seen as such.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

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
