//! A binary built without the `kubernetes` feature (`--no-default-features --features testkit`):
//! a config that asks for annotations fails with a clear error before any side effect, and one
//! that does not ask works (the configuration data goes to the file in the shared dir). With the
//! feature on, this file has no tests.
#![cfg(all(feature = "testkit", not(feature = "kubernetes")))]

mod support;

use serde_json::json;
use support::{recording_conf, Node};

const CID: &str = "0b0000000000000000000000000000b1";
const ARGS: &str = "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod-a;K8S_POD_UID=u-1";

#[test]
fn annotation_mode_is_a_clear_error_without_the_feature() {
    let node = Node::new();
    let mut c = recording_conf("1.1.0", "nb-net");
    // The node's allow-listed kubeconfig (USERSPACE_CNI_KUBECONFIG_FILES): any other is code 7
    // at validation, before the feature is looked at.
    c["kubeconfig"] = json!(node.path("net.d/multus.kubeconfig").display().to_string());
    let before = node.snapshot();
    let msg = node.cni("ADD", CID, "net1", &c, &[("CNI_ARGS", ARGS)]).expect_err(2);
    assert!(msg.contains("`kubernetes` feature") && msg.contains("kubeconfig"), "{msg}");
    assert_eq!(node.snapshot(), before, "nothing happened");
    let msg = node
        .cni(
            "ADD",
            CID,
            "net1",
            &recording_conf("1.1.0", "nb-net"),
            &[("CNI_ARGS", ARGS), ("USERSPACE_CNI_ANNOTATIONS", "in-cluster")],
        )
        .expect_err(2);
    assert!(msg.contains("`kubernetes` feature"), "{msg}");
}

#[test]
fn a_config_that_does_not_ask_works_with_the_config_file() {
    let node = Node::new();
    let c = recording_conf("1.1.0", "nb-file");
    node.cni("ADD", CID, "net1", &c, &[("CNI_ARGS", ARGS)]).expect_ok();
    assert!(node.shared_base().join("0b0000000000/configData-0b0000000000-net1.json").exists());
    node.cni("DEL", CID, "net1", &c, &[("CNI_ARGS", ARGS)]).expect_ok();
    assert!(node.leftovers().is_empty(), "{:?}", node.leftovers());
}
