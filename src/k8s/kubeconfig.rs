//! The kubeconfig file: read bounded (never a FIFO, device or oversized file), parsed from those
//! bytes, and refused before any connection when it would run a program or read another file.
//! Never quotes the file's contents in an error (errors reach pod events): only its path, an
//! entry's name and the field at fault, or a line and column.
//!
//! Two trust levels (docs/security.md). A network config's `kubeconfig` (a namespace-scoped user
//! chose it among the operator's allow-list) is read only through `confine::read_root_owned` (the
//! file and every directory above it root's and not writable by others, the file itself no
//! symlink), and may carry inline credentials only: `token`, `client-certificate-data`,
//! `client-key-data`, `certificate-authority-data` (what Multus generates). An operator's
//! `userspace gc --kubeconfig` may also name files (a kubelet's client certificate), but no
//! credential plugin: kube runs `exec` and auth-provider `cmd-path` with a blocking
//! `std::process::Command` that no timeout of ours can interrupt.

use std::path::{Path, PathBuf};
use userspace_cni_api::{codes, CniError};

/// The largest kubeconfig read (Multus's is about 3 KiB; a CA bundle inline stays far below).
pub const MAX_KUBECONFIG: u64 = 1 << 20;

/// Who chose the file, which decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// A network config's `kubeconfig` (allow-listed by validation): root-owned tree, inline
    /// credentials only.
    NetworkConfig,
    /// The operator's command line: no ownership rule, file references allowed, no plugins.
    Operator,
}

/// What a kubeconfig may not use, and what to use instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Exec,
    AuthProvider,
    TokenFile,
    ClientCertificate,
    ClientKey,
    CertificateAuthority,
}

impl Field {
    pub fn key(self) -> &'static str {
        match self {
            Field::Exec => "exec",
            Field::AuthProvider => "auth-provider",
            Field::TokenFile => "tokenFile",
            Field::ClientCertificate => "client-certificate",
            Field::ClientKey => "client-key",
            Field::CertificateAuthority => "certificate-authority",
        }
    }

    fn is_plugin(self) -> bool {
        matches!(self, Field::Exec | Field::AuthProvider)
    }

    fn remedy(self, trust: Trust) -> &'static str {
        match (self.is_plugin(), trust) {
            (true, Trust::NetworkConfig) => {
                "credential plugins are refused in a kubeconfig a network config names (they would run as root); \
                 use an inline token or client-certificate-data/client-key-data"
            }
            (true, Trust::Operator) => {
                "credential plugins are refused (kube runs them as a blocking child process that no timeout can \
                 stop); use a token, tokenFile or a client certificate"
            }
            (false, _) => match self {
                Field::TokenFile => {
                    "file references are refused in a kubeconfig a network config names; put the token inline (token)"
                }
                Field::ClientCertificate => {
                    "file references are refused in a kubeconfig a network config names; use client-certificate-data"
                }
                Field::ClientKey => {
                    "file references are refused in a kubeconfig a network config names; use client-key-data"
                }
                _ => {
                    "file references are refused in a kubeconfig a network config names; use \
                     certificate-authority-data"
                }
            },
        }
    }
}

/// Why a kubeconfig cannot be used. Messages name the file and the problem, never its contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    #[error("kubeconfig {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error(
        "kubeconfig {} is refused: {reason}; it must be a regular file of at most {MAX_KUBECONFIG} bytes, owned \
         by root, in directories owned by root and writable by nobody else",
        path.display()
    )]
    Untrusted { path: PathBuf, reason: String },
    #[error("cannot read kubeconfig {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("kubeconfig {} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("kubeconfig {} is not a valid kubeconfig ({})", path.display(), where_(*line, *column))]
    Syntax { path: PathBuf, line: u64, column: u64 },
    #[error("kubeconfig {} {entry} {name:?} uses {}; {}", path.display(), field.key(), field.remedy(*trust))]
    Refused { path: PathBuf, entry: &'static str, name: String, field: Field, trust: Trust },
    #[error("kubeconfig {} cannot be used: {reason}", path.display())]
    Unusable { path: PathBuf, reason: &'static str },
}

fn where_(line: u64, column: u64) -> String {
    if line == 0 {
        "a YAML error; the contents are not shown".into()
    } else {
        format!("a YAML error at line {line}, column {column}; the contents are not shown")
    }
}

/// The one place these errors get their CNI codes.
impl From<KubeconfigError> for CniError {
    fn from(e: KubeconfigError) -> Self {
        let code = match &e {
            // The disk failed us, not the config.
            KubeconfigError::Read { .. } => codes::IO_FAILURE,
            _ => codes::INVALID_NETCONF,
        };
        CniError::new(code, e.to_string())
    }
}

/// The file's bytes under `trust`'s rules. Symlinks in the directories are the operator's.
pub fn read(path: &Path, trust: Trust) -> Result<Vec<u8>, KubeconfigError> {
    use userspace_cni_support::confine::{self, ReadError, RootOwnedError};
    let p = || path.to_path_buf();
    let untrusted = |reason: String| KubeconfigError::Untrusted { path: p(), reason };
    let io = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::ELOOP) => untrusted("it is a symlink".into()),
        Some(libc::ENOTDIR) | Some(libc::EISDIR) => untrusted(confine::explain(&e)),
        _ => KubeconfigError::Read { path: p(), reason: e.to_string() },
    };
    let read_error = |e: ReadError| match e {
        ReadError::Io(e) => io(e),
        other => untrusted(format!("it {other}")),
    };
    match trust {
        Trust::NetworkConfig => match confine::read_root_owned(path, MAX_KUBECONFIG) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(KubeconfigError::Missing { path: p() }),
            Err(RootOwnedError::Io(e)) => Err(io(e)),
            Err(RootOwnedError::Read(e)) => Err(read_error(e)),
            Err(e @ (RootOwnedError::NotRootOwned { .. } | RootOwnedError::Writable { .. })) => {
                Err(untrusted(e.to_string()))
            }
        },
        Trust::Operator => {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => KubeconfigError::Missing { path: p() },
                    _ => io(e),
                })?;
            confine::read_bounded(f, MAX_KUBECONFIG).map_err(read_error)
        }
    }
}

