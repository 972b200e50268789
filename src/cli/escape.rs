//! How a name is shown to people: THE one escaping of the CLI's human output (tables,
//! `info` pages, `snapshot diff` lines). Volume, group, snapshot and file names may hold
//! any byte but `/` and NUL, so a newline in a name would otherwise print as two rows.
//!
//! The style is `ls --quoting-style=escape`'s, as `zfs diff` does for paths: `\n`, `\t`,
//! `\r` and `\\` for those characters, `\xNN` (two lowercase hex digits) for every other
//! control byte (0x01..0x1f, 0x7f, and the bytes of C1 controls U+0080..U+009F) and for
//! every byte that is not valid UTF-8. Everything else (spaces, non-ASCII letters) prints
//! as is. The mapping is one-to-one: an escaped name never contains a raw control byte, and
//! a `\` in the output always begins an escape.
//!
//! JSON output is not escaped: it carries the exact string.

/// `name` as it is shown to people (see the module doc).
pub fn esc(name: &str) -> String {
    esc_bytes(name.as_bytes())
}

/// Bytes (a file name need not be UTF-8) as they are shown to people.
pub fn esc_bytes(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
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
        assert_eq!(esc("c1\u{85}"), "c1\\xc2\\x85");
        assert_eq!(esc_bytes(b"bad\xffutf8"), "bad\\xffutf8");
    }
}
