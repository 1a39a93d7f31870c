//! `LinkWatch`: sets internal ports up as ovs-vswitchd creates their devices, while `apply`
//! waits for ovs-vswitchd to finish the change, instead of after it.
//!
//! ovs-vswitchd leaves the devices of internal ports down, and it creates them during the
//! reconfiguration that ends with `cur_cfg` reaching `next_cfg`. The kernel queues an
//! RTM_NEWLINK on every socket in the link group as it registers a device, so by the time the
//! change is seen applied, every device it made is in this socket's queue: [`LinkWatch::drain`]
//! then handles the rest without waiting. What the queue lost (the kernel drops notifications
//! when a socket's buffer is full, and reports ENOBUFS) is left to the caller's pass over a
//! dump of every device, which runs after this either way.

use super::Netlink;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{
    protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket,
};
use std::collections::BTreeSet;
use std::io;
use tracing::{debug, warn};

/// The rtnetlink multicast group of link changes (RTMGRP_LINK).
const LINK_GROUP: u32 = 1;
/// One read: notifications are datagrams of one or a few messages of about 1.5 KiB each.
const DATAGRAM: usize = 64 * 1024;

/// Devices named when the watch was opened, not yet seen up.
pub struct LinkWatch {
    socket: TokioSocket,
    wanted: BTreeSet<String>,
    buf: Vec<u8>,
    set_up: usize,
}

impl LinkWatch {
    /// Subscribes to link changes in the current network namespace. Open it before sending the
    /// transaction that makes the devices, or some may be created unseen.
    pub fn open(wanted: BTreeSet<String>) -> io::Result<Self> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
        socket.socket_mut().bind(&SocketAddr::new(0, LINK_GROUP))?;
        Ok(Self {
            socket,
            wanted,
            buf: Vec::with_capacity(DATAGRAM),
            set_up: 0,
        })
    }

    /// Sets wanted devices up as their notifications arrive; never returns (select it against
    /// what is being waited for, then [`LinkWatch::drain`]).
    pub async fn run<N: Netlink>(&mut self, netlink: &N) {
        while !self.wanted.is_empty() {
            self.buf.clear();
            match self.socket.recv(&mut self.buf).await {
                Ok(()) => self.handle(netlink).await,
                Err(e) if dropped(&e) => {}
                Err(e) => {
                    debug!(%e, "link notifications: read failed; left to the pass after the wait");
                    break;
                }
            }
        }
        std::future::pending::<()>().await
    }

    /// Handles what is queued now, without waiting for more. Returns how many devices the
    /// watch set up in all.
    pub async fn drain<N: Netlink>(&mut self, netlink: &N) -> usize {
        while !self.wanted.is_empty() {
            self.buf.clear();
            let read = self
                .socket
                .socket_ref()
                .recv(&mut self.buf, libc::MSG_DONTWAIT);
            match read.map(|_| ()) {
                Ok(()) => self.handle(netlink).await,
                Err(e) if dropped(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!(%e, "link notifications: read failed; left to the pass after the wait");
                    break;
                }
            }
        }
        self.set_up
    }

    async fn handle<N: Netlink>(&mut self, netlink: &N) {
        for (name, up) in new_links(&self.buf) {
            if !self.wanted.contains(&name) {
                continue;
            }
            if !up {
                match netlink.set_up(&name).await {
                    Ok(()) => {
                        self.set_up += 1;
                        debug!(device = %name, "link set up as ovs-vswitchd created it");
                    }
                    // Gone again, or not permitted: the dump pass after the wait says why.
                    Err(e) => warn!(device = %name, "{e}"),
                }
            }
            self.wanted.remove(&name);
        }
    }
}

/// ENOBUFS: the kernel dropped notifications because the socket's buffer was full. Reading
/// goes on; the devices of the lost ones are left to the caller's pass over a dump.
fn dropped(e: &io::Error) -> bool {
    let lost = e.raw_os_error() == Some(libc::ENOBUFS);
    if lost {
        debug!("link notifications were dropped (ENOBUFS)");
    }
    lost
}

/// The (name, admin state) of every RTM_NEWLINK in one datagram; anything else is skipped.
fn new_links(datagram: &[u8]) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let Ok(message) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest) else {
            break;
        };
        let length = message.header.length as usize;
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = message.payload {
            let name = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(name) => Some(name.clone()),
                _ => None,
            });
            if let Some(name) = name {
                found.push((name, link.header.flags.contains(LinkFlags::Up)));
            }
        }
        // Messages are 4-byte aligned within a datagram.
        let next = (length + 3) & !3;
        if length == 0 || next > rest.len() {
            break;
        }
        rest = &rest[next..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::{NetlinkHeader, NetlinkMessage, NLM_F_MULTIPART};
    use rtnetlink::packet_route::link::LinkMessage;

    fn emitted(name: &str, up: bool) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.into()));
        if up {
            link.header.flags = LinkFlags::Up;
        }
        let mut message = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::from(RouteNetlinkMessage::NewLink(link)),
        );
        message.header.flags = NLM_F_MULTIPART;
        message.finalize();
        let mut buf = vec![0; message.buffer_len()];
        message.serialize(&mut buf);
        buf
    }

    #[test]
    fn every_new_link_of_a_datagram_is_read_with_its_state() {
        let mut datagram = emitted("p1", false);
        datagram.extend(emitted("a-longer-name", true));
        datagram.extend(emitted("p2", false));
        assert_eq!(
            new_links(&datagram),
            [
                ("p1".to_string(), false),
                ("a-longer-name".to_string(), true),
                ("p2".to_string(), false)
            ]
        );
        // A cut datagram gives what it holds whole, and nothing made up.
        let cut = &datagram[..datagram.len() - 7];
        assert_eq!(new_links(cut).len(), 2);
        assert!(new_links(&[]).is_empty());
        assert!(new_links(&[1, 2, 3]).is_empty());
    }
}
