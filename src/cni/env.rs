//! The CNI_* environment: which verb runs, for which container and interface, with which
//! CNI_ARGS and plugin path. Validation only: never touches the filesystem or the netns.

use super::args::{ArgsError, CniArgs};
use super::quoted;
use std::path::PathBuf;
use userspace_cni_api::{codes, CniError, Verb};

pub const CNI_COMMAND: &str = "CNI_COMMAND";
pub const CNI_CONTAINERID: &str = "CNI_CONTAINERID";
pub const CNI_NETNS: &str = "CNI_NETNS";
pub const CNI_IFNAME: &str = "CNI_IFNAME";
pub const CNI_ARGS: &str = "CNI_ARGS";
pub const CNI_PATH: &str = "CNI_PATH";

const VERBS: &str = "ADD, DEL, CHECK, GC, STATUS, VERSION";

/// Linux IFNAMSIZ is 16 including the terminating NUL.
pub const MAX_IFNAME_BYTES: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Verb,
    /// Set (and validated) for ADD, CHECK and DEL; `None` for the verbs that do not use it.
    pub container_id: Option<String>,
    /// Set for ADD and CHECK; optional for DEL (the runtime may have lost the namespace).
    pub netns: Option<String>,
    /// Set (and validated) for ADD, CHECK and DEL.
    pub ifname: Option<String>,
    pub args: CniArgs,
    /// CNI_PATH split on ':', empty entries dropped. Empty only for VERSION.
    pub path: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("CNI_COMMAND is not set; the runtime must set it to one of {VERBS}")]
    MissingCommand,

    #[error("CNI_COMMAND {} is not a CNI verb; expected one of {VERBS} (upper case)", quoted(.value))]
    UnknownCommand { value: String },

    #[error(
        "CNI_COMMAND={verb} needs the environment variable(s) {}, which are unset or empty; CNI_PATH needs at \
         least one directory",
        .vars.join(", ")
    )]
    Missing { verb: &'static str, vars: Vec<&'static str> },

    #[error(
        "CNI_CONTAINERID {} is not a valid container id: {reason}; it must start with a letter or digit and \
         contain only letters, digits, '_', '.' and '-'",
        quoted(.value)
    )]
    InvalidContainerId { value: String, reason: String },

    #[error(
        "CNI_IFNAME {} is not a valid interface name: {reason}; use 1 to {MAX_IFNAME_BYTES} bytes without '/', \
         ':' or whitespace, other than '.' and '..'",
        quoted(.value)
    )]
    InvalidIfname { value: String, reason: String },

    #[error("{var} is not valid UTF-8; the runtime must pass it as UTF-8 text")]
    NotUtf8 { var: String },

    #[error(transparent)]
    Args(#[from] ArgsError),
}

