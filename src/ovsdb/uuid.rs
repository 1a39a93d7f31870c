//! The UUID atom (RFC 7047 section 5.1, RFC 4122 text form). Own type rather than a crate: OVSDB
//! only needs parse, print and compare, never generation (the server assigns row UUIDs).

use std::fmt;
use std::str::FromStr;

use super::Error;

/// A row UUID as ovsdb-server prints it: 8-4-4-4-12 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// Groups of hex digits and where the dashes go.
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];

    /// From raw bytes.
    pub const fn from_bytes(b: [u8; 16]) -> Uuid {
        Uuid(b)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the 36-character form; upper-case hex is accepted, as OVS does.
    pub fn parse(s: &str) -> Result<Uuid, Error> {
        let bad = || Error::decode("uuid", format!("{s:?} is not 8-4-4-4-12 hex digits"));
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut groups = s.split('-');
        for want in Self::GROUPS {
            let g = groups.next().ok_or_else(bad)?;
            if g.len() != want || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            for pair in g.as_bytes().chunks(2) {
                // Both bytes are ASCII hex digits, checked above.
                let text = std::str::from_utf8(pair).map_err(|_| bad())?;
                out[n] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
                n += 1;
            }
        }
        if groups.next().is_some() {
            return Err(bad());
        }
        Ok(Uuid(out))
    }
}

impl FromStr for Uuid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Uuid, Error> {
        Uuid::parse(s)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        for (gi, len) in Self::GROUPS.iter().enumerate() {
            if gi > 0 {
                f.write_str("-")?;
            }
            for b in &self.0[i..i + len / 2] {
                write!(f, "{b:02x}")?;
            }
            i += len / 2;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let s = "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11";
        let u = Uuid::parse(s).unwrap();
        assert_eq!(u.to_string(), s);
        assert_eq!(Uuid::parse(&s.to_uppercase()).unwrap(), u);
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a1",
            "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a111",
            "2f5ab8d52f0c-4a0e-9d64-3e7b1f1b1a11-",
            "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a1g",
            "2f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11-00",
            "+f5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11",
            "é5ab8d5-2f0c-4a0e-9d64-3e7b1f1b1a11",
        ] {
            assert!(Uuid::parse(s).is_err(), "{s:?}");
        }
    }
}
