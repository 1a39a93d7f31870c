//! After the appliance, ovsdb-server or ovs-vswitchd started again: what changed while the
//! driver was away is put right from the rows (endpoints whose container is gone, veth pairs no
//! row holds, gateway addresses on new devices).

use super::{store, Driver};
use crate::docker::store::Snapshot;
use crate::ovsdb::Client;
use std::collections::BTreeSet;

impl Driver {
    /// After a start of ovsdb-server or ovs-vswitchd: endpoints whose veth is gone (their
    /// container ended while the appliance was down) are removed, veth pairs the driver made
    /// that no row holds are deleted, and gateway ports get their addresses back (a new
    /// ovs-vswitchd makes new devices). Returns the endpoints whose container end is back in
    /// this namespace (Docker moved it out of an ended container but could not tell the
    /// driver): idle, or between CreateEndpoint and Join; [`Driver::remove_idle`] removes
    /// those still idle a while later.
    pub async fn repair(&self) -> Result<Vec<String>, String> {
        let mut slot = self.client.lock().await;
        let client = self.connected(&mut slot).await?;
        let snap = self.snapshot(&client).await?;
        let names = self.links.names().await.map_err(|e| e.to_string())?;
        let endpoints = snap.endpoints(&self.instance);
        let stale: Vec<_> = endpoints
            .iter()
            .filter(|e| !names.contains(&e.port.name))
            .collect();
        self.remove(&client, &snap, &stale, "its veth is gone")
            .await?;
        let held: BTreeSet<&str> = endpoints.iter().map(|e| e.port.name.as_str()).collect();
        for host in names.iter().filter(|n| is_driver_host_name(n)) {
            let peer = format!("ovc{}", &host[3..]);
            if !held.contains(host.as_str()) && names.contains(&peer) {
                let _ = self.links.delete(host).await;
                tracing::info!(device = %host, "docker driver: deleted a veth pair no endpoint holds");
            }
        }
        let idle = endpoints
            .iter()
            .filter(|e| names.contains(&e.port.name))
            .filter(|e| names.contains(&store::container_name(&e.endpoint_id)))
            .map(|e| e.endpoint_id.clone())
            .collect();
        drop(slot);
        for (nid, _, spec) in snap.networks() {
            if spec.gateway_port {
                self.gateway_address(&nid, &spec).await;
            }
        }
        Ok(idle)
    }

    /// Removes the endpoints of `suspects` whose container end is still in this namespace.
    pub async fn remove_idle(&self, suspects: &[String]) -> Result<(), String> {
        let mut slot = self.client.lock().await;
        let client = self.connected(&mut slot).await?;
        let snap = self.snapshot(&client).await?;
        let names = self.links.names().await.map_err(|e| e.to_string())?;
        let endpoints = snap.endpoints(&self.instance);
        let idle: Vec<_> = endpoints
            .iter()
            .filter(|e| suspects.contains(&e.endpoint_id))
            .filter(|e| names.contains(&store::container_name(&e.endpoint_id)))
            .collect();
        self.remove(
            &client,
            &snap,
            &idle,
            "its container is gone (the veth is back from it)",
        )
        .await
    }

    async fn remove(
        &self,
        client: &Client,
        snap: &Snapshot,
        endpoints: &[&store::Endpoint],
        why: &str,
    ) -> Result<(), String> {
        if endpoints.is_empty() {
            return Ok(());
        }
        let pairs: Vec<_> = endpoints.iter().map(|e| (e.bridge, e.port.uuid)).collect();
        let ops = store::remove_ports(snap, &pairs);
        self.commit(client, &ops, "removing endpoints without a container")
            .await?;
        for e in endpoints {
            let _ = self.links.delete(&e.port.name).await;
            tracing::info!(endpoint = %e.endpoint_id, port = %e.port.name, why, "docker driver: removed an endpoint whose container is gone");
        }
        Ok(())
    }
}

fn is_driver_host_name(name: &str) -> bool {
    name.len() == 15 && name.starts_with("ovs") && name[3..].bytes().all(|b| b.is_ascii_hexdigit())
}
