//! Mount options: what `-o` may say, and the options a mount is shown and remembered with.

use super::super::ServiceError;
use crate::fs::atime::Atime;
use crate::fuse::MountFlags;

/// fstab's generic options: accepted and ignored.
const IGNORED_OPTIONS: &[&str] = &[
    "defaults", "auto", "noauto", "nofail", "_netdev", "user", "nouser", "users", "async",
];

/// What `-o` asked for. `None`: the default of the kind of mount ([`MountFlags::default_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountOpts {
    pub read_only: bool,
    pub allow_other: bool,
    pub suid: Option<bool>,
    pub dev: Option<bool>,
    pub exec: Option<bool>,
    /// `noatime` (the default), `relatime`/`atime`, `strictatime`, `nodiratime`.
    pub atime: Atime,
}

impl MountOpts {
    /// The kernel flags: what was asked, else `default`.
    pub fn flags(&self, default: MountFlags) -> MountFlags {
        MountFlags {
            suid: self.suid.unwrap_or(default.suid),
            dev: self.dev.unwrap_or(default.dev),
            exec: self.exec.unwrap_or(default.exec),
            atime: self.atime,
        }
    }
}

/// Parses `-o` options (each element may itself be comma-separated); the last one wins.
pub fn parse_mount_options(options: &[String]) -> Result<MountOpts, ServiceError> {
    let mut o = MountOpts::default();
    for opt in options
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match opt {
            "ro" => o.read_only = true,
            "rw" => o.read_only = false,
            "allow_other" => o.allow_other = true,
            "suid" | "nosuid" => o.suid = Some(opt == "suid"),
            "dev" | "nodev" => o.dev = Some(opt == "dev"),
            "exec" | "noexec" => o.exec = Some(opt == "exec"),
            _ if o.atime.apply(opt) => {}
            _ if IGNORED_OPTIONS.contains(&opt)
                || opt.starts_with("x-")
                || opt.starts_with("pool=") => {}
            _ => return Err(ServiceError::UnknownMountOption(opt.into())),
        }
    }
    Ok(o)
}

/// The options a mount is shown and remembered with: `ro`, `allow_other`, and the flags that
/// differ from a live volume's; a snapshot view states `suid`/`dev` either way (so that a
/// record written before snapshot views were hardened is recognised).
pub(super) fn option_list(
    read_only: bool,
    allow_other: bool,
    f: MountFlags,
    snapshot: bool,
) -> Vec<String> {
    let mut out: Vec<&str> = Vec::new();
    if read_only {
        out.push("ro");
    }
    if allow_other {
        out.push("allow_other");
    }
    match (f.suid, snapshot) {
        (false, _) => out.push("nosuid"),
        (true, true) => out.push("suid"),
        (true, false) => {}
    }
    match (f.dev, snapshot) {
        (false, _) => out.push("nodev"),
        (true, true) => out.push("dev"),
        (true, false) => {}
    }
    if !f.exec {
        out.push("noexec");
    }
    out.extend(f.atime.options());
    out.into_iter().map(String::from).collect()
}
