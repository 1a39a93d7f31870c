//! A client that survives ovsdb-server restarts: it reconnects with capped exponential backoff,
//! probes the connection with echo, and re-sends every monitor request on each new connection,
//! so watchers see a fresh snapshot instead of a dead stream.
//!
//! The backoff is reset only by a connection that stayed up (`stable_after`): one that a peer
//! accepts and drops at once counts as a failed attempt. Resetting it on every connect made a
//! server that dropped each connection a hot loop (52,166 reconnects in 10 s, issue 14).
//! A lost connection is news (INFO), not a warning: ovsdb-server restarts and orderly stops
//! close it, and the supervisor reports those; what warns is failing to get it back
//! (`UNREACHABLE_WARN`) or losing it again and again.
//!
//! Transactions are not retried: after a lost connection the caller cannot know whether one
//! committed, so it must re-read and re-plan (the reconciler does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::monitor::{MonitorRequests, TableUpdates};
use super::{Client, Error, Monitor, OpResult, Operation};

/// Tuning of [`ReconnectingClient`].
#[derive(Debug, Clone)]
pub struct ReconnectOptions {
    /// First delay after a failed connect; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Applied to every call made through the handed-out clients.
    pub call_timeout: Option<Duration>,
    /// Send an echo this often; a probe unanswered within the same interval drops the
    /// connection (a hung server otherwise looks alive forever on a unix socket).
    pub probe_interval: Option<Duration>,
    /// A connection that stays up this long resets the backoff; one lost sooner counts as a
    /// failed attempt.
    pub stable_after: Duration,
}

/// Failing to reconnect for this long is a warning (once per outage).
const UNREACHABLE_WARN: Duration = Duration::from_secs(10);

impl Default for ReconnectOptions {
    fn default() -> Self {
        ReconnectOptions {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            call_timeout: None,
            probe_interval: Some(Duration::from_secs(5)),
            stable_after: Duration::from_secs(5),
        }
    }
}

/// What a reconnecting monitor yields.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorEvent {
    /// Subscribed (first time or after a reconnect): the full current contents. Clear any cache
    /// before applying it.
    Snapshot(TableUpdates),
    /// Changes of one committed transaction.
    Update(TableUpdates),
    /// The connection dropped; a `Snapshot` follows once it is back.
    Disconnected(String),
    /// The server rejected the monitor request (unknown table, ...); no more events follow.
    Failed(String),
}

struct MonitorSpec {
    db: String,
    reqs: MonitorRequests,
    tx: mpsc::UnboundedSender<MonitorEvent>,
}

/// Handle to the reconnect task. Cheap to clone; the task stops when every handle is dropped.
#[derive(Clone, Debug)]
pub struct ReconnectingClient {
    current: watch::Receiver<Option<Client>>,
    add: mpsc::UnboundedSender<MonitorSpec>,
}

impl std::fmt::Debug for MonitorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MonitorSpec({})", self.db)
    }
}

impl ReconnectingClient {
    /// Starts connecting to the unix socket at `path` in the background. Needs a tokio runtime.
    pub fn new(path: impl Into<PathBuf>, opts: ReconnectOptions) -> ReconnectingClient {
        let (cur_tx, current) = watch::channel(None);
        let (add, add_rx) = mpsc::unbounded_channel();
        let task = Supervisor {
            path: path.into(),
            opts,
            current: cur_tx,
            add_rx,
            specs: Vec::new(),
        };
        tokio::spawn(task.run());
        ReconnectingClient { current, add }
    }

