//! The first reader of JSON text into BSON bytes: a byte scanner for the plain JSON that
//! inserts carry (objects, arrays, strings, numbers, `true`, `false`, `null`), writing through
//! the same [`Writer`] as the `serde_json`-driven reader of [`super::direct`] but without its
//! visitor calls, and looking for the end of a string eight bytes at a time.
//!
//! It declines (returns `None`; the caller then takes the `serde_json` reader, and that one
//! the `Value` path, which reports the error) on anything it does not read exactly as
//! `serde_json` with `float_roundtrip` does: any syntax it does not expect, a nested object
//! that is or may be an Extended JSON wrapper (a key in `WRAPPER_KEYS`, or `$scope`), a lone
//! or unpaired UTF-16 surrogate escape, a number that is not finite, an integer that does
//! not fit 64 bits, and everything the `Writer` declines (repeated or NUL keys, nesting
//! beyond `MAX_NESTING`, size limits). It never accepts text that `serde_json` refuses;
//! the differential tests of `document::body` and `document::json` hold it to the reference
//! on generated and hand-written texts.
//!
//! Numbers map as `serde_json` parses them and `Value` visits them: an integer without a
//! sign is a `u64` (then `Int32` or `Int64`, or a `Double` above `i64::MAX`); a negative one
//! is an `i64` when it fits, else a `Double`, and `-0` is the double `-0.0` (`serde_json`
//! reads it as a float); a number with a fraction or an exponent is the correctly rounded
//! `f64` (`str::parse`, correctly rounded as `float_roundtrip` is).

use super::direct::{is_wrapper_key, Keys, Writer};
use crate::document::body::{index_key, RawElements};
use crate::document::MAX_NESTING;
use std::cell::RefCell;

/// Anything the scanner does not read: the caller takes the next reader.
struct Declined;

type Scanned<T> = Result<T, Declined>;

impl From<serde_json::Error> for Declined {
    fn from(_: serde_json::Error) -> Self {
        Declined
    }
}

thread_local! {
    /// The `Writer`'s key list, kept between calls (an insert would otherwise allocate it).
    static KEYS: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

struct Scan<'a> {
    /// The text (sliced only at ASCII bytes, so at character boundaries) and its bytes.
    src: &'a str,
    text: &'a [u8],
    at: usize,
    w: Writer,
    /// Unescaped text of a key that has escapes.
    key: String,
}

/// One JSON object (the whole text) as BSON elements (see [`super::direct::elements`]).
pub(super) fn elements(text: &str) -> Option<RawElements> {
    with_scan(text, text.len() + text.len() / 2 + 16, |s| {
        s.ws();
        let raw = s.top().ok()?;
        s.ws();
        (s.at == s.text.len()).then_some(raw)
    })
}

/// A JSON array of objects (the whole text), each as [`elements`] reads one.
pub(super) fn element_array(text: &str) -> Option<Vec<RawElements>> {
    with_scan(text, 0, |s| {
        s.ws();
        s.eat(b'[').ok()?;
        let mut docs = Vec::new();
        s.items(b']', |s| {
            docs.push(s.top()?);
            Ok(())
        })
        .ok()?;
        s.ws();
        (s.at == s.text.len()).then_some(docs)
    })
}

