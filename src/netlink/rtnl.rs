//! `Rtnetlink`: the real [`Netlink`], over an rtnetlink socket driven by a tokio task.

use super::{DeviceState, Devices, Error, IpCidr, Netlink};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{AddressMessageBuilder, Handle, LinkUnspec};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tokio::task::JoinHandle;
use tracing::debug;

/// Talks to the kernel of the network namespace that the thread calling [`Rtnetlink::new`] was
/// in: a netlink socket belongs to the namespace it was opened in, whatever thread uses it later.
#[derive(Debug)]
pub struct Rtnetlink {
    handle: Handle,
    /// The task that reads and writes the socket; ended when this value is dropped.
    connection: JoinHandle<()>,
}

impl Rtnetlink {
    /// Opens the socket and spawns its connection task on the current tokio runtime (a
    /// current_thread runtime works: the task runs whenever the runtime is polled).
    pub fn new() -> Result<Self, Error> {
        // Checked first: opening the socket registers it with the runtime's reactor, which
        // panics outside a runtime.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| Error::Connect { source })?;
        let connection = runtime.spawn(connection);
        Ok(Self { handle, connection })
    }

    /// The device's link message, as `ip link show DEV` gets it.
    async fn link(&self, device: &str) -> Result<LinkMessage, Error> {
        let mut links = self.handle.link().get().match_name(device).execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link),
            Ok(None) => Err(no_such_device(device)),
            Err(e) => Err(match to_io(e) {
                e if is_errno(&e, libc::ENODEV) => no_such_device(device),
                source => Error::LookUpDevice {
                    device: device.to_string(),
                    source,
                },
            }),
        }
    }

    async fn index(&self, device: &str) -> Result<u32, Error> {
        Ok(self.link(device).await?.header.index)
    }

    /// The kernel answered EEXIST: either the very address is there (done), or, for IPv6, the
    /// same address with another prefix length, which the kernel keeps only one of.
    async fn explain_exists(
        &self,
        device: &str,
        addr: &IpCidr,
        source: io::Error,
    ) -> Result<(), Error> {
        let present = self.addresses(device).await?;
        if present.contains(addr) {
            return Ok(());
        }
        match present.into_iter().find(|p| p.addr == addr.addr) {
            Some(present) => Err(Error::AddressConflict {
                device: device.to_string(),
                addr: addr.clone(),
                present,
            }),
            None => Err(Error::AddAddress {
                device: device.to_string(),
                addr: addr.clone(),
                source,
            }),
        }
    }
}

impl Drop for Rtnetlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Netlink for Rtnetlink {
    async fn addresses(&self, device: &str) -> Result<Vec<IpCidr>, Error> {
        let index = self.index(device).await?;
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::ListAddresses {
                device: device.to_string(),
                source: to_io(e),
            })?;
        Ok(listed(messages.iter().filter_map(cidr_of).collect()))
    }

    async fn add_address(&self, device: &str, addr: &IpCidr) -> Result<(), Error> {
        let index = self.index(device).await?;
        let request = self.handle.address().add(index, addr.addr, addr.prefix);
        let source = match request.execute().await {
            Ok(()) => {
                debug!(device, %addr, "address added");
                return Ok(());
            }
            Err(e) => to_io(e),
        };
        if is_errno(&source, libc::EEXIST) {
            return self.explain_exists(device, addr, source).await;
        }
        // The device can vanish between the index lookup and the request.
        if is_errno(&source, libc::ENODEV) {
            return Err(no_such_device(device));
        }
        Err(Error::AddAddress {
            device: device.to_string(),
            addr: addr.clone(),
            source,
        })
    }

    async fn del_address(&self, device: &str, addr: &IpCidr) -> Result<(), Error> {
        let index = self.index(device).await?;
        let message = address_message(index, addr);
        let source = match self.handle.address().del(message).execute().await {
            Ok(()) => {
                debug!(device, %addr, "address removed");
                return Ok(());
            }
            Err(e) => to_io(e),
        };
        // EADDRNOTAVAIL: not there, or there with another prefix length (both families match
        // on address and prefix when deleting).
        if is_errno(&source, libc::EADDRNOTAVAIL) {
            return Ok(());
        }
        if is_errno(&source, libc::ENODEV) {
            return Err(no_such_device(device));
        }
        Err(Error::DelAddress {
            device: device.to_string(),
            addr: addr.clone(),
            source,
        })
    }

    async fn set_up(&self, device: &str) -> Result<(), Error> {
        // By name: RTM_SETLINK with index 0 makes the kernel look the name up, one round trip.
        let message = LinkUnspec::new_with_name(device).up().build();
        match self
            .handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(to_io)
        {
            Ok(()) => {
                debug!(device, "link set up");
                Ok(())
            }
            Err(e) if is_errno(&e, libc::ENODEV) => Err(no_such_device(device)),
            Err(source) => Err(Error::SetUp {
                device: device.to_string(),
                source,
            }),
        }
    }

    async fn devices(&self) -> Result<Devices, Error> {
        let failed = |e| Error::ListDevices { source: to_io(e) };
        let links: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(failed)?;
        let addresses: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(failed)?;
        let mut by_index: HashMap<u32, Vec<IpCidr>> = HashMap::new();
        for message in &addresses {
            if let Some(cidr) = cidr_of(message) {
                by_index.entry(message.header.index).or_default().push(cidr);
            }
        }
        Ok(links
            .iter()
            .filter_map(|link| {
                let name = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(name) => Some(name.clone()),
                    _ => None,
                })?;
                let addresses = listed(by_index.remove(&link.header.index).unwrap_or_default());
                let up = link.header.flags.contains(LinkFlags::Up);
                Some((name, DeviceState { up, addresses }))
            })
            .collect())
    }
}

