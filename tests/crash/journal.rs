//! The child's journal: one line per operation, written before the operation (and a line
//! with the file's length and hash after each fsync), read back by the parent.

use std::path::Path;

use super::{BaseFile, Key};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Create {
        key: Key,
        fid: u64,
    },
    Write {
        fid: u64,
        off: u64,
        len: u64,
        seed: u64,
    },
    Trunc {
        fid: u64,
        size: u64,
    },
    Rename {
        from: Key,
        to: Key,
        exchange: bool,
    },
    Unlink {
        key: Key,
    },
    /// Written after `Engine::fsync` of the file returned: its length and hash then.
    Synced {
        fid: u64,
        len: u64,
        hash: String,
    },
}

impl Op {
    pub(crate) fn line(&self) -> String {
        match self {
            Op::Create { key, fid } => format!("C {} {} {} {fid}\n", key.0, key.1, key.2),
            Op::Write {
                fid,
                off,
                len,
                seed,
            } => format!("W {fid} {off} {len} {seed}\n"),
            Op::Trunc { fid, size } => format!("T {fid} {size}\n"),
            Op::Rename { from, to, exchange } => {
                format!(
                    "R {} {} {} {} {} {}\n",
                    from.0, from.1, from.2, to.1, to.2, *exchange as u8
                )
            }
            Op::Unlink { key } => format!("U {} {} {}\n", key.0, key.1, key.2),
            Op::Synced { fid, len, hash } => format!("F {fid} {len} {hash}\n"),
        }
    }

    pub(crate) fn is_namespace(&self) -> bool {
        matches!(
            self,
            Op::Create { .. } | Op::Rename { .. } | Op::Unlink { .. }
        )
    }
}

/// One journal line, parsed.
enum Line {
    /// What the child found in the pool when it started: key, fid, length, hash.
    Base(Key, u64, u64, String),
    Op(Op),
}

fn parse_line(l: &str) -> Line {
    let f: Vec<&str> = l.split(' ').collect();
    let n = |i: usize| -> u64 {
        f[i].parse()
            .unwrap_or_else(|_| panic!("bad journal line {l:?}"))
    };
    let key = |i: usize| -> Key { (n(i) as usize, n(i + 1) as usize, f[i + 2].to_string()) };
    match f[0] {
        "B" => Line::Base(key(1), n(4), n(5), f[6].to_string()),
        "C" => Line::Op(Op::Create {
            key: key(1),
            fid: n(4),
        }),
        "W" => Line::Op(Op::Write {
            fid: n(1),
            off: n(2),
            len: n(3),
            seed: n(4),
        }),
        "T" => Line::Op(Op::Trunc {
            fid: n(1),
            size: n(2),
        }),
        "R" => {
            let from = key(1);
            let to = (from.0, n(4) as usize, f[5].to_string());
            Line::Op(Op::Rename {
                from,
                to,
                exchange: n(6) == 1,
            })
        }
        "U" => Line::Op(Op::Unlink { key: key(1) }),
        "F" => Line::Op(Op::Synced {
            fid: n(1),
            len: n(2),
            hash: f[3].to_string(),
        }),
        _ => panic!("bad journal line {l:?}"),
    }
}

/// Complete lines of a journal (a line cut by the kill is dropped).
pub(crate) fn read_journal(path: &Path) -> (Vec<BaseFile>, Vec<Op>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    let (mut base, mut ops) = (Vec::new(), Vec::new());
    for l in complete.lines() {
        match parse_line(l) {
            Line::Base(k, fid, len, hash) => base.push((k, fid, len, hash)),
            Line::Op(op) => ops.push(op),
        }
    }
    (base, ops)
}
