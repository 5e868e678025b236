//! Where a value sits in the config (`host.vhost.mode`, `ipam.routes[1].dst`), for error messages.
//! Display only: a path is never used to look anything up or to build a file name.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(Vec<Seg>);

impl Path {
    pub fn push(&mut self, seg: Seg) {
        self.0.push(seg);
    }

    pub fn pop(&mut self) {
        self.0.pop();
    }

    /// This path extended by one object key.
    pub fn key(&self, key: &str) -> Path {
        let mut p = self.clone();
        p.push(Seg::Key(key.to_owned()));
        p
    }
}

/// Keys that read unambiguously after a `.`; anything else is shown JSON-quoted in brackets.
fn plain(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if plain(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                // Debug-quoting escapes control characters, so a hostile key cannot forge output.
                Seg::Key(k) => write!(f, "[{k:?}]")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_the_config_reads() {
        let mut p = Path::default();
        assert_eq!(p.to_string(), "(top level)");
        p.push(Seg::Key("ipam".into()));
        p.push(Seg::Key("routes".into()));
        p.push(Seg::Index(1));
        p.push(Seg::Key("dst".into()));
        assert_eq!(p.to_string(), "ipam.routes[1].dst");
        assert_eq!(Path::default().key("cni.dev/attachments").to_string(), r#"["cni.dev/attachments"]"#);
        assert_eq!(Path::default().key("a\nb").to_string(), r#"["a\nb"]"#);
    }
}
