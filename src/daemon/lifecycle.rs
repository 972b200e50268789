//! Control-API handlers for a snapshot's lifecycle: holds (`snapshot hold|release|holds`);
//! schedules are in `schedules`.

use crate::control::{HoldInfo, Reply, Request};

use super::{Daemon, ServiceError};

/// Microseconds since the epoch (0 if the clock is before it).
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Daemon {
    fn holds(&self, name: Option<&str>) -> Result<Vec<HoldInfo>, ServiceError> {
        Ok(self
            .engine
            .snapshot_holds(name)?
            .into_iter()
            .map(|(snapshot, h)| HoldInfo {
                snapshot,
                tag: h.tag,
                since_us: h.since_us,
            })
            .collect())
    }

    pub(super) fn handle_lifecycle(&self, req: Request) -> Result<Reply, ServiceError> {
        let e = &self.engine;
        match req {
            Request::SnapshotHold { name, tag } => {
                if e.snapshot_hold(&name, &tag, now_us())? {
                    tracing::info!("snapshot '{name}': hold '{tag}' placed");
                }
                let holds = self.holds(Some(&name))?;
                Ok(Reply::Holds { holds })
            }
            Request::SnapshotRelease { name, tag } => {
                e.snapshot_release(&name, &tag)?;
                tracing::info!("snapshot '{name}': hold '{tag}' released");
                let holds = self.holds(Some(&name))?;
                Ok(Reply::Holds { holds })
            }
            Request::SnapshotHolds { name } => {
                let holds = self.holds(name.as_deref())?;
                Ok(Reply::Holds { holds })
            }
            other => self.handle_schedules(other),
        }
    }
}
