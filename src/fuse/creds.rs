//! A caller's credentials beyond what a FUSE request carries (uid, primary gid, pid): its
//! supplementary groups and whether it holds CAP_FSETID, read from /proc for the few
//! requests whose outcome depends on them (an ACL change may keep setgid only for a caller
//! in the file's group or with CAP_FSETID).

use fuser::Request;

use crate::fs::acl::Caller;

/// CAP_FSETID's bit in a capability set.
const CAP_FSETID: u32 = 4;

/// The caller of `req`. Without its /proc entry (it exited), only the request's primary
/// group counts and root stands for CAP_FSETID, as for a truncate.
pub(super) fn caller(req: &Request) -> Caller {
    let mut c = Caller {
        groups: vec![req.gid()],
        fsetid: req.uid() == 0,
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", req.pid())) else {
        return c;
    };
    for line in status.lines() {
        if let Some(groups) = line.strip_prefix("Groups:") {
            c.groups.extend(
                groups
                    .split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        } else if let Some(caps) = line.strip_prefix("CapEff:")
            && let Ok(bits) = u64::from_str_radix(caps.trim(), 16)
        {
            c.fsetid = bits & (1 << CAP_FSETID) != 0;
        }
    }
    c
}