fn no_such_device(device: &str) -> Error {
    Error::NoSuchDevice {
        device: device.to_string(),
    }
}

/// rtnetlink's error as the errno the kernel sent, so callers and messages see the usual text
/// ("File exists", "Operation not permitted") and can match on the code.
fn to_io(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn is_errno(err: &io::Error, errno: i32) -> bool {
    err.raw_os_error() == Some(errno)
}

/// The same message `ip addr del` sends: index, prefix, IFA_LOCAL and IFA_ADDRESS.
fn address_message(index: u32, addr: &IpCidr) -> AddressMessage {
    match addr.addr {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, addr.prefix)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a, addr.prefix)
            .build(),
    }
}

/// Addresses as [`Netlink::addresses`] lists them: sorted, once each, IPv6 link-local left out
/// (the kernel adds those by itself).
fn listed(mut list: Vec<IpCidr>) -> Vec<IpCidr> {
    list.retain(|c| !c.is_link_local());
    list.sort();
    list.dedup();
    list
}

/// The interface address of one RTM_NEWADDR. For IPv4, IFA_LOCAL is the device's own address
/// and IFA_ADDRESS the peer's on point-to-point links; IPv6 sends IFA_ADDRESS alone.
fn cidr_of(message: &AddressMessage) -> Option<IpCidr> {
    let attr = |want_local: bool| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if want_local => Some(*ip),
            AddressAttribute::Address(ip) if !want_local => Some(*ip),
            _ => None,
        })
    };
    let addr = attr(true).or_else(|| attr(false))?;
    IpCidr::new(addr, message.header.prefix_len).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(matches!(Rtnetlink::new(), Err(Error::NoRuntime)));
    }

    fn message(prefix: u8, attributes: Vec<AddressAttribute>) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.prefix_len = prefix;
        m.attributes = attributes;
        m
    }

    #[test]
    fn reads_the_local_address_before_the_peer() {
        let local: IpAddr = "10.1.1.1".parse().unwrap();
        let peer: IpAddr = "10.1.1.2".parse().unwrap();
        let ptp = message(
            32,
            vec![
                AddressAttribute::Address(peer),
                AddressAttribute::Local(local),
            ],
        );
        assert_eq!(cidr_of(&ptp), Some(IpCidr::new(local, 32).unwrap()));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let only = message(64, vec![AddressAttribute::Address(v6)]);
        assert_eq!(cidr_of(&only), Some(IpCidr::new(v6, 64).unwrap()));
        assert_eq!(cidr_of(&message(24, vec![])), None);
    }

    #[test]
    fn kernel_errors_keep_their_errno() {
        let mut nack = rtnetlink::packet_core::ErrorMessage::default();
        nack.code = std::num::NonZeroI32::new(-libc::EEXIST);
        let err = to_io(rtnetlink::Error::NetlinkError(nack));
        assert!(is_errno(&err, libc::EEXIST));
        assert!(!is_errno(
            &to_io(rtnetlink::Error::RequestFailed),
            libc::EEXIST
        ));
    }

    #[test]
    fn permission_errors_name_the_flag() {
        let err = Error::SetUp {
            device: "mgmt0".into(),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        let text = err.to_string();
        assert!(
            text.contains("mgmt0") && text.contains("--cap-add NET_ADMIN"),
            "{text}"
        );
    }
}
