//! `FakeNetlink`: a recording, stateful stand-in for the kernel, for tests of the reconciler.

use super::{DeviceState, Devices, Error, IpCidr, Netlink};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

/// One change asked of the fake, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    AddAddress { device: String, addr: IpCidr },
    DelAddress { device: String, addr: IpCidr },
    SetUp { device: String },
}

#[derive(Debug, Default)]
struct Device {
    /// In the order added, as the kernel lists them.
    addresses: Vec<IpCidr>,
    up: bool,
}

#[derive(Debug, Default)]
struct State {
    devices: BTreeMap<String, Device>,
    calls: Vec<Call>,
    /// How many times every device was read at once.
    dumps: usize,
}

/// Devices exist only once the test adds them, as an internal port exists only once
/// ovs-vswitchd has created it. Every change is recorded, even one that fails (the real one
/// would have sent it too); reads are not recorded. Methods take `&self` so a test can add a
/// device while the code under test holds a reference.
#[derive(Debug, Default)]
pub struct FakeNetlink {
    state: Mutex<State>,
}

impl FakeNetlink {
    pub fn new() -> Self {
        Self::default()
    }

    /// A device appears, down and without addresses.
    pub fn add_device(&self, name: &str) {
        self.lock().devices.entry(name.to_string()).or_default();
    }

    /// A device disappears (its port was deleted).
    pub fn remove_device(&self, name: &str) {
        self.lock().devices.remove(name);
    }

    /// Puts an address on a device without recording a call: one that someone else added.
    /// Panics if the device does not exist, since that is a mistake in the test.
    pub fn put_address(&self, device: &str, addr: &IpCidr) {
        let mut state = self.lock();
        let dev = state
            .devices
            .get_mut(device)
            .expect("put_address: add_device first");
        if !dev.addresses.contains(addr) {
            dev.addresses.push(addr.clone());
        }
    }

    /// Whether `device` exists and is up.
    pub fn is_up(&self, device: &str) -> bool {
        self.lock().devices.get(device).is_some_and(|d| d.up)
    }

    /// How many times [`Netlink::devices`] was called.
    pub fn dumps(&self) -> usize {
        self.lock().dumps
    }

    /// Every change asked so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Every change asked so far, forgetting them: for checking one reconcile pass at a time.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.lock().calls)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; the state is still
        // the best account of what happened.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn device_of<'a>(state: &'a mut State, name: &str) -> Result<&'a mut Device, Error> {
    state
        .devices
        .get_mut(name)
        .ok_or_else(|| Error::NoSuchDevice {
            device: name.to_string(),
        })
}

/// A device's addresses as [`Netlink::addresses`] lists them: sorted, IPv6 link-local left out.
fn listed(dev: &Device) -> Vec<IpCidr> {
    let mut list: Vec<IpCidr> = dev
        .addresses
        .iter()
        .filter(|a| !a.is_link_local())
        .cloned()
        .collect();
    list.sort();
    list
}

/// Adds as the kernel does: an IPv6 address has one prefix length per device, while IPv4 may
/// hold the same address under two prefix lengths.
fn add_to(dev: &mut Device, device: &str, addr: &IpCidr) -> Result<(), Error> {
    if dev.addresses.contains(addr) {
        return Ok(());
    }
    let clash = dev
        .addresses
        .iter()
        .find(|a| matches!(a.addr, IpAddr::V6(_)) && a.addr == addr.addr);
    if let Some(present) = clash {
        return Err(Error::AddressConflict {
            device: device.to_string(),
            addr: addr.clone(),
            present: present.clone(),
        });
    }
    dev.addresses.push(addr.clone());
    Ok(())
}

impl Netlink for FakeNetlink {
    async fn addresses(&self, device: &str) -> Result<Vec<IpCidr>, Error> {
        Ok(listed(device_of(&mut self.lock(), device)?))
    }

    async fn add_address(&self, device: &str, addr: &IpCidr) -> Result<(), Error> {
        let mut state = self.lock();
        state.calls.push(Call::AddAddress {
            device: device.to_string(),
            addr: addr.clone(),
        });
        add_to(device_of(&mut state, device)?, device, addr)
    }

    async fn del_address(&self, device: &str, addr: &IpCidr) -> Result<(), Error> {
        let mut state = self.lock();
        state.calls.push(Call::DelAddress {
            device: device.to_string(),
            addr: addr.clone(),
        });
        device_of(&mut state, device)?
            .addresses
            .retain(|a| a != addr);
        Ok(())
    }

    async fn set_up(&self, device: &str) -> Result<(), Error> {
        let mut state = self.lock();
        state.calls.push(Call::SetUp {
            device: device.to_string(),
        });
        device_of(&mut state, device)?.up = true;
        Ok(())
    }

    async fn devices(&self) -> Result<Devices, Error> {
        let mut state = self.lock();
        state.dumps += 1;
        Ok(state
            .devices
            .iter()
            .map(|(name, dev)| {
                let (up, addresses) = (dev.up, listed(dev));
                (name.clone(), DeviceState { up, addresses })
            })
            .collect())
    }
}

#[cfg(test)]
#[path = "fake_tests.rs"]
mod tests;
