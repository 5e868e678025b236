//! The ordered steps of a recorded attachment: each stage of `plan::stages` instantiated from the
//! record, so ADD (which applies them) and DEL, GC, the reconciler and `forget` (which undo them)
//! can never disagree about what exists.

use super::SaveState;
use crate::plan::{stages, Record, Stage};
use crate::state::StateDir;
use crate::steps::annotations::AnnotationStep;
use crate::steps::config_file::ConfigFileStep;
use crate::steps::device_info::{DeviceInfo, DeviceInfoStep};
use crate::steps::published_files::PublishedFilesStep;
use crate::steps::short_dir::ShortDirStep;
use crate::steps::{IpamStep, SharedDirStep};
use userspace_cni_api::{codes, Backend, CniError, Step};

/// The steps of `record`, in ADD order.
pub fn build_steps(backend: &dyn Backend, state: &StateDir, record: &Record) -> Result<Vec<Box<dyn Step>>, CniError> {
    let mut steps: Vec<Box<dyn Step>> = Vec::new();
    for stage in stages(&record.plan) {
        steps.extend(build_stage(stage, backend, state, record)?);
    }
    Ok(steps)
}

/// The steps of one stage of `record`.
pub fn build_stage(
    stage: Stage,
    backend: &dyn Backend,
    state: &StateDir,
    record: &Record,
) -> Result<Vec<Box<dyn Step>>, CniError> {
    let plan = &record.plan;
    let missing =
        |what: &str| CniError::new(codes::INTERNAL, format!("the plan has a {what} stage but no {what} data"));
    let mut steps: Vec<Box<dyn Step>> = Vec::new();
    {
        match stage {
            Stage::ShortDir => {
                let dir = plan.short_dir.clone().ok_or_else(|| missing("short-dir"))?;
                steps.push(Box::new(ShortDirStep { dir, state: state.clone() }));
            }
            Stage::SharedDir => {
                let dir = plan.shared_dir.clone().ok_or_else(|| missing("shared-dir"))?;
                let files = plan.backend.socket.iter().map(|s| s.host_path.clone()).collect();
                steps.push(Box::new(SharedDirStep { dir, managed: plan.creates_shared_dir, files }));
            }
            Stage::Ipam => steps.push(Box::new(IpamStep::from_record(record)?.ok_or_else(|| missing("ipam"))?)),
            Stage::Backend => steps.extend(backend.steps(&plan.backend)?),
            Stage::DeviceInfo => {
                let socket = plan.backend.socket.as_ref().ok_or_else(|| missing("socket"))?;
                steps.push(Box::new(DeviceInfoStep {
                    file: plan.device_info_file.clone().ok_or_else(|| missing("device-info"))?,
                    info: DeviceInfo::of_socket(socket, plan.device_info_vhost_mode),
                    given: plan.device_info_given,
                }));
            }
            Stage::ConfigFile => steps.push(Box::new(ConfigFileStep {
                path: plan.config_file.clone().ok_or_else(|| missing("config-file"))?,
                config: record.config.clone(),
                cni_version: record.cni_version.clone(),
            })),
            Stage::Annotations => steps.push(Box::new(AnnotationStep {
                plan: plan.annotations.clone().ok_or_else(|| missing("annotations"))?,
                config: record.config.clone(),
                cni_version: record.cni_version.clone(),
            })),
            Stage::DraMetadata => steps.push(Box::new(PublishedFilesStep {
                name: crate::plan::stages::DRA_METADATA,
                files: plan.dra.as_ref().ok_or_else(|| missing("dra"))?.metadata.clone(),
            })),
            Stage::CdiSpec => steps.push(Box::new(PublishedFilesStep {
                name: crate::plan::stages::CDI_SPEC,
                files: plan.dra.as_ref().ok_or_else(|| missing("dra"))?.cdi_specs.clone(),
            })),
            Stage::SaveState => steps.push(Box::new(SaveState { state: state.clone(), record: record.clone() })),
        }
    }
    Ok(steps)
}
