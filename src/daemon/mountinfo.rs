//! What the kernel has mounted where (`/proc/self/mountinfo`), so that the daemon only ever
//! detaches a mount it can prove is its own dead one.
//!
//! Invariant: a mountpoint is cleaned up only when its topmost mount is a FUSE mount with the
//! expected source (`tandem:VOLUME`) whose server is gone (ENOTCONN); anything else (another
//! filesystem, a live FUSE server) is left alone and reported.

use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields tandem needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash...).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) if b[i] == b'\\' => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// Parses one line: `id parent maj:min root mountpoint opts [optional...] - fstype source super`.
fn parse_line(line: &str) -> Option<MountEntry> {
    use std::os::unix::ffi::OsStringExt;
    let mut fields = line.split(' ');
    let mount_point = fields.nth(4)?;
    let mut rest = fields.skip_while(|f| *f != "-");
    rest.next()?;
    let fstype = rest.next()?;
    let source = rest.next()?;
    Some(MountEntry {
        mount_point: PathBuf::from(std::ffi::OsString::from_vec(unescape(mount_point))),
        fstype: String::from_utf8_lossy(&unescape(fstype)).into_owned(),
        source: String::from_utf8_lossy(&unescape(source)).into_owned(),
    })
}

/// Every mount the kernel shows this process, in mount order.
pub fn entries() -> std::io::Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text.lines().filter_map(parse_line).collect())
}

/// The topmost mount at `dir` (the one a path lookup sees), if `dir` is a mount point.
pub fn top_at(dir: &Path) -> std::io::Result<Option<MountEntry>> {
    Ok(entries()?.into_iter().rev().find(|e| e.mount_point == dir))
}

/// Is the FUSE mount at `dir` dead (its server gone, "transport endpoint is not connected")?
/// Asks with statfs, which always reaches the server (a stat may be answered from the
/// kernel's attribute cache).
pub fn is_dead_fuse(dir: &Path) -> bool {
    matches!(rustix::fs::statfs(dir), Err(rustix::io::Errno::NOTCONN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_mountpoints_and_optional_fields() {
        let l = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 shared:2 - fuse.tandem tandem:v\\040x rw,user_id=0";
        let e = parse_line(l).unwrap();
        assert_eq!(e.mount_point, PathBuf::from("/mnt/a b"));
        assert_eq!(e.fstype, "fuse.tandem");
        assert_eq!(e.source, "tandem:v x");
        let l = "22 1 0:21 / /tmp rw - tmpfs tmpfs rw";
        assert_eq!(parse_line(l).unwrap().fstype, "tmpfs");
        assert!(parse_line("garbage").is_none());
        assert_eq!(unescape("a\\134b\\"), b"a\\b\\");
    }
}
