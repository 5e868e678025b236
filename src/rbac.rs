//! The Kubernetes API calls the plugin and the reconciler make, by identity: the client code uses
//! these verbs only, and each shipped ClusterRole grants exactly its identity's rows. Plain data;
//! never calls the API.
//!
//! `tests/manifests.rs` fails when a ClusterRole in `config/kubernetes/clusterrole.yaml` grants a
//! (group, resource, verb) that is not its identity's here, or misses one that is, and when the
//! ServiceAccounts, bindings and the admission policy's usernames disagree with `Identity`.
//! Adding a call means adding its row here first. `tests/k8s_rbac.rs` checks the same rows
//! against a real API server.

/// Who makes a call. Each identity has its own ServiceAccount and ClusterRole (same name), so a
/// credential of one cannot make the other's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Identity {
    /// The plugin in annotation mode, run by the container runtime on the host, when its network
    /// config names a kubeconfig holding a token of this account (docs/install.md).
    Plugin,
    /// `userspace gc` in the DaemonSet's pod, with the pod's in-cluster account.
    Reconciler,
    /// `userspace dra-plugin`, the kubelet DRA plugin in the DRA DaemonSet's pod
    /// (config/kubernetes/dra/, docs/kubevirt-dra.md), with the pod's in-cluster account.
    DraPlugin,
}

/// The namespace of the node agent and of both ServiceAccounts.
pub const NAMESPACE: &str = "userspace-cni";

impl Identity {
    pub const ALL: [Identity; 3] = [Identity::Plugin, Identity::Reconciler, Identity::DraPlugin];

    /// The ServiceAccount, and the name of its ClusterRole and ClusterRoleBinding. The
    /// reconciler keeps the name the single role of earlier versions had, so `kubectl apply`
    /// narrows that role in place instead of leaving it behind.
    pub fn service_account(self) -> &'static str {
        match self {
            Identity::Plugin => "userspace-cni-plugin",
            Identity::Reconciler => "userspace-cni",
            Identity::DraPlugin => "userspace-cni-dra",
        }
    }

    /// The username the API server gives this account's tokens.
    pub fn username(self) -> String {
        format!("system:serviceaccount:{NAMESPACE}:{}", self.service_account())
    }
}

/// One (API group, resource, verb) an identity's code uses, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiAccess {
    /// `""` is the core group.
    pub group: &'static str,
    /// A resource or `resource/subresource`.
    pub resource: &'static str,
    pub verb: &'static str,
    pub by: Identity,
    pub why: &'static str,
}

