//! Control-API handlers for a volume's options as in force (`volume get`, `volume
//! inherit`): the value each option takes for the volume and where it comes from. The
//! layering is the one the snapshot code applies (`snapshot::limits`): a snapshot setting
//! set on the volume wins over the system-wide one, except the hard limit, which is the lower
//! of the two; the other options are the volume's own or the default.

use crate::control::{OptionInForce, OptionSource, Reply, Request, VolumeOptionsInfo};
use crate::options::OptionScope;

use super::snapshots::SNAP_KEYS;
use super::{Daemon, ServiceError};

impl Daemon {
    fn options_in_force(&self, volume: &str) -> Result<VolumeOptionsInfo, ServiceError> {
        let e = &self.engine;
        let id = e.volume_id(volume)?;
        let own = e.options(OptionScope::Volume(id))?;
        let sys = e.options(OptionScope::System)?;
        let sys_listing = sys.listing();
        let options = own
            .listing()
            .into_iter()
            .map(|(key, value, set)| {
                let from_pool = SNAP_KEYS.contains(&key.as_str()) && sys.is_set(&key);
                let pool_value = || {
                    sys_listing
                        .iter()
                        .find(|(k, _, _)| *k == key)
                        .map(|(_, v, _)| v.clone())
                        .unwrap_or_default()
                };
                let (value, source) = if key == "snap-max-hard-limit" && set && from_pool {
                    // The lower of the two is in force.
                    match (own.snap_max_hard_limit, sys.snap_max_hard_limit) {
                        (Some(o), Some(p)) if p < o => (pool_value(), OptionSource::Pool),
                        _ => (value, OptionSource::Volume),
                    }
                } else if set {
                    (value, OptionSource::Volume)
                } else if from_pool {
                    (pool_value(), OptionSource::Pool)
                } else {
                    (value, OptionSource::Default)
                };
                OptionInForce { key, value, source }
            })
            .collect();
        Ok(VolumeOptionsInfo {
            volume: volume.to_string(),
            options,
        })
    }

    pub(super) fn handle_options(&self, req: Request) -> Result<Reply, ServiceError> {
        match req {
            Request::VolumeGet { name } => self.options_in_force(&name).map(Reply::VolumeOptions),
            Request::VolumeInherit { name, key } => {
                let id = self.engine.volume_id(&name)?;
                let was = self.engine.unset_options(id, std::slice::from_ref(&key))?;
                if was.first().copied().unwrap_or(false) {
                    tracing::info!("volume '{name}': option {key} inherited again");
                }
                self.options_in_force(&name).map(Reply::VolumeOptions)
            }
            other => self.handle_lifecycle(other),
        }
    }
}