#[cfg(feature = "kubernetes")]
pub use with_kube::{load, parse};

#[cfg(feature = "kubernetes")]
mod with_kube {
    use super::*;
    use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError as KubeError};

    /// The longest entry name quoted in a message (names are the file's, so kept short and escaped).
    const MAX_NAME: usize = 64;

    /// An entry's name as it may appear in a message: short, and escaped by `{:?}` when quoted.
    fn name_of(name: &str) -> String {
        name.chars().take(MAX_NAME).collect()
    }

    /// The text of the bytes (a UTF-8 byte-order mark dropped, as kube's own reader does).
    fn text_of<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, KubeconfigError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        std::str::from_utf8(bytes).map_err(|_| KubeconfigError::NotText { path: path.to_path_buf() })
    }

    /// Read, parse and check the kubeconfig at `path`, then build the client configuration from
    /// it. Nothing here runs a program or opens another file for a `NetworkConfig` file.
    pub async fn load(path: &Path, trust: Trust) -> Result<kube::Config, KubeconfigError> {
        let kc = parse(path, &read(path, trust)?, trust)?;
        config_of(path, kc).await
    }

    /// Parse `bytes` and refuse what `trust` does not allow, in every user and cluster entry
    /// (not only the current context's: a later `--context` or a merge could pick another).
    pub fn parse(path: &Path, bytes: &[u8], trust: Trust) -> Result<Kubeconfig, KubeconfigError> {
        let kc = Kubeconfig::from_yaml(text_of(path, bytes)?).map_err(|e| syntax(path, &e))?;
        let refuse = |entry: &'static str, name: &str, field: Field| KubeconfigError::Refused {
            path: path.to_path_buf(),
            entry,
            name: name_of(name),
            field,
            trust,
        };
        let files_ok = trust == Trust::Operator;
        for named in &kc.auth_infos {
            let Some(user) = &named.auth_info else { continue };
            let token_file = user.token_file.is_some() || user.other.contains_key("token-file");
            let found = [
                (user.exec.is_some(), Field::Exec),
                (user.auth_provider.is_some(), Field::AuthProvider),
                (token_file && !files_ok, Field::TokenFile),
                (user.client_certificate.is_some() && !files_ok, Field::ClientCertificate),
                (user.client_key.is_some() && !files_ok, Field::ClientKey),
            ];
            if let Some((_, field)) = found.iter().find(|(bad, _)| *bad) {
                return Err(refuse("user", &named.name, *field));
            }
        }
        for named in &kc.clusters {
            let Some(cluster) = &named.cluster else { continue };
            if cluster.certificate_authority.is_some() && !files_ok {
                return Err(refuse("cluster", &named.name, Field::CertificateAuthority));
            }
        }
        Ok(kc)
    }

    /// A parse error as a line and column: serde's messages may quote the offending value.
    fn syntax(path: &Path, e: &KubeError) -> KubeconfigError {
        let (line, column) = match e {
            KubeError::Parse(inner) => inner.location().map_or((0, 0), |l| (l.line(), l.column())),
            _ => (0, 0),
        };
        KubeconfigError::Syntax { path: path.to_path_buf(), line, column }
    }

    /// The client configuration, kube's errors replaced by fixed reasons (theirs name values:
    /// a context's name, a URL). Nothing in it waits: with the plugins and files refused above,
    /// kube only copies fields.
    pub(super) async fn config_of(path: &Path, kc: Kubeconfig) -> Result<kube::Config, KubeconfigError> {
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| KubeconfigError::Unusable { path: path.to_path_buf(), reason: reason_of(&e) })
    }

    fn reason_of(e: &KubeError) -> &'static str {
        match e {
            KubeError::CurrentContextNotSet => "it sets no current-context",
            KubeError::LoadContext(_) => "its current-context names no context in the file",
            KubeError::LoadClusterOfContext(_) => "the current context names no cluster in the file",
            KubeError::MissingClusterUrl => "the current context's cluster has no server",
            KubeError::ParseClusterUrl(_) => "the current context's cluster's server is not a URL",
            KubeError::ParseProxyUrl(_) => "the cluster's proxy-url (or HTTPS_PROXY) is not a URL",
            KubeError::LoadCertificateAuthority(_) => "certificate-authority-data cannot be loaded (base64?)",
            KubeError::LoadClientCertificate(_) => {
                "the client certificate cannot be loaded (client-certificate-data without client-key-data?)"
            }
            KubeError::LoadClientKey(_) => {
                "the client key cannot be loaded (client-key-data without client-certificate-data?)"
            }
            KubeError::ParseCertificates(_) => "certificate-authority-data is not PEM",
            _ => "kube cannot build a client configuration from it",
        }
    }
}

#[cfg(all(test, feature = "kubernetes"))]
mod tests;
