use super::*;

fn cidr(s: &str) -> IpCidr {
    s.parse().unwrap()
}

fn add(device: &str, addr: &str) -> Call {
    Call::AddAddress {
        device: device.into(),
        addr: cidr(addr),
    }
}

fn del(device: &str, addr: &str) -> Call {
    Call::DelAddress {
        device: device.into(),
        addr: cidr(addr),
    }
}

#[tokio::test]
async fn records_changes_in_order_and_keeps_state() {
    let nl = FakeNetlink::new();
    nl.add_device("mgmt0");
    nl.add_address("mgmt0", &cidr("192.0.2.1/24"))
        .await
        .unwrap();
    nl.add_address("mgmt0", &cidr("2001:db8::1/64"))
        .await
        .unwrap();
    nl.set_up("mgmt0").await.unwrap();
    nl.del_address("mgmt0", &cidr("192.0.2.1/24"))
        .await
        .unwrap();

    assert_eq!(
        nl.calls(),
        [
            add("mgmt0", "192.0.2.1/24"),
            add("mgmt0", "2001:db8::1/64"),
            Call::SetUp {
                device: "mgmt0".into()
            },
            del("mgmt0", "192.0.2.1/24"),
        ]
    );
    assert_eq!(
        nl.addresses("mgmt0").await.unwrap(),
        [cidr("2001:db8::1/64")]
    );
    assert!(nl.is_up("mgmt0"));
    let devices = nl.devices().await.unwrap();
    let want = DeviceState {
        up: true,
        addresses: vec![cidr("2001:db8::1/64")],
    };
    assert_eq!(devices["mgmt0"], want);
}

#[tokio::test]
async fn a_new_device_is_down_and_empty() {
    let nl = FakeNetlink::new();
    nl.add_device("d0");
    assert!(!nl.is_up("d0"));
    assert!(nl.addresses("d0").await.unwrap().is_empty());
    assert_eq!(nl.devices().await.unwrap()["d0"], DeviceState::default());
    assert!(nl.calls().is_empty());
}

#[tokio::test]
async fn add_and_del_are_idempotent() {
    let nl = FakeNetlink::new();
    nl.add_device("d0");
    let a = cidr("192.0.2.1/24");
    nl.add_address("d0", &a).await.unwrap();
    nl.add_address("d0", &a).await.unwrap();
    assert_eq!(nl.addresses("d0").await.unwrap(), std::slice::from_ref(&a));
    nl.del_address("d0", &a).await.unwrap();
    nl.del_address("d0", &a).await.unwrap();
    // Deleting with another prefix length deletes nothing, as in the kernel.
    nl.add_address("d0", &a).await.unwrap();
    nl.del_address("d0", &cidr("192.0.2.1/16")).await.unwrap();
    assert_eq!(nl.addresses("d0").await.unwrap(), [a]);
    assert_eq!(nl.calls().len(), 6);
}

#[tokio::test]
async fn missing_device_is_no_such_device_and_still_recorded() {
    let nl = FakeNetlink::new();
    let a = cidr("192.0.2.1/24");
    let no_such =
        |r: Result<(), Error>| matches!(r, Err(Error::NoSuchDevice { device }) if device == "gone");
    assert!(no_such(nl.add_address("gone", &a).await));
    assert!(no_such(nl.del_address("gone", &a).await));
    assert!(no_such(nl.set_up("gone").await));
    assert!(!nl.devices().await.unwrap().contains_key("gone"));
    assert!(matches!(
        nl.addresses("gone").await,
        Err(Error::NoSuchDevice { .. })
    ));
    assert_eq!(nl.calls().len(), 3);
    let text = nl.set_up("gone").await.unwrap_err().to_string();
    assert!(text.contains("gone"), "{text}");
}

#[tokio::test]
async fn device_that_comes_and_goes() {
    let nl = FakeNetlink::new();
    assert!(nl.set_up("p1").await.is_err());
    nl.add_device("p1");
    nl.set_up("p1").await.unwrap();
    assert!(nl.devices().await.unwrap()["p1"].up);
    nl.remove_device("p1");
    assert!(!nl.devices().await.unwrap().contains_key("p1"));
}

#[tokio::test]
async fn foreign_addresses_are_listed_but_not_recorded() {
    let nl = FakeNetlink::new();
    nl.add_device("d0");
    nl.put_address("d0", &cidr("198.51.100.7/24"));
    nl.put_address("d0", &cidr("fe80::1/64"));
    assert_eq!(nl.addresses("d0").await.unwrap(), [cidr("198.51.100.7/24")]);
    let devices = nl.devices().await.unwrap();
    assert_eq!(devices["d0"].addresses, [cidr("198.51.100.7/24")]);
    assert!(nl.calls().is_empty());
    assert_eq!(nl.dumps(), 1);
}

#[tokio::test]
async fn ipv6_keeps_one_prefix_per_address_ipv4_does_not() {
    let nl = FakeNetlink::new();
    nl.add_device("d0");
    nl.add_address("d0", &cidr("2001:db8::1/48")).await.unwrap();
    let err = nl
        .add_address("d0", &cidr("2001:db8::1/64"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AddressConflict { .. }), "{err}");
    nl.add_address("d0", &cidr("192.0.2.1/24")).await.unwrap();
    nl.add_address("d0", &cidr("192.0.2.1/16")).await.unwrap();
    assert_eq!(nl.addresses("d0").await.unwrap().len(), 3);
}

#[tokio::test]
async fn take_calls_starts_a_fresh_record() {
    let nl = FakeNetlink::new();
    nl.add_device("d0");
    nl.set_up("d0").await.unwrap();
    assert_eq!(nl.take_calls().len(), 1);
    assert!(nl.calls().is_empty());
}

/// The reconciler is generic over `N: Netlink` and may run on a multi-thread runtime.
#[tokio::test]
async fn usable_as_a_generic_send_bound() {
    async fn bring_up<N: Netlink>(nl: &N, device: &str) -> Result<bool, Error> {
        nl.set_up(device).await?;
        Ok(nl.devices().await?.get(device).is_some_and(|d| d.up))
    }
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let nl = std::sync::Arc::new(FakeNetlink::new());
    nl.add_device("d0");
    let task = {
        let nl = nl.clone();
        tokio::spawn(async move { bring_up(&*nl, "d0").await })
    };
    assert!(assert_send(task).await.unwrap().unwrap());
}
