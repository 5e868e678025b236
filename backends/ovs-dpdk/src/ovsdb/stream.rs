//! Splits OVSDB's byte stream into JSON-RPC messages: RFC 7047 sends concatenated JSON objects
//! with no delimiter. Never panics on malformed bytes and never buffers more than `MAX_BUFFERED`.

use serde_json::Value;

/// A reply bigger than this is treated as a protocol error rather than grown without bound
/// (a full `select` of a node's Interface table is well under a megabyte).
pub(crate) const MAX_BUFFERED: usize = 64 * 1024 * 1024;

/// Why the stream cannot be parsed; the client turns it into `OvsdbError::Protocol`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameError(pub String);

/// Incremental framer. A cheap byte scanner (brace depth outside strings) finds where the first
/// top-level value ends, so a large message arriving in many reads is scanned once, not
/// re-parsed on every read; serde_json then parses exactly that value and the tail is kept.
#[derive(Debug)]
pub(crate) struct JsonStream {
    buf: Vec<u8>,
    limit: usize,
    /// Bytes of `buf` already scanned for the end of the first value.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Offset just past the first complete value, once the scanner found it.
    complete: Option<usize>,
}

impl JsonStream {
    pub(crate) fn new() -> Self {
        Self::with_limit(MAX_BUFFERED)
    }

    pub(crate) fn with_limit(limit: usize) -> Self {
        JsonStream { buf: Vec::new(), limit, scanned: 0, depth: 0, in_string: false, escaped: false, complete: None }
    }

    /// Append bytes read from the socket.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            return Err(FrameError(format!("message larger than {} bytes", self.limit)));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete message, `None` when more bytes are needed.
    pub(crate) fn next_value(&mut self) -> Result<Option<Value>, FrameError> {
        let Some(end) = self.scan()? else {
            return Ok(None);
        };
        let mut values = serde_json::Deserializer::from_slice(&self.buf[..end]).into_iter::<Value>();
        let parsed = match values.next() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(FrameError(format!("invalid JSON: {e}"))),
            None => Err(FrameError("empty message".into())),
        };
        let consumed = values.byte_offset();
        // The scanner and serde_json must agree on where the value ends; if they do not, the
        // bytes are not JSON the scanner understands, and resynchronising is guesswork.
        if parsed.is_ok() && consumed != end {
            return Err(FrameError(format!("value ends at byte {consumed}, expected {end}")));
        }
        let value = parsed?;
        self.buf.drain(..end);
        self.reset_scanner();
        if !value.is_object() {
            return Err(FrameError(format!("top-level value is not an object: {value}")));
        }
        Ok(Some(value))
    }

    fn reset_scanner(&mut self) {
        self.scanned = 0;
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
        self.complete = None;
    }

    /// Continue scanning where the last call stopped; returns the end offset of the first value.
    fn scan(&mut self) -> Result<Option<usize>, FrameError> {
        if let Some(end) = self.complete {
            return Ok(Some(end));
        }
        while self.scanned < self.buf.len() {
            let b = self.buf[self.scanned];
            self.scanned += 1;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' if self.depth > 0 => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.complete = Some(self.scanned);
                        return Ok(self.complete);
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' if self.depth == 0 => {}
                _ if self.depth > 0 => {}
                // JSON-RPC messages are objects: anything else between messages is garbage.
                other => {
                    return Err(FrameError(format!(
                        "unexpected byte 0x{other:02x} between messages at offset {}",
                        self.scanned - 1
                    )))
                }
            }
        }
        // Drop leading whitespace between messages so an idle keepalive-free stream cannot grow.
        if self.depth == 0 && !self.in_string {
            self.buf.clear();
            self.scanned = 0;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drain(s: &mut JsonStream) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = s.next_value().unwrap() {
            out.push(v);
        }
        out
    }

    #[test]
    fn concatenated_values_split_at_every_byte() {
        let msgs = [
            json!({"id": 1, "result": [{"uuid": ["uuid", "0f1e"]}], "error": null}),
            json!({"method": "echo", "params": ["a}\"{", "\\"], "id": "echo"}),
            json!({"method": "update", "params": ["m", {"T": {"u": {"new": {"s": "[{]}"}}}}], "id": null}),
        ];
        let text: Vec<u8> = msgs.iter().flat_map(|m| serde_json::to_vec(m).unwrap()).collect();
        for cut in 0..=text.len() {
            let mut s = JsonStream::new();
            s.push(&text[..cut]).unwrap();
            let mut got = drain(&mut s);
            s.push(&text[cut..]).unwrap();
            got.extend(drain(&mut s));
            assert_eq!(got, msgs, "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_with_whitespace_between() {
        let text = b" {\"a\":1}\n\n {\"b\":[1,2,{\"c\":\"}\"}]}  ";
        let mut s = JsonStream::new();
        let mut got = Vec::new();
        for b in text {
            s.push(&[*b]).unwrap();
            got.extend(drain(&mut s));
        }
        assert_eq!(got, vec![json!({"a": 1}), json!({"b": [1, 2, {"c": "}"}]})]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b"hello"[..], b"{\"a\":}", b"[1,2]", b"{\"a\":1]", b"\xff\xfe{}", b"{\"a\":\"\xff\"}"] {
            let mut s = JsonStream::new();
            s.push(bad).unwrap();
            let mut res = Ok(None);
            for _ in 0..4 {
                res = s.next_value();
                if res.is_err() {
                    break;
                }
            }
            assert!(res.is_err(), "{:?} gave {res:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn incomplete_value_waits_for_more() {
        let mut s = JsonStream::new();
        s.push(b"{\"id\":1,\"result\":[").unwrap();
        assert_eq!(s.next_value().unwrap(), None);
        s.push(b"]}").unwrap();
        assert_eq!(s.next_value().unwrap(), Some(json!({"id": 1, "result": []})));
        assert_eq!(s.next_value().unwrap(), None);
    }

    #[test]
    fn oversized_input_is_refused() {
        let mut s = JsonStream::with_limit(8);
        s.push(b"{\"a\":[1,").unwrap();
        assert_eq!(s.next_value().unwrap(), None);
        assert!(s.push(b"2]}").is_err());
    }
}
