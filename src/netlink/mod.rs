//! Netlink: IP addresses and admin state (link up) of the devices behind OVS internal ports,
//! behind the [`Netlink`] trait so the reconciler can be tested with [`FakeNetlink`].
//!
//! Owns only addresses and IFF_UP on devices that ovs-vswitchd has already created. It must not
//! create or delete devices, touch MTU (OVS applies `Interface.mtu_request`), routes, or any
//! address it was not asked about.

mod changes;
mod cidr;
mod fake;
mod rtnl;

pub use changes::address_changes;
pub use cidr::IpCidr;
pub use fake::{Call, FakeNetlink};
pub use rtnl::Rtnetlink;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;

/// What went wrong, with the device and the action that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device is not there (yet): ovs-vswitchd may not have created it. Retry later.
    #[error("no such device {device}: ovs-vswitchd has not created it (yet)")]
    NoSuchDevice { device: String },
    #[error("invalid address {input:?}: {reason}")]
    InvalidCidr { input: String, reason: String },
    #[error("Rtnetlink::new was called outside a tokio runtime")]
    NoRuntime,
    #[error("failed to open an rtnetlink socket: {source}{}", cap_hint(.source))]
    Connect { source: io::Error },
    #[error("failed to look up device {device}: {source}{}", cap_hint(.source))]
    LookUpDevice { device: String, source: io::Error },
    #[error("failed to list addresses of {device}: {source}{}", cap_hint(.source))]
    ListAddresses { device: String, source: io::Error },
    #[error("failed to list the network devices and their addresses: {source}{}", cap_hint(.source))]
    ListDevices { source: io::Error },
    #[error("failed to add address {addr} to {device}: {source}{}", cap_hint(.source))]
    AddAddress {
        device: String,
        addr: IpCidr,
        source: io::Error,
    },
    /// The kernel keeps one prefix length per IPv6 address on a device.
    #[error("failed to add address {addr} to {device}: {present} is already there with another prefix length; remove it first")]
    AddressConflict {
        device: String,
        addr: IpCidr,
        present: IpCidr,
    },
    #[error("failed to remove address {addr} from {device}: {source}{}", cap_hint(.source))]
    DelAddress {
        device: String,
        addr: IpCidr,
        source: io::Error,
    },
    #[error("failed to set {device} up: {source}{}", cap_hint(.source))]
    SetUp { device: String, source: io::Error },
}

/// The flag an operator adds when the kernel says EPERM: changing links and addresses needs
/// CAP_NET_ADMIN, which Docker does not grant by default.
fn cap_hint(err: &io::Error) -> &'static str {
    if err.kind() == io::ErrorKind::PermissionDenied {
        " (run the container with `--cap-add NET_ADMIN`)"
    } else {
        ""
    }
}

/// What the reconciler needs from the kernel about devices, async on tokio.
///
/// Use it as a generic bound (`N: Netlink`), not as `dyn Netlink`: the methods return
/// `impl Future + Send` (no boxing, no async-trait), which is not object safe. Implementations
/// are `Send + Sync` so a reconciler holding one can run on a multi-thread runtime.
pub trait Netlink: Send + Sync {
    /// Every address on `device`, except IPv6 link-local (fe80::/10), which the kernel adds
    /// by itself. Sorted.
    fn addresses(&self, device: &str) -> impl Future<Output = Result<Vec<IpCidr>, Error>> + Send;

    /// Adds `addr` to `device`. Already there with the same prefix is Ok.
    fn add_address(
        &self,
        device: &str,
        addr: &IpCidr,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Removes `addr` from `device`. Not there (with that prefix) is Ok.
    fn del_address(
        &self,
        device: &str,
        addr: &IpCidr,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Sets the admin state up (IFF_UP), as `ip link set DEV up`. Already up is Ok.
    fn set_up(&self, device: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Every device of the namespace by name: its admin state and its addresses (as
    /// [`Netlink::addresses`] lists them). One link dump and one address dump, however many
    /// devices the caller then looks at: the kernel answers an address request only with a dump
    /// of every address, so asking device by device costs the square of the device count.
    fn devices(&self) -> impl Future<Output = Result<Devices, Error>> + Send;
}

/// Device name -> what [`Netlink::devices`] read of it.
pub type Devices = BTreeMap<String, DeviceState>;

/// One device, as [`Netlink::devices`] read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// The admin state (IFF_UP), whatever the carrier.
    pub up: bool,
    /// Sorted; IPv6 link-local left out.
    pub addresses: Vec<IpCidr>,
}
