//! CNI_ARGS: `KEY=VALUE` pairs separated by `;`, parsed the way libcni's `LoadArgs` does.
//! Never panics on any input, and never drops a pair silently: unknown keys are kept or refused.

use super::quoted;
use std::net::IpAddr;
use userspace_cni_api::{codes, CniError};

/// The keys this plugin understands. libcni matches them to struct field names, so they are
/// case-sensitive.
pub const KNOWN_KEYS: [&str; 7] =
    ["IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_UID", "K8S_POD_INFRA_CONTAINER_ID", "MAC", "IP"];

/// The parsed CNI_ARGS. An empty value (`K8S_POD_NAME=`) counts as absent, as it does for the
/// reference plugins, which test `!= ""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub ignore_unknown: bool,
    pub k8s_pod_namespace: Option<String>,
    pub k8s_pod_name: Option<String>,
    pub k8s_pod_uid: Option<String>,
    pub k8s_pod_infra_container_id: Option<String>,
    /// Lower case, six colon-separated hex bytes.
    pub mac: Option<String>,
    pub ips: Vec<IpAddr>,
    /// Pairs with keys not in [`KNOWN_KEYS`], in input order (kept even when refused, so a caller
    /// that chooses to be lenient still sees them).
    pub unknown: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("CNI_ARGS pair {} has no '='; CNI_ARGS must be KEY=VALUE pairs separated by ';'", quoted(.pair))]
    InvalidPair { pair: String },

    #[error("CNI_ARGS IgnoreUnknown={} is not a boolean; use 1, true, 0 or false (in any case)", quoted(.value))]
    InvalidBool { value: String },

    #[error(
        "CNI_ARGS MAC={} is not a MAC address; use six colon-separated hex bytes like 02:00:00:aa:bb:cc",
        quoted(.value)
    )]
    InvalidMac { value: String },

    #[error(
        "CNI_ARGS IP={}: {} is not an IPv4 or IPv6 address; use comma-separated addresses without a prefix \
         length, like IP=10.1.1.5,fd00::5",
        quoted(.value),
        quoted(.item)
    )]
    InvalidIp { value: String, item: String },

    #[error(
        "CNI_ARGS has unknown key(s) {}; this plugin reads {}; add IgnoreUnknown=1 to CNI_ARGS to ignore the others",
        .keys.iter().map(|k| quoted(k)).collect::<Vec<_>>().join(", "),
        KNOWN_KEYS.join(", ")
    )]
    UnknownKeys { keys: Vec<String> },
}

impl From<ArgsError> for CniError {
    fn from(e: ArgsError) -> Self {
        // CNI_ARGS is an environment variable, so every problem with it is "invalid environment".
        let code = match &e {
            ArgsError::InvalidPair { .. }
            | ArgsError::InvalidBool { .. }
            | ArgsError::InvalidMac { .. }
            | ArgsError::InvalidIp { .. }
            | ArgsError::UnknownKeys { .. } => codes::INVALID_ENV,
        };
        CniError::new(code, e.to_string())
    }
}

impl CniArgs {
    pub fn parse(s: &str) -> Result<CniArgs, ArgsError> {
        let mut args = CniArgs::default();
        for pair in s.split(';') {
            // libcni refuses an empty pair (a trailing ';'); it carries no meaning, and failing a
            // pod over it would help nobody, so it is skipped.
            if pair.is_empty() {
                continue;
            }
            // Split on the first '=' only: libcni refuses a value containing '=', but base64 and
            // URL-ish values do contain it and lose nothing by being accepted.
            let Some((key, value)) = pair.split_once('=') else {
                return Err(ArgsError::InvalidPair { pair: pair.to_string() });
            };
            let non_empty = || (!value.is_empty()).then(|| value.to_string());
            // A repeated known key overrides the earlier one, as in libcni (field assignment).
            match key {
                "IgnoreUnknown" => args.ignore_unknown = parse_bool(value)?,
                "K8S_POD_NAMESPACE" => args.k8s_pod_namespace = non_empty(),
                "K8S_POD_NAME" => args.k8s_pod_name = non_empty(),
                "K8S_POD_UID" => args.k8s_pod_uid = non_empty(),
                "K8S_POD_INFRA_CONTAINER_ID" => args.k8s_pod_infra_container_id = non_empty(),
                "MAC" => args.mac = parse_mac(value)?,
                "IP" => args.ips = parse_ips(value)?,
                _ => args.unknown.push((key.to_string(), value.to_string())),
            }
        }
        // Checked after the loop: IgnoreUnknown may come after the unknown keys (libcni does the same).
        if !args.unknown.is_empty() && !args.ignore_unknown {
            return Err(ArgsError::UnknownKeys { keys: args.unknown.iter().map(|(k, _)| k.clone()).collect() });
        }
        Ok(args)
    }
}

/// libcni's `UnmarshallableBool`: lower-cased, then `1`/`true` or `0`/`false`. (Not Go's
/// `strconv.ParseBool`: `t` and `F` are refused, `TRUE` and `tRuE` accepted.)
fn parse_bool(value: &str) -> Result<bool, ArgsError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(ArgsError::InvalidBool { value: value.to_string() }),
    }
}

