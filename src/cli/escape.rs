//! How a name is shown to people in the CLI's human output (tables, `info` pages,
//! `snapshot diff` lines): the library's one escaping ([`tandem::escape`], shared with the
//! daemon's log), so a name reads the same in both. JSON output is not escaped.

pub use tandem::escape::{esc, esc_bytes};
