//! What each request of Docker's remote network driver protocol does. Every change is one
//! OVSDB transaction, made after a fresh read of the rows it depends on and guarded by them;
//! requests that change something run one at a time.

use super::api::{self, EndpointInterface, JoinResponse};
use super::link::Links;
use super::store::{self, BridgeOwner, NewEndpoint, Snapshot};
use crate::netlink::{IpCidr, Netlink, Rtnetlink};
use crate::ovsdb::{Client, Operation};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

mod recover;

const DB: &str = "Open_vSwitch";
/// How long a request waits for ovs-vswitchd to apply its change (ovs-vsctl waits for ever).
const APPLY_WAIT_MS: u64 = 10_000;
/// How long a request waits for ovsdb-server (it may be starting or restarting).
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// An answer: the HTTP status and the JSON body.
pub type Reply = (StatusCode, Value);

fn ok(body: Value) -> Reply {
    (StatusCode::OK, body)
}

/// A request understood but not done: Docker shows `message` to the user.
fn refused(message: impl AsRef<str>) -> Reply {
    (StatusCode::OK, api::err_body(message.as_ref()))
}

fn bad_request(message: impl AsRef<str>) -> Reply {
    (StatusCode::BAD_REQUEST, api::err_body(message.as_ref()))
}

pub struct Driver {
    pub instance: String,
    pub db_sock: PathBuf,
    /// `netdev` or `system`: for bridges the driver makes, when the database does not say.
    pub datapath: String,
    /// Bridges the config names: a network may use one only once reconcile made it.
    pub config_bridges: BTreeSet<String>,
    /// The database connection; the lock also makes changing requests take turns.
    client: Mutex<Option<Client>>,
    links: Links,
    addresses: Option<Rtnetlink>,
}

