//! The driver's veth pairs, over rtnetlink: made at CreateEndpoint, deleted at Leave or
//! DeleteEndpoint or when found without their container. Only names the driver builds
//! (`store::host_name`, `store::container_name`) are ever created or deleted here.

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};
use std::collections::BTreeSet;
use std::io;
use tokio::task::JoinHandle;

/// What the kernel refused, with the device named.
#[derive(Debug, thiserror::Error)]
#[error("{action} {device}: {source}")]
pub struct LinkError {
    pub action: &'static str,
    pub device: String,
    pub source: io::Error,
}

pub struct Links {
    handle: Handle,
    connection: JoinHandle<()>,
}

impl Drop for Links {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn to_io(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn errno(err: &io::Error, code: i32) -> bool {
    err.raw_os_error() == Some(code)
}

impl Links {
    /// Opens an rtnetlink socket in the current network namespace; inside a tokio runtime.
    pub fn new() -> io::Result<Links> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        let connection = tokio::spawn(connection);
        Ok(Links { handle, connection })
    }

    /// Makes the pair `host` - `peer`: both ends with `mtu` (when given), `peer` with `mac`,
    /// `host` up. A pair left by an earlier try for the same endpoint is replaced.
    pub async fn create_veth(
        &self,
        host: &str,
        peer: &str,
        mtu: Option<u32>,
        mac: [u8; 6],
    ) -> Result<(), LinkError> {
        let fail = |action, source| LinkError {
            action,
            device: host.to_string(),
            source,
        };
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::default()
            .name(peer.to_string())
            .address(mac.to_vec());
        let mut builder = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .up();
        if let Some(mtu) = mtu {
            peer_msg = peer_msg.mtu(mtu);
            builder = builder.mtu(mtu);
        }
        let message = builder
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
        let first = self.handle.link().add(message.clone()).execute().await;
        match first.map_err(to_io) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e, libc::EEXIST) => {
                self.delete(host).await?;
                self.delete(peer).await?;
                let again = self.handle.link().add(message).execute().await;
                again.map_err(|e| fail("failed to create the veth pair", to_io(e)))
            }
            Err(e) => Err(fail("failed to create the veth pair", e)),
        }
    }

    /// Deletes `name` (and with it its veth peer). Returns false when it was not there.
    pub async fn delete(&self, name: &str) -> Result<bool, LinkError> {
        let message = LinkUnspec::new_with_name(name).build();
        match self
            .handle
            .link()
            .del_with_message(message)
            .execute()
            .await
            .map_err(to_io)
        {
            Ok(()) => Ok(true),
            Err(e) if errno(&e, libc::ENODEV) => Ok(false),
            Err(source) => Err(LinkError {
                action: "failed to delete",
                device: name.to_string(),
                source,
            }),
        }
    }

    /// The names of every link in the namespace.
    pub async fn names(&self) -> Result<BTreeSet<String>, LinkError> {
        let mut links = self.handle.link().get().execute();
        let mut names = BTreeSet::new();
        loop {
            match links.try_next().await {
                Ok(Some(link)) => {
                    for attr in link.attributes {
                        if let LinkAttribute::IfName(name) = attr {
                            names.insert(name);
                        }
                    }
                }
                Ok(None) => return Ok(names),
                Err(e) => {
                    return Err(LinkError {
                        action: "failed to list",
                        device: "the links".into(),
                        source: to_io(e),
                    })
                }
            }
        }
    }
}
