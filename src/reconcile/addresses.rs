//! Internal ports' addresses and link state, after each pass: the addresses the config names are
//! set, the link is brought up, and addresses this appliance added earlier that the config no
//! longer names are removed. Addresses put there by anyone else are left alone.
//!
//! What the appliance added is remembered in `<db_dir>/ovs-appliance-addresses.json`, next to the
//! database, so a restart does not forget it.

use super::model::{Desired, DesiredPort};
use super::session::Session;
use super::watch::AfterPass;
use crate::netlink::{address_changes, DeviceState, IpCidr, Netlink};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tracing::{debug, info, warn};

/// Device name -> addresses this appliance added to it.
type Record = BTreeMap<String, Vec<IpCidr>>;

/// Reads the record. None there is an empty record; one that cannot be read or parsed is too,
/// but said loudly, and a corrupt file is kept aside (`<name>.corrupt-<unix seconds>`) for a
/// person to read rather than overwritten by the next save: the addresses it listed are
/// forgotten, so they are no longer removed when the config drops them.
fn load_record(path: &Path) -> Record {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Record::new(),
        Err(e) => {
            warn!(path = %path.display(), %e, "cannot read the record of addresses this appliance added; starting from none");
            return Record::new();
        }
    };
    let raw = match serde_json::from_str::<BTreeMap<String, Vec<String>>>(&text) {
        Ok(raw) => raw,
        Err(e) => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".corrupt-{secs}"));
            let aside = PathBuf::from(aside);
            match std::fs::rename(path, &aside) {
                Ok(()) => {
                    warn!(path = %path.display(), kept = %aside.display(), %e, "the record of addresses this appliance added is corrupt; kept aside, starting from none (addresses it listed will not be removed)")
                }
                Err(re) => {
                    warn!(path = %path.display(), %e, rename_error = %re, "the record of addresses this appliance added is corrupt and could not be kept aside; starting from none")
                }
            }
            return Record::new();
        }
    };
    raw.into_iter()
        .map(|(dev, addrs)| {
            let parsed = addrs
                .iter()
                .filter_map(|a| match a.parse() {
                    Ok(cidr) => Some(cidr),
                    Err(e) => {
                        warn!(path = %path.display(), device = %dev, address = %a, %e, "an address in the record is not an address; forgotten");
                        None
                    }
                })
                .collect();
            (dev, parsed)
        })
        .collect()
}

pub struct Addresses<N: Netlink> {
    netlink: N,
    record_path: PathBuf,
    record: Record,
}

impl<N: Netlink> Addresses<N> {
    pub fn new(netlink: N, record_path: PathBuf) -> Self {
        let record = load_record(&record_path);
        Self {
            netlink,
            record_path,
            record,
        }
    }

    /// Brings every configured internal port to its addresses and up. Devices that do not
    /// exist yet are skipped (the next pass, or the status update that shows them, tries
    /// again). The devices are read once for all ports.
    pub async fn apply(&mut self, desired: &Desired) {
        let before = self.record.clone();
        let mut seen = Vec::new();
        let mut ports: Vec<&DesiredPort> = Vec::new();
        for bridge in desired.bridges.values() {
            // The bridge's own port is left as OVS makes it.
            ports.extend(
                bridge
                    .ports
                    .values()
                    .filter(|p| p.name != bridge.name && is_internal(p)),
            );
        }
        // No internal port: nothing to read (the record may still have ports to forget).
        let devices = if ports.is_empty() {
            Default::default()
        } else {
            match self.netlink.devices().await {
                Ok(devices) => devices,
                Err(e) => {
                    warn!("{e}");
                    return;
                }
            }
        };
        for port in ports {
            seen.push(port.name.clone());
            let Some(state) = devices.get(&port.name) else {
                debug!(device = %port.name, "no such device yet: ovs-vswitchd has not created it");
                continue;
            };
            if let Err(e) = self.device(port, state).await {
                match e {
                    crate::netlink::Error::NoSuchDevice { .. } => {
                        debug!(device = %port.name, "{e}")
                    }
                    _ => warn!(device = %port.name, "{e}"),
                }
            }
        }
        // Ports no longer configured: OVS removed their devices, and our addresses with them.
        self.record.retain(|dev, _| seen.contains(dev));
        if self.record != before {
            self.save();
        }
    }

