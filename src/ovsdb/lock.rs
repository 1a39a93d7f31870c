//! OVSDB locks (RFC 7047 section 4.1.8-4.1.10): one owner at a time per lock name, used so that
//! two appliance instances pointed at one database never reconcile at once.
//!
//! A lock belongs to the connection: when it drops, the server releases the lock.

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::rpc::RouteKey;
use super::{Client, Error, Notification};

/// What the server said about a lock after the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEvent {
    /// This connection now owns the lock (a "locked" notification).
    Locked,
    /// Another client stole it with "steal" (a "stolen" notification).
    Stolen,
}

/// A lock requested on a connection. Dropping it does not unlock; call [`Lock::unlock`].
#[derive(Debug)]
pub struct Lock {
    name: String,
    client: Client,
    locked: bool,
    events: mpsc::UnboundedReceiver<Notification>,
}

impl Client {
    /// Asks for lock `name`; owned at once when free, otherwise when the owner releases it
    /// (wait with [`Lock::acquired`]).
    pub async fn lock(&self, name: &str) -> Result<Lock, Error> {
        self.request_lock("lock", name).await
    }

    /// Takes lock `name` from whoever holds it; they get a "stolen" notification.
    pub async fn steal(&self, name: &str) -> Result<Lock, Error> {
        self.request_lock("steal", name).await
    }

    async fn request_lock(&self, method: &str, name: &str) -> Result<Lock, Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let reply = self
            .call_routed(method, json!([name]), Some((RouteKey::lock(name), tx)))
            .await?;
        let locked = reply
            .get("locked")
            .and_then(Value::as_bool)
            .ok_or_else(|| Error::protocol("lock reply", format!("no \"locked\" in {reply}")))?;
        Ok(Lock {
            name: name.to_string(),
            client: self.clone(),
            locked,
            events,
        })
    }
}

impl Lock {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this connection held the lock at the last event seen.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Waits for the next "locked" or "stolen"; `None` when the connection closed.
    pub async fn next_event(&mut self) -> Option<LockEvent> {
        let n = self.events.recv().await?;
        let ev = if n.method == "locked" {
            LockEvent::Locked
        } else {
            LockEvent::Stolen
        };
        self.locked = ev == LockEvent::Locked;
        Some(ev)
    }

    /// Returns once the lock is held. Fails when the connection closes first.
    pub async fn acquired(&mut self) -> Result<(), Error> {
        while !self.locked {
            if self.next_event().await.is_none() {
                return Err(Error::Disconnected {
                    method: "lock".to_string(),
                    reason: self.client.closed().await,
                });
            }
        }
        Ok(())
    }

    /// Releases the lock (or withdraws the request).
    pub async fn unlock(self) -> Result<(), Error> {
        self.client.rpc.unsubscribe(RouteKey::lock(&self.name));
        self.client.call("unlock", json!([self.name])).await?;
        Ok(())
    }
}
