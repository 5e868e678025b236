//! Every Kubernetes manifest under config/ through a real kube-apiserver (envtest): `kubectl apply
//! --dry-run=server --validate=strict`, so the server's own validation, defaulting and admission
//! (and its field checks: an unknown or misspelt field is an error) pass on each object as
//! shipped. NetworkAttachmentDefinitions are checked against the project's NAD CRD
//! (tests/fixtures/crds/net-attach-def.yaml). KubeVirt's CRDs are not installed: its examples
//! are checked against stand-ins that validate only the group, version, kind and metadata
//! (tests/fixtures/crds/kubevirt-standin.yaml says so). Skipped, with a message, where envtest is absent.

mod support;

use std::path::{Path, PathBuf};
use support::envtest::Envtest;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every YAML file under config/ that holds Kubernetes objects (a Kustomization is kustomize's
/// input, not an API object).
fn manifests() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(ROOT).join("config"), &mut out);
    out
}

#[test]
fn every_manifest_under_config_passes_a_strict_server_side_dry_run() {
    let files = manifests();
    // Fails here, not in a skipped run, when the walk finds nothing (a moved folder).
    assert!(files.len() >= 12, "only {} manifests under config/: {files:?}", files.len());
    let Some(env) = Envtest::start("every_manifest_under_config_passes_a_strict_server_side_dry_run") else { return };
    for crd in ["net-attach-def.yaml", "kubevirt-standin.yaml"] {
        let path = Path::new(ROOT).join("tests/fixtures/crds").join(crd);
        env.kubectl_ok(
            &["apply", "--server-side", "--field-manager=uscni-test", "-f", &path.display().to_string()],
            None,
        );
    }
    for crd in [
        "network-attachment-definitions.k8s.cni.cncf.io",
        "virtualmachineinstances.kubevirt.io",
        "kubevirts.kubevirt.io",
    ] {
        // Bounded by kubectl's own timeout and envtest's run limit.
        env.kubectl_ok(&["wait", "--for=condition=Established", &format!("crd/{crd}"), "--timeout=30s"], None);
    }
    // The namespaces the manifests name must exist for a dry run of their objects (a dry run
    // of the Namespace itself creates nothing).
    env.kubectl_ok(&["create", "namespace", "userspace-cni"], None);
    env.kubectl_ok(&["create", "namespace", "kubevirt"], None);
    // No controller-manager makes a namespace's `default` ServiceAccount: the example pods use it.
    env.kubectl_ok(&["create", "serviceaccount", "default", "-n", "default"], None);
    let mut refused = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(ROOT).unwrap_or(file).display().to_string();
        let (ok, out, err) = env.kubectl(
            &[
                "apply",
                "--dry-run=server",
                "--validate=strict",
                "--field-manager=uscni-test",
                "-f",
                &file.display().to_string(),
            ],
            None,
        );
        if ok {
            eprintln!("{rel}: {}", out.trim().replace('\n', "; "));
        } else {
            refused.push(format!("{rel}: {}{}", err.trim(), out.trim()));
        }
    }
    assert!(
        refused.is_empty(),
        "the server refuses {} of {} manifests:\n{}",
        refused.len(),
        files.len(),
        refused.join("\n")
    );
    eprintln!("{} manifests passed a strict server-side dry run", files.len());
    // The check has teeth: a misspelt field of a NAD is refused by the CRD's schema.
    let typo = "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: typo, namespace: default}\nspec: {confg: '{}'}\n";
    let (ok, out, err) = env.kubectl(&["apply", "--dry-run=server", "--validate=strict", "-f", "-"], Some(typo));
    assert!(!ok && err.contains("confg"), "a NAD with spec.confg passed the dry run: {out}{err}");
}
