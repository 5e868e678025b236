//! kubelet's wire types and gRPC stubs, generated at build time from our own `.proto` files next
//! to this one (build.rs). Servers for the plugin, clients for the tests' fake kubelet; nothing
//! here is hand-written.

/// `pluginregistration` (k8s.io/kubelet/pkg/apis/pluginregistration/v1): GetInfo and
/// NotifyRegistrationStatus, served on the socket in kubelet's plugins_registry/.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pluginregistration {
    include!(concat!(env!("OUT_DIR"), "/pluginregistration.rs"));
}

/// `k8s.io.kubelet.pkg.apis.dra.v1`: NodePrepareResources and NodeUnprepareResources.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod dra_v1 {
    include!(concat!(env!("OUT_DIR"), "/k8s.io.kubelet.pkg.apis.dra.v1.rs"));
}

/// The service names kubelet matches in `PluginInfo.supported_versions` and `type`.
pub const DRA_PLUGIN_TYPE: &str = "DRAPlugin";
/// kubelet's `drapbv1.DRAPluginService`: "<last package element>.<service>".
pub const DRA_V1_SERVICE: &str = "v1.DRAPlugin";
