//! Validation of `config/kubernetes/`: every document parses into its k8s-openapi type (or, for
//! CRDs without one, a struct of ours that denies unknown fields) and survives a round trip with
//! no field dropped; the DaemonSet mounts exactly `node_paths::node_paths` (generic rows, then the engines' declared volumes); each ClusterRole grants
//! exactly its identity's rows of `rbac::API_ACCESS` to that identity's ServiceAccount alone; the
//! admission policies apply to exactly those ServiceAccounts; every CNI config in a NAD passes the
//! plugin's own validation; the DRA DaemonSet mounts the paths of the DRA settings at their host
//! paths, and the DRA example's VMI, claim template and DeviceClass fit together. (`tests/k8s_rbac.rs` applies the RBAC and the policy to a real API
//! server.)

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::api::resource::v1::{DeviceClass, ResourceClaimTemplate};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use userspace_cni::node_paths::{NodePath, Propagation};

/// The node-path table of the engines built in (the generic rows, then each engine's volumes).
fn node_paths() -> Vec<NodePath> {
    userspace_cni::node_paths::node_paths(userspace_cni::pipeline::Registry::linked().registrations())
}
use userspace_cni::rbac::{Identity, API_ACCESS, NAMESPACE};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/kubernetes");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The contract with the reconciler (`userspace gc`) and `userspace doctor`.
const RECONCILER_ARGS: &[&str] = &["gc", "--every", "60s"];
const LIVENESS: &[&str] = &["/userspace", "gc", "--check-heartbeat", "180s"];
const READINESS: &[&str] = &["/userspace", "doctor", "--json"];
const NODE_LABEL: &str = "userspace-cni/ovs-dpdk";

