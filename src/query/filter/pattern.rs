//! Regular expressions of `$regex`, `{a: /re/}` and regexes inside `$in` / `$nin` / `$all` /
//! `$not`: [`Pattern`] compiles a pattern with MongoDB's options (`i m s x`) through the
//! `regex` crate, whose matching time is linear in the input, under a compiled-size limit, so
//! a hostile pattern can neither run for exponential time nor take unbounded memory.
//!
//! The syntax is the `regex` crate's, which covers the PCRE constructs most queries use
//! (classes, anchors, alternation, repetition, groups, `\d \w \s`, Unicode classes); PCRE's
//! backreferences and look-around have no linear-time implementation and are rejected with a
//! parse error that names the path. A build without the cargo feature `regex-unicode` (the
//! size-tuned library) has no Unicode property tables: `\p{..}` is refused, and the message
//! says why; without `regex-fast` every pattern runs on the regex crate's PikeVM.

use crate::error::{Error, Result};

/// Longest pattern accepted, in bytes (MongoDB's limit).
const MAX_PATTERN_LEN: usize = 32_764;
/// Compiled program size limit for one pattern.
const SIZE_LIMIT: usize = 1 << 20;
/// Lazy DFA cache limit for one pattern.
const DFA_SIZE_LIMIT: usize = 2 << 20;

/// A compiled regular expression with its source text and options.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    re: regex::Regex,
}

impl Pattern {
    /// Compiles `source` with `options`; `path` names the field for messages.
    pub(crate) fn new(source: &str, options: &str, path: &str) -> Result<Self> {
        if source.len() > MAX_PATTERN_LEN {
            return Err(Error::parse(format!(
                "$regex on '{path}': regular expression is too long ({} bytes, at most {MAX_PATTERN_LEN})",
                source.len()
            )));
        }
        if source.contains('\0') {
            return Err(Error::parse(format!(
                "$regex on '{path}': regular expression cannot contain an embedded null byte"
            )));
        }
        let mut b = regex::RegexBuilder::new(source);
        for c in options.chars() {
            match c {
                'i' => b.case_insensitive(true),
                'm' => b.multi_line(true),
                's' => b.dot_matches_new_line(true),
                'x' => b.ignore_whitespace(true),
                // MongoDB accepts 'u' (Unicode), which is always on here.
                'u' => &mut b,
                other => {
                    return Err(Error::parse(format!(
                        "$regex on '{path}': invalid flag in regex options: {other}"
                    )))
                }
            };
        }
        let re = b
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                let why = match e {
                    regex::Error::CompiledTooBig(limit) => {
                        format!("the compiled pattern exceeds the size limit of {limit} bytes")
                    }
                    other => with_feature_hint(other.to_string()),
                };
                Error::parse(format!(
                    "$regex on '{path}': regular expression is invalid: {why}"
                ))
            })?;
        Ok(Self { re })
    }

    /// Whether the pattern matches somewhere in `text`.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.re.is_match(text)
    }
}

/// The regex crate's message, plus, in a build without the Unicode property tables, why a
/// property class it names is missing (its own message reads like a misspelt name).
fn with_feature_hint(message: String) -> String {
    if cfg!(not(feature = "regex-unicode")) && message.contains("Unicode property") {
        format!(
            "{message} (this build of NexusLite leaves out the Unicode property tables: cargo feature `regex-unicode`)"
        )
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_property_classes_follow_the_build() {
        // Without `regex-unicode` the tables may still be there: a test build has them
        // through proptest's regex-syntax (the size-tuned library has not; checked by hand).
        match Pattern::new(r"^\p{Greek}+$", "", "a") {
            Ok(greek) => assert!(greek.is_match("αβγ") && !greek.is_match("abc")),
            Err(e) => {
                let unicode_build = cfg!(feature = "regex-unicode");
                assert!(!unicode_build, "{e}");
                assert!(
                    e.to_string().contains("cargo feature `regex-unicode`"),
                    "{e}"
                );
            }
        }
        // Perl classes and case folding are Unicode-aware in every build.
        assert!(Pattern::new(r"^\w+ \d$", "", "a")
            .unwrap()
            .is_match("ünï ٣"));
        assert!(Pattern::new("^ÄΣ$", "i", "a").unwrap().is_match("äσ"));
    }

    #[test]
    fn options_and_errors() {
        assert!(Pattern::new("^ab", "i", "a").unwrap().is_match("ABc"));
        assert!(!Pattern::new("^b", "", "a").unwrap().is_match("a\nb"));
        assert!(Pattern::new("^b", "m", "a").unwrap().is_match("a\nb"));
        assert!(Pattern::new("a.b", "s", "a").unwrap().is_match("a\nb"));
        assert!(Pattern::new("a b # comment", "x", "a")
            .unwrap()
            .is_match("ab"));
        let e = Pattern::new("a", "q", "f").unwrap_err().to_string();
        assert!(e.contains("invalid flag") && e.contains("'f'"), "{e}");
        assert!(Pattern::new("(a", "", "f").is_err());
        assert!(Pattern::new(r"(a)\1", "", "f").is_err());
    }

    #[test]
    fn hostile_patterns_are_bounded() {
        // Exponential for a backtracking engine; linear here.
        let p = Pattern::new("(a+)+$", "", "f").unwrap();
        let text = format!("{}b", "a".repeat(50_000));
        assert!(!p.is_match(&text));
        // A pattern whose compiled form is huge is refused, not built.
        let e = Pattern::new(r"\w{1000}\w{1000}\w{1000}", "", "f").unwrap_err();
        assert!(e.to_string().contains("size limit"), "{e}");
    }
}
