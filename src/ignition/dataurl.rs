//! RFC 2397 data URLs, as Ignition reads file contents: `data:,<percent-encoded bytes>` out, and
//! both that and `data:[<mediatype>];base64,<data>` in (what Butane writes for some files).

/// Bytes left as they are in the percent-encoded form: RFC 3986 unreserved characters.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `data:,` followed by the bytes, every byte but the unreserved ones as `%XX`.
pub fn encode(bytes: &[u8]) -> String {
    let mut url = String::with_capacity(6 + bytes.len() * 2);
    url.push_str("data:,");
    for &b in bytes {
        if unreserved(b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a data URL (no `data:` prefix)")]
    NotData,
    #[error("data URL has no `,` after its media type")]
    NoComma,
    #[error("bad percent escape at byte {0}")]
    Percent(usize),
    #[error("bad base64 at byte {0}")]
    Base64(usize),
}

/// The bytes a data URL carries.
pub fn decode(url: &str) -> Result<Vec<u8>, DecodeError> {
    let rest = url.strip_prefix("data:").ok_or(DecodeError::NotData)?;
    let (meta, data) = rest.split_once(',').ok_or(DecodeError::NoComma)?;
    let raw = percent_decode(data.as_bytes())?;
    if meta.ends_with(";base64") {
        base64_decode(&raw)
    } else {
        Ok(raw)
    }
}

fn percent_decode(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'%' {
            let hex = data.get(i + 1..i + 3).ok_or(DecodeError::Percent(i))?;
            let text = std::str::from_utf8(hex).map_err(|_| DecodeError::Percent(i))?;
            out.push(u8::from_str_radix(text, 16).map_err(|_| DecodeError::Percent(i))?);
            i += 3;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn base64_value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some((c - b'A') as u32),
        b'a'..=b'z' => Some((c - b'a') as u32 + 26),
        b'0'..=b'9' => Some((c - b'0') as u32 + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Standard or URL-safe alphabet, padding optional.
fn base64_decode(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let end = data.iter().rposition(|&c| c != b'=').map_or(0, |p| p + 1);
    let mut out = Vec::with_capacity(end * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, &c) in data[..end].iter().enumerate() {
        acc = (acc << 6) | base64_value(c).ok_or(DecodeError::Base64(i))?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err(DecodeError::Base64(end));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn encodes_unit_text_readably() {
        assert_eq!(encode(b"a b\n"), "data:,a%20b%0A");
        assert_eq!(encode(b"openvswitch\n"), "data:,openvswitch%0A");
    }

    #[test]
    fn decodes_base64_with_and_without_media_type() {
        assert_eq!(decode("data:;base64,aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode("data:text/plain;base64,aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode("data:;base64,").unwrap(), b"");
    }

    #[test]
    fn rejects_malformed_urls() {
        assert_eq!(decode("http://x"), Err(DecodeError::NotData));
        assert_eq!(decode("data:abc"), Err(DecodeError::NoComma));
        assert_eq!(decode("data:,%4"), Err(DecodeError::Percent(0)));
        assert_eq!(decode("data:,%zz"), Err(DecodeError::Percent(0)));
        assert_eq!(decode("data:;base64,a!"), Err(DecodeError::Base64(1)));
        assert_eq!(decode("data:;base64,a"), Err(DecodeError::Base64(1)));
    }
}