// ---------------------------------------------------------------------------------------------
// Our types for documents k8s-openapi has no type for. Only the fields the manifests use, and
// unknown ones are errors; `Option`s are skipped when absent so the round trip is exact.

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Nad {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: NadSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NadSpec {
    config: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Vmi {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: VmiSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VmiSpec {
    domain: Domain,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_claims: Option<Vec<VmiResourceClaim>>,
    networks: Vec<VmiNetwork>,
    volumes: Vec<VmiVolume>,
}

/// KubeVirt v1.9's `VirtualMachineInstanceResourceClaim` (exactly one of the two names).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VmiResourceClaim {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_claim_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_claim_template_name: Option<String>,
}

/// KubeVirt v1.9's `ClaimRequest` (`networks[].resourceClaim`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClaimRequest {
    claim_name: String,
    request_name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Domain {
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<Cpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
    devices: Devices,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Cpu {
    cores: u32,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Memory {
    #[serde(skip_serializing_if = "Option::is_none")]
    hugepages: Option<Hugepages>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guest: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Hugepages {
    page_size: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Devices {
    #[serde(skip_serializing_if = "Option::is_none")]
    network_interface_multiqueue: Option<bool>,
    disks: Vec<Disk>,
    interfaces: Vec<VmiInterface>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Disk {
    name: String,
    disk: DiskTarget,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DiskTarget {
    bus: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VmiInterface {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    masquerade: Option<Empty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binding: Option<PluginBinding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac_address: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PluginBinding {
    name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VmiNetwork {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod: Option<Empty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multus: Option<Multus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_claim: Option<ClaimRequest>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Multus {
    network_name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VmiVolume {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_disk: Option<ContainerDisk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_init_no_cloud: Option<CloudInit>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ContainerDisk {
    image: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CloudInit {
    user_data: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KubeVirt {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: KubeVirtSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct KubeVirtSpec {
    configuration: KubeVirtConfiguration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct KubeVirtConfiguration {
    network: KubeVirtNetwork,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct KubeVirtNetwork {
    binding: BTreeMap<String, BindingPlugin>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BindingPlugin {
    #[serde(skip_serializing_if = "Option::is_none")]
    sidecar_image: Option<String>,
    #[serde(rename = "downwardAPI", skip_serializing_if = "Option::is_none")]
    downward_api: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    resources: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<Vec<KustomizeImage>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KustomizeImage {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_tag: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Loading and the round trip.

/// One YAML document of a manifest file, as JSON.
struct Doc {
    file: PathBuf,
    index: usize,
    value: Value,
}

impl Doc {
    fn at(&self) -> String {
        format!("{}#{}", self.file.strip_prefix(ROOT).unwrap_or(&self.file).display(), self.index)
    }

    fn kind(&self) -> (&str, &str) {
        (self.value["apiVersion"].as_str().unwrap_or(""), self.value["kind"].as_str().unwrap_or(""))
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
    out.sort();
}

fn parse_yaml(file: &Path, text: &str) -> Result<Vec<Doc>, String> {
    let mut docs = Vec::new();
    for (index, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| format!("{}#{index}: not YAML: {e}", file.display()))?;
        if !value.is_null() {
            docs.push(Doc { file: file.to_owned(), index, value });
        }
    }
    Ok(docs)
}

fn all_docs() -> Vec<Doc> {
    let mut files = Vec::new();
    yaml_files(Path::new(ROOT), &mut files);
    assert!(!files.is_empty(), "no YAML under {ROOT}");
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            parse_yaml(f, &text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// Every place where `typed` (serialised back) differs from `original`.
fn diff(original: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => diff(va, vb, &p, out),
                    None => out.push(format!("{p} was dropped (unknown field: a typo or a wrong place?)")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k} appeared"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

/// Parse `doc` as `T` and check that serialising it back gives the document again.
fn typed<T: DeserializeOwned + Serialize>(doc: &Doc) -> Result<T, String> {
    let t: T = serde_json::from_value(doc.value.clone()).map_err(|e| format!("{}: {e}", doc.at()))?;
    let back = serde_json::to_value(&t).map_err(|e| format!("{}: {e}", doc.at()))?;
    let mut problems = Vec::new();
    diff(&doc.value, &back, "", &mut problems);
    if problems.is_empty() {
        Ok(t)
    } else {
        Err(format!("{}: round trip through {}:\n  {}", doc.at(), std::any::type_name::<T>(), problems.join("\n  ")))
    }
}

/// Every document, typed by its apiVersion/kind.
#[derive(Default)]
struct Manifests {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    policies: Vec<ValidatingAdmissionPolicy>,
    policy_bindings: Vec<ValidatingAdmissionPolicyBinding>,
    daemonsets: Vec<DaemonSet>,
    device_classes: Vec<DeviceClass>,
    claim_templates: Vec<ResourceClaimTemplate>,
    pods: Vec<Pod>,
    nads: Vec<(PathBuf, Nad)>,
    vmis: Vec<Vmi>,
    kubevirts: Vec<KubeVirt>,
    kustomizations: Vec<(PathBuf, Kustomization)>,
}

fn type_all(docs: &[Doc]) -> Result<Manifests, String> {
    let mut m = Manifests::default();
    let mut errors = Vec::new();
    for doc in docs {
        let r = match doc.kind() {
            ("v1", "Namespace") => typed(doc).map(|t| m.namespaces.push(t)),
            ("v1", "ServiceAccount") => typed(doc).map(|t| m.service_accounts.push(t)),
            ("v1", "Pod") => typed(doc).map(|t| m.pods.push(t)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => typed(doc).map(|t| m.cluster_roles.push(t)),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => typed(doc).map(|t| m.bindings.push(t)),
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => typed(doc).map(|t| m.policies.push(t)),
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
                typed(doc).map(|t| m.policy_bindings.push(t))
            }
            ("apps/v1", "DaemonSet") => typed(doc).map(|t| m.daemonsets.push(t)),
            ("resource.k8s.io/v1", "DeviceClass") => typed(doc).map(|t| m.device_classes.push(t)),
            ("resource.k8s.io/v1", "ResourceClaimTemplate") => typed(doc).map(|t| m.claim_templates.push(t)),
            ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition") => {
                typed(doc).map(|t| m.nads.push((doc.file.clone(), t)))
            }
            ("kubevirt.io/v1", "VirtualMachineInstance") => typed(doc).map(|t| m.vmis.push(t)),
            ("kubevirt.io/v1", "KubeVirt") => typed(doc).map(|t| m.kubevirts.push(t)),
            ("kustomize.config.k8s.io/v1beta1", "Kustomization") => {
                typed(doc).map(|t| m.kustomizations.push((doc.file.clone(), t)))
            }
            (api, kind) => {
                Err(format!("{}: no validation for apiVersion {api:?} kind {kind:?}: add it here", doc.at()))
            }
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(errors.join("\n"))
    }
}

fn manifests() -> Manifests {
    type_all(&all_docs()).unwrap_or_else(|e| panic!("{e}"))
}

/// The DaemonSet named `name`.
fn daemonset<'a>(m: &'a Manifests, name: &str) -> &'a DaemonSet {
    let found: Vec<&DaemonSet> = m.daemonsets.iter().filter(|d| d.metadata.name.as_deref() == Some(name)).collect();
    assert_eq!(found.len(), 1, "expected one DaemonSet {name}");
    found[0]
}

/// The node agent's DaemonSet.
fn the_daemonset(m: &Manifests) -> &DaemonSet {
    daemonset(m, "userspace-cni")
}

/// The VMI named `name`.
fn vmi<'a>(m: &'a Manifests, name: &str) -> &'a Vmi {
    m.vmis.iter().find(|v| v.metadata.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no VMI {name}"))
}

fn container<'a>(containers: Option<&'a Vec<Container>>, name: &str) -> &'a Container {
    containers
        .into_iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("the DaemonSet has no container {name:?}"))
}

fn strings(v: &Option<Vec<String>>) -> Vec<&str> {
    v.iter().flatten().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// The round trip and unknown fields.

#[test]
fn every_manifest_parses_into_its_type_without_dropping_a_field() {
    let m = manifests();
    assert_eq!(m.namespaces.len(), 1);
    assert_eq!(m.service_accounts.len(), Identity::ALL.len(), "one ServiceAccount per identity");
    assert_eq!(m.cluster_roles.len(), Identity::ALL.len(), "one ClusterRole per identity");
    assert_eq!(m.bindings.len(), Identity::ALL.len(), "one ClusterRoleBinding per identity");
    assert_eq!(m.policies.len(), 2, "the admission policies: pods and nodes; ResourceSlices");
    assert_eq!(m.policy_bindings.len(), 2, "their bindings");
    assert_eq!(m.daemonsets.len(), 2, "the node agent and the DRA plugin");
    assert_eq!(m.device_classes.len(), 1, "the DRA example's DeviceClass");
    assert_eq!(m.claim_templates.len(), 1, "the DRA example's claim template");
    assert!(!m.pods.is_empty(), "the testpmd pod");
    assert!(m.nads.len() >= 4, "OVS client, OVS server, VPP memif, KubeVirt");
    assert_eq!(m.vmis.len(), 2, "the CNI (Multus) VMI and the DRA VMI");
    assert_eq!(m.kubevirts.len(), 1);
}

#[test]
fn a_misspelt_field_is_caught_by_the_round_trip() {
    let text = std::fs::read_to_string(format!("{ROOT}/daemonset.yaml")).unwrap();
    let typo = text.replacen("mountPropagation: Bidirectional", "mountPropogation: Bidirectional", 1);
    assert_ne!(text, typo);
    let docs = parse_yaml(Path::new("daemonset.yaml"), &typo).unwrap();
    let err = type_all(&docs).err().expect("the typo must be reported");
    assert!(err.contains("mountPropogation was dropped"), "{err}");

    let nad = "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: x}\n\
               spec: {config: '{}', confg: '{}'}\n";
    let err = type_all(&parse_yaml(Path::new("nad.yaml"), nad).unwrap()).err().expect("unknown NAD field");
    assert!(err.contains("confg"), "{err}");

    let meta_typo = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, lables: {a: b}}\n";
    let err = type_all(&parse_yaml(Path::new("ns.yaml"), meta_typo).unwrap()).err().expect("metadata typo");
    assert!(err.contains("lables was dropped"), "{err}");
}

#[test]
fn every_manifest_is_in_a_kustomization_and_every_listed_file_exists() {
    let m = manifests();
    let mut files = Vec::new();
    yaml_files(Path::new(ROOT), &mut files);
    let mut listed = BTreeSet::new();
    for (file, k) in &m.kustomizations {
        let dir = file.parent().unwrap();
        for r in &k.resources {
            let p = dir.join(r);
            assert!(p.is_file(), "{} lists {r}, which does not exist", file.display());
            assert!(listed.insert(p.clone()), "{} is listed twice", p.display());
        }
    }
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy();
        // Patches of existing objects are applied with `kubectl patch`, never created.
        if name == "kustomization.yaml" || name.ends_with("-patch.yaml") {
            continue;
        }
        assert!(listed.contains(&f), "{} is in no kustomization.yaml", f.display());
    }
}

// ---------------------------------------------------------------------------------------------
// The DaemonSet.

/// The volumes the table expects, as YAML to paste into daemonset.yaml.
fn expected_yaml() -> String {
    let mut mounts = String::from("          volumeMounts:\n");
    let mut volumes = String::from("      volumes:\n");
    for p in node_paths() {
        mounts += &format!("            - name: {}\n              mountPath: {}\n", p.volume, p.default);
        if p.propagation != Propagation::None {
            mounts += &format!("              mountPropagation: {}\n", p.propagation.as_k8s());
        }
        if p.read_only {
            mounts += "              readOnly: true\n";
        }
        volumes += &format!(
            "        - name: {}\n          hostPath:\n            path: {}\n            type: {}\n",
            p.volume,
            p.default,
            p.host_path_type()
        );
    }
    format!("{mounts}{volumes}")
}

#[test]
fn daemonset_host_paths_are_the_node_path_table() {
    let m = manifests();
    let pod = the_daemonset(&m).spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let hint = || format!("\nsrc/node_paths.rs expects (reconciler mounts, volumes):\n{}", expected_yaml());

    let volumes = pod.volumes.as_ref().unwrap();
    let got: Vec<(&str, &str, &str)> = volumes
        .iter()
        .map(|v| {
            let hp = v.host_path.as_ref().unwrap_or_else(|| panic!("volume {} is not a hostPath", v.name));
            (v.name.as_str(), hp.path.as_str(), hp.type_.as_deref().unwrap_or(""))
        })
        .collect();
    let rows = node_paths();
    let want: Vec<(&str, &str, &str)> = rows.iter().map(|p| (p.volume, p.default, p.host_path_type())).collect();
    assert_eq!(got, want, "DaemonSet volumes differ from node_paths(){}", hint());

    let reconciler = container(Some(&pod.containers), "reconciler");
    let got: Vec<(&str, &str, &str, bool)> = reconciler
        .volume_mounts
        .iter()
        .flatten()
        .map(|v| {
            let prop = v.mount_propagation.as_deref().unwrap_or("None");
            (v.name.as_str(), v.mount_path.as_str(), prop, v.read_only.unwrap_or(false))
        })
        .collect();
    let want: Vec<(&str, &str, &str, bool)> =
        rows.iter().map(|p| (p.volume, p.default, p.propagation.as_k8s(), p.read_only)).collect();
    assert_eq!(got, want, "the reconciler's mounts differ from node_paths(){}", hint());

    let install = container(pod.init_containers.as_ref(), "install");
    let got: Vec<(&str, &str, Option<&str>, bool)> = install
        .volume_mounts
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), v.mount_path.as_str(), v.mount_propagation.as_deref(), v.read_only.unwrap_or(false)))
        .collect();
    let want: Vec<(&str, &str, Option<&str>, bool)> =
        rows.iter().filter(|p| p.install).map(|p| (p.volume, p.default, None, false)).collect();
    assert_eq!(got, want, "the install container mounts read-write exactly the rows with install: true");
}

#[test]
fn daemonset_runs_install_then_the_reconciler_with_the_agreed_probes() {
    let m = manifests();
    let ds = the_daemonset(&m);
    let spec = ds.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();

    let install = container(pod.init_containers.as_ref(), "install");
    let settings_file = userspace_cni::settings::DEFAULT_CONFIG_FILE;
    let cni_bin = node_paths().iter().find(|p| p.volume == "cni-bin").unwrap().default;
    assert_eq!(strings(&install.args), ["install", cni_bin, "--settings", settings_file]);
    assert_eq!(install.command, None, "the image's entrypoint is /userspace");

    let reconciler = container(Some(&pod.containers), "reconciler");
    assert_eq!(strings(&reconciler.args), RECONCILER_ARGS);
    let exec = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        strings(&p.as_ref().and_then(|p| p.exec.as_ref()).and_then(|e| e.command.clone()))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(exec(&reconciler.liveness_probe), LIVENESS, "liveness: the reconciler's heartbeat");
    assert_eq!(exec(&reconciler.readiness_probe), READINESS, "readiness: doctor");

    for c in [install, reconciler] {
        let image = c.image.as_deref().unwrap_or("");
        assert!(image.ends_with(&format!(":{VERSION}")), "{}: image {image} is not tagged with {VERSION}", c.name);
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        assert!(requests.is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory")), "{}: requests", c.name);
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        assert!(limits.is_some_and(|l| l.contains_key("memory")), "{}: memory limit", c.name);
        let sc = c.security_context.as_ref().unwrap();
        // Kubernetes rejects Bidirectional propagation in an unprivileged container.
        let bidirectional =
            c.volume_mounts.iter().flatten().any(|v| v.mount_propagation.as_deref() == Some("Bidirectional"));
        assert_eq!(sc.privileged.unwrap_or(false), bidirectional, "{}: privileged only for Bidirectional", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
    }
    let drop = install.security_context.as_ref().and_then(|s| s.capabilities.as_ref()).and_then(|c| c.drop.clone());
    assert_eq!(drop, Some(vec!["ALL".to_owned()]), "the installer needs no capability");

    let selector = pod.node_selector.as_ref().expect("nodeSelector");
    assert_eq!(selector.get(NODE_LABEL).map(String::as_str), Some("true"));

    let kustomize_images: Vec<&KustomizeImage> =
        m.kustomizations.iter().flat_map(|(_, k)| k.images.iter().flatten()).collect();
    let name = install.image.as_deref().unwrap().rsplit_once(':').unwrap().0;
    assert!(
        kustomize_images.iter().any(|i| i.name == name && i.new_tag.as_deref() == Some(VERSION)),
        "kustomization.yaml sets the image {name} to {VERSION}"
    );
}

/// (group, resource, verb) a ClusterRole grants; no wildcards, no resourceNames, nothing twice.
fn granted(role: &ClusterRole) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none(), "{rule:?}");
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    assert!(g != "*" && r != "*" && v != "*", "wildcard in {rule:?}");
                    assert!(granted.insert((g.clone(), r.clone(), v.clone())), "{g}/{r} {v} granted twice");
                }
            }
        }
    }
    granted
}

/// Whether `granted`, as (group, resource, verb) triples, are exactly `who`'s rows of API_ACCESS;
/// the difference otherwise.
fn compare(who: Identity, granted: &BTreeSet<(String, String, String)>) -> Result<(), String> {
    let used: BTreeSet<_> = API_ACCESS
        .iter()
        .filter(|a| a.by == who)
        .map(|a| (a.group.to_owned(), a.resource.to_owned(), a.verb.to_owned()))
        .collect();
    let extra: Vec<_> = granted.difference(&used).collect();
    let missing: Vec<_> = used.difference(granted).collect();
    if extra.is_empty() && missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the {who:?} role grants what its code does not use: {extra:?}; misses what it uses: {missing:?} \
             (src/rbac.rs)"
        ))
    }
}

#[test]
fn each_role_grants_exactly_the_verbs_its_identitys_code_uses_to_that_identity_alone() {
    let m = manifests();
    for who in Identity::ALL {
        let name = who.service_account();
        let role = m.cluster_roles.iter().find(|r| r.metadata.name.as_deref() == Some(name));
        let role = role.unwrap_or_else(|| panic!("no ClusterRole {name} for {who:?}"));
        compare(who, &granted(role)).unwrap_or_else(|e| panic!("{e}"));

        let sa = m.service_accounts.iter().find(|s| s.metadata.name.as_deref() == Some(name));
        let sa = sa.unwrap_or_else(|| panic!("no ServiceAccount {name} for {who:?}"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some(NAMESPACE));
        let bindings: Vec<&ClusterRoleBinding> =
            m.bindings.iter().filter(|b| b.role_ref.kind == "ClusterRole" && b.role_ref.name == name).collect();
        assert_eq!(bindings.len(), 1, "exactly one binding of the ClusterRole {name}");
        let subjects = bindings[0].subjects.clone().unwrap_or_default();
        let got: Vec<(&str, &str, Option<&str>)> =
            subjects.iter().map(|s| (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref())).collect();
        assert_eq!(got, [("ServiceAccount", name, Some(NAMESPACE))], "{name} is bound to its own account only");
    }
    // The test above can fail: a role with the other identity's rows is refused.
    let mut both = BTreeSet::new();
    for role in &m.cluster_roles {
        both.extend(granted(role));
    }
    let err = compare(Identity::Plugin, &both).expect_err("the union of both roles is not the plugin's");
    assert!(err.contains("\"nodes\", \"update\""), "{err}");

    let ds = the_daemonset(&m);
    let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(Identity::Reconciler.service_account()),
        "the DaemonSet (the reconciler) runs as the reconciler's account"
    );
    assert_eq!(ds.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(m.namespaces[0].metadata.name.as_deref(), Some(NAMESPACE));
}

/// Which identities each shipped admission policy confines.
const POLICIES: &[(&str, &[Identity])] = &[
    ("userspace-cni-own-node", &[Identity::Plugin, Identity::Reconciler]),
    ("userspace-cni-dra-own-node", &[Identity::DraPlugin]),
];

#[test]
fn the_admission_policies_apply_to_exactly_our_accounts_and_deny() {
    let m = manifests();
    let mut confined = BTreeSet::new();
    for (name, who) in POLICIES {
        let policy = m.policies.iter().find(|p| p.metadata.name.as_deref() == Some(*name));
        let policy = policy.unwrap_or_else(|| panic!("no ValidatingAdmissionPolicy {name}"));
        let spec = policy.spec.as_ref().expect("spec");
        assert_eq!(spec.failure_policy.as_deref(), Some("Fail"), "{name}: an expression that errs must refuse");
        let conditions = spec.match_conditions.clone().unwrap_or_default();
        assert_eq!(conditions.len(), 1, "{name}: one match condition: the username");
        let expr = &conditions[0].expression;
        let mut named: Vec<String> = expr.split('\'').skip(1).step_by(2).map(str::to_owned).collect();
        named.sort();
        let mut ours: Vec<String> = who.iter().map(|i| i.username()).collect();
        ours.sort();
        assert_eq!(named, ours, "{name} matches exactly these ServiceAccounts: {expr}");
        confined.extend(who.iter().copied());

        // Every write of these identities' code is seen by the policy (group and resource).
        let rules = spec.match_constraints.as_ref().and_then(|c| c.resource_rules.clone()).unwrap_or_default();
        for written in API_ACCESS.iter().filter(|a| a.verb != "get" && a.verb != "list" && who.contains(&a.by)) {
            let wildcard = written.resource.split_once('/').map(|(base, _)| format!("{base}/*"));
            let seen = rules.iter().any(|r| {
                let groups = r.api_groups.clone().unwrap_or_default();
                let resources = r.resources.clone().unwrap_or_default();
                let ops = r.operations.clone().unwrap_or_default();
                let op = match written.verb {
                    "create" => "CREATE",
                    "delete" => "DELETE",
                    _ => "UPDATE",
                };
                groups.iter().any(|g| g == written.group)
                    && ops.iter().any(|o| o == op)
                    && (resources.iter().any(|x| x == written.resource)
                        || wildcard.as_ref().is_some_and(|w| resources.contains(w)))
            });
            assert!(seen, "{name} does not see {} {} {}: {rules:?}", written.verb, written.group, written.resource);
        }

        let binding = m.policy_bindings.iter().find(|b| b.spec.policy_name == *name);
        let bspec = &binding.unwrap_or_else(|| panic!("no binding of {name}")).spec;
        assert_eq!(bspec.validation_actions, ["Deny"]);
        assert!(bspec.param_ref.is_none() && bspec.match_resources.is_none(), "every namespace, no parameters");
    }
    assert_eq!(confined, Identity::ALL.into_iter().collect::<BTreeSet<_>>(), "every identity is confined by a policy");
    assert_eq!(m.policies.len(), POLICIES.len(), "no policy beyond these");
}

// ---------------------------------------------------------------------------------------------
// The CNI configs in the NADs and the KubeVirt example.

#[test]
fn every_nad_config_passes_the_plugins_validation() {
    let m = manifests();
    let settings = userspace_cni_api::NodeSettings::default();
    let engines: Vec<&str> =
        userspace_cni::pipeline::Registry::linked().registrations().iter().map(|r| r.engine).collect();
    let mut modes = BTreeSet::new();
    for (file, nad) in &m.nads {
        let at = format!("{} ({})", file.display(), nad.metadata.name.as_deref().unwrap_or("?"));
        let nc = userspace_cni::netconf::parse(nad.spec.config.as_bytes())
            .unwrap_or_else(|e| panic!("{at}: the plugin rejects the config: {e}"));
        nc.validate(&settings).unwrap_or_else(|e| panic!("{at}: the plugin rejects the config: {e}"));
        assert_eq!(nc.plugin_type, "userspace", "{at}");
        assert_eq!(nc.cni_version.as_deref(), Some("1.1.0"), "{at}");
        assert_eq!(Some(&nc.name), nad.metadata.name.as_ref(), "{at}: network name = NAD name");
        let engine = nc.host.engine.as_deref().unwrap();
        assert!(engines.contains(&engine), "{at}: engine {engine} is not in the binary ({engines:?})");
        let raw = &nc.raw["host"];
        modes.insert((engine.to_owned(), raw["iftype"].as_str().unwrap_or("").to_owned(), mode_of(raw)));
    }
    for want in [("ovs-dpdk", "vhostuser", "client"), ("ovs-dpdk", "vhostuser", "server"), ("vpp", "memif", "master")] {
        let want = (want.0.to_owned(), want.1.to_owned(), want.2.to_owned());
        assert!(modes.contains(&want), "no example NAD for {want:?}; have {modes:?}");
    }
}

fn mode_of(host: &Value) -> String {
    host["vhost"]["mode"].as_str().or_else(|| host["memif"]["role"].as_str()).unwrap_or("").to_owned()
}

#[test]
fn kubevirt_example_is_consistent() {
    let m = manifests();
    let vmi = vmi(&m, "vmi-vhostuser");
    let kv = &m.kubevirts[0];
    let nads: BTreeMap<&str, &Nad> = m.nads.iter().map(|(_, n)| (n.metadata.name.as_deref().unwrap(), n)).collect();
    let networks: BTreeMap<&str, &VmiNetwork> = vmi.spec.networks.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut vhost = 0;
    for iface in &vmi.spec.domain.devices.interfaces {
        let net =
            networks.get(iface.name.as_str()).unwrap_or_else(|| panic!("interface {} has no network", iface.name));
        let Some(binding) = &iface.binding else { continue };
        vhost += 1;
        let plugin = kv.spec.configuration.network.binding.get(&binding.name);
        let plugin = plugin.unwrap_or_else(|| panic!("binding {} is not registered in the KubeVirt CR", binding.name));
        assert_eq!(plugin.downward_api.as_deref(), Some("device-info"), "the binding reads device-info");
        assert!(plugin.sidecar_image.is_some());

        let name = &net.multus.as_ref().expect("a vhost-user interface is on a Multus network").network_name;
        let nad = nads.get(name.as_str()).unwrap_or_else(|| panic!("no NAD {name} for the VMI"));
        let conf: Value = serde_json::from_str(&nad.spec.config).unwrap();
        assert_eq!(conf["cniVersion"], "1.1.0");
        assert_eq!(conf["host"]["vhost"]["mode"], "client", "QEMU serves the socket, OVS connects");
        for cap in ["mac", "deviceID", "CNIDeviceInfoFile"] {
            assert_eq!(conf["capabilities"][cap], true, "{name}: capability {cap}");
        }
        // Multus passes CNIDeviceInfoFile only for a network with a device (resourceName); KubeVirt
        // requests that resource for the launcher pod itself, one per network, so the VMI must not
        // (an explicit value under-requests for two such NICs).
        let annotations = nad.metadata.annotations.as_ref();
        let resource = annotations.and_then(|a| a.get("k8s.v1.cni.cncf.io/resourceName")).expect("resourceName");
        let requests = vmi.spec.domain.resources.as_ref().and_then(|r| r.requests.as_ref());
        assert!(!requests.is_some_and(|r| r.contains_key(resource)), "the VMI must not request {resource} itself");
        let limits = vmi.spec.domain.resources.as_ref().and_then(|r| r.limits.as_ref());
        assert!(!limits.is_some_and(|r| r.contains_key(resource)), "the VMI must not limit {resource} itself");
    }
    assert_eq!(vhost, 1, "one vhost-user interface");
    assert!(vmi.spec.domain.memory.as_ref().and_then(|m| m.hugepages.as_ref()).is_some(), "vhost-user needs hugepages");
}

// ---------------------------------------------------------------------------------------------
// The DRA plugin's DaemonSet and the KubeVirt-with-DRA example.

#[test]
fn dra_daemonset_mounts_the_dra_paths_at_their_host_paths_as_its_own_account() {
    let m = manifests();
    let ds = daemonset(&m, "userspace-cni-dra");
    assert_eq!(ds.metadata.namespace.as_deref(), Some(NAMESPACE));
    let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(Identity::DraPlugin.service_account()));
    assert_eq!(pod.node_selector.as_ref().and_then(|s| s.get(NODE_LABEL)).map(String::as_str), Some("true"));
    let c = container(Some(&pod.containers), "dra-plugin");
    assert_eq!(strings(&c.args), ["dra-plugin"]);
    assert_eq!(c.command, None, "the image's entrypoint is /userspace");
    let probe = c.liveness_probe.as_ref().expect("a liveness probe");
    let exec = probe.exec.as_ref().and_then(|e| e.command.clone()).expect("an exec probe");
    assert_eq!(exec, ["/userspace", "dra-plugin", "--probe"], "the binary's own probe");
    // Two calls of at most 5 s each must fit the probe's timeout.
    assert!(probe.timeout_seconds.unwrap_or(1) >= 10, "timeoutSeconds {:?}", probe.timeout_seconds);
    let node_name = c.env.iter().flatten().find(|e| e.name == "NODE_NAME").expect("env NODE_NAME");
    let field = node_name.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str());
    assert_eq!(field, Some("spec.nodeName"), "NODE_NAME comes from the pod's node");
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.privileged, Some(true), "privileged like the node agent (OVSDB, chown of socket dirs)");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let image = c.image.as_deref().unwrap_or("");
    assert!(image.ends_with(&format!(":{VERSION}")), "image {image} is not tagged with {VERSION}");

    // Every path the plugin and the kubelet exchange, at the same path inside as on the host.
    let d = userspace_cni_api::NodeSettings::default();
    let want: BTreeSet<String> = [
        "/var/lib/kubelet/plugins_registry".to_owned(),
        "/var/lib/kubelet/plugins".to_owned(),
        d.dra.cdi_dir.display().to_string(),
        d.dra.socket_root.display().to_string(),
        d.dra.container_root.display().to_string(),
        d.dra.metadata_dir.display().to_string(),
        d.state_dir.display().to_string(),
        "/var/run/openvswitch".to_owned(),
        "/etc/userspace-cni".to_owned(),
        "/var/log/userspace-cni".to_owned(),
    ]
    .into_iter()
    .collect();
    let volumes: BTreeMap<&str, &str> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| {
            let hp = v.host_path.as_ref().unwrap_or_else(|| panic!("volume {} is not a hostPath", v.name));
            (v.name.as_str(), hp.path.as_str())
        })
        .collect();
    let mut got = BTreeSet::new();
    for mount in c.volume_mounts.iter().flatten() {
        let host = volumes.get(mount.name.as_str()).unwrap_or_else(|| panic!("no volume {}", mount.name));
        assert_eq!(*host, mount.mount_path, "{}: mounted at another path than on the host", mount.name);
        got.insert(mount.mount_path.clone());
    }
    assert_eq!(got, want, "the DRA plugin's mounts");
    let settings = c.volume_mounts.iter().flatten().find(|v| v.mount_path == "/etc/userspace-cni").unwrap();
    assert_eq!(settings.read_only, Some(true), "the settings are read only");
}

#[test]
fn kubevirt_dra_example_fits_together() {
    let m = manifests();
    let vmi = vmi(&m, "vmi-vhostuser-dra");
    let driver = userspace_cni_api::settings::DEFAULT_DRA_DRIVER;
    let claims = vmi.spec.resource_claims.as_ref().expect("spec.resourceClaims");
    let mut dra_nics = 0;
    for iface in &vmi.spec.domain.devices.interfaces {
        let Some(binding) = &iface.binding else { continue };
        assert_eq!(binding.name, "vhostuser", "KubeVirt's vhostuser binding plugin");
        let net = vmi.spec.networks.iter().find(|n| n.name == iface.name).expect("the interface's network");
        let req = net.resource_claim.as_ref().expect("a DRA network: networks[].resourceClaim");
        assert!(net.multus.is_none() && net.pod.is_none(), "one network source");
        let claim = claims.iter().find(|c| c.name == req.claim_name).expect("claimName names a resourceClaims entry");
        // The binding 0.1.0 reads only the template form of the metadata path.
        let template_name = claim.resource_claim_template_name.as_deref().expect("a ResourceClaimTemplate");
        assert!(claim.resource_claim_name.is_none(), "exactly one of the two names");
        let template = m
            .claim_templates
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(template_name))
            .unwrap_or_else(|| panic!("no ResourceClaimTemplate {template_name}"));
        assert_eq!(template.metadata.namespace, vmi.metadata.namespace, "the template is in the VMI's namespace");
        let devices = template.spec.spec.devices.as_ref().expect("devices");
        let request = devices
            .requests
            .iter()
            .flatten()
            .find(|r| r.name == req.request_name)
            .unwrap_or_else(|| panic!("the template has no request {}", req.request_name));
        let exactly = request.exactly.as_ref().expect("an exact request");
        let class = m
            .device_classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(exactly.device_class_name.as_str()))
            .unwrap_or_else(|| panic!("no DeviceClass {}", exactly.device_class_name));
        let selects = class
            .spec
            .selectors
            .iter()
            .flatten()
            .filter_map(|s| s.cel.as_ref())
            .any(|c| c.expression.replace(' ', "") == format!("device.driver==\"{driver}\""));
        assert!(selects, "the DeviceClass selects the driver {driver}");
        let by_bridge = exactly
            .selectors
            .iter()
            .flatten()
            .filter_map(|s| s.cel.as_ref())
            .any(|c| c.expression.contains(&format!("device.attributes[\"{driver}\"].bridgeName")));
        assert!(by_bridge, "the request picks a bridge by the slice's bridgeName attribute");
        for config in devices.config.iter().flatten() {
            let opaque = config.opaque.as_ref().expect("opaque config");
            assert_eq!(opaque.driver, driver);
            let p = &opaque.parameters.0;
            assert_eq!(p["apiVersion"], "ovsdpdk.k8snetworkplumbingwg.io/v1alpha1", "the PoC's OvsPortConfig");
            assert_eq!(p["kind"], "OvsPortConfig");
            let keys: BTreeSet<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
            assert!(keys.is_subset(&["apiVersion", "kind", "vlan", "policing"].into()), "{keys:?}");
        }
        dra_nics += 1;
    }
    assert_eq!(dra_nics, 1, "one vhost-user NIC");
    assert!(vmi.spec.domain.memory.as_ref().and_then(|m| m.hugepages.as_ref()).is_some(), "vhost-user needs hugepages");
}

#[test]
fn the_dra_guide_names_every_dra_setting_and_shipped_file() {
    let root = env!("CARGO_MANIFEST_DIR");
    let guide = std::fs::read_to_string(format!("{root}/docs/kubevirt-dra.md")).unwrap();
    let reference = std::fs::read_to_string(format!("{root}/config/userspace.toml")).unwrap();
    let keys: BTreeSet<&str> = reference
        .lines()
        .filter_map(|l| l.trim_start_matches("# ").split_once(" = ").map(|(k, _)| k.trim()))
        .filter(|k| k.starts_with("dra_") || *k == "cdi_dir" || *k == "node_name")
        .collect();
    assert!(keys.len() >= 10, "the DRA keys of config/userspace.toml: {keys:?}");
    for k in keys {
        assert!(guide.contains(&format!("| `{k}` |")), "docs/kubevirt-dra.md's settings table lacks {k}");
    }
    for file in ["config/kubernetes/dra", "config/kubernetes/examples/kubevirt-dra/", "userspace-cni-dra-own-node"] {
        assert!(guide.contains(file), "docs/kubevirt-dra.md does not name {file}");
    }
}

#[test]
fn testpmd_pod_uses_an_example_network_and_a_shared_dir_volume() {
    let m = manifests();
    let pod = m.pods.iter().find(|p| p.metadata.name.as_deref() == Some("testpmd")).expect("testpmd pod");
    let networks = pod.metadata.annotations.as_ref().and_then(|a| a.get("k8s.v1.cni.cncf.io/networks")).unwrap();
    let nad = m.nads.iter().find(|(_, n)| n.metadata.name.as_deref() == Some(networks.as_str()));
    let (_, nad) = nad.unwrap_or_else(|| panic!("the pod's network {networks} has no example NAD"));
    let conf: Value = serde_json::from_str(&nad.spec.config).unwrap();
    assert!(conf["kubeconfig"].is_string(), "the pod finds its socket through the plugin's annotation");
    let spec = pod.spec.as_ref().unwrap();
    // The plugin looks for the pod volume with exactly this name (DESIGN.md §4).
    assert!(spec.volumes.iter().flatten().any(|v| v.name == "shared-dir"), "a volume named shared-dir");
    let c = &spec.containers[0];
    let mount = c.volume_mounts.iter().flatten().find(|v| v.name == "shared-dir").expect("shared-dir mounted");
    let script = strings(&c.args).join("\n");
    assert!(script.contains(&format!("path={}/", mount.mount_path)), "testpmd uses the mounted shared dir");
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref()).unwrap();
    assert!(limits.keys().any(|k| k.starts_with("hugepages-")), "DPDK needs hugepages");
}

#[test]
fn the_install_guide_lists_every_mounted_host_path_and_the_probes() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/install.md")).unwrap();
    for p in node_paths() {
        assert!(guide.contains(&format!("| `{}` |", p.default)), "docs/install.md's mount table lacks {}", p.default);
    }
    for probe in [LIVENESS, READINESS] {
        let json = serde_json::to_string(probe).unwrap().replace(',', ", ");
        assert!(guide.contains(&json), "docs/install.md does not show the probe {json}");
    }
}