    async fn device(
        &mut self,
        port: &DesiredPort,
        state: &DeviceState,
    ) -> Result<(), crate::netlink::Error> {
        let dev = port.name.as_str();
        let wanted: Vec<IpCidr> = port
            .addresses
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let present = &state.addresses;
        let ours = self.record.get(dev).cloned().unwrap_or_default();
        let (add, remove) = address_changes(&wanted, present, &ours);
        // Removals first: the kernel keeps one prefix length per IPv6 address on a device.
        for addr in &remove {
            self.netlink.del_address(dev, addr).await?;
            info!(device = dev, address = %addr, "removed an address the config no longer names");
        }
        for addr in &add {
            self.netlink.add_address(dev, addr).await?;
            info!(device = dev, address = %addr, "added address");
        }
        let mut now: Vec<IpCidr> = ours.into_iter().filter(|a| wanted.contains(a)).collect();
        now.extend(add);
        now.sort();
        now.dedup();
        if now.is_empty() {
            self.record.remove(dev);
        } else {
            self.record.insert(dev.to_string(), now);
        }
        if !state.up {
            self.netlink.set_up(dev).await?;
            info!(device = dev, "link set up");
        }
        Ok(())
    }

    fn save(&self) {
        let raw: BTreeMap<&String, Vec<String>> = self
            .record
            .iter()
            .map(|(dev, addrs)| (dev, addrs.iter().map(ToString::to_string).collect()))
            .collect();
        let text = serde_json::to_string_pretty(&raw).unwrap_or_default();
        let tmp = self.record_path.with_extension("json.tmp");
        let written =
            std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.record_path));
        if let Err(e) = written {
            warn!(path = %self.record_path.display(), %e, "failed to record the addresses this appliance added");
        }
    }

    pub fn netlink(&self) -> &N {
        &self.netlink
    }
}

fn is_internal(port: &DesiredPort) -> bool {
    port.interfaces.len() == 1
        && port
            .interfaces
            .values()
            .all(|row| row.get("type").and_then(|t| t.as_str()) == Some("internal"))
}

impl<N: Netlink> AfterPass for Addresses<N> {
    async fn after_pass(&mut self, _session: &Session, desired: &Desired) {
        self.apply(desired).await;
    }
}

/// For runs without netlink (it could not be opened): nothing after a pass.
pub struct NoHooks;

impl AfterPass for NoHooks {
    async fn after_pass(&mut self, _session: &Session, _desired: &Desired) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::netlink::{Call, FakeNetlink};
    use crate::preflight::Datapath;

    fn desired(addresses: &str) -> Desired {
        let toml = format!(
            "[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"mgmt0\"\ntype = \"internal\"\naddresses = [{addresses}]\n[[bridges.ports]]\nname = \"eth1\"\n"
        );
        let config = Config::from_toml(&toml, std::path::Path::new("t")).unwrap();
        Desired::from_config(&config, Datapath::Netdev)
    }

    fn cidr(s: &str) -> IpCidr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn sets_addresses_brings_up_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("addresses.json");
        let fake = FakeNetlink::new();
        fake.add_device("mgmt0");
        fake.put_address("mgmt0", &cidr("198.51.100.5/24"));
        let mut hook = Addresses::new(fake, record.clone());
        hook.apply(&desired("\"192.0.2.1/24\", \"2001:db8::1/64\""))
            .await;
        assert_eq!(
            hook.netlink().take_calls(),
            [
                Call::AddAddress {
                    device: "mgmt0".into(),
                    addr: cidr("192.0.2.1/24")
                },
                Call::AddAddress {
                    device: "mgmt0".into(),
                    addr: cidr("2001:db8::1/64")
                },
                Call::SetUp {
                    device: "mgmt0".into()
                },
            ]
        );
        // Applied again: nothing to do.
        hook.apply(&desired("\"192.0.2.1/24\", \"2001:db8::1/64\""))
            .await;
        assert!(hook.netlink().take_calls().is_empty());

