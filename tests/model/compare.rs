//! The results of operations as the test compares them: the attributes that matter
//! ([`Stat`]), every kind of answer ([`Out`]), and [`same`], which turns a mismatch between
//! the engine and the reference model into a test failure that shows both.

use std::fmt;

use proptest::test_runner::TestCaseError;
use tandem::fs::{Attr, FileKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) ino: u64,
    pub(crate) kind: FileKind,
    pub(crate) nlink: u32,
    pub(crate) size: u64,
    pub(crate) perm: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

pub(crate) fn stat_of(a: &Attr) -> Stat {
    Stat {
        ino: a.ino.0,
        kind: a.kind,
        nlink: a.nlink,
        // Directory sizes are not specified by POSIX; the model does not track them.
        size: if a.kind == FileKind::Dir { 0 } else { a.size },
        perm: a.perm,
        uid: a.uid,
        gid: a.gid,
    }
}

pub(crate) type Listing = Vec<(Vec<u8>, u64, FileKind)>;

#[derive(PartialEq, Eq)]
pub(crate) enum Out {
    Unit,
    Stat(Stat),
    Count(u32),
    Ino(u64),
    Data(Vec<u8>),
    Dir {
        dot: u64,
        dotdot: u64,
        entries: Listing,
    },
    Names(Vec<Vec<u8>>),
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Out::Unit => write!(f, "()"),
            Out::Stat(s) => write!(f, "{s:?}"),
            Out::Count(n) => write!(f, "{n}"),
            Out::Ino(n) => write!(f, "ino {n}"),
            Out::Data(d) => {
                let nz = d.iter().filter(|&&b| b != 0).count();
                write!(
                    f,
                    "Data(len {}, {} non-zero, head {:?})",
                    d.len(),
                    nz,
                    &d[..d.len().min(16)]
                )
            }
            Out::Dir {
                dot,
                dotdot,
                entries,
            } => {
                let names: Vec<String> = entries
                    .iter()
                    .map(|(n, i, k)| format!("{}={i}:{k:?}", String::from_utf8_lossy(n)))
                    .collect();
                write!(f, "Dir(. {dot}, .. {dotdot}, [{}])", names.join(", "))
            }
            Out::Names(n) => {
                let names: Vec<String> = n
                    .iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect();
                write!(f, "{names:?}")
            }
        }
    }
}

pub(crate) type R = Result<Out, i32>;

pub(crate) fn describe_diff(got: &R, want: &R) -> String {
    if let (Ok(Out::Data(a)), Ok(Out::Data(b))) = (got, want) {
        let first = a.iter().zip(b.iter()).position(|(x, y)| x != y);
        return format!(
            " (first difference at byte {first:?}; lengths {} vs {})",
            a.len(),
            b.len()
        );
    }
    String::new()
}

pub(crate) fn same(what: &str, got: R, want: R) -> Result<(), TestCaseError> {
    if got != want {
        let diff = describe_diff(&got, &want);
        return Err(TestCaseError::fail(format!(
            "{what}: engine {got:?} != model {want:?}{diff}"
        )));
    }
    Ok(())
}

pub(crate) fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}
