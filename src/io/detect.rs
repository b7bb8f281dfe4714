//! Format detection for import: [`detect`] takes the extension as a hint, then sniffs the
//! first KiB (byte-order marks, UTF-16, JSON tokens, CSV delimiter patterns, a plausible BSON
//! length prefix). An explicit format always wins, but a UTF-16 file is refused for every
//! text format with a message saying how to convert it.

use super::options::Format;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// How much of the file is sniffed.
pub(crate) const SNIFF_BYTES: usize = 1024;

/// The UTF-8 byte-order mark, skipped by the text readers.
pub(crate) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What detection found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Detected {
    pub format: Format,
    /// Bytes to skip at the start (a UTF-8 BOM).
    pub skip: usize,
}

/// Opens `path` for import: refuses directories, missing files and empty files with a clear
/// message, and returns the file with its length and first bytes.
pub(crate) fn open_input(path: &Path) -> Result<(std::fs::File, u64, Vec<u8>)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::invalid(format!(
            "{} is a directory; import needs a file",
            path.display()
        )));
    }
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut file)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    if head.is_empty() {
        return Err(Error::invalid(format!(
            "{} is empty: there is nothing to import",
            path.display()
        )));
    }
    use std::io::Seek;
    file.rewind().map_err(|e| Error::io(path, e))?;
    Ok((file, meta.len(), head))
}

/// The format an extension suggests.
pub(crate) fn format_from_extension(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" | "tsv" => Some(Format::Csv),
        "ndjson" | "jsonl" | "ldjson" => Some(Format::Ndjson),
        "json" => Some(Format::Json),
        "bson" => Some(Format::Bson),
        _ => None,
    }
}

/// Whether `head` starts like UTF-16 text: a UTF-16 byte-order mark, or ASCII interleaved
/// with NUL bytes.
fn looks_utf16(head: &[u8]) -> bool {
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return true;
    }
    let pairs = head.len() / 2;
    if pairs < 2 {
        return false;
    }
    let even_nul = head
        .chunks_exact(2)
        .filter(|p| p[0] == 0 && p[1] != 0)
        .count();
    let odd_nul = head
        .chunks_exact(2)
        .filter(|p| p[1] == 0 && p[0] != 0)
        .count();
    even_nul * 10 >= pairs * 9 || odd_nul * 10 >= pairs * 9
}

/// Whether `head` starts with a plausible BSON document: a little-endian length of at
/// least 5 that fits in the file and in 16 MiB (+ slack), a known element type (or the end
/// of an empty document), and, when the whole first document was sniffed, a trailing NUL.
fn looks_bson(head: &[u8], file_len: u64) -> bool {
    if head.len() < 5 {
        return false;
    }
    let n = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
    if n < 5 || n > file_len || n > 17 * 1024 * 1024 {
        return false;
    }
    let t = head[4];
    let type_ok = matches!(t, 0x01..=0x13 | 0x7F | 0xFF) || (t == 0 && n == 5);
    if !type_ok {
        return false;
    }
    match usize::try_from(n - 1).ok().and_then(|last| head.get(last)) {
        Some(&last) => last == 0,
        None => true,
    }
}

/// Decides the format. `explicit` wins when not `Auto`; otherwise content first, with the
/// extension breaking ties.
pub(crate) fn detect(
    path: &Path,
    head: &[u8],
    file_len: u64,
    explicit: Format,
) -> Result<Detected> {
    let hint = format_from_extension(path);
    let is_text = |f: Format| f != Format::Bson;
    let utf16_error = || {
        Error::invalid(format!(
            "{} looks like UTF-16 text; NexusLite imports UTF-8 (convert it first, e.g. `iconv -f UTF-16 -t UTF-8`)",
            path.display()
        ))
    };
    if explicit != Format::Auto {
        if is_text(explicit) && looks_utf16(head) {
            return Err(utf16_error());
        }
        let skip = if is_text(explicit) && head.starts_with(UTF8_BOM) {
            UTF8_BOM.len()
        } else {
            0
        };
        return Ok(Detected {
            format: explicit,
            skip,
        });
    }
    if hint == Some(Format::Bson) && looks_bson(head, file_len) {
        return Ok(Detected {
            format: Format::Bson,
            skip: 0,
        });
    }
    if looks_utf16(head) {
        return Err(utf16_error());
    }
    let (skip, text) = if head.starts_with(UTF8_BOM) {
        (UTF8_BOM.len(), &head[UTF8_BOM.len()..])
    } else {
        (0, head)
    };
    let first = text.iter().copied().find(|b| !b.is_ascii_whitespace());
    let format = match first {
        None => {
            return Err(Error::invalid(format!(
                "{} holds only whitespace: there is nothing to import",
                path.display()
            )))
        }
        Some(b'[') => Format::Json,
        Some(b'{') => {
            if hint == Some(Format::Json) || !first_line_is_object(text) {
                Format::Json
            } else {
                Format::Ndjson
            }
        }
        Some(_) if skip == 0 && looks_bson(head, file_len) => Format::Bson,
        Some(_) => {
            if head.contains(&0) {
                return Err(Error::invalid(format!(
                    "{} is binary data that is neither BSON nor UTF-8 text; give the format explicitly if it is one",
                    path.display()
                )));
            }
            Format::Csv
        }
    };
    Ok(Detected { format, skip })
}

