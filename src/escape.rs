//! How a name is shown to people, in one place: the CLI's human output (tables, `info`
//! pages, `snapshot diff` lines) and every line of the daemon's log use it. Volume, group,
//! snapshot and file names may hold any byte but `/` and NUL, so a newline in a name would
//! otherwise print as two rows, or forge a second log line.
//!
//! The style is `ls --quoting-style=escape`'s, as `zfs diff` does for paths: `\n`, `\t`,
//! `\r` and `\\` for those characters, `\xNN` (two lowercase hex digits) for every other
//! control byte (0x01..0x1f, 0x7f, and the bytes of C1 controls U+0080..U+009F) and for
//! every byte that is not valid UTF-8. Everything else (spaces, non-ASCII letters) prints
//! as is. The mapping is one-to-one: an escaped name never contains a raw control byte, and
//! a `\` in the output always begins an escape, so the exact bytes can be read back.
//!
//! JSON output is not escaped: it carries the exact string (and, for a file path that is
//! not UTF-8, its bytes).

use std::fmt::{self, Write};

/// Bytes (a name or path, UTF-8 or not) that display escaped (see the module doc), without
/// allocating: `format!("'{}'", Escaped::new(name))`.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(&'a [u8]);

impl<'a> Escaped<'a> {
    pub fn new<T: AsRef<[u8]> + ?Sized>(name: &'a T) -> Escaped<'a> {
        Escaped(name.as_ref())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\n' => f.write_str("\\n")?,
                    '\t' => f.write_str("\\t")?,
                    '\r' => f.write_str("\\r")?,
                    '\\' => f.write_str("\\\\")?,
                    c if c.is_control() => {
                        let mut buf = [0u8; 4];
                        for b in c.encode_utf8(&mut buf).bytes() {
                            write!(f, "\\x{b:02x}")?;
                        }
                    }
                    c => f.write_char(c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// `name` as it is shown to people (see the module doc).
pub fn esc(name: &str) -> String {
    Escaped::new(name).to_string()
}

/// Bytes (a file name need not be UTF-8) as they are shown to people.
pub fn esc_bytes(name: &[u8]) -> String {
    Escaped::new(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_and_backslash_are_escaped() {
        assert_eq!(esc("plain name-1.é"), "plain name-1.é");
        assert_eq!(esc("a\nb"), "a\\nb");
        assert_eq!(esc("a\tb\rc"), "a\\tb\\rc");
        assert_eq!(esc("back\\slash"), "back\\\\slash");
        assert_eq!(esc("bell\x07del\x7f"), "bell\\x07del\\x7f");
        assert_eq!(esc("esc\x1b[31m"), "esc\\x1b[31m");
        assert_eq!(esc("c1\u{85}"), "c1\\xc2\\x85");
        assert_eq!(esc_bytes(b"bad\xffutf8"), "bad\\xffutf8");
        assert_eq!(format!("'{}'", Escaped::new(b"x\xfe\n")), "'x\\xfe\\n'");
    }
}
