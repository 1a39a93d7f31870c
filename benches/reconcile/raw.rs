//! The floor's wire: a minimal RFC 7047 JSON-RPC client on a blocking `UnixStream` with
//! serde_json, written for this bench and sharing nothing with the crate's `ovsdb` client. It is
//! also the bench's own eyes on the database (drift, cold start), so that what is measured is not
//! observed through the code under test.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

type Values =
    serde_json::StreamDeserializer<'static, serde_json::de::IoRead<BufReader<UnixStream>>, Value>;

/// One connection. Notifications that arrive while a reply is awaited are queued with the time
/// they were read.
pub struct Raw {
    writer: UnixStream,
    values: Values,
    next_id: u64,
    queued: VecDeque<(Instant, Value)>,
}

impl Raw {
    /// Connects; every read gives up after `guard` (a hung server fails the bench, not hangs it).
    pub fn connect(db_sock: &Path, guard: Duration) -> Result<Raw> {
        let stream = UnixStream::connect(db_sock)
            .with_context(|| format!("connect {}", db_sock.display()))?;
        stream.set_read_timeout(Some(guard))?;
        let reader = BufReader::with_capacity(1 << 16, stream.try_clone()?);
        Ok(Raw {
            writer: stream,
            values: serde_json::Deserializer::from_reader(reader).into_iter(),
            next_id: 0,
            queued: VecDeque::new(),
        })
    }

    fn send(&mut self, msg: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(msg)?;
        self.writer.write_all(&bytes)?;
        Ok(())
    }

    /// The next message off the socket, with the time it was read; echo requests are answered.
    fn read(&mut self) -> Result<(Instant, Value)> {
        loop {
            let msg = self
                .values
                .next()
                .context("ovsdb-server closed the connection")??;
            let at = Instant::now();
            if msg["method"] == "echo" {
                let reply = json!({"id": msg["id"], "result": msg["params"], "error": null});
                self.send(&reply)?;
                continue;
            }
            return Ok((at, msg));
        }
    }

    /// Calls `method` and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"id": id, "method": method, "params": params}))?;
        loop {
            let (at, msg) = self.read()?;
            if msg["id"] == id {
                if !msg["error"].is_null() {
                    bail!("{method}: {}", msg["error"]);
                }
                return Ok(msg["result"].clone());
            }
            self.queued.push_back((at, msg));
        }
    }

    /// The next notification (queued first), with the time it was read.
    pub fn notification(&mut self) -> Result<(Instant, Value)> {
        match self.queued.pop_front() {
            Some(n) => Ok(n),
            None => self.read(),
        }
    }

    /// A transaction on Open_vSwitch; fails if any operation failed.
    pub fn transact(&mut self, ops: Vec<Value>) -> Result<Vec<Value>> {
        let mut params = vec![json!("Open_vSwitch")];
        params.extend(ops);
        let Value::Array(results) = self.call("transact", Value::Array(params))? else {
            bail!("transact: the result is not an array");
        };
        if let Some(err) = results.iter().find(|r| r.get("error").is_some()) {
            bail!("transact failed: {err}");
        }
        Ok(results)
    }

    /// Starts a monitor (RFC 7047 `monitor`, v1) of `columns` per table; returns the initial
    /// contents as a `Seen`.
    pub fn monitor(&mut self, tables: &[(&str, &[&str])]) -> Result<Seen> {
        let reqs: serde_json::Map<String, Value> = tables
            .iter()
            .map(|(t, cols)| (t.to_string(), json!({"columns": cols})))
            .collect();
        let initial = self.call("monitor", json!(["Open_vSwitch", "bench", reqs]))?;
        let mut seen = Seen::default();
        seen.apply(&initial);
        Ok(seen)
    }

    /// Reads monitor updates into `seen` until `done(seen)`; returns when it was read.
    pub fn until(&mut self, seen: &mut Seen, done: impl Fn(&Seen) -> bool) -> Result<Instant> {
        let mut at = Instant::now();
        while !done(seen) {
            let (t, msg) = self.notification()?;
            if msg["method"] == "update" {
                seen.apply(&msg["params"][1]);
                at = t;
            }
        }
        Ok(at)
    }
}

/// What a monitor has shown: `cur_cfg` and `next_cfg`, and every row's `name` by table.
#[derive(Default, Debug)]
pub struct Seen {
    pub cur_cfg: i64,
    pub next_cfg: i64,
    pub root: Option<String>,
    names: HashMap<String, HashMap<String, String>>,
}

impl Seen {
    /// Applies monitor v1 table-updates: a row without "new" was deleted; "new" holds every
    /// monitored column of the row.
    pub fn apply(&mut self, updates: &Value) {
        let Some(tables) = updates.as_object() else {
            return;
        };
        for (table, rows) in tables {
            for (uuid, change) in rows.as_object().into_iter().flatten() {
                let Some(new) = change.get("new") else {
                    self.names.entry(table.clone()).or_default().remove(uuid);
                    continue;
                };
                if table == "Open_vSwitch" {
                    self.root = Some(uuid.clone());
                    self.cur_cfg = new["cur_cfg"].as_i64().unwrap_or(self.cur_cfg);
                    self.next_cfg = new["next_cfg"].as_i64().unwrap_or(self.next_cfg);
                }
                if let Some(name) = new["name"].as_str() {
                    let names = self.names.entry(table.clone()).or_default();
                    names.insert(uuid.clone(), name.to_string());
                }
            }
        }
    }

    pub fn has(&self, table: &str, name: &str) -> bool {
        self.uuid_of(table, name).is_some()
    }

    /// The uuid of the row of `table` named `name`.
    pub fn uuid_of(&self, table: &str, name: &str) -> Option<&str> {
        let rows = self.names.get(table)?;
        rows.iter()
            .find(|(_, n)| *n == name)
            .map(|(u, _)| u.as_str())
    }

    /// ovs-vswitchd has applied everything committed so far (and has run at least once when
    /// something bumped next_cfg).
    pub fn settled(&self) -> bool {
        self.cur_cfg >= self.next_cfg
    }
}
