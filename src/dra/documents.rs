//! What a prepared request publishes for the container runtime and the workload: a CDI spec that
//! mounts the per-claim socket dir, the KEP-5304 device metadata file, and a CDI spec of its own
//! that mounts that file read-only where KubeVirt's binding looks for it. Pure: builds the
//! documents (checked by `plan::cdi` and `plan::dra_metadata`) for the record; the pipeline's
//! `dra-metadata` and `cdi-spec` stages write them.

use super::claim::{ClaimPlan, RequestPlan};
use crate::plan::cdi::{self, CdiDevice, CdiMount, CdiSpec, ContainerEdits};
use crate::plan::dra_metadata::{self, DeviceMetadata, MetadataClaim, MetadataDevice};
use crate::plan::PublishedFile;
use std::path::{Path, PathBuf};
use userspace_cni_api::{CniError, NodeSettings};

/// The CDI class of our devices (`<driver>/vhost-user=<name>`), the proof of concept's.
pub const CDI_CLASS: &str = "vhost-user";
/// The metadata file's generation: the content of a request's file never changes while its
/// record lives (a changed plan is a new attachment), so it stays at 1.
const METADATA_GENERATION: i64 = 1;

pub struct Documents {
    pub cdi_device_ids: Vec<String>,
    pub metadata: Vec<PublishedFile>,
    pub cdi_specs: Vec<PublishedFile>,
}

fn invalid(e: impl std::fmt::Display) -> CniError {
    CniError::invalid_config(e.to_string())
}

fn text(p: &Path) -> Result<&str, CniError> {
    p.to_str().ok_or_else(|| invalid(format!("path {} is not UTF-8", p.display())))
}

/// The metadata file's container path for a request of a claim.
pub fn metadata_container_path(driver: &str, claim: &ClaimPlan, req: &RequestPlan) -> Result<PathBuf, CniError> {
    dra_metadata::container_path(driver, &metadata_claim(claim), &req.request).map_err(invalid)
}

fn metadata_claim(claim: &ClaimPlan) -> MetadataClaim {
    MetadataClaim {
        namespace: claim.claim.namespace.clone(),
        name: claim.claim.name.clone(),
        uid: claim.claim.uid.clone(),
        pod_claim_name: claim.pod_claim_name.clone(),
    }
}

fn spec_file(root: &Path, driver: &str, device: &str, mount: CdiMount) -> Result<PublishedFile, CniError> {
    let spec = CdiSpec::new(
        driver,
        CDI_CLASS,
        vec![CdiDevice { name: device.to_owned(), container_edits: ContainerEdits { mounts: vec![mount] } }],
    )
    .map_err(invalid)?;
    let content = serde_json::to_value(&spec).map_err(invalid)?;
    let rel = cdi::transient_spec_file_name(driver, CDI_CLASS, device).map_err(invalid)?;
    Ok(PublishedFile { root: root.to_owned(), rel: rel.into(), content })
}

/// The documents of one request: `container_socket` is the socket as the workload sees it,
/// `host_dir`/`container_dir` the per-claim socket dir on each side.
pub fn for_request(
    settings: &NodeSettings,
    claim: &ClaimPlan,
    req: &RequestPlan,
    mtu: u32,
    container_socket: &Path,
    host_dir: &Path,
    container_dir: &Path,
) -> Result<Documents, CniError> {
    let dra = &settings.dra;
    let driver = dra.driver_name.as_str();
    let attributes = dra_metadata::vhost_user_attributes(
        text(container_socket)?,
        mtu,
        req.config.policing.map(|p| p.rate_kbps),
        req.config.policing.map(|p| p.burst_kb),
    )
    .map_err(invalid)?;
    let device =
        MetadataDevice { driver: driver.to_owned(), pool: req.pool.clone(), name: req.device.clone(), attributes };
    let document = DeviceMetadata::new(&metadata_claim(claim), METADATA_GENERATION, &req.request, vec![device])
        .map_err(invalid)?;
    let name = format!("{}-{}", claim.claim.uid, req.base);
    let meta_name = format!("{name}-metadata");
    let meta_rel = Path::new(&name).join(format!("{driver}{}", dra_metadata::FILE_SUFFIX));
    let meta_host = dra.metadata_dir.join(&meta_rel);
    let meta_container = metadata_container_path(driver, claim, req)?;
    let socket_spec =
        spec_file(&dra.cdi_dir, driver, &name, CdiMount::bind(text(host_dir)?, text(container_dir)?, false))?;
    let meta_spec =
        spec_file(&dra.cdi_dir, driver, &meta_name, CdiMount::bind(text(&meta_host)?, text(&meta_container)?, true))?;
    Ok(Documents {
        cdi_device_ids: vec![
            cdi::qualified_device_id(driver, CDI_CLASS, &name).map_err(invalid)?,
            cdi::qualified_device_id(driver, CDI_CLASS, &meta_name).map_err(invalid)?,
        ],
        metadata: vec![PublishedFile {
            root: dra.metadata_dir.clone(),
            rel: meta_rel,
            content: serde_json::to_value(&document).map_err(invalid)?,
        }],
        cdi_specs: vec![socket_spec, meta_spec],
    })
}
