//! `snapshot test`: a restore test run by the daemon (see `crate::snapshot::test`). The
//! clone's volumes are named `tandem-test-<snapshot id>-<start µs>` (with `-<member>` for a
//! group snapshot) and mounted with allow_other at `<tmp>/tandem-test-.../<member>`, a
//! directory other users may enter (the pool directory is owner-only), so a check that runs
//! as another user (PostgreSQL as `postgres`) reaches them.
//!
//! Invariant: unless `--keep-clone`, the clone is unmounted and deleted whatever the command
//! did, and also when the test is called off (its client went away, Ctrl-C included, or
//! the daemon is stopping): the command's process group is killed, the clone removed, and
//! nothing is recorded. What cannot be removed (a mount kept busy by a process the command
//! left) is reported by name with the way out, never silently left.
//!
//! Tests of a schedule (`schedule add --test CMD`) run the same [`Daemon::restore_test`] in
//! a thread of their own (`super::schedules`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::control::server::Peer;
use crate::snapshot::hooks::{self, HookEnv};
use crate::snapshot::test::{DEFAULT_TEST_TIMEOUT, KeptClone, TestOutcome, TestRequest, tail};
use crate::snapshot::{self, CloneOutcome};
use crate::store::snapmeta::TestRecord;

use super::{Daemon, ServiceError};

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Daemon {
    /// Runs one restore test; `cancel` is asked about every 10 ms while the command runs
    /// and returns why to call the test off (None: go on).
    pub(super) fn restore_test(
        &self,
        req: TestRequest,
        cancel: &dyn Fn() -> Option<&'static str>,
    ) -> Result<TestOutcome, ServiceError> {
        use std::os::unix::fs::PermissionsExt;
        let e = &self.engine;
        let rec = e.snapshot(&req.snapshot)?;
        let started_us = now_us();
        let t0 = Instant::now();
        let tag = format!("tandem-test-{}-{started_us}", rec.id.0);
        let base = std::env::temp_dir().join(&tag);
        let made = |path: &Path, r: std::io::Result<()>| {
            r.map_err(|source| ServiceError::CreateMountpoint {
                path: path.to_path_buf(),
                source,
            })
        };
        made(&base, std::fs::create_dir(&base))?;
        made(
            &base,
            std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)),
        )?;
        let cloned = match snapshot::clone(e, &tag, &rec.name) {
            Ok(c) => c,
            Err(err) => {
                let _ = std::fs::remove_dir(&base);
                return Err(err.into());
            }
        };
        let mut mounted: Vec<(String, PathBuf)> = Vec::new();
        let mut volumes = Vec::new();
        for (m, vol) in rec.members.iter().zip(&cloned.volumes) {
            let dir = base.join(&m.name);
            let res = made(&dir, std::fs::create_dir(&dir))
                .and_then(|()| self.mounts.mount(vol, &dir, &["allow_other".to_string()]));
            if let Err(err) = res {
                let left = self.remove_clone(&cloned, &mounted, &base);
                for l in left {
                    tracing::warn!("snapshot test of '{}': {l}", rec.name);
                }
                return Err(err);
            }
            mounted.push((vol.clone(), dir.clone()));
            volumes.push((m.name.clone(), vec![dir]));
        }
        let setup = t0.elapsed();
        let env = HookEnv {
            snapshot: rec.name.clone(),
            group: rec.group.clone(),
            volumes,
            status: String::new(),
        };
        let limit = req
            .timeout_s
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TEST_TIMEOUT);
        tracing::info!("snapshot test of '{}': running {:?}", rec.name, req.run);
        let why = std::cell::Cell::new(None);
        let called_off = || match cancel() {
            Some(w) => {
                why.set(Some(w));
                true
            }
            None => false,
        };
        let run = hooks::run_command(&self.pool, &req.run, &env, &base, limit, &called_off);
        if run.cancelled {
            let why = why.get().unwrap_or("it was called off");
            let left = self.remove_clone(&cloned, &mounted, &base);
            for l in &left {
                tracing::warn!("snapshot test of '{}': {l}", rec.name);
            }
            tracing::info!(
                "snapshot test of '{}' interrupted after {:.3} s ({why}); {}",
                rec.name,
                run.elapsed.as_secs_f64(),
                if left.is_empty() {
                    "its clone is removed"
                } else {
                    "its clone could not be removed whole (above)"
                }
            );
            return Err(ServiceError::TestInterrupted(format!(
                "restore test of snapshot '{}' interrupted ({why}); nothing recorded{}; run it again",
                rec.name,
                if left.is_empty() {
                    ", the clone is removed".to_string()
                } else {
                    format!("; {}", left.join("; "))
                }
            )));
        }
        let (kept, cleanup) = if req.keep_clone {
            let kept = KeptClone {
                group: cloned.group.clone(),
                volumes: mounted.clone(),
            };
            (Some(kept), Vec::new())
        } else {
            (None, self.remove_clone(&cloned, &mounted, &base))
        };
        let output_tail = tail(&run.output);
        tracing::info!(
            "snapshot test of '{}': {} in {:.3} s",
            rec.name,
            if run.passed { "passed" } else { "FAILED" },
            run.elapsed.as_secs_f64()
        );
        e.record_test(
            &rec.name,
            rec.id,
            TestRecord {
                started_us,
                passed: run.passed,
                command: req.run.clone(),
                exit_code: run.exit_code,
                run_us: u64::try_from(run.elapsed.as_micros()).unwrap_or(u64::MAX),
                setup_us: u64::try_from(setup.as_micros()).unwrap_or(u64::MAX),
                output_tail: output_tail.clone(),
            },
        )?;
        Ok(TestOutcome {
            snapshot: rec.name,
            passed: run.passed,
            command: req.run,
            exit_code: run.exit_code,
            timed_out: run.timed_out,
            run_ms: ms(run.elapsed),
            setup_ms: ms(setup),
            snapshot_age_s: u64::try_from((started_us - rec.created_us) / 1_000_000).unwrap_or(0),
            output_tail,
            kept,
            cleanup,
        })
    }

    /// Why a test run for a client is to be called off: the daemon is stopping, or the
    /// client went away (killed, or Ctrl-C).
    pub(super) fn test_called_off(&self, peer: &Peer) -> Option<&'static str> {
        if self.stop.load(Ordering::Acquire) {
            Some("the daemon is stopping")
        } else if peer.hung_up() {
            Some("its client went away")
        } else {
            None
        }
    }

    /// Unmounts and deletes a test's clone and its directories; what could not be removed,
    /// each with the way out.
    fn remove_clone(
        &self,
        cloned: &CloneOutcome,
        mounted: &[(String, PathBuf)],
        base: &Path,
    ) -> Vec<String> {
        let e = &self.engine;
        let mut left = Vec::new();
        for (vol, dir) in mounted {
            if let Err(err) = self.mounts.umount(&dir.display().to_string()) {
                left.push(format!(
                    "the clone volume '{vol}' stays mounted at {} ({err}); stop what uses it, then tandem umount {vol} && tandem volume delete {vol}",
                    dir.display()
                ));
            }
        }
        if !left.is_empty() {
            return left;
        }
        if let Some(g) = &cloned.group
            && let Err(err) = e.group_delete(g, false)
        {
            left.push(format!(
                "the clone group '{g}' stays ({err}); tandem group delete {g}"
            ));
            return left;
        }
        for v in &cloned.volumes {
            if let Err(err) = snapshot::delete_volume(e, &self.mounts, v) {
                left.push(format!(
                    "the clone volume '{v}' stays ({err}); tandem volume delete {v}"
                ));
            }
        }
        for (_, dir) in mounted {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_dir(base);
        left
    }
}
