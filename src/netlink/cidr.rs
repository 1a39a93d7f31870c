//! `IpCidr`: an interface address with its prefix length, as the config file and `ip addr` write it.

use super::Error;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An interface address with prefix, e.g. 192.0.2.1/24 or 2001:db8::1/64.
///
/// The host bits are kept: this is the address a device holds, not the network it is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpCidr {
    /// The address itself.
    pub addr: IpAddr,
    /// Prefix length: at most 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
}

impl IpCidr {
    /// An address with a prefix length checked against the address family.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, Error> {
        match prefix_too_long(&addr, prefix) {
            Some(reason) => Err(Error::InvalidCidr {
                input: format!("{addr}/{prefix}"),
                reason,
            }),
            None => Ok(Self { addr, prefix }),
        }
    }

    /// True for IPv6 link-local (fe80::/10): the kernel puts those on every device by itself,
    /// so they are neither reported nor managed.
    pub fn is_link_local(&self) -> bool {
        matches!(self.addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
    }
}

/// Why `prefix` cannot go with `addr`, if it cannot.
fn prefix_too_long(addr: &IpAddr, prefix: u8) -> Option<String> {
    let (max, family) = match addr {
        IpAddr::V4(_) => (32, "IPv4"),
        IpAddr::V6(_) => (128, "IPv6"),
    };
    (prefix > max)
        .then(|| format!("prefix {prefix} is longer than {max}, the most {family} allows"))
}

impl FromStr for IpCidr {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidCidr {
            input: input.to_string(),
            reason,
        };
        let Some((addr, prefix)) = input.split_once('/') else {
            return Err(invalid(
                "missing \"/prefix\" (write e.g. 192.0.2.1/24)".into(),
            ));
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| invalid(format!("{addr:?} is not an IP address")))?;
        // u8::from_str accepts "+24"; the config should say exactly what `ip addr` prints.
        let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
        let prefix: u8 = match prefix.parse() {
            Ok(p) if digits => p,
            _ => return Err(invalid(format!("prefix {prefix:?} is not a number"))),
        };
        match prefix_too_long(&addr, prefix) {
            Some(reason) => Err(invalid(reason)),
            None => Ok(Self { addr, prefix }),
        }
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for text in [
            "192.0.2.1/24",
            "0.0.0.0/0",
            "10.0.0.1/32",
            "2001:db8::1/64",
            "::1/128",
            "fe80::1/64",
        ] {
            let cidr: IpCidr = text.parse().unwrap();
            assert_eq!(cidr.to_string(), text);
        }
    }

    #[test]
    fn keeps_host_bits() {
        let cidr: IpCidr = "192.0.2.77/24".parse().unwrap();
        assert_eq!(cidr.addr, "192.0.2.77".parse::<IpAddr>().unwrap());
        assert_eq!(cidr.prefix, 24);
    }

    #[test]
    fn prints_ipv6_in_canonical_form() {
        let cidr: IpCidr = "2001:0db8:0000::0001/64".parse().unwrap();
        assert_eq!(cidr.to_string(), "2001:db8::1/64");
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            ("192.0.2.1/33", "prefix 33 is longer than 32"),
            ("2001:db8::1/129", "prefix 129 is longer than 128"),
            ("192.0.2.1", "missing \"/prefix\""),
            ("2001:db8::1", "missing \"/prefix\""),
            ("garbage", "missing \"/prefix\""),
            ("garbage/24", "\"garbage\" is not an IP address"),
            ("192.0.2/24", "\"192.0.2\" is not an IP address"),
            ("/24", "\"\" is not an IP address"),
            ("192.0.2.1/", "prefix \"\" is not a number"),
            ("192.0.2.1/x", "prefix \"x\" is not a number"),
            ("192.0.2.1/+24", "prefix \"+24\" is not a number"),
            ("192.0.2.1/-1", "prefix \"-1\" is not a number"),
            ("192.0.2.1/300", "prefix \"300\" is not a number"),
            ("192.0.2.1/24/1", "prefix \"24/1\" is not a number"),
            (" 192.0.2.1/24", "\" 192.0.2.1\" is not an IP address"),
            ("", "missing \"/prefix\""),
        ];
        for (input, want) in cases {
            let err = input.parse::<IpCidr>().unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err:?} lacks {want:?}");
            assert!(err.contains(&format!("{input:?}")), "{input:?}: {err:?}");
        }
    }

    #[test]
    fn new_checks_the_family_limit() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(IpCidr::new(v4, 32).is_ok());
        assert!(IpCidr::new(v4, 33).is_err());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(IpCidr::new(v6, 128).is_ok());
        assert!(IpCidr::new(v6, 129).is_err());
    }

    #[test]
    fn link_local_is_fe80_slash_10_only() {
        let ll = |s: &str| s.parse::<IpCidr>().unwrap().is_link_local();
        assert!(ll("fe80::1/64"));
        assert!(ll("febf::1/64"));
        assert!(!ll("fec0::1/64"));
        assert!(!ll("2001:db8::1/64"));
        assert!(!ll("169.254.0.1/16"));
    }

    #[test]
    fn orders_v4_before_v6_then_by_prefix() {
        let mut v: Vec<IpCidr> = ["2001:db8::1/64", "192.0.2.1/24", "192.0.2.1/16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        let printed: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["192.0.2.1/16", "192.0.2.1/24", "2001:db8::1/64"]);
    }
}
