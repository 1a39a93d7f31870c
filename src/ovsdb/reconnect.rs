//! A client that survives ovsdb-server restarts: it reconnects with capped exponential backoff,
//! probes the connection with echo, and re-sends every monitor request on each new connection,
//! so watchers see a fresh snapshot instead of a dead stream.
//!
//! Transactions are not retried: after a lost connection the caller cannot know whether one
//! committed, so it must re-read and re-plan (the reconciler does).

use std::path::PathBuf;
use std::time::Duration;

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
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        ReconnectOptions {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            call_timeout: None,
            probe_interval: Some(Duration::from_secs(5)),
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
        let mut delay = self.opts.min_backoff;
        loop {
            let client = match Client::connect_unix(&self.path).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(path = %self.path.display(), %e, ?delay, "ovsdb connect failed");
                    if !self.sleep_taking_specs(delay).await {
                        return;
                    }
                    delay = (delay * 2).min(self.opts.max_backoff);
                    continue;
                }
            };
            let client = match self.opts.call_timeout {
                Some(t) => client.with_timeout(t),
                None => client,
            };
            tracing::info!(path = %self.path.display(), "connected to ovsdb-server");
            delay = self.opts.min_backoff;
            if !self.serve(client).await {
                return;
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

    /// Runs one connection until it closes; false when every handle is gone.
    async fn serve(&mut self, client: Client) -> bool {
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
                reason = client.closed() => {
                    tracing::warn!(%reason, "ovsdb connection lost; reconnecting");
                    break true;
                }
                spec = self.add_rx.recv() => match spec {
                    Some(s) => {
                        start_monitor(&mon_client, &s, &mut forwarders).await;
                        self.specs.push(s);
                    }
                    None => break false,
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