/// Whether the first non-blank line of `text` is one complete JSON object (NDJSON), as
/// opposed to the start of a pretty-printed document. A first line longer than the sniffed
/// text counts as NDJSON.
fn first_line_is_object(text: &[u8]) -> bool {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let rest = &text[start..];
    match rest.iter().position(|&b| b == b'\n') {
        None => true,
        // (A line too deep for any document is no object worth parsing: the parser
        // recurses per level.)
        Some(end) => {
            crate::document::json::text_nesting_within(
                &rest[..end],
                crate::document::MAX_QUERY_NESTING,
            ) && serde_json::from_slice::<serde_json::Value>(&rest[..end])
                .map(|v| v.is_object())
                .unwrap_or(false)
        }
    }
}

/// Picks the CSV delimiter among `,` `\t` `;` `|`: the one occurring (outside quotes) the
/// same non-zero number of times on the most of the sniffed lines, preferring the first
/// line's most frequent; `,` when none occurs.
pub(crate) fn sniff_delimiter(head: &[u8]) -> u8 {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > 1 && !head.ends_with(b"\n") {
        lines.pop(); // the last sniffed line may be cut short
    }
    let mut best = (b',', 0usize, 0usize);
    for d in [b',', b'\t', b';', b'|'] {
        let counts: Vec<usize> = lines.iter().map(|l| count_unquoted(l, d)).collect();
        let Some(&first) = counts.first() else {
            continue;
        };
        if first == 0 {
            continue;
        }
        let agree = counts.iter().filter(|&&c| c == first).count();
        if (agree, first) > (best.1, best.2) {
            best = (d, agree, first);
        }
    }
    best.0
}

/// Occurrences of `d` outside double quotes in one line.
pub(crate) fn count_unquoted(line: &str, d: u8) -> usize {
    let mut quoted = false;
    let mut n = 0;
    for b in line.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if b == d && !quoted {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, head: &[u8]) -> Result<Format> {
        detect(Path::new(name), head, 1 << 20, Format::Auto).map(|d| d.format)
    }

    #[test]
    fn content_decides_with_the_extension_as_hint() {
        assert_eq!(d("a.txt", b"[{\"a\":1}]").unwrap(), Format::Json);
        assert_eq!(
            d("a.txt", b"{\"a\":1}\n{\"a\":2}\n").unwrap(),
            Format::Ndjson
        );
        assert_eq!(d("a.json", b"{\"a\":1}").unwrap(), Format::Json);
        assert_eq!(d("a.txt", b"{\n  \"a\": 1\n}\n{\n").unwrap(), Format::Json);
        assert_eq!(d("a.data", b"a,b\n1,2\n").unwrap(), Format::Csv);
        let doc = bson::doc! {"a": 1}.to_vec().unwrap();
        assert_eq!(d("dump", &doc).unwrap(), Format::Bson);
        assert_eq!(d("x.bson", &doc).unwrap(), Format::Bson);
        // A .json name does not make CSV content JSON.
        assert_eq!(d("a.json", b"a,b\n1,2\n").unwrap(), Format::Csv);
    }

    #[test]
    fn utf16_and_binary_are_refused() {
        let utf16: Vec<u8> = "a,b\n1,2\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(d("a.csv", &utf16)
            .unwrap_err()
            .to_string()
            .contains("UTF-16"));
        assert!(d("a.csv", b"\xFF\xFEa\0")
            .unwrap_err()
            .to_string()
            .contains("UTF-16"));
        let e = detect(Path::new("a"), &utf16, 100, Format::Csv).unwrap_err();
        assert!(e.to_string().contains("UTF-16"));
        assert!(d("a", b"\x01\x02\x00\x99garbage").is_err());
    }

    #[test]
    fn bom_is_skipped() {
        let got = detect(Path::new("a.csv"), b"\xEF\xBB\xBFa,b\n", 10, Format::Auto).unwrap();
        assert_eq!((got.format, got.skip), (Format::Csv, 3));
    }

    #[test]
    fn delimiters() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1,2,3\n"), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n1;2,5;3\n"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\n\"x,y\"\t2\n"), b'\t');
        assert_eq!(sniff_delimiter(b"a|b\n1|2\n"), b'|');
        assert_eq!(sniff_delimiter(b"single\nvalue\n"), b',');
    }
}