        // A new appliance process reads what the old one added, and removes only that.
        let fake = FakeNetlink::new();
        fake.add_device("mgmt0");
        for a in ["198.51.100.5/24", "192.0.2.1/24", "2001:db8::1/64"] {
            fake.put_address("mgmt0", &cidr(a));
        }
        let mut hook = Addresses::new(fake, record.clone());
        hook.apply(&desired("\"192.0.2.1/24\"")).await;
        let calls = hook.netlink().take_calls();
        assert!(
            calls.contains(&Call::DelAddress {
                device: "mgmt0".into(),
                addr: cidr("2001:db8::1/64")
            }),
            "{calls:?}"
        );
        assert!(!calls.iter().any(
            |c| matches!(c, Call::DelAddress { addr, .. } if *addr == cidr("198.51.100.5/24"))
        ));
        let saved = std::fs::read_to_string(&record).unwrap();
        assert!(
            saved.contains("192.0.2.1/24") && !saved.contains("2001:db8"),
            "{saved}"
        );
    }

    #[tokio::test]
    async fn a_corrupt_record_is_kept_aside_and_the_rest_starts_from_none() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("addresses.json");
        std::fs::write(&record, "{\"mgmt0\": [\"192.0.2.1/24\"").unwrap();
        let fake = FakeNetlink::new();
        fake.add_device("mgmt0");
        let mut hook = Addresses::new(fake, record.clone());
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("addresses.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "kept aside: {aside:?}");
        let kept = std::fs::read_to_string(dir.path().join(&aside[0])).unwrap();
        assert_eq!(kept, "{\"mgmt0\": [\"192.0.2.1/24\"");
        // It works on from an empty record, and saves a good one.
        hook.apply(&desired("\"192.0.2.1/24\"")).await;
        let saved = std::fs::read_to_string(&record).unwrap();
        assert!(saved.contains("192.0.2.1/24"), "{saved}");
    }

    #[test]
    fn an_entry_that_is_no_address_is_dropped_and_the_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("addresses.json");
        std::fs::write(&record, r#"{"mgmt0": ["192.0.2.1/24", "bogus"]}"#).unwrap();
        assert_eq!(load_record(&record)["mgmt0"], [cidr("192.0.2.1/24")]);
        assert!(load_record(&dir.path().join("none.json")).is_empty());
    }

    #[tokio::test]
    async fn a_missing_device_is_retried_later_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut hook = Addresses::new(FakeNetlink::new(), dir.path().join("a.json"));
        hook.apply(&desired("\"192.0.2.1/24\"")).await;
        hook.netlink().add_device("mgmt0");
        hook.apply(&desired("\"192.0.2.1/24\"")).await;
        let calls = hook.netlink().take_calls();
        assert!(
            calls.contains(&Call::AddAddress {
                device: "mgmt0".into(),
                addr: cidr("192.0.2.1/24")
            }),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn every_port_is_served_from_one_read_of_the_devices() {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = "[[bridges]]\nname = \"br0\"\n".to_string();
        for i in 0..50 {
            toml += &format!("[[bridges.ports]]\nname = \"p{i}\"\ntype = \"internal\"\n");
        }
        let config = Config::from_toml(&toml, std::path::Path::new("t")).unwrap();
        let desired = Desired::from_config(&config, Datapath::Netdev);
        let fake = FakeNetlink::new();
        for i in 0..50 {
            fake.add_device(&format!("p{i}"));
        }
        let mut hook = Addresses::new(fake, dir.path().join("a.json"));
        hook.apply(&desired).await;
        assert_eq!(hook.netlink().dumps(), 1);
        assert_eq!(hook.netlink().take_calls().len(), 50, "each brought up");
        assert!((0..50).all(|i| hook.netlink().is_up(&format!("p{i}"))));
        hook.apply(&desired).await;
        assert_eq!(hook.netlink().dumps(), 2);
        assert!(hook.netlink().take_calls().is_empty());
        // A config without internal ports reads nothing.
        let config = Config::from_toml("[[bridges]]\nname = \"br0\"\n", std::path::Path::new("t"));
        hook.apply(&Desired::from_config(&config.unwrap(), Datapath::Netdev))
            .await;
        assert_eq!(hook.netlink().dumps(), 2);
    }
}