/// Runs `f` on a scanner of `text` whose key list is this thread's reused one.
fn with_scan<R>(text: &str, capacity: usize, f: impl FnOnce(&mut Scan<'_>) -> R) -> R {
    crate::scratch::with(&KEYS, |keys| {
        let mut s = Scan {
            src: text,
            text: text.as_bytes(),
            at: 0,
            w: Writer {
                out: Vec::with_capacity(capacity),
                keys: std::mem::take(keys),
            },
            key: String::new(),
        };
        let r = f(&mut s);
        *keys = s.w.keys;
        keys.clear();
        r
    })
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> Scanned<()> {
        if self.next() == Some(b) {
            Ok(())
        } else {
            Err(Declined)
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A top-level object: keys read literally, `_id`'s element located.
    fn top(&mut self) -> Scanned<RawElements> {
        self.eat(b'{')?;
        if self.w.out.capacity() == 0 {
            self.w.out.reserve(256);
        }
        self.w.out.extend_from_slice(&[0; 4]);
        let mut open = self.w.open_keys();
        let mut id = None;
        self.items(b'}', |s| {
            let (start, is_id) = s.element(&mut open, 1, false)?;
            if is_id {
                id = Some((start, s.w.out.len()));
            }
            Ok(())
        })?;
        self.w.keys.truncate(open.base);
        Ok(RawElements {
            buf: std::mem::take(&mut self.w.out),
            id,
        })
    }

    /// The items of an object or array whose opening byte is read, up to its `close`: `item`
    /// reads each one; commas between them, whitespace around them.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Scanned<()>) -> Scanned<()> {
        self.ws();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            match self.next() {
                Some(b',') => {}
                Some(b) if b == close => return Ok(()),
                _ => return Err(Declined),
            }
        }
    }

    /// `"key": value` of an object at nesting level `depth`; `nested`: wrapper keys decline.
    /// Returns where the element starts and whether its key is `_id`.
    fn element(&mut self, open: &mut Keys, depth: usize, nested: bool) -> Scanned<(usize, bool)> {
        let start = self.w.out.len();
        let (from, to, escaped) = self.string()?;
        let src = self.src;
        let key = if escaped {
            self.key.clear();
            unescape(&src[from..to], |b| self.key.push_str(b))?;
            &self.key[..]
        } else {
            &src[from..to]
        };
        if nested && key.starts_with('$') && (is_wrapper_key(key) || key == "$scope") {
            return Err(Declined);
        }
        let is_id = key == "_id";
        self.w.key::<serde_json::Error>(key, open, escaped)?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        let kind = self.value(depth)?;
        self.w.out[start] = kind;
        Ok((start, is_id))
    }

    /// A string: the bytes between its quotes are `text[from..to]`; `escaped` when they hold
    /// a backslash. A control character declines, as `serde_json` refuses it.
    fn string(&mut self) -> Scanned<(usize, usize, bool)> {
        self.eat(b'"')?;
        let from = self.at;
        let mut escaped = false;
        loop {
            self.at = plain_run(self.text, self.at);
            match self.next() {
                Some(b'"') => return Ok((from, self.at - 1, escaped)),
                Some(b'\\') => {
                    escaped = true;
                    // Skip the escaped byte so that `\"` does not end the string; `unescape`
                    // checks the escape itself.
                    self.next().ok_or(Declined)?;
                }
                _ => return Err(Declined),
            }
        }
    }

    /// A value at nesting level `depth`: writes its bytes, returns its BSON type.
    fn value(&mut self, depth: usize) -> Scanned<u8> {
        match self.peek().ok_or(Declined)? {
            b'"' => {
                let (from, to, escaped) = self.string()?;
                let len_at = self.w.out.len();
                self.w.out.extend_from_slice(&[0; 4]);
                if escaped {
                    let out = &mut self.w.out;
                    unescape(&self.src[from..to], |s| out.extend_from_slice(s.as_bytes()))?;
                } else {
                    self.w.out.extend_from_slice(&self.text[from..to]);
                }
                self.w.out.push(0);
                let len = i32::try_from(self.w.out.len() - len_at - 4).map_err(|_| Declined)?;
                self.w.out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
                Ok(0x02)
            }
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b't' => self.literal(b"true", 0x08, Some(1)),
            b'f' => self.literal(b"false", 0x08, Some(0)),
            b'n' => self.literal(b"null", 0x0A, None),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Declined),
        }
    }

    fn literal(&mut self, word: &[u8], kind: u8, byte: Option<u8>) -> Scanned<u8> {
        if !self.text[self.at..].starts_with(word) {
            return Err(Declined);
        }
        self.at += word.len();
        self.w.out.extend(byte);
        Ok(kind)
    }

    fn object(&mut self, depth: usize) -> Scanned<u8> {
        if depth >= MAX_NESTING {
            return Err(Declined);
        }
        self.at += 1;
        let at = self.w.open();
        let mut open = self.w.open_keys();
        self.items(b'}', |s| s.element(&mut open, depth + 1, true).map(|_| ()))?;
        self.w.keys.truncate(open.base);
        self.w.close::<serde_json::Error>(at)?;
        Ok(0x03)
    }

    fn array(&mut self, depth: usize) -> Scanned<u8> {
        if depth >= MAX_NESTING {
            return Err(Declined);
        }
        self.at += 1;
        let at = self.w.open();
        let mut digits = [0u8; 20];
        let mut i = 0;
        self.items(b']', |s| {
            let start = s.w.out.len();
            s.w.out.push(0);
            s.w.out.extend_from_slice(index_key(i, &mut digits));
            s.w.out.push(0);
            s.w.out[start] = s.value(depth + 1)?;
            i += 1;
            Ok(())
        })?;
        self.w.close::<serde_json::Error>(at)?;
        Ok(0x04)
    }

    /// A number by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Scanned<u8> {
        let from = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let mut n: u64 = 0;
        let mut fits = true;
        match self.next() {
            Some(b'0') => {
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(Declined);
                }
            }
            Some(d @ b'1'..=b'9') => {
                n = u64::from(d - b'0');
                while let Some(d @ b'0'..=b'9') = self.peek() {
                    self.at += 1;
                    match n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d - b'0')))
                    {
                        Some(m) => n = m,
                        None => fits = false,
                    }
                }
            }
            _ => return Err(Declined),
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.one_or_more_digits()?;
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.one_or_more_digits()?;
            float = true;
        }
        if float {
            let f: f64 = self.src[from..self.at].parse().map_err(|_| Declined)?;
            if !f.is_finite() {
                return Err(Declined);
            }
            return Ok(self.w.double(f));
        }
        if !fits {
            return Err(Declined);
        }
        Ok(if !negative {
            match i64::try_from(n) {
                Ok(i) => self.w.int(i),
                Err(_) => self.w.double(n as f64),
            }
        } else if n == 0 || n > 1 << 63 {
            self.w.double(-(n as f64))
        } else {
            self.w.int((n as i64).wrapping_neg())
        })
    }

    fn one_or_more_digits(&mut self) -> Scanned<()> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(Declined);
        }
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        Ok(())
    }
}

