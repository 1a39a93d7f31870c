//! Framing of a byte stream into JSON values, shared by the OVSDB client and unixctl.
//!
//! OVS's JSON-RPC (RFC 7047 section 4) has no length prefix or delimiter: values are simply
//! concatenated on the stream. A read may hold several values, or part of one, so this module scans
//! bytes and only cuts where a top-level object or array closes. It owns no socket.

use serde_json::Value;

/// Largest single JSON value accepted, in bytes. A monitor's initial dump of a big database can
/// be tens of MiB (about 2 KiB per interface with its statistics); anything far beyond that is a
/// broken or hostile peer, and buffering it forever would only move the failure to the OOM
/// killer.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;

/// Largest single JSON value accepted, in the memory it would take once parsed (estimated while
/// scanning, see [`Framer`]). Bytes alone do not bound memory: parsed, a small object is a
/// B-tree node of about 650 bytes, so a 105 MB reply of small objects took 11.5 GB (issue 14).
pub const DEFAULT_MAX_PARSED_BYTES: usize = 512 * 1024 * 1024;

/// What serde_json's `Value` costs, measured on x86-64 (glibc, serde_json 1 without
/// preserve_order) by parsing a million of each: any value 32 bytes (64 counted, for the
/// spare capacity of the Vec that holds it), an array a Vec of at least 4 slots (176 bytes for
/// `[0]`), an object a B-tree leaf (704 for `{"a":0}`), a string a heap block of at least 32.
const VALUE_COST: usize = 64;
const ARRAY_COST: usize = 160;
const OBJECT_COST: usize = 656;
const STRING_COST: usize = 32;

/// Why the stream cannot be split into JSON values. Every variant is fatal for the connection:
/// after garbage there is no way to find the start of the next value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    /// Only objects and arrays can start a JSON-RPC message.
    #[error("unexpected byte 0x{byte:02x} at top level of the JSON stream (expected '{{' or '[')")]
    UnexpectedByte { byte: u8 },
    /// A closing bracket that does not match the open one.
    #[error("mismatched bracket 0x{byte:02x} in JSON stream")]
    Mismatched { byte: u8 },
    /// The value grew past the configured limit.
    #[error("JSON value larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The value would take more memory than the limit once parsed.
    #[error("JSON value would take more than {limit} bytes of memory once parsed (so far {estimate} bytes: many small values)")]
    TooManyValues { limit: usize, estimate: usize },
    /// The brackets balanced but serde_json rejected the text.
    #[error("invalid JSON value: {reason}")]
    Invalid { reason: String },
}

/// Incremental splitter. Feed bytes with [`Framer::push`], take values with [`Framer::next_value`].
///
/// Scanning resumes where it stopped, so a value split over many reads is scanned once in total.
/// While scanning it counts what the value will cost once parsed (every `,` and `:` starts a
/// value, every `[`, `{` and `"` adds its own allocation) and refuses it past `max_parsed`,
/// before anything is parsed.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the unconsumed region of `buf`.
    start: usize,
    /// Next byte to scan.
    pos: usize,
    /// Stack of open brackets (`{` or `[`) of the value being scanned.
    stack: Vec<u8>,
    in_string: bool,
    escaped: bool,
    max: usize,
    max_parsed: usize,
    /// The parsed cost of the value being scanned, bytes aside (see `VALUE_COST`).
    cost: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::with_limits(DEFAULT_MAX_VALUE_BYTES, DEFAULT_MAX_PARSED_BYTES)
    }
}

impl Framer {
    /// A framer that refuses values larger than `max` bytes.
    pub fn new(max: usize) -> Framer {
        Framer::with_limits(max, DEFAULT_MAX_PARSED_BYTES)
    }

