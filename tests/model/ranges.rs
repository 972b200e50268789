//! The range operations of a case besides write and truncate: fallocate PUNCH_HOLE and
//! ZERO_RANGE (`Op::Punch`) and copy_file_range (`Op::Copy`, within the volume, sharing
//! whole blocks where the offsets are equally aligned). Each runs on the engine and on the
//! model, and the results are compared; the file contents are compared by the next
//! whole-tree check.
//!
//! Crash contract: a punch commits the file (as a truncate does), so its content after it
//! is the only one a crash may bring back; a copy leaves its tail buffered, so the world
//! fsyncs the destination after it (a state with the whole blocks and without the tail is
//! none the model tracks).

use proptest::test_runner::TestCaseError;
use tandem::fs::copy::FileAt;
use tandem::fs::fallocate::Allocate;
use tandem::store::rows::View;

use crate::compare::{Out, same};
use crate::world::World;
use crate::{P, errno};

impl World {
    /// `mode`: 0 PUNCH_HOLE|KEEP_SIZE, 1 ZERO_RANGE|KEEP_SIZE, 2 ZERO_RANGE.
    pub(crate) fn punch(
        &mut self,
        what: &str,
        p: &P,
        off: u64,
        len: u64,
        mode: u8,
    ) -> Result<(), TestCaseError> {
        let v = self.vol;
        let how = match mode % 3 {
            0 => Allocate::PunchHole,
            1 => Allocate::Zero { keep_size: true },
            _ => Allocate::Zero { keep_size: false },
        };
        let got = self.e_resolve(p).and_then(|ino| {
            self.e()
                .fallocate(v, ino, off, len, how, false)
                .map_err(errno)
        });
        let want = self.model.resolve(p).and_then(|ino| {
            self.model.punch(ino, off, len, mode % 3 == 2)?;
            self.unsynced.committed(ino);
            Ok(())
        });
        same(what, got.map(|_| Out::Unit), want.map(|_| Out::Unit))
    }

    pub(crate) fn copy(
        &mut self,
        what: &str,
        (a, off_in): (&P, u64),
        (b, off_out): (&P, u64),
        len: u64,
    ) -> Result<(), TestCaseError> {
        let v = self.vol;
        let got = self.e_resolve(a).and_then(|src| {
            let dst = self.e_resolve(b)?;
            let from = FileAt {
                vol: v,
                view: View::Live,
                ino: src,
            };
            let c = self
                .e()
                .copy_range(from, off_in, v, dst, off_out, len, false)
                .map_err(errno)?;
            if c.bytes > 0 {
                self.e().fsync(v, dst).map_err(errno)?;
            }
            Ok(c.bytes as u32)
        });
        let want = self.model.resolve(a).and_then(|src| {
            let dst = self.model.resolve(b)?;
            let n = self.model.copy(src, off_in, dst, off_out, len)?;
            // The engine side fsyncs the target only when bytes moved: a copy of nothing
            // leaves its earlier writes as unsynced as they were.
            if n > 0 {
                self.unsynced.committed(dst);
            }
            Ok(n as u32)
        });
        same(what, got.map(Out::Count), want.map(Out::Count))
    }
}
