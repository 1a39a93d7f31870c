//! `address_changes`: which addresses to add and remove on one device. Pure: no kernel here.

use super::IpCidr;

/// Given the addresses the config wants on a device, the ones the device has now, and the ones
/// the appliance added earlier (the caller keeps that record), returns `(add, remove)`.
///
/// - `add`: wanted but not present, in the order of `wanted` (for IPv4 the first address the
///   kernel gets on a subnet becomes the primary one, so the config's order is kept).
/// - `remove`: present, added by the appliance earlier, and no longer wanted, in the order of
///   `present`. An address the appliance did not add is never removed, even when unwanted: an
///   operator or another agent put it there.
///
/// Equality is on address and prefix together: 192.0.2.1/24 wanted where 192.0.2.1/16 (ours) is
/// present gives one add and one remove. Apply the removals first: the kernel refuses an IPv6
/// address that is already on the device with another prefix length.
pub fn address_changes(
    wanted: &[IpCidr],
    present: &[IpCidr],
    added_before: &[IpCidr],
) -> (Vec<IpCidr>, Vec<IpCidr>) {
    let mut add: Vec<IpCidr> = Vec::new();
    for cidr in wanted {
        if !present.contains(cidr) && !add.contains(cidr) {
            add.push(cidr.clone());
        }
    }
    let mut remove: Vec<IpCidr> = Vec::new();
    for cidr in present {
        let ours_unwanted = added_before.contains(cidr) && !wanted.contains(cidr);
        if ours_unwanted && !remove.contains(cidr) {
            remove.push(cidr.clone());
        }
    }
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Vec<IpCidr> {
        s.split_whitespace().map(|a| a.parse().unwrap()).collect()
    }

    struct Case {
        name: &'static str,
        wanted: &'static str,
        present: &'static str,
        added_before: &'static str,
        add: &'static str,
        remove: &'static str,
    }

    const CASES: &[Case] = &[
        Case {
            name: "empty device gets everything, in config order",
            wanted: "192.0.2.9/24 192.0.2.1/24 2001:db8::1/64",
            present: "",
            added_before: "",
            add: "192.0.2.9/24 192.0.2.1/24 2001:db8::1/64",
            remove: "",
        },
        Case {
            name: "already matching is a no-op",
            wanted: "192.0.2.1/24 2001:db8::1/64",
            present: "2001:db8::1/64 192.0.2.1/24",
            added_before: "192.0.2.1/24 2001:db8::1/64",
            add: "",
            remove: "",
        },
        Case {
            name: "nothing wanted, nothing ours: no-op",
            wanted: "",
            present: "198.51.100.1/24",
            added_before: "",
            add: "",
            remove: "",
        },
        Case {
            name: "adds only what is missing",
            wanted: "192.0.2.1/24 192.0.2.2/24",
            present: "192.0.2.1/24",
            added_before: "192.0.2.1/24",
            add: "192.0.2.2/24",
            remove: "",
        },
        Case {
            name: "removes ours that are no longer wanted",
            wanted: "192.0.2.1/24",
            present: "192.0.2.1/24 192.0.2.2/24 2001:db8::2/64",
            added_before: "192.0.2.1/24 192.0.2.2/24 2001:db8::2/64",
            add: "",
            remove: "192.0.2.2/24 2001:db8::2/64",
        },
        Case {
            name: "leaves foreign addresses alone",
            wanted: "192.0.2.1/24",
            present: "192.0.2.1/24 198.51.100.7/24 2001:db8:f::1/48",
            added_before: "192.0.2.1/24",
            add: "",
            remove: "",
        },
        Case {
            name: "removes ours, keeps foreign, adds new",
            wanted: "192.0.2.3/24",
            present: "192.0.2.2/24 198.51.100.7/24",
            added_before: "192.0.2.2/24",
            add: "192.0.2.3/24",
            remove: "192.0.2.2/24",
        },
        Case {
            name: "a foreign address that is also wanted is not re-added",
            wanted: "198.51.100.7/24",
            present: "198.51.100.7/24",
            added_before: "",
            add: "",
            remove: "",
        },
        Case {
            name: "ours but already gone from the device: nothing to remove",
            wanted: "",
            present: "",
            added_before: "192.0.2.2/24",
            add: "",
            remove: "",
        },
        Case {
            name: "prefix change of ours: add new, remove old",
            wanted: "2001:db8::1/64",
            present: "2001:db8::1/48",
            added_before: "2001:db8::1/48",
            add: "2001:db8::1/64",
            remove: "2001:db8::1/48",
        },
        Case {
            name: "prefix differs from a foreign one: add, never remove theirs",
            wanted: "192.0.2.1/24",
            present: "192.0.2.1/16",
            added_before: "",
            add: "192.0.2.1/24",
            remove: "",
        },
        Case {
            name: "duplicates come out once",
            wanted: "192.0.2.1/24 192.0.2.1/24",
            present: "192.0.2.2/24 192.0.2.2/24",
            added_before: "192.0.2.2/24",
            add: "192.0.2.1/24",
            remove: "192.0.2.2/24",
        },
    ];

    #[test]
    fn table() {
        for c in CASES {
            let (add, remove) =
                address_changes(&list(c.wanted), &list(c.present), &list(c.added_before));
            assert_eq!(add, list(c.add), "{}: add", c.name);
            assert_eq!(remove, list(c.remove), "{}: remove", c.name);
        }
    }

    #[test]
    fn never_removes_what_was_not_added_before() {
        let present = list("192.0.2.1/24 192.0.2.2/24 2001:db8::1/64");
        for ours in 0..=present.len() {
            let added_before = &present[..ours];
            let (_, remove) = address_changes(&[], &present, added_before);
            assert!(remove.iter().all(|r| added_before.contains(r)));
            assert_eq!(remove.len(), ours);
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A small pool so that the three lists overlap often.
        fn pool() -> Vec<IpCidr> {
            list("192.0.2.1/24 192.0.2.1/16 192.0.2.2/24 2001:db8::1/64 2001:db8::2/64 10.0.0.1/8")
        }

        fn subset() -> impl Strategy<Value = Vec<IpCidr>> {
            proptest::collection::vec(0..pool().len(), 0..6)
                .prop_map(|ix| ix.into_iter().map(|i| pool()[i].clone()).collect())
        }

        proptest! {
            #[test]
            fn applying_the_changes_gives_wanted_and_keeps_foreign(
                wanted in subset(), present in subset(), added_before in subset()
            ) {
                let (add, remove) = address_changes(&wanted, &present, &added_before);
                let mut after: Vec<IpCidr> = present.clone();
                after.retain(|a| !remove.contains(a));
                after.extend(add.iter().cloned());
                for w in &wanted {
                    prop_assert!(after.contains(w), "{w} wanted but missing");
                }
                for p in present.iter().filter(|p| !added_before.contains(p)) {
                    prop_assert!(after.contains(p), "foreign {p} removed");
                }
                for a in &after {
                    prop_assert!(wanted.contains(a) || !added_before.contains(a), "stale {a} kept");
                }
                // A second pass over the result asks for nothing more.
                let (add2, remove2) = address_changes(&wanted, &after, &added_before);
                prop_assert!(add2.is_empty() && remove2.is_empty());
            }
        }
    }
}
