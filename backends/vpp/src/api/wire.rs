//! The byte layout of VPP binary-API messages: packed big-endian fields, NUL-padded fixed strings,
//! u32-length-prefixed variable strings. Never panics on short or malformed input: every read is
//! bounds-checked and reports what was being read.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("message truncated: {field} needs {need} more bytes, {left} left")]
    Short { field: &'static str, need: usize, left: usize },
    #[error("field {field}: {len} bytes do not fit in {max} (fixed-size string with its NUL)")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("field {field}: contains a NUL byte")]
    Nul { field: &'static str },
    #[error("field {field}: {count} elements, more than the u32/u16 count can say")]
    TooMany { field: &'static str, count: usize },
}

/// Appends fields to a message buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { buf: Vec::with_capacity(128) }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn i8(&mut self, v: i8) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// `string x[N]`: the text then NUL padding to N bytes. VPP's handlers overwrite the last
    /// byte with a NUL, so a text of N bytes would lose its last character: refuse it.
    pub fn fixed_string(&mut self, field: &'static str, v: &str, n: usize) -> Result<(), WireError> {
        let b = v.as_bytes();
        if b.contains(&0) {
            return Err(WireError::Nul { field });
        }
        if b.len() >= n {
            return Err(WireError::TooLong { field, len: b.len(), max: n.saturating_sub(1) });
        }
        self.buf.extend_from_slice(b);
        self.buf.resize(self.buf.len() + (n - b.len()), 0);
        Ok(())
    }

    /// `string x[]`: a u32 length, then the bytes, no NUL.
    pub fn var_string(&mut self, field: &'static str, v: &str) -> Result<(), WireError> {
        let b = v.as_bytes();
        if b.contains(&0) {
            return Err(WireError::Nul { field });
        }
        let len = u32::try_from(b.len()).map_err(|_| WireError::TooMany { field, count: b.len() })?;
        self.u32(len);
        self.buf.extend_from_slice(b);
        Ok(())
    }

    /// The element count of a variable-length array, in the width of its count field.
    pub fn count_u32(&mut self, field: &'static str, n: usize) -> Result<(), WireError> {
        let n = u32::try_from(n).map_err(|_| WireError::TooMany { field, count: n })?;
        self.u32(n);
        Ok(())
    }
    pub fn count_u16(&mut self, field: &'static str, n: usize) -> Result<(), WireError> {
        let n = u16::try_from(n).map_err(|_| WireError::TooMany { field, count: n })?;
        self.u16(n);
        Ok(())
    }
    pub fn count_u8(&mut self, field: &'static str, n: usize) -> Result<(), WireError> {
        let n = u8::try_from(n).map_err(|_| WireError::TooMany { field, count: n })?;
        self.u8(n);
        Ok(())
    }
}

/// Reads fields from a received message; every read is bounds-checked.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], WireError> {
        let left = self.remaining();
        if n > left {
            return Err(WireError::Short { field, need: n, left });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }
    pub fn i8(&mut self, field: &'static str) -> Result<i8, WireError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }
    pub fn bool(&mut self, field: &'static str) -> Result<bool, WireError> {
        Ok(self.u8(field)? != 0)
    }
    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    pub fn i16(&mut self, field: &'static str) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }
    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    pub fn i32(&mut self, field: &'static str) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }
    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    pub fn i64(&mut self, field: &'static str) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }
    pub fn f64(&mut self, field: &'static str) -> Result<f64, WireError> {
        Ok(f64::from_bits(u64::from_be_bytes(self.array(field)?)))
    }
    pub fn bytes<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        self.array(field)
    }

    /// `string x[N]`: up to the first NUL. Bytes that are not UTF-8 are replaced (VPP does not
    /// promise UTF-8; a tag or file name we compare against is always ASCII).
    pub fn fixed_string(&mut self, field: &'static str, n: usize) -> Result<String, WireError> {
        let raw = self.take(field, n)?;
        let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    pub fn var_string(&mut self, field: &'static str) -> Result<String, WireError> {
        let len = self.u32(field)? as usize;
        let raw = self.take(field, len)?;
        // A sender may include a trailing NUL (VPP's C helpers sometimes count it).
        let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let mut w = Writer::new();
        w.u16(0x0102);
        w.u32(0x0304_0506);
        w.i32(-1);
        w.f64(1.0);
        assert_eq!(w.buf[..10], [1, 2, 3, 4, 5, 6, 0xff, 0xff, 0xff, 0xff]);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u16("a"), Ok(0x0102));
        assert_eq!(r.u32("b"), Ok(0x0304_0506));
        assert_eq!(r.i32("c"), Ok(-1));
        assert_eq!(r.f64("d"), Ok(1.0));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn fixed_strings_are_nul_padded_and_need_room_for_the_nul() {
        let mut w = Writer::new();
        w.fixed_string("tag", "ab", 4).unwrap();
        assert_eq!(w.buf, b"ab\0\0");
        assert!(matches!(w.fixed_string("tag", "abcd", 4), Err(WireError::TooLong { max: 3, .. })));
        assert!(matches!(w.fixed_string("tag", "a\0", 4), Err(WireError::Nul { .. })));
        let mut r = Reader::new(b"xy\0zw");
        assert_eq!(r.fixed_string("f", 5).unwrap(), "xy");
    }

    #[test]
    fn variable_strings_carry_a_length() {
        let mut w = Writer::new();
        w.var_string("f", "abc").unwrap();
        assert_eq!(w.buf, [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(Reader::new(&w.buf).var_string("f").unwrap(), "abc");
    }

    #[test]
    fn short_input_is_an_error_never_a_panic() {
        let mut r = Reader::new(&[0, 0, 0, 9, 1]);
        assert!(matches!(r.var_string("f"), Err(WireError::Short { need: 9, left: 1, .. })));
        let mut r = Reader::new(&[1]);
        assert!(r.u32("x").is_err());
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(r.var_string("huge").is_err());
    }
}