    /// A framer that refuses values larger than `max` bytes, or that would take more than
    /// `max_parsed` bytes of memory once parsed.
    pub fn with_limits(max: usize, max_parsed: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            start: 0,
            pos: 0,
            stack: Vec::new(),
            in_string: false,
            escaped: false,
            max,
            max_parsed,
            cost: 0,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        // Compact lazily: dropping consumed bytes on every value would make a read holding many
        // small values quadratic.
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.pos -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// True when no partial value is buffered (whitespace aside).
    pub fn is_idle(&self) -> bool {
        self.buf[self.start..].iter().all(u8::is_ascii_whitespace)
    }

    /// Returns the next complete value, `Ok(None)` when more bytes are needed.
    pub fn next_value(&mut self) -> Result<Option<Value>, FrameError> {
        match self.scan()? {
            None => Ok(None),
            Some(end) => {
                let text = &self.buf[self.start..end];
                self.start = end;
                serde_json::from_slice(text)
                    .map(Some)
                    .map_err(|e| FrameError::Invalid {
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Scans forward; returns the end offset (exclusive) of a complete value.
    fn scan(&mut self) -> Result<Option<usize>, FrameError> {
        while self.pos < self.buf.len() {
            let byte = self.buf[self.pos];
            self.pos += 1;
            if self.stack.is_empty() {
                if byte.is_ascii_whitespace() {
                    self.start = self.pos;
                    continue;
                }
                if byte != b'{' && byte != b'[' {
                    return Err(FrameError::UnexpectedByte { byte });
                }
                self.cost = 0;
                self.open(byte);
                continue;
            }
            if self.step(byte)? {
                // A value that arrived whole in one push is judged before it is parsed too.
                self.check()?;
                return Ok(Some(self.pos));
            }
        }
        self.check()?;
        Ok(None)
    }

    /// Fails when the value scanned so far is past either limit.
    fn check(&self) -> Result<(), FrameError> {
        let bytes = self.pos - self.start;
        if bytes > self.max {
            return Err(FrameError::TooLarge { limit: self.max });
        }
        let estimate = self.cost.saturating_add(bytes);
        if estimate > self.max_parsed {
            return Err(FrameError::TooManyValues {
                limit: self.max_parsed,
                estimate,
            });
        }
        Ok(())
    }

    /// An array or object opens: the value itself and its allocation.
    fn open(&mut self, byte: u8) {
        let own = if byte == b'{' {
            OBJECT_COST
        } else {
            ARRAY_COST
        };
        self.cost = self.cost.saturating_add(VALUE_COST + own);
        self.stack.push(byte);
    }

    /// Advances the state machine inside a value by one byte; true when the value closed.
    fn step(&mut self, byte: u8) -> Result<bool, FrameError> {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if byte == b'\\' {
                self.escaped = true;
            } else if byte == b'"' {
                self.in_string = false;
            }
            return Ok(false);
        }
        match byte {
            b'"' => {
                self.in_string = true;
                self.cost = self.cost.saturating_add(STRING_COST);
            }
            // Each starts another value (or key) of the open container.
            b',' | b':' => self.cost = self.cost.saturating_add(VALUE_COST),
            b'{' | b'[' => self.open(byte),
            b'}' | b']' => {
                let open = if byte == b'}' { b'{' } else { b'[' };
                if self.stack.pop() != Some(open) {
                    return Err(FrameError::Mismatched { byte });
                }
                return Ok(self.stack.is_empty());
            }
            _ => {}
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all(f: &mut Framer) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = f.next_value().unwrap() {
            out.push(v);
        }
        out
    }

    fn sample() -> (String, Vec<Value>) {
        let values = vec![
            json!({"id": 1, "method": "echo", "params": []}),
            json!({"s": "quote \" brace } bracket ] back \\ slash \\\" x {"}),
            json!([1, [2, {"a": []}], "]}"]),
            json!({"u": "caf\u{e9} \u{1F600}", "n": null}),
        ];
        let text = values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n ");
        (text, values)
    }

    #[test]
    fn several_values_in_one_read() {
        let (text, values) = sample();
        let mut f = Framer::default();
        f.push(text.as_bytes());
        assert_eq!(all(&mut f), values);
        assert!(f.is_idle());
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let (text, values) = sample();
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            let mut f = Framer::default();
            f.push(&bytes[..cut]);
            let mut got = all(&mut f);
            f.push(&bytes[cut..]);
            got.extend(all(&mut f));
            assert_eq!(got, values, "cut at {cut}");
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let (text, values) = sample();
        let mut f = Framer::default();
        let mut got = Vec::new();
        for b in text.as_bytes() {
            f.push(std::slice::from_ref(b));
            got.extend(all(&mut f));
        }
        assert_eq!(got, values);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut f = Framer::default();
        f.push(b"  x{}");
        assert_eq!(
            f.next_value(),
            Err(FrameError::UnexpectedByte { byte: b'x' })
        );
        let mut f = Framer::default();
        f.push(b"{]");
        assert_eq!(f.next_value(), Err(FrameError::Mismatched { byte: b']' }));
        let mut f = Framer::default();
        f.push(b"{\"a\" 1}");
        assert!(matches!(f.next_value(), Err(FrameError::Invalid { .. })));
    }

    #[test]
    fn many_small_values_are_refused_before_they_are_parsed() {
        // 8 bytes each, about 700 once parsed: the byte limit alone would let 100 MB through.
        let mut f = Framer::with_limits(1 << 30, 1 << 20);
        let mut text = b"[".to_vec();
        for _ in 0..2000 {
            text.extend_from_slice(b"{\"a\":0},");
        }
        text.extend_from_slice(b"{}]");
        f.push(&text);
        match f.next_value() {
            Err(FrameError::TooManyValues { limit, estimate }) => {
                assert_eq!(limit, 1 << 20);
                assert!(estimate > 1 << 20 && text.len() < 20_000, "{estimate}");
            }
            other => panic!("{other:?}"),
        }
        // The same count of plain numbers costs a tenth: accepted.
        let mut f = Framer::with_limits(1 << 30, 1 << 20);
        let numbers = format!("[{}0]", "0,".repeat(2000));
        f.push(numbers.as_bytes());
        assert!(matches!(f.next_value(), Ok(Some(_))));
        // The count starts again with each value.
        let mut f = Framer::with_limits(1 << 30, 2000);
        for _ in 0..100 {
            f.push(b"{\"a\":[1,2]} ");
            assert!(matches!(f.next_value(), Ok(Some(_))));
        }
    }

    #[test]
    fn too_large_is_an_error() {
        let mut f = Framer::new(8);
        f.push(b"{\"aaaaaaaaaaaa");
        assert_eq!(f.next_value(), Err(FrameError::TooLarge { limit: 8 }));
    }
}