/// The first position at or after `at` holding a quote, a backslash or a control character
/// (`text.len()` when none does), eight bytes at a time while eight remain.
pub(super) fn plain_run(text: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes below 0x80 that are zero after xor-ing with `c` (or below 0x20) set their high bit.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    while let Some(chunk) = text.get(at..at + 8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let hits = zero(v ^ (ONES * u64::from(b'"')))
            | zero(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if hits != 0 {
            // The lowest flagged byte is a real hit (borrows only run upwards).
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = text.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        at += 1;
    }
    at
}

/// The bytes [`nesting_within`] stops at outside strings: a quote and the four brackets.
const STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Whether JSON text nests objects and arrays no deeper than `max` levels: brackets outside
/// strings counted, strings skipped (eight bytes at a time), the bytes between them (numbers,
/// separators, literals) passed over by a table lookup each. The text need not be valid;
/// this only decides whether a parser may look at it. Iterative, linear.
pub(super) fn nesting_within(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut at = 0;
    loop {
        while text.get(at).is_some_and(|&b| !STRUCTURAL[usize::from(b)]) {
            at += 1;
        }
        let Some(&b) = text.get(at) else { break };
        at += 1;
        match b {
            b'"' => loop {
                at = plain_run(text, at);
                match text.get(at) {
                    None => return true,
                    Some(b'"') => {
                        at += 1;
                        break;
                    }
                    Some(b'\\') => at += 2,
                    Some(_) => at += 1, // a control character: not JSON, not our concern
                }
            },
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// Decodes the escapes of a string's text between its quotes, handing `put` runs of text.
fn unescape(raw: &str, mut put: impl FnMut(&str)) -> Scanned<()> {
    let bytes = raw.as_bytes();
    let mut at = 0;
    while at < raw.len() {
        let run = bytes[at..]
            .iter()
            .position(|&b| b == b'\\')
            .map_or(raw.len(), |i| at + i);
        put(&raw[at..run]);
        if run == raw.len() {
            break;
        }
        let esc = *bytes.get(run + 1).ok_or(Declined)?;
        at = run + 2;
        let c = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(bytes.get(at..at + 4).ok_or(Declined)?)?;
                at += 4;
                let code = match hi {
                    0xD800..=0xDBFF => {
                        if bytes.get(at..at + 2) != Some(b"\\u") {
                            return Err(Declined);
                        }
                        let lo = hex4(bytes.get(at + 2..at + 6).ok_or(Declined)?)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(Declined);
                        }
                        at += 6;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(Declined),
                    _ => hi,
                };
                char::from_u32(code).ok_or(Declined)?
            }
            _ => return Err(Declined),
        };
        put(c.encode_utf8(&mut [0; 4]));
    }
    Ok(())
}

fn hex4(b: &[u8]) -> Scanned<u32> {
    let mut n = 0;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(Declined),
        };
        n = n * 16 + u32::from(d);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::plain_run;
    use crate::document::json::differential_tests::{hand_written_values, nested, Gen};
    use crate::document::json::direct;
    use crate::document::MAX_NESTING;

    /// The scanner against the `serde_json` reader it stands in front of (itself held to the
    /// `Value` path by the differential tests): where the scanner reads a text, the other
    /// reads it too and writes the same bytes and `_id` position; it reads most of them.
    fn agree(text: &str) -> bool {
        let Some(got) = super::elements(text) else {
            return false;
        };
        let want = direct::elements(text)
            .unwrap_or_else(|e| panic!("the scanner read {text:?}, the serde reader: {e}"));
        assert_eq!(got.buf, want.buf, "{text:?}");
        assert_eq!(got.id, want.id, "{text:?}");
        true
    }

    #[test]
    fn scanner_writes_what_the_serde_reader_writes() {
        let mut g = Gen {
            rng: fastrand::Rng::with_seed(0x5ca9),
            dup: false,
        };
        let (mut read, mut direct_read, mut texts) = (0, 0, Vec::new());
        for _ in 0..5_000 {
            let depth = g.rng.u32(1..6);
            let text = g.object(depth);
            texts.push(g.mangle(text));
        }
        for v in hand_written_values() {
            texts.push(format!("{{\"_id\":1,\"v\":{v}}}"));
            texts.push(format!("{{\"v\":{v},\"_id\":\"x\"}}"));
            texts.push(v);
        }
        for depth in [
            MAX_NESTING - 2,
            MAX_NESTING - 1,
            MAX_NESTING,
            MAX_NESTING + 1,
        ] {
            texts.push(format!("{{\"v\":{}}}", nested(depth, "[", "]", "1")));
            texts.push(format!("{{\"v\":{}}}", nested(depth, "{\"a\":", "}", "1")));
        }
        for text in &texts {
            read += usize::from(agree(text));
            direct_read += usize::from(direct::elements(text).is_ok());
        }
        eprintln!("scanner read {read} of the {direct_read} texts the serde reader reads");
        // Declines are few: wrappers, big integers, surrogate or control characters.
        assert!(read * 10 >= direct_read * 6, "read {read} of {direct_read}");
        let arrays: Vec<String> = texts
            .chunks(3)
            .map(|c| format!("[{}]", c.join(",")))
            .collect();
        for a in &arrays {
            if let Some(got) = super::element_array(a) {
                let want = direct::element_array(a).expect("the serde reader reads it too");
                assert_eq!(got.len(), want.len());
                for (x, y) in got.iter().zip(&want) {
                    assert_eq!((&x.buf, x.id), (&y.buf, y.id), "{a:?}");
                }
            }
        }
    }

    #[test]
    fn nesting_is_counted_outside_strings() {
        let within = |t: &str, max| super::nesting_within(t.as_bytes(), max);
        assert!(within("{}", 1) && !within("{}", 0) && within("1", 0));
        assert!(within(r#"{"a":[{"b":"[[[{{{"}]}"#, 3));
        assert!(!within(r#"{"a":[{"b":"x"}]}"#, 2));
        assert!(within(r#"{"a":"\"[[[\\"}"#, 1));
        assert!(!within(r#"{"a":"\\"[[}"#, 2));
        assert!(within(r#"{"a":"unterminated [[[["#, 1));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(within(&deep, 100_000) && !within(&deep, 99_999));
    }

    #[test]
    fn plain_run_finds_the_first_stop_byte() {
        for len in 0..40 {
            for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for at in 0..=len {
                    let mut text = vec![b'a'; len];
                    // Bytes that must not stop it: high, just above 0x20, UTF-8.
                    for (i, b) in text.iter_mut().enumerate() {
                        *b = [b'a', 0x20, 0x7f, 0x80, 0xff, b'!', b'#', b']'][i % 8];
                    }
                    if at < len {
                        text[at] = stop;
                    }
                    assert_eq!(plain_run(&text, 0), at, "len {len} stop {stop:#x} at {at}");
                }
            }
        }
    }
}