fn parse_mac(value: &str) -> Result<Option<String>, ArgsError> {
    if value.is_empty() {
        return Ok(None);
    }
    let bytes: Vec<&str> = value.split(':').collect();
    let well_formed =
        bytes.len() == 6 && bytes.iter().all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
    if !well_formed {
        return Err(ArgsError::InvalidMac { value: value.to_string() });
    }
    Ok(Some(value.to_ascii_lowercase()))
}

fn parse_ips(value: &str) -> Result<Vec<IpAddr>, ArgsError> {
    // The static IPAM plugin trims around the commas; runtimes and users write "a, b".
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpAddr>()
                .map_err(|_| ArgsError::InvalidIp { value: value.to_string(), item: item.to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_string_is_the_default() {
        assert_eq!(CniArgs::parse(""), Ok(CniArgs::default()));
    }

    #[test]
    fn kubelet_args_are_read() {
        let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod-a;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1",
        )
        .unwrap();
        assert!(a.ignore_unknown);
        assert_eq!(a.k8s_pod_namespace.as_deref(), Some("ns1"));
        assert_eq!(a.k8s_pod_name.as_deref(), Some("pod-a"));
        assert_eq!(a.k8s_pod_uid.as_deref(), Some("u-1"));
        assert_eq!(a.k8s_pod_infra_container_id.as_deref(), Some("abc123"));
        assert!(a.unknown.is_empty());
    }

    #[test]
    fn value_may_contain_equals() {
        let a = CniArgs::parse("IgnoreUnknown=true;TOKEN=a=b==").unwrap();
        assert_eq!(a.unknown, vec![("TOKEN".to_string(), "a=b==".to_string())]);
    }

    #[test]
    fn pair_without_equals_is_refused_naming_it() {
        let e = CniArgs::parse("K8S_POD_NAME=a;garbage").unwrap_err();
        assert_eq!(e, ArgsError::InvalidPair { pair: "garbage".into() });
        let c = CniError::from(e);
        assert_eq!(c.code, codes::INVALID_ENV);
        assert!(c.msg.contains("\"garbage\""), "message must name the pair: {}", c.msg);
    }

    #[test]
    fn trailing_semicolon_is_tolerated() {
        assert_eq!(CniArgs::parse("K8S_POD_NAME=a;").unwrap().k8s_pod_name.as_deref(), Some("a"));
    }

    #[test]
    fn unknown_keys_are_refused_without_ignore_unknown() {
        let e = CniArgs::parse("FOO=1;K8S_POD_NAME=a;BAR=2").unwrap_err();
        assert_eq!(e, ArgsError::UnknownKeys { keys: vec!["FOO".into(), "BAR".into()] });
        let c = CniError::from(e);
        assert_eq!(c.code, codes::INVALID_ENV);
        assert!(
            c.msg.contains("\"FOO\"") && c.msg.contains("\"BAR\"") && c.msg.contains("IgnoreUnknown=1"),
            "{}",
            c.msg
        );
    }

    #[test]
    fn ignore_unknown_after_the_unknown_keys_still_counts() {
        let a = CniArgs::parse("FOO=1;IgnoreUnknown=1").unwrap();
        assert_eq!(a.unknown, vec![("FOO".to_string(), "1".to_string())]);
    }

    #[test]
    fn keys_are_case_sensitive() {
        // libcni matches Go struct field names exactly; `mac` is not `MAC`.
        let e = CniArgs::parse("mac=02:00:00:00:00:01").unwrap_err();
        assert_eq!(e, ArgsError::UnknownKeys { keys: vec!["mac".into()] });
    }

    #[test]
    fn ignore_unknown_follows_libcni_bool_rules() {
        for (v, want) in [("1", true), ("true", true), ("True", true), ("TRUE", true), ("tRuE", true)] {
            assert_eq!(CniArgs::parse(&format!("IgnoreUnknown={v}")).unwrap().ignore_unknown, want, "{v}");
        }
        for v in ["0", "false", "False", "FALSE"] {
            assert!(!CniArgs::parse(&format!("IgnoreUnknown={v}")).unwrap().ignore_unknown, "{v}");
        }
        for v in ["", "t", "T", "f", "yes", "2", " 1"] {
            assert_eq!(
                CniArgs::parse(&format!("IgnoreUnknown={v}")),
                Err(ArgsError::InvalidBool { value: v.into() }),
                "{v:?} must be refused"
            );
        }
    }

    #[test]
    fn ignore_unknown_false_refuses_unknown_keys() {
        assert!(matches!(CniArgs::parse("IgnoreUnknown=0;X=1"), Err(ArgsError::UnknownKeys { .. })));
    }

    #[test]
    fn mac_is_validated_and_lowercased() {
        assert_eq!(CniArgs::parse("MAC=02:AB:cd:00:11:FF").unwrap().mac.as_deref(), Some("02:ab:cd:00:11:ff"));
        assert_eq!(CniArgs::parse("MAC=").unwrap().mac, None);
        for bad in
            ["02:ab:cd:00:11", "02:ab:cd:00:11:ff:00", "02-ab-cd-00-11-ff", "2:ab:cd:00:11:ff", "0g:ab:cd:00:11:ff"]
        {
            let e = CniArgs::parse(&format!("MAC={bad}")).unwrap_err();
            assert_eq!(e, ArgsError::InvalidMac { value: bad.into() });
            assert_eq!(CniError::from(e).code, codes::INVALID_ENV);
        }
    }

    #[test]
    fn ip_list_is_dual_stack() {
        let a = CniArgs::parse("IP=10.1.1.5,fd00::5").unwrap();
        assert_eq!(a.ips, vec!["10.1.1.5".parse::<IpAddr>().unwrap(), "fd00::5".parse::<IpAddr>().unwrap()]);
        assert_eq!(CniArgs::parse("IP=10.1.1.5 , fd00::5").unwrap().ips.len(), 2);
        assert!(CniArgs::parse("IP=").unwrap().ips.is_empty());
    }

    #[test]
    fn bad_ip_names_the_item() {
        let e = CniArgs::parse("IP=10.1.1.5,10.1.1.6/24").unwrap_err();
        assert_eq!(e, ArgsError::InvalidIp { value: "10.1.1.5,10.1.1.6/24".into(), item: "10.1.1.6/24".into() });
        assert!(CniError::from(e).msg.contains("\"10.1.1.6/24\""));
    }

    #[test]
    fn empty_known_values_are_absent() {
        let a = CniArgs::parse("K8S_POD_NAMESPACE=;K8S_POD_NAME=").unwrap();
        assert_eq!(a.k8s_pod_namespace, None);
        assert_eq!(a.k8s_pod_name, None);
    }

    #[test]
    fn later_known_key_wins() {
        assert_eq!(CniArgs::parse("K8S_POD_NAME=a;K8S_POD_NAME=b").unwrap().k8s_pod_name.as_deref(), Some("b"));
    }

    /// Builds CNI_ARGS text the way a runtime would, independently of the parser.
    fn render(known: &[(&str, String)], unknown: &[(String, String)]) -> String {
        let mut pairs: Vec<String> = vec!["IgnoreUnknown=1".to_string()];
        pairs.extend(known.iter().map(|(k, v)| format!("{k}={v}")));
        pairs.extend(unknown.iter().map(|(k, v)| format!("{k}={v}")));
        pairs.join(";")
    }

    fn unknown_key() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.-]{0,12}".prop_filter("a known key", |k| !KNOWN_KEYS.contains(&k.as_str()))
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = CniArgs::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_pair_like_input(s in "[A-Za-z=;:,. 0-9-]{0,64}") {
            let _ = CniArgs::parse(&s);
        }

        #[test]
        fn generated_args_round_trip(
            unknown in proptest::collection::vec((unknown_key(), "[^;]{0,20}"), 0..6),
            ns in proptest::option::of("[a-z0-9-]{1,20}"),
            name in proptest::option::of("[^;]{1,20}"),
            uid in proptest::option::of("[a-f0-9-]{1,36}"),
            infra in proptest::option::of("[a-f0-9]{1,64}"),
            mac in proptest::option::of(proptest::array::uniform6(any::<u8>())),
            ips in proptest::collection::vec(any::<IpAddr>(), 0..3),
        ) {
            let mut known: Vec<(&str, String)> = Vec::new();
            if let Some(v) = &ns { known.push(("K8S_POD_NAMESPACE", v.clone())); }
            if let Some(v) = &name { known.push(("K8S_POD_NAME", v.clone())); }
            if let Some(v) = &uid { known.push(("K8S_POD_UID", v.clone())); }
            if let Some(v) = &infra { known.push(("K8S_POD_INFRA_CONTAINER_ID", v.clone())); }
            let mac_text = mac.map(|b| b.iter().map(|x| format!("{x:02X}")).collect::<Vec<_>>().join(":"));
            if let Some(m) = &mac_text { known.push(("MAC", m.clone())); }
            if !ips.is_empty() {
                known.push(("IP", ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")));
            }
            let text = render(&known, &unknown);
            let parsed = CniArgs::parse(&text);
            prop_assert!(parsed.is_ok(), "{:?} failed: {:?}", text, parsed);
            let a = parsed.unwrap();
            prop_assert!(a.ignore_unknown);
            prop_assert_eq!(&a.unknown, &unknown);
            prop_assert_eq!(a.k8s_pod_namespace, ns);
            prop_assert_eq!(a.k8s_pod_name, name);
            prop_assert_eq!(a.k8s_pod_uid, uid);
            prop_assert_eq!(a.k8s_pod_infra_container_id, infra);
            prop_assert_eq!(a.mac, mac_text.map(|m| m.to_ascii_lowercase()));
            prop_assert_eq!(a.ips, ips);
        }
    }
}