impl Driver {
    pub fn new(
        instance: String,
        db_sock: PathBuf,
        datapath: String,
        config_bridges: BTreeSet<String>,
    ) -> std::io::Result<Driver> {
        let addresses = match Rtnetlink::new() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::error!(%e, "docker driver: netlink unavailable: gateway ports get no address");
                None
            }
        };
        Ok(Driver {
            instance,
            db_sock,
            datapath,
            config_bridges,
            client: Mutex::new(None),
            links: Links::new()?,
            addresses,
        })
    }

    /// Answers one request; `method` is the path without its `/`.
    pub async fn handle(&self, method: &str, body: &[u8]) -> Reply {
        match method {
            "Plugin.Activate" => ok(json!({"Implements": ["NetworkDriver"]})),
            "NetworkDriver.GetCapabilities" => {
                ok(json!({"Scope": "local", "ConnectivityScope": "local"}))
            }
            "NetworkDriver.CreateNetwork" => match parse(body) {
                Ok(req) => self.create_network(req).await,
                Err(r) => r,
            },
            "NetworkDriver.DeleteNetwork" => match parse::<api::NetworkRequest>(body) {
                Ok(req) => self.delete_network(&req.network_id).await,
                Err(r) => r,
            },
            "NetworkDriver.CreateEndpoint" => match parse(body) {
                Ok(req) => self.create_endpoint(req).await,
                Err(r) => r,
            },
            "NetworkDriver.DeleteEndpoint" | "NetworkDriver.Leave" => {
                match parse::<api::EndpointRequest>(body) {
                    Ok(req) => self.remove_endpoint(&req.endpoint_id, method).await,
                    Err(r) => r,
                }
            }
            "NetworkDriver.Join" => match parse(body) {
                Ok(req) => self.join(req).await,
                Err(r) => r,
            },
            "NetworkDriver.EndpointOperInfo" => match parse::<api::EndpointRequest>(body) {
                Ok(req) => self.oper_info(&req.endpoint_id).await,
                Err(r) => r,
            },
            // Nothing to program: no NAT or port mapping on an OVS network. Node discovery is
            // for global-scope drivers.
            "NetworkDriver.ProgramExternalConnectivity"
            | "NetworkDriver.RevokeExternalConnectivity"
            | "NetworkDriver.DiscoverNew"
            | "NetworkDriver.DiscoverDelete" => match parse::<Value>(body) {
                Ok(_) => ok(json!({})),
                Err(r) => r,
            },
            // AllocateNetwork, FreeNetwork (swarm, global scope), anything newer: the protocol
            // says 404, which Docker reads as "not implemented".
            _ => (
                StatusCode::NOT_FOUND,
                api::err_body(&format!("{method} is not implemented by this driver")),
            ),
        }
    }

    /// The database connection, (re)made when needed, waiting for ovsdb-server to answer.
    async fn connected(&self, slot: &mut Option<Client>) -> Result<Client, String> {
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let deadline = Instant::now() + CONNECT_WAIT;
        loop {
            match Client::connect_unix(&self.db_sock).await {
                Ok(c) => {
                    // Bounded even if ovsdb-server stops answering (the apply wait is 10 s).
                    let c = c.with_timeout(Duration::from_secs(30));
                    *slot = Some(c.clone());
                    return Ok(c);
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("the OVS database is not reachable: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn snapshot(&self, client: &Client) -> Result<Snapshot, String> {
        let results = client
            .transact(DB, &store::read_ops())
            .await
            .map_err(|e| format!("reading the OVS database failed: {e}"))?;
        let rows: Vec<_> = results.into_iter().map(|r| r.rows).collect();
        let snap = Snapshot::from_results(&rows);
        if snap.root.is_none() {
            return Err("the OVS database has no Open_vSwitch row yet".into());
        }
        Ok(snap)
    }

    /// Sends `ops`, then waits (in ovsdb-server, bounded) for ovs-vswitchd to apply them.
    async fn commit(&self, client: &Client, ops: &[Operation], what: &str) -> Result<(), String> {
        let results = client
            .transact(DB, ops)
            .await
            .map_err(|e| format!("{what}: the OVS database refused the change: {e}"))?;
        let next_cfg = results
            .last()
            .and_then(|r| r.rows.as_ref())
            .and_then(|rows| rows.first())
            .and_then(|row| row.get("next_cfg"))
            .and_then(|d| d.as_i64());
        if let Some(n) = next_cfg {
            let wait = store::applied(n, APPLY_WAIT_MS);
            if let Err(e) = client.transact(DB, &wait).await {
                tracing::warn!(%e, what, "docker driver: ovs-vswitchd did not apply the change within 10 s; it is in the database and will apply");
            }
        }
        Ok(())
    }

    async fn create_network(&self, req: api::CreateNetworkRequest) -> Reply {
        let nid = req.network_id.clone();
        let spec = match api::network_spec(&req) {
            Ok(spec) => spec,
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                tracing::warn!(network = %nid, errors = %text.join("; "), "docker driver: network refused");
                return refused(text.join("; "));
            }
        };
        let mut slot = self.client.lock().await;
        let result = async {
            let client = self.connected(&mut slot).await?;
            let snap = self.snapshot(&client).await?;
            if let Some((bridge, _)) = snap.network(&nid) {
                tracing::info!(network = %nid, bridge = %bridge.name, "docker driver: network already there");
                return Ok(());
            }
            let bridge = match snap.bridge(&spec.bridge) {
                Some(b) => match snap.owner(b, &self.instance) {
                    BridgeOwner::Foreign => {
                        return Err(format!(
                            "option bridge: {} belongs to another tool (it is not in this appliance's config and was not made by this driver), so it is left alone",
                            spec.bridge
                        ))
                    }
                    BridgeOwner::Config | BridgeOwner::Driver => Some(b),
                },
                None if self.config_bridges.contains(&spec.bridge) => {
                    return Err(format!(
                        "option bridge: {} is in the config but not created yet; try again in a moment",
                        spec.bridge
                    ))
                }
                None => None,
            };
            let datapath = snap.datapath.clone().unwrap_or_else(|| self.datapath.clone());
            let ops = store::create_network(&snap, &self.instance, &nid, &spec, bridge, &datapath);
            self.commit(&client, &ops, "creating the network").await?;
            tracing::info!(network = %nid, bridge = %spec.bridge, vlan = ?spec.vlan, new_bridge = bridge.is_none(), gateway_port = spec.gateway_port, "docker driver: network created");
            if spec.gateway_port {
                self.gateway_address(&nid, &spec).await;
            }
            Ok(())
        }
        .await;
        reply(result, json!({}))
    }

    /// Puts the network's gateway address on its gateway port (waiting for ovs-vswitchd to
    /// make the device) and sets it up. Failures are logged: the network works without it,
    /// only the host is not reachable from it.
    async fn gateway_address(&self, nid: &str, spec: &api::NetworkSpec) {
        let Some(netlink) = &self.addresses else {
            return;
        };
        let device = store::gateway_name(nid);
        for gw in [&spec.gateway4, &spec.gateway6] {
            let Ok(addr) = gw.parse::<IpCidr>() else {
                continue;
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match netlink.add_address(&device, &addr).await {
                    Ok(()) => break,
                    Err(crate::netlink::Error::NoSuchDevice { .. })
                        if Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => {
                        tracing::error!(%e, network = %nid, "docker driver: the gateway address could not be set");
                        return;
                    }
                }
            }
        }
        if let Err(e) = netlink.set_up(&device).await {
            tracing::error!(%e, network = %nid, "docker driver: the gateway port could not be set up");
        }
    }

    async fn delete_network(&self, nid: &str) -> Reply {
        let mut slot = self.client.lock().await;
        let result = async {
            let client = self.connected(&mut slot).await?;
            let snap = self.snapshot(&client).await?;
            let (ops, devices) = store::delete_network(&snap, &self.instance, nid);
            if ops.is_empty() {
                tracing::info!(network = %nid, "docker driver: network to delete was not there");
                return Ok(());
            }
            self.commit(&client, &ops, "deleting the network").await?;
            for d in devices {
                let _ = self.links.delete(&d).await;
            }
            tracing::info!(network = %nid, "docker driver: network deleted");
            Ok(())
        }
        .await;
        reply(result, json!({}))
    }

    async fn create_endpoint(&self, req: api::CreateEndpointRequest) -> Reply {
        let (nid, eid) = (req.network_id.clone(), req.endpoint_id.clone());
        let given = req.interface.clone().unwrap_or_default();
        let mac = if given.mac_address.is_empty() {
            api::mac_for(&eid, &given.address)
        } else {
            given.mac_address.clone()
        };
        let Some(mac_bytes) = api::parse_mac(&mac) else {
            return bad_request(format!(
                "Interface.MacAddress: `{mac}` is not a MAC address"
            ));
        };
        // Docker keeps what it gave; the driver answers only what it chose.
        let answer = if given.mac_address.is_empty() {
            json!({"Interface": EndpointInterface { mac_address: mac.clone(), ..Default::default() }})
        } else {
            json!({"Interface": {}})
        };
        let mut slot = self.client.lock().await;
        let result = async {
            let client = self.connected(&mut slot).await?;
            let snap = self.snapshot(&client).await?;
            if snap.endpoint(&self.instance, &eid).is_some() {
                return Ok(());
            }
            let Some((bridge, spec)) = snap.network(&nid) else {
                return Err(format!("no such network {nid} (it is not in the OVS database)"));
            };
            let (host, peer) = (store::host_name(&eid), store::container_name(&eid));
            if let Some(other) = snap.port_named(&host) {
                return Err(format!(
                    "a port named {} is already on a bridge; endpoint {eid} cannot use it",
                    other.name
                ));
            }
            self.links
                .create_veth(&host, &peer, spec.mtu, mac_bytes)
                .await
                .map_err(|e| e.to_string())?;
            let ep = NewEndpoint {
                network_id: &nid,
                endpoint_id: &eid,
                mac: &mac,
                address: &given.address,
                address_ipv6: &given.address_ipv6,
            };
            let ops = store::add_endpoint(&snap, &self.instance, bridge, &spec, &ep);
            if let Err(e) = self.commit(&client, &ops, "adding the endpoint's port").await {
                let _ = self.links.delete(&host).await;
                return Err(e);
            }
            tracing::info!(network = %nid, endpoint = %eid, port = %host, bridge = %bridge.name, mac = %mac, address = %given.address, "docker driver: endpoint attached");
            Ok(())
        }
        .await;
        reply(result, answer)
    }

    async fn join(&self, req: api::EndpointRequest) -> Reply {
        let mut slot = self.client.lock().await;
        let result: Result<Value, String> = async {
            let client = self.connected(&mut slot).await?;
            let snap = self.snapshot(&client).await?;
            if snap.endpoint(&self.instance, &req.endpoint_id).is_none() {
                return Err(format!("no such endpoint {}", req.endpoint_id));
            }
            let Some((_, spec)) = snap.network(&req.network_id) else {
                return Err(format!("no such network {}", req.network_id));
            };
            let (gateway, gateway_ipv6) = if spec.internal {
                Default::default()
            } else {
                spec.gateway_ips()
            };
            let answer = JoinResponse {
                interface_name: api::InterfaceName {
                    src_name: store::container_name(&req.endpoint_id),
                    dst_prefix: "eth".into(),
                },
                gateway,
                gateway_ipv6,
                disable_gateway_service: spec.internal,
            };
            Ok(serde_json::to_value(answer).expect("serialises"))
        }
        .await;
        match result {
            Ok(v) => ok(v),
            Err(e) => refused(e),
        }
    }

    async fn oper_info(&self, eid: &str) -> Reply {
        let mut slot = self.client.lock().await;
        let result: Result<Value, String> = async {
            let client = self.connected(&mut slot).await?;
            let snap = self.snapshot(&client).await?;
            Ok(match snap.endpoint(&self.instance, eid) {
                Some(ep) => json!({"Value": {"ovs_port": ep.port.name}}),
                None => json!({"Value": {}}),
            })
        }
        .await;
        match result {
            Ok(v) => ok(v),
            Err(e) => refused(e),
        }
    }

    /// Leave and DeleteEndpoint: the port and the veth go; already gone is success.
    async fn remove_endpoint(&self, eid: &str, method: &str) -> Reply {
        let mut slot = self.client.lock().await;
        let result = async {
            let client = self.connected(&mut slot).await?;
            let snap = self.snapshot(&client).await?;
            let host = store::host_name(eid);
            if let Some(ep) = snap.endpoint(&self.instance, eid) {
                let ops = store::remove_ports(&snap, &[(ep.bridge, ep.port.uuid)]);
                self.commit(&client, &ops, "removing the endpoint's port").await?;
                tracing::info!(endpoint = %eid, port = %host, request = method, "docker driver: endpoint detached");
            }
            self.links.delete(&host).await.map_err(|e| e.to_string())?;
            Ok(())
        }
        .await;
        reply(result, json!({}))
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    // Docker sends no body at all for the handshake requests.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"null".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        bad_request(format!(
            "the request body is not what the protocol says: {e}"
        ))
    })
}

fn reply(result: Result<(), String>, answer: Value) -> Reply {
    match result {
        Ok(()) => ok(answer),
        Err(e) => {
            tracing::warn!(error = %e, "docker driver: request refused");
            refused(e)
        }
    }
}
