//! The shapes of Kubernetes names (DNS label, DNS subdomain, object UID) that the DRA front-end
//! and the documents it writes turn into path components or OVS names, checked before that
//! happens, and the one way to show such a name in an error: short, escaped, never the whole of it.
//! Pure; never touches the disk.

use std::fmt;

/// What a name must look like. Each shape's character set excludes `/` and NUL and each needs at
/// least one character other than `.`, so a name of any shape is one path component, never `.`
/// or `..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// RFC 1123 label (request names, pod claim names, device names, namespaces).
    DnsLabel,
    /// RFC 1123 subdomain: DNS labels joined by `.` (object names, pool and node names).
    DnsSubdomain,
    /// An object UID as the API server makes them (a UUID); kubelet and the API hand it over.
    Uid,
}

impl Shape {
    /// What is expected, for a message a cluster user can act on.
    pub fn expected(self) -> &'static str {
        match self {
            Shape::DnsLabel => {
                "a DNS label: 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
            }
            Shape::DnsSubdomain => "a DNS subdomain: at most 253 characters, DNS labels (a-z, 0-9, '-') joined by '.'",
            Shape::Uid => "an object UID: 1-36 characters of hex digits and '-'",
        }
    }

    /// `Ok` when `value` has this shape; else why not, without repeating the value.
    pub fn check(self, value: &str) -> Result<(), &'static str> {
        match self {
            Shape::DnsLabel => dns_label(value),
            Shape::DnsSubdomain => {
                if value.len() > 253 {
                    return Err("it is longer than 253 characters");
                }
                value.split('.').try_for_each(dns_label)
            }
            Shape::Uid => {
                if value.is_empty() {
                    Err("it is empty")
                } else if value.len() > 36 {
                    Err("it is longer than 36 characters")
                } else if !value.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                    Err("it holds a character other than a hex digit or '-'")
                } else {
                    Ok(())
                }
            }
        }
    }
}

fn dns_label(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("it is empty (or has an empty part)");
    }
    if value.len() > 63 {
        return Err("it (or a part of it) is longer than 63 characters");
    }
    if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err("it holds a character other than a-z, 0-9 and '-' (such as '/', an upper-case letter or NUL)");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("it (or a part of it) starts or ends with '-'");
    }
    Ok(())
}

/// `req` of a request reference `req` or `req/sub`, after `check` (the caller's: its error names
/// the field) found each part a DNS label. Paths and names use the base; metadata the whole.
pub fn base_request<E>(request: &str, check: impl Fn(&'static str, Shape, &str) -> Result<(), E>) -> Result<&str, E> {
    let (base, sub) = match request.split_once('/') {
        Some((base, sub)) => (base, Some(sub)),
        None => (request, None),
    };
    check("request", Shape::DnsLabel, base)?;
    if let Some(sub) = sub {
        check("subrequest", Shape::DnsLabel, sub)?;
    }
    Ok(base)
}

/// How many characters of an outside value an error message repeats.
const SHOWN_CHARS: usize = 64;

/// An outside value as an error shows it: Rust-escaped (NUL, newlines and escapes are visible and
/// cannot forge a log line), cut after 64 characters with the full length stated.
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.char_indices();
        match chars.nth(SHOWN_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}... ({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

/// [`Shown`] as a `String`, for error variants that own their data.
pub fn shown(value: &str) -> String {
    Shown(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_accept_what_the_api_server_makes() {
        let good = [
            (Shape::DnsLabel, "net1"),
            (Shape::DnsLabel, "a"),
            (Shape::DnsLabel, "0-vhost-9"),
            (Shape::DnsLabel, &"a".repeat(63)),
            (Shape::DnsSubdomain, "ip-10-0-0-1.ec2.internal"),
            (Shape::DnsSubdomain, "virt-launcher-vm1-abcde-net-x7k2p"),
            (Shape::Uid, "0f6c2f5e-8a8b-4c1e-9f5e-2b7d1c3a4e5f"),
            (Shape::Uid, "ABCDEF12"),
        ];
        for (shape, value) in good {
            assert_eq!(shape.check(value), Ok(()), "{shape:?} refused {value:?}");
        }
    }

    #[test]
    fn shapes_refuse_path_tricks_and_overlong_names() {
        let bad = [
            (Shape::DnsLabel, ""),
            (Shape::DnsLabel, ".."),
            (Shape::DnsLabel, "."),
            (Shape::DnsLabel, "a/b"),
            (Shape::DnsLabel, "../etc"),
            (Shape::DnsLabel, "net\0"),
            (Shape::DnsLabel, "Net1"),
            (Shape::DnsLabel, "-net"),
            (Shape::DnsLabel, "net-"),
            (Shape::DnsLabel, "a.b"),
            (Shape::DnsLabel, "ne\u{2010}t"),
            (Shape::DnsLabel, &"a".repeat(64)),
            (Shape::DnsSubdomain, ".."),
            (Shape::DnsSubdomain, "."),
            (Shape::DnsSubdomain, "a..b"),
            (Shape::DnsSubdomain, ".a"),
            (Shape::DnsSubdomain, "node/../x"),
            (Shape::DnsSubdomain, &format!("{}.b", "a".repeat(64))),
            (Shape::DnsSubdomain, &["a"; 128].join(".")),
            (Shape::Uid, ""),
            (Shape::Uid, "../../etc/passwd"),
            (Shape::Uid, "0f6c2f5e-8a8b-4c1e-9f5e-2b7d1c3a4e5f0"),
            (Shape::Uid, "0f6c2f5e\0"),
            (Shape::Uid, "0f6c2f5g"),
        ];
        for (shape, value) in bad {
            assert!(shape.check(value).is_err(), "{shape:?} accepted {:?}", shown(value));
        }
    }

    #[test]
    fn shown_escapes_and_cuts_a_long_value() {
        assert_eq!(shown("a\0b\n"), r#""a\0b\n""#);
        let huge = "x".repeat(1 << 20);
        let s = shown(&huge);
        assert!(s.len() < 100, "shown() repeated {} bytes of a 1 MiB value", s.len());
        assert!(s.ends_with(&format!("... ({} bytes)", 1 << 20)), "{s}");
        // A cut never splits a multi-byte character.
        let wide = "é".repeat(100);
        assert!(shown(&wide).starts_with(&format!("\"{}\"...", "é".repeat(64))), "{}", shown(&wide));
    }
}
