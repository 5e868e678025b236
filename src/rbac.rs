//! The Kubernetes API calls the plugin and the reconciler make, as one list: the client code uses
//! these verbs only and the shipped ClusterRole grants exactly these. Plain data; never calls the API.
//!
//! `tests/manifests.rs` fails when `config/kubernetes/clusterrole.yaml` grants a (group, resource,
//! verb) that is not here, or misses one that is. Adding a call means adding its row here first.

/// One (API group, resource, verb) the code uses, with who uses it and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiAccess {
    /// `""` is the core group.
    pub group: &'static str,
    /// A resource or `resource/subresource`.
    pub resource: &'static str,
    pub verb: &'static str,
    pub by: &'static str,
    pub why: &'static str,
}

/// Everything, and nothing else. No `patch` anywhere: the annotation write is GET + PUT with the
/// resourceVersion (DESIGN.md §3.5), the verbs Multus's own ClusterRole grants. No `list`: the
/// reconciler asks about each record's pod by name (`src/k8s`, `src/reconcile/pods.rs`) and reads
/// and writes only its own Node, by name. Update on nodes cannot be limited to one node by RBAC
/// (`resourceNames` would need every node's name); the code PUTs only NODE_NAME's Node and only
/// changes its own `userspace-cni.io/*-unavailable` labels.
pub const API_ACCESS: &[ApiAccess] = &[
    ApiAccess {
        group: "",
        resource: "pods",
        verb: "get",
        by: "plugin, reconciler",
        why: "plugin: the pod's shared-dir volume and resourceVersion; reconciler: whether a record's pod \
              still exists on this node (uid, spec.nodeName)",
    },
    ApiAccess {
        group: "",
        resource: "pods/status",
        verb: "get",
        by: "plugin",
        why: "re-read the pod through the subresource it writes, after a 409 conflict",
    },
    ApiAccess {
        group: "",
        resource: "pods/status",
        verb: "update",
        by: "plugin",
        why: "PUT the userspace/* annotations with the pod's resourceVersion",
    },
    ApiAccess {
        group: "",
        resource: "nodes",
        verb: "get",
        by: "reconciler",
        why: "read this node's Node object (NODE_NAME) and its resourceVersion before changing its labels",
    },
    ApiAccess {
        group: "",
        resource: "nodes",
        verb: "update",
        by: "reconciler",
        why: "PUT this node with the label userspace-cni.io/<engine>-unavailable set while an engine with \
              attachments here is unreachable, and removed once it answers (src/reconcile/node_mark.rs)",
    },
];

/// Whether the code uses `verb` on `resource` of `group`.
pub fn uses(group: &str, resource: &str, verb: &str) -> bool {
    API_ACCESS.iter().any(|a| a.group == group && a.resource == resource && a.verb == verb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_patch_and_no_duplicates() {
        for (i, a) in API_ACCESS.iter().enumerate() {
            assert_ne!(a.verb, "patch", "{}: patch is never used (DESIGN.md §3.5)", a.resource);
            assert_ne!(a.verb, "*", "{}: no wildcard verbs", a.resource);
            assert!(
                !API_ACCESS[..i].iter().any(|b| (b.group, b.resource, b.verb) == (a.group, a.resource, a.verb)),
                "{} {} listed twice",
                a.resource,
                a.verb
            );
        }
        assert!(uses("", "pods/status", "update"));
        assert!(!uses("", "pods", "patch"));
    }
}