    /// The current connection, waiting for one if there is none.
    pub async fn client(&self) -> Client {
        let mut rx = self.current.clone();
        loop {
            if let Some(c) = rx.borrow_and_update().clone().filter(|c| !c.is_closed()) {
                return c;
            }
            if rx.changed().await.is_err() {
                // The task never ends while a handle exists; pending forever is the honest
                // answer, and callers bound this with a timeout.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The current connection, if connected.
    pub fn current(&self) -> Option<Client> {
        self.current.borrow().clone().filter(|c| !c.is_closed())
    }

    /// Transacts on the current connection (waiting for one); not retried on disconnect.
    pub async fn transact(&self, db: &str, ops: &[Operation]) -> Result<Vec<OpResult>, Error> {
        self.client().await.transact(db, ops).await
    }

    /// A monitor that is re-sent after every reconnect. Drop the receiver to stop it.
    pub fn monitor(
        &self,
        db: &str,
        reqs: MonitorRequests,
    ) -> mpsc::UnboundedReceiver<MonitorEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let spec = MonitorSpec {
            db: db.to_string(),
            reqs,
            tx,
        };
        // If the task is gone the receiver just yields nothing.
        let _ = self.add.send(spec);
        rx
    }
}

struct Supervisor {
    path: PathBuf,
    opts: ReconnectOptions,
    current: watch::Sender<Option<Client>>,
    add_rx: mpsc::UnboundedReceiver<MonitorSpec>,
    specs: Vec<MonitorSpec>,
}

impl Supervisor {
    async fn run(mut self) {
        let mut backoff = Backoff::new(&self.opts);
        // Since when there has been no connection, and whether that was warned about.
        let mut lost: Option<(Instant, bool)> = None;
        loop {
            let client = match Client::connect_unix(&self.path).await {
                Ok(c) => c,
                Err(e) => {
                    let delay = backoff.failed();
                    tracing::debug!(path = %self.path.display(), %e, ?delay, "ovsdb connect failed");
                    let (since, warned) = lost.get_or_insert((Instant::now(), false));
                    if !*warned && since.elapsed() >= UNREACHABLE_WARN {
                        *warned = true;
                        tracing::warn!(path = %self.path.display(), %e, after = ?since.elapsed(), "ovsdb-server still unreachable; retrying");
                    }
                    if !self.sleep_taking_specs(delay).await {
                        return;
                    }
                    continue;
                }
            };
            let client = match self.opts.call_timeout {
                Some(t) => client.with_timeout(t),
                None => client,
            };
            match lost.take() {
                Some((since, true)) => {
                    tracing::info!(path = %self.path.display(), after = ?since.elapsed(), "connected to ovsdb-server again")
                }
                _ => tracing::info!(path = %self.path.display(), "connected to ovsdb-server"),
            }
            let began = Instant::now();
            let Some(reason) = self.serve(client).await else {
                return;
            };
            lost = Some((Instant::now(), false));
            let lasted = began.elapsed();
            let again = backoff.short_lived() > 0;
            match backoff.connection_lasted(lasted) {
                None => tracing::info!(%reason, "ovsdb connection lost; reconnecting"),
                // Once is an orderly stop or a restart of a server just connected to; again
                // and again is a server that drops us.
                Some(delay) if again => {
                    tracing::warn!(%reason, ?lasted, ?delay, "ovsdb connection lost again soon after connecting; reconnecting after a delay");
                    if !self.sleep_taking_specs(delay).await {
                        return;
                    }
                }
                Some(delay) => {
                    tracing::info!(%reason, ?lasted, ?delay, "ovsdb connection lost; reconnecting");
                    if !self.sleep_taking_specs(delay).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits `delay`, queueing monitors added meanwhile; false when every handle is gone.
    async fn sleep_taking_specs(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                spec = self.add_rx.recv() => match spec {
                    Some(s) => self.specs.push(s),
                    None => return false,
                },
            }
        }
    }

    /// Runs one connection until it closes, and says why; None when every handle is gone.
    async fn serve(&mut self, client: Client) -> Option<String> {
        let mut forwarders = JoinSet::new();
        // Monitor requests run inside this loop, where no probe can fire: bound them so a server
        // that accepts connections but never answers cannot stall us forever.
        let mon_client = match (self.opts.call_timeout, self.opts.probe_interval) {
            (None, Some(p)) => client.with_timeout(p * 4),
            _ => client.clone(),
        };
        self.specs.retain(|s| !s.tx.is_closed());
        for spec in &self.specs {
            start_monitor(&mon_client, spec, &mut forwarders).await;
        }
        self.current.send_replace(Some(client.clone()));
        let mut probe = self.opts.probe_interval.map(tokio::time::interval);
        let keep_going = loop {
            tokio::select! {
                reason = client.closed() => break Some(reason),
                spec = self.add_rx.recv() => match spec {
                    Some(s) => {
                        start_monitor(&mon_client, &s, &mut forwarders).await;
                        self.specs.push(s);
                    }
                    None => break None,
                },
                _ = tick(&mut probe) => {
                    let p = self.opts.probe_interval.unwrap_or_default();
                    if !matches!(tokio::time::timeout(p, client.echo()).await, Ok(Ok(()))) {
                        tracing::warn!(after = ?p, "ovsdb echo probe failed; dropping connection");
                        client.disconnect();
                    }
                }
            }
        };
        self.current.send_replace(None);
        client.disconnect();
        // Let each forwarder drain what the old connection delivered and say Disconnected, so a
        // stale update can never follow the next Snapshot.
        while forwarders.join_next().await.is_some() {}
        keep_going
    }
}

/// The reconnect delay: doubling from `min_backoff` to `max_backoff` with each failed connect
/// and each connection lost before `stable_after`; back to the start after one that lasted.
#[derive(Debug, Clone)]
struct Backoff {
    min: Duration,
    max: Duration,
    stable_after: Duration,
    next: Duration,
    /// Connections in a row lost before `stable_after`.
    short: u32,
}

impl Backoff {
    fn new(opts: &ReconnectOptions) -> Backoff {
        Backoff {
            min: opts.min_backoff,
            max: opts.max_backoff.max(opts.min_backoff),
            stable_after: opts.stable_after,
            next: opts.min_backoff,
            short: 0,
        }
    }

    /// How many connections in a row were lost before `stable_after`.
    fn short_lived(&self) -> u32 {
        self.short
    }

    /// A connect failed: how long to wait before the next.
    fn failed(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// A connection ended after `lasted`: None to reconnect at once, else how long to wait.
    fn connection_lasted(&mut self, lasted: Duration) -> Option<Duration> {
        if lasted >= self.stable_after {
            self.next = self.min;
            self.short = 0;
            None
        } else {
            self.short += 1;
            Some(self.failed())
        }
    }
}

async fn tick(probe: &mut Option<tokio::time::Interval>) {
    match probe {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn start_monitor(client: &Client, spec: &MonitorSpec, set: &mut JoinSet<()>) {
    match client.monitor(&spec.db, &spec.reqs).await {
        Ok(m) => {
            set.spawn(forward(m, spec.tx.clone()));
        }
        Err(e) if e.is_disconnect() || matches!(e, Error::Timeout { .. }) => {
            // The connection went away under us (or hangs): the next one will retry.
            client.disconnect();
            let _ = spec.tx.send(MonitorEvent::Disconnected(e.to_string()));
        }
        Err(e) => {
            tracing::error!(db = %spec.db, %e, "ovsdb monitor request rejected");
            let _ = spec.tx.send(MonitorEvent::Failed(e.to_string()));
        }
    }
}

/// Copies one monitor's updates to its subscriber until the connection ends.
async fn forward(mut m: Monitor, tx: mpsc::UnboundedSender<MonitorEvent>) {
    let initial = std::mem::take(&mut m.initial);
    if tx.send(MonitorEvent::Snapshot(initial)).is_err() {
        let _ = m.cancel().await;
        return;
    }
    while let Some(u) = m.recv().await {
        let ev = match u {
            Ok(u) => MonitorEvent::Update(u),
            Err(e) => {
                // A cache fed a broken update is wrong from then on: start over with a snapshot.
                tracing::error!(%e, "undecodable ovsdb update; forcing resubscribe");
                m.client().disconnect();
                continue;
            }
        };
        if tx.send(ev).is_err() {
            let _ = m.cancel().await;
            return;
        }
    }
    let reason = m.client().closed().await;
    let _ = tx.send(MonitorEvent::Disconnected(reason));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_that_stayed_up_resets_the_backoff() {
        let ms = Duration::from_millis;
        let opts = ReconnectOptions {
            min_backoff: ms(20),
            max_backoff: ms(1000),
            stable_after: ms(5000),
            ..ReconnectOptions::default()
        };
        let mut b = Backoff::new(&opts);
        // A peer that accepts and drops at once: every connection is a failed attempt.
        let delays: Vec<_> = (0..8)
            .map(|_| b.connection_lasted(ms(3)).unwrap())
            .collect();
        assert_eq!(
            delays,
            [
                ms(20),
                ms(40),
                ms(80),
                ms(160),
                ms(320),
                ms(640),
                ms(1000),
                ms(1000)
            ]
        );
        // Failed connects keep doubling from there.
        assert_eq!(b.failed(), ms(1000));
        assert_eq!(b.short_lived(), 8);
        // One that lasted: reconnect at once, and start again from the minimum.
        assert_eq!(b.connection_lasted(ms(6000)), None);
        assert_eq!(b.short_lived(), 0);
        assert_eq!(b.failed(), ms(20));
    }
}