impl From<EnvError> for CniError {
    fn from(e: EnvError) -> Self {
        match e {
            EnvError::Args(a) => CniError::from(a),
            // An invalid container id is code 4, not 3 (unknown container): libcni's
            // ValidateContainerID reports bad characters as ErrInvalidEnvironmentVariables too,
            // and the id is an environment variable the runtime got wrong, not a lookup that failed.
            EnvError::MissingCommand
            | EnvError::UnknownCommand { .. }
            | EnvError::Missing { .. }
            | EnvError::InvalidContainerId { .. }
            | EnvError::InvalidIfname { .. }
            | EnvError::NotUtf8 { .. } => CniError::new(codes::INVALID_ENV, e.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
    /// Not read at all: a stray value from the runtime's own environment must not fail a verb
    /// that has no use for it (a VERSION probe, a GC).
    Unused,
}

/// Which variables each verb needs, per CNI spec 1.1 and libcni's skel.
struct Needs {
    container_id: Need,
    netns: Need,
    ifname: Need,
    args: Need,
    path: Need,
}

impl Needs {
    fn of(verb: Verb) -> Needs {
        use Need::*;
        match verb {
            Verb::Add | Verb::Check => {
                Needs { container_id: Required, netns: Required, ifname: Required, args: Optional, path: Required }
            }
            Verb::Del => {
                Needs { container_id: Required, netns: Optional, ifname: Required, args: Optional, path: Required }
            }
            Verb::Gc | Verb::Status => {
                Needs { container_id: Unused, netns: Unused, ifname: Unused, args: Unused, path: Required }
            }
            Verb::Version => Needs { container_id: Unused, netns: Unused, ifname: Unused, args: Unused, path: Unused },
        }
    }
}

impl CniEnv {
    /// Parse from a lookup function; main passes `|k| std::env::var(k).ok()`, tests a map.
    /// Prefer [`CniEnv::from_process_env`] in main, which tells a non-UTF-8 value from an unset one.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<CniEnv, EnvError> {
        Self::from_lookup(|name| Ok(get(name)))
    }

    /// Parse the process environment. A non-UTF-8 value of a variable the verb reads is an error
    /// naming the variable (rather than "unset", which would send the operator the wrong way).
    pub fn from_process_env() -> Result<CniEnv, EnvError> {
        Self::from_lookup(|name| match std::env::var_os(name) {
            None => Ok(None),
            Some(v) => v.into_string().map(Some).map_err(|_| EnvError::NotUtf8 { var: name.to_string() }),
        })
    }

    fn from_lookup(get: impl Fn(&str) -> Result<Option<String>, EnvError>) -> Result<CniEnv, EnvError> {
        // An empty value counts as unset, as in libcni's skel.
        let read = |name: &str, need: Need| -> Result<Option<String>, EnvError> {
            if need == Need::Unused {
                return Ok(None);
            }
            Ok(get(name)?.filter(|v| !v.is_empty()))
        };

        let command = read(CNI_COMMAND, Need::Required)?.ok_or(EnvError::MissingCommand)?;
        let verb = Verb::parse(&command).ok_or(EnvError::UnknownCommand { value: command })?;
        let needs = Needs::of(verb);

        let container_id = read(CNI_CONTAINERID, needs.container_id)?;
        let netns = read(CNI_NETNS, needs.netns)?;
        let ifname = read(CNI_IFNAME, needs.ifname)?;
        let path: Vec<PathBuf> = read(CNI_PATH, needs.path)?
            .map(|p| p.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect())
            .unwrap_or_default();

        let mut missing = Vec::new();
        if needs.container_id == Need::Required && container_id.is_none() {
            missing.push(CNI_CONTAINERID);
        }
        if needs.netns == Need::Required && netns.is_none() {
            missing.push(CNI_NETNS);
        }
        if needs.ifname == Need::Required && ifname.is_none() {
            missing.push(CNI_IFNAME);
        }
        if needs.path == Need::Required && path.is_empty() {
            missing.push(CNI_PATH);
        }
        if !missing.is_empty() {
            return Err(EnvError::Missing { verb: verb.as_str(), vars: missing });
        }

        if let Some(id) = &container_id {
            validate_container_id(id)?;
        }
        if let Some(name) = &ifname {
            validate_ifname(name)?;
        }

        let args = match read(CNI_ARGS, needs.args)? {
            None => CniArgs::default(),
            Some(text) => match CniArgs::parse(&text) {
                Ok(a) => a,
                // DEL must not fail forever over CNI_ARGS: the runtime sends the same text on every
                // retry, and DEL works from the attachment record (which holds the pod identity
                // ADD parsed). Without a record, ADD failed on the same text and created nothing.
                Err(e) if verb == Verb::Del => {
                    tracing::warn!(error = %e, "DEL: ignoring unparseable CNI_ARGS");
                    CniArgs::default()
                }
                Err(e) => return Err(e.into()),
            },
        };

        Ok(CniEnv { command: verb, container_id, netns, ifname, args, path })
    }
}

/// libcni's ValidateContainerID: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`. Any length (a 3-character id
/// is valid; upstream sliced `[:12]` and panicked on short ids).
pub fn validate_container_id(id: &str) -> Result<(), EnvError> {
    let invalid = |reason: String| Err(EnvError::InvalidContainerId { value: id.to_string(), reason });
    let Some(first) = id.chars().next() else {
        return invalid("it is empty".to_string());
    };
    if !first.is_ascii_alphanumeric() {
        return invalid(format!("it starts with {first:?}"));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return invalid(format!("it contains {bad:?}"));
    }
    Ok(())
}

/// libcni's ValidateInterfaceName, which mirrors the kernel's dev_valid_name.
pub fn validate_ifname(name: &str) -> Result<(), EnvError> {
    let invalid = |reason: String| Err(EnvError::InvalidIfname { value: name.to_string(), reason });
    if name.is_empty() {
        return invalid("it is empty".to_string());
    }
    if name.len() > MAX_IFNAME_BYTES {
        return invalid(format!("it is {} bytes long", name.len()));
    }
    if name == "." || name == ".." {
        return invalid(format!("{name:?} is reserved"));
    }
    // Go's unicode.IsSpace and Rust's char::is_whitespace both follow Unicode White_Space.
    if let Some(bad) = name.chars().find(|c| *c == '/' || *c == ':' || c.is_whitespace()) {
        return invalid(format!("it contains {bad:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, EnvError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CniEnv::from_vars(|k| map.get(k).cloned())
    }

    const FULL: [(&str, &str); 6] = [
        (CNI_COMMAND, "ADD"),
        (CNI_CONTAINERID, "3f6940ab5ab4"),
        (CNI_NETNS, "/var/run/netns/pod1"),
        (CNI_IFNAME, "net1"),
        (CNI_ARGS, "IgnoreUnknown=1;K8S_POD_NAME=p"),
        (CNI_PATH, "/opt/cni/bin::/usr/libexec/cni:"),
    ];

    fn with(cmd: &str, drop: &[&str]) -> Vec<(&'static str, String)> {
        FULL.iter()
            .filter(|(k, _)| !drop.contains(k))
            .map(|(k, v)| (*k, if *k == CNI_COMMAND { cmd.to_string() } else { v.to_string() }))
            .collect()
    }

    fn env_owned(pairs: &[(&'static str, String)]) -> Result<CniEnv, EnvError> {
        let map: HashMap<&str, String> = pairs.iter().cloned().collect();
        CniEnv::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn full_add_environment_parses() {
        let e = env(&FULL).unwrap();
        assert_eq!(e.command, Verb::Add);
        assert_eq!(e.container_id.as_deref(), Some("3f6940ab5ab4"));
        assert_eq!(e.netns.as_deref(), Some("/var/run/netns/pod1"));
        assert_eq!(e.ifname.as_deref(), Some("net1"));
        assert_eq!(e.args.k8s_pod_name.as_deref(), Some("p"));
        assert_eq!(e.path, vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/libexec/cni")]);
    }

    #[test]
    fn required_variables_per_verb() {
        // (verb, variables whose absence must be reported)
        let table: [(&str, &[&str]); 6] = [
            ("ADD", &[CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH]),
            ("CHECK", &[CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH]),
            ("DEL", &[CNI_CONTAINERID, CNI_IFNAME, CNI_PATH]),
            ("GC", &[CNI_PATH]),
            ("STATUS", &[CNI_PATH]),
            ("VERSION", &[]),
        ];
        let all = [CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH];
        for (verb, required) in table {
            let got = env_owned(&with(verb, &all));
            if required.is_empty() {
                assert!(got.is_ok(), "{verb} with only CNI_COMMAND must parse: {got:?}");
            } else {
                assert_eq!(
                    got,
                    Err(EnvError::Missing { verb: Verb::parse(verb).unwrap().as_str(), vars: required.to_vec() }),
                    "{verb}"
                );
            }
            for var in all {
                let got = env_owned(&with(verb, &[var]));
                assert_eq!(got.is_err(), required.contains(&var), "{verb} without {var}: {got:?}");
            }
        }
    }

    #[test]
    fn missing_variable_is_code_4_naming_it() {
        let e = CniError::from(env_owned(&with("ADD", &[CNI_IFNAME])).unwrap_err());
        assert_eq!(e.code, codes::INVALID_ENV);
        assert!(e.msg.contains("CNI_IFNAME") && e.msg.contains("ADD"), "{}", e.msg);
    }

    #[test]
    fn empty_required_variable_counts_as_missing() {
        let mut pairs = with("ADD", &[]);
        for p in pairs.iter_mut() {
            if p.0 == CNI_NETNS {
                p.1 = String::new();
            }
        }
        assert_eq!(env_owned(&pairs), Err(EnvError::Missing { verb: "ADD", vars: vec![CNI_NETNS] }));
    }

    #[test]
    fn path_of_only_colons_counts_as_missing() {
        let mut pairs = with("GC", &[]);
        for p in pairs.iter_mut() {
            if p.0 == CNI_PATH {
                p.1 = ":::".to_string();
            }
        }
        assert_eq!(env_owned(&pairs), Err(EnvError::Missing { verb: "GC", vars: vec![CNI_PATH] }));
    }

    #[test]
    fn del_without_netns_succeeds() {
        let e = env_owned(&with("DEL", &[CNI_NETNS])).unwrap();
        assert_eq!(e.netns, None);
        assert_eq!(e.container_id.as_deref(), Some("3f6940ab5ab4"));
    }

    #[test]
    fn gc_and_version_ignore_attachment_variables() {
        let mut pairs = with("GC", &[CNI_IFNAME, CNI_CONTAINERID, CNI_ARGS]);
        pairs.push((CNI_IFNAME, "not/valid".to_string()));
        pairs.push((CNI_CONTAINERID, "-bad".to_string()));
        pairs.push((CNI_ARGS, "garbage".to_string()));
        let e = env_owned(&pairs).unwrap();
        assert_eq!((e.container_id, e.ifname, e.netns), (None, None, None));
        let v = env(&[(CNI_COMMAND, "VERSION"), (CNI_ARGS, "garbage")]).unwrap();
        assert_eq!(v.command, Verb::Version);
        assert!(v.path.is_empty());
    }

    #[test]
    fn missing_command_is_code_4() {
        let e = env(&[]).unwrap_err();
        assert_eq!(e, EnvError::MissingCommand);
        let c = CniError::from(e);
        assert_eq!(c.code, codes::INVALID_ENV);
        assert!(c.msg.contains("CNI_COMMAND"));
    }

    #[test]
    fn unknown_command_lists_the_verbs() {
        for bad in ["add", "REMOVE", "ADD "] {
            let c = CniError::from(env(&[(CNI_COMMAND, bad)]).unwrap_err());
            assert_eq!(c.code, codes::INVALID_ENV);
            assert!(c.msg.contains(VERBS), "{bad}: {}", c.msg);
        }
    }

    #[test]
    fn container_ids() {
        for ok in ["abc", "a", "3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755", "A_b.c-d", "0-"] {
            assert_eq!(validate_container_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-abc", "_abc", ".abc", "ab/c", "ab c", "ab:c", "é", "abc\n"] {
            assert!(validate_container_id(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn short_container_id_is_accepted_for_add() {
        let mut pairs = with("ADD", &[]);
        for p in pairs.iter_mut() {
            if p.0 == CNI_CONTAINERID {
                p.1 = "abc".to_string();
            }
        }
        assert_eq!(env_owned(&pairs).unwrap().container_id.as_deref(), Some("abc"));
    }

    #[test]
    fn bad_container_id_is_code_4_naming_value() {
        let mut pairs = with("DEL", &[]);
        for p in pairs.iter_mut() {
            if p.0 == CNI_CONTAINERID {
                p.1 = "../etc".to_string();
            }
        }
        let c = CniError::from(env_owned(&pairs).unwrap_err());
        assert_eq!(c.code, codes::INVALID_ENV);
        assert!(c.msg.contains("CNI_CONTAINERID") && c.msg.contains("\"../etc\""), "{}", c.msg);
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "net1", "a", "123456789012345", "veth.1-x_y", "é"] {
            assert_eq!(validate_ifname(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".", "..", "1234567890123456", "a/b", "a:b", "a b", "a\tb", "a\u{a0}b", "ééééééééé"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn bad_ifname_is_code_4_naming_value() {
        let mut pairs = with("CHECK", &[]);
        for p in pairs.iter_mut() {
            if p.0 == CNI_IFNAME {
                p.1 = "averyveryverylongname".to_string();
            }
        }
        let c = CniError::from(env_owned(&pairs).unwrap_err());
        assert_eq!(c.code, codes::INVALID_ENV);
        assert!(c.msg.contains("CNI_IFNAME") && c.msg.contains("averyveryverylongname") && c.msg.contains("15"));
    }

    #[test]
    fn bad_cni_args_fail_add_but_not_del() {
        let mut add = with("ADD", &[]);
        for p in add.iter_mut() {
            if p.0 == CNI_ARGS {
                p.1 = "UNKNOWN=1".to_string();
            }
        }
        let c = CniError::from(env_owned(&add).unwrap_err());
        assert_eq!(c.code, codes::INVALID_ENV);
        assert!(c.msg.contains("CNI_ARGS") && c.msg.contains("UNKNOWN"), "{}", c.msg);

        let del: Vec<_> =
            add.into_iter().map(|(k, v)| (k, if k == CNI_COMMAND { "DEL".to_string() } else { v })).collect();
        assert_eq!(env_owned(&del).unwrap().args, CniArgs::default());
    }

    #[test]
    fn process_env_reports_non_utf8_naming_the_variable() {
        // Exercised through the same lookup path the process reader uses.
        let got = CniEnv::from_lookup(|name| {
            if name == CNI_IFNAME {
                Err(EnvError::NotUtf8 { var: name.to_string() })
            } else {
                Ok(FULL.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
            }
        });
        let c = CniError::from(got.unwrap_err());
        assert_eq!(c.code, codes::INVALID_ENV);
        assert!(c.msg.contains("CNI_IFNAME") && c.msg.contains("UTF-8"), "{}", c.msg);
    }
}
