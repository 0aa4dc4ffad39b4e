//! Reading files: bytes with the path in the error, text lines that survive odd encodings, and the
//! normalisations SST needs (PTB bracket escapes, UTF-8 read as Latin-1 / Windows-1252).

use std::fs;
use std::path::Path;

use crate::error::DatasetError;

/// The whole file, or an error naming it.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, DatasetError> {
    fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DatasetError::MissingFile {
                path: path.to_path_buf(),
                what: "file".to_string(),
            }
        } else {
            DatasetError::io(path, e)
        }
    })
}

/// Decode one line: UTF-8 when valid, else Latin-1 (every byte is a char), so a stray byte never
/// stops a load. A trailing `\r` (CRLF files) is removed.
pub(crate) fn decode_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// The lines of a text file (LF or CRLF; a UTF-8 BOM is dropped; no empty last line for a final
/// newline), each decoded by [`decode_line`]. Line `i` of the result is line `i + 1` of the file.
pub(crate) fn read_lines(path: &Path) -> Result<Vec<String>, DatasetError> {
    let bytes = read_bytes(path)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut lines: Vec<String> = bytes.split(|&b| b == b'\n').map(decode_line).collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    Ok(lines)
}

/// Penn Treebank bracket escapes as they appear in SST's `datasetSentences.txt`.
const PTB_ESCAPES: [(&str, &str); 6] = [
    ("-LRB-", "("),
    ("-RRB-", ")"),
    ("-LSB-", "["),
    ("-RSB-", "]"),
    ("-LCB-", "{"),
    ("-RCB-", "}"),
];

/// `-LRB-` → `(` and the other PTB bracket escapes back to brackets.
pub fn ptb_unescape(s: &str) -> String {
    let mut out = s.to_string();
    for (esc, plain) in PTB_ESCAPES {
        if out.contains(esc) {
            out = out.replace(esc, plain);
        }
    }
    out
}

/// Windows-1252's characters for bytes 0x80..0x9F (where it differs from Latin-1).
const CP1252_HIGH: [(char, u8); 27] = [
    ('€', 0x80),
    ('‚', 0x82),
    ('ƒ', 0x83),
    ('„', 0x84),
    ('…', 0x85),
    ('†', 0x86),
    ('‡', 0x87),
    ('ˆ', 0x88),
    ('‰', 0x89),
    ('Š', 0x8A),
    ('‹', 0x8B),
    ('Œ', 0x8C),
    ('Ž', 0x8E),
    ('‘', 0x91),
    ('’', 0x92),
    ('“', 0x93),
    ('”', 0x94),
    ('•', 0x95),
    ('–', 0x96),
    ('—', 0x97),
    ('˜', 0x98),
    ('™', 0x99),
    ('š', 0x9A),
    ('›', 0x9B),
    ('œ', 0x9C),
    ('ž', 0x9E),
    ('Ÿ', 0x9F),
];

fn mojibake_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u <= 0xFF {
        return Some(u as u8);
    }
    CP1252_HIGH.iter().find(|(ch, _)| *ch == c).map(|&(_, b)| b)
}

/// Undo UTF-8 text that was decoded as Latin-1 or Windows-1252 and re-encoded (`Ã©` → `é`,
/// `â€™` → `’`). Works run by run of non-ASCII characters: a run is replaced only when its bytes
/// form valid UTF-8, so correct text (`é` alone) is left as it is.
pub fn fix_mojibake(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut run: Vec<char> = Vec::new();
    let flush = |run: &mut Vec<char>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let bytes: Option<Vec<u8>> = run.iter().map(|&c| mojibake_byte(c)).collect();
        match bytes.as_deref().map(std::str::from_utf8) {
            Some(Ok(fixed)) => out.push_str(fixed),
            _ => out.extend(run.iter()),
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii() {
            flush(&mut run, &mut out);
            out.push(c);
        } else {
            run.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The form SST sentences and dictionary phrases are matched on: mojibake fixed, PTB brackets
/// unescaped, no-break spaces made plain spaces. This is also the text the SST loader returns.
pub fn normalize_sst(s: &str) -> String {
    ptb_unescape(&fix_mojibake(s)).replace('\u{a0}', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mojibake_and_ptb() {
        assert_eq!(fix_mojibake("clichÃ©d"), "clichéd");
        assert_eq!(fix_mojibake("NaÃ¯ve Ã\u{a0}la"), "Naïve àla");
        assert_eq!(fix_mojibake("itâ€™s"), "it’s"); // via Windows-1252
        assert_eq!(fix_mojibake("clichéd café"), "clichéd café"); // already right: unchanged
        assert_eq!(fix_mojibake("Ã"), "Ã"); // not valid UTF-8 once mapped back: unchanged
        assert_eq!(
            ptb_unescape("-LRB- a -RRB- -LSB-b-RSB- -LCB-c-RCB-"),
            "( a ) [b] {c}"
        );
        assert_eq!(normalize_sst("It 's -LRB- clichÃ©d -RRB-"), "It 's ( clichéd )");
        // "Â" + no-break space is the mojibake of a no-break space: both become a plain space.
        assert_eq!(normalize_sst("a\u{c2}\u{a0}b"), "a b");
    }

    #[test]
    fn lines_decode_crlf_bom_and_latin1() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        std::fs::write(&p, b"\xEF\xBB\xBFa\r\ncaf\xE9\r\n\r\nlast").unwrap();
        assert_eq!(read_lines(&p).unwrap(), ["a", "café", "", "last"]);
        std::fs::write(&p, b"x\n").unwrap();
        assert_eq!(read_lines(&p).unwrap(), ["x"]);
    }
}
