//! `apply`'s work on the devices of internal ports: a [`LinkWatch`] opened before the
//! transaction sets them up while ovs-vswitchd makes them, then one pass sets addresses and
//! whatever the watch did not see up, reading the devices only if some port needs a look.

use crate::netlink::{LinkWatch, Rtnetlink};
use crate::reconcile::{self, Desired};
use std::future::Future;
use std::path::PathBuf;

pub struct Links {
    netlink: Result<Rtnetlink, crate::netlink::Error>,
    watch: Option<LinkWatch>,
}

impl Links {
    /// Opens the socket and the watch on the current namespace; call it before the transaction
    /// that makes the devices, so that the watch sees every one.
    pub fn open(desired: &Desired) -> Links {
        let netlink = Rtnetlink::new();
        let watch = match &netlink {
            Ok(_) => LinkWatch::open(reconcile::internal_port_names(desired))
                .inspect_err(|e| tracing::debug!(%e, "link notifications unavailable"))
                .ok(),
            Err(_) => None,
        };
        Links { netlink, watch }
    }

    /// Runs `work` (the transaction and the wait for ovs-vswitchd), the watch beside it.
    pub async fn during<F: Future>(&mut self, work: F) -> F::Output {
        match (&self.netlink, self.watch.as_mut()) {
            (Ok(netlink), Some(watch)) => tokio::select! {
                out = work => out,
                () = watch.run(netlink) => unreachable!("a link watch runs until dropped"),
            },
            _ => work.await,
        }
    }

    /// After the change was applied: what the watch has queued, then addresses and the rest.
    pub async fn finish(self, desired: &Desired, record: PathBuf) {
        let netlink = match self.netlink {
            Ok(netlink) => netlink,
            Err(e) => {
                tracing::warn!(%e, "internal port addresses not set");
                return;
            }
        };
        let mut known_up = Default::default();
        if let Some(mut watch) = self.watch {
            let early = watch.drain(&netlink).await;
            if early.devices > 0 {
                tracing::info!(
                    links = early.devices,
                    again = early.set_ups - early.devices,
                    "set internal ports up as ovs-vswitchd created them"
                );
            }
            known_up = watch.known_up();
        }
        reconcile::Addresses::new(netlink, record)
            .apply_knowing(desired, &known_up)
            .await;
    }
}