/// Everything, and nothing else. No `patch` anywhere: the annotation write is GET + PUT with the
/// resourceVersion (DESIGN.md §3.5), the verbs Multus's own ClusterRole grants. No `list` but the
/// DRA plugin's of its own node's ResourceSlices: the reconciler asks about each record's pod by
/// name (`src/k8s`, `src/reconcile/pods.rs`) and reads and writes only its own Node, by name.
/// RBAC cannot limit an update to one node or to some keys (`resourceNames` would need every
/// node's name); `config/kubernetes/admission-policy.yaml` does: pods/status of pods on the
/// token's node, userspace/* annotations only; the token's own Node, userspace-cni.io/* labels
/// only; ResourceSlices whose `spec.nodeName` is the token's node.
pub const API_ACCESS: &[ApiAccess] = &[
    ApiAccess {
        group: "",
        resource: "pods",
        verb: "get",
        by: Identity::Plugin,
        why: "the pod's shared-dir volume, uid and resourceVersion (ADD's validation, the annotation write of ADD \
              and DEL, CHECK's read of the annotations)",
    },
    ApiAccess {
        group: "",
        resource: "pods/status",
        verb: "get",
        by: Identity::Plugin,
        why: "re-read the pod through the subresource it writes, after a 409 conflict",
    },
    ApiAccess {
        group: "",
        resource: "pods/status",
        verb: "update",
        by: Identity::Plugin,
        why: "PUT the userspace/configuration-data and userspace/mapped-dir annotations with the pod's \
              resourceVersion",
    },
    ApiAccess {
        group: "",
        resource: "pods",
        verb: "get",
        by: Identity::Reconciler,
        why: "whether a record's pod still exists on this node (uid, spec.nodeName)",
    },
    ApiAccess {
        group: "",
        resource: "nodes",
        verb: "get",
        by: Identity::Reconciler,
        why: "read this node's Node object (NODE_NAME) and its resourceVersion before changing its labels",
    },
    ApiAccess {
        group: "",
        resource: "nodes",
        verb: "update",
        by: Identity::Reconciler,
        why: "PUT this node with the label userspace-cni.io/<engine>-unavailable set while an engine with \
              attachments here is unreachable, and removed once it answers (src/reconcile/node_mark.rs)",
    },
    ApiAccess {
        group: "resource.k8s.io",
        resource: "resourceclaims",
        verb: "get",
        by: Identity::Reconciler,
        why: "whether a DRA record's claim (same uid) is still allocated and reserved for its pod; only a \
              provably gone claim's attachment is removed (src/k8s/claims.rs)",
    },
    // The DRA plugin (src/dra/). No `watch`: the slice is written at start and on settings
    // changes, never kept in sync by an informer. Slice writes are confined to the token's own
    // node by the admission policy userspace-cni-dra-own-node.
    ApiAccess {
        group: "resource.k8s.io",
        resource: "resourceslices",
        verb: "list",
        by: Identity::DraPlugin,
        why: "find this node's slices of our driver (field selector spec.driver, spec.nodeName) and their \
              generations (src/dra/slice.rs)",
    },
    ApiAccess {
        group: "resource.k8s.io",
        resource: "resourceslices",
        verb: "get",
        by: Identity::DraPlugin,
        why: "read the slice back after writing it (did the server keep allowMultipleAllocations?) and after a 409",
    },
    ApiAccess {
        group: "resource.k8s.io",
        resource: "resourceslices",
        verb: "create",
        by: Identity::DraPlugin,
        why: "publish this node's slice: one device per configured bridge",
    },
    ApiAccess {
        group: "resource.k8s.io",
        resource: "resourceslices",
        verb: "update",
        by: Identity::DraPlugin,
        why: "PUT this node's slice with its resourceVersion when the bridges change (a higher pool.generation)",
    },
    ApiAccess {
        group: "resource.k8s.io",
        resource: "resourceslices",
        verb: "delete",
        by: Identity::DraPlugin,
        why: "remove older slices of this node's pool, all of them when no bridge is configured, and at uninstall",
    },
    ApiAccess {
        group: "resource.k8s.io",
        resource: "resourceclaims",
        verb: "get",
        by: Identity::DraPlugin,
        why: "Prepare reads the claim kubelet names: its allocation, opaque config and the pod it is reserved for",
    },
    ApiAccess {
        group: "",
        resource: "pods",
        verb: "get",
        by: Identity::DraPlugin,
        why: "clean-up at start and every minute: whether a prepared claim's pod still exists on this node \
              (src/k8s/claims.rs)",
    },
    ApiAccess {
        group: "",
        resource: "nodes",
        verb: "get",
        by: Identity::DraPlugin,
        why: "the Node's uid, for the slice's owner reference (the slice goes when the Node does)",
    },
];

/// Whether any identity's code uses `verb` on `resource` of `group`.
pub fn uses(group: &str, resource: &str, verb: &str) -> bool {
    API_ACCESS.iter().any(|a| a.group == group && a.resource == resource && a.verb == verb)
}

/// Whether `who`'s code uses `verb` on `resource` of `group`.
pub fn used_by(who: Identity, group: &str, resource: &str, verb: &str) -> bool {
    API_ACCESS.iter().any(|a| a.by == who && a.group == group && a.resource == resource && a.verb == verb)
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
                !API_ACCESS[..i]
                    .iter()
                    .any(|b| (b.by, b.group, b.resource, b.verb) == (a.by, a.group, a.resource, a.verb)),
                "{:?}: {} {} listed twice",
                a.by,
                a.resource,
                a.verb
            );
        }
        assert!(uses("", "pods/status", "update"));
        assert!(!uses("", "pods", "patch"));
    }

    #[test]
    fn each_identity_has_only_its_own_writes() {
        assert!(used_by(Identity::Plugin, "", "pods/status", "update"));
        assert!(!used_by(Identity::Plugin, "", "nodes", "update"), "the plugin never writes a Node");
        assert!(used_by(Identity::Reconciler, "", "nodes", "update"));
        assert!(!used_by(Identity::Reconciler, "", "pods/status", "update"), "the reconciler never writes a pod");
        assert_eq!(Identity::Reconciler.username(), "system:serviceaccount:userspace-cni:userspace-cni");
        assert!(used_by(Identity::DraPlugin, "resource.k8s.io", "resourceslices", "create"));
        assert!(!used_by(Identity::DraPlugin, "", "nodes", "update"), "the DRA plugin never writes a Node");
        assert!(!used_by(Identity::DraPlugin, "", "pods/status", "update"), "nor a pod");
    }
}
