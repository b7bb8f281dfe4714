//! mongosh-style relaxed JSON for the command line: [`to_strict_json`] rewrites unquoted
//! keys (`{age: {$gt: 30}}`), single-quoted strings, trailing commas and the shell helpers
//! `ObjectId("..")`, `ISODate("..")`, `NumberLong(..)`, `NumberInt(..)`,
//! `NumberDecimal("..")` and `UUID("..")`, and regex literals (`/^ad/i`), into strict
//! Extended JSON, which the library then parses. Text that is already strict JSON passes
//! through unchanged.

/// Rewrites relaxed JSON text as strict JSON, or says where it cannot.
pub fn to_strict_json(input: &str) -> Result<String, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                let (s, next) = read_string(&chars, i)?;
                push_json_string(&mut out, &s);
                i = next;
            }
            ',' => {
                // Drop a trailing comma before '}' or ']'.
                let next = skip_ws(&chars, i + 1);
                if !matches!(chars.get(next), Some('}') | Some(']')) {
                    out.push(',');
                }
                i += 1;
            }
            c if c.is_ascii_digit() || c == '-' => {
                // A number, copied whole (so the 'e' of 1e5 is not a word).
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '+' | '-'))
                {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$' | '.'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = skip_ws(&chars, i);
                match chars.get(next) {
                    Some(':') => push_json_string(&mut out, &word),
                    Some('(') => {
                        let (arg, after) = read_call_arg(&chars, next + 1, &word)?;
                        out.push_str(&helper(&word, &arg)?);
                        i = after;
                    }
                    _ => match word.as_str() {
                        "true" | "false" | "null" => out.push_str(&word),
                        _ => {
                            return Err(format!(
                                "unexpected word '{word}' at character {} (quote strings)",
                                start + 1
                            ))
                        }
                    },
                }
            }
            '/' => {
                // JSON has no division, so a '/' where a value may start opens a regex
                // literal; anywhere else it is a mistake.
                if !matches!(out.trim_end().chars().last(), None | Some(':' | '[' | ',')) {
                    return Err(format!(
                        "unexpected '/' at character {} (a regex literal such as /^a/i is a value)",
                        i + 1
                    ));
                }
                let (regex, next) = read_regex(&chars, i)?;
                out.push_str(&regex);
                i = next;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The regex flags the query engine understands (MongoDB's `$options`).
const REGEX_FLAGS: &str = "imsux";

/// Reads a mongosh regex literal `/pattern/flags` starting at `i`; returns its Extended JSON
/// (a BSON regular expression, what `{$regex: .., $options: ..}` means) and the index after
/// it. `\/` stands for `/`; a `/` inside a `[...]` class does not end the pattern.
fn read_regex(chars: &[char], i: usize) -> Result<(String, usize), String> {
    let unterminated = || format!("unterminated regex literal starting at character {}", i + 1);
    let mut pattern = String::new();
    let mut in_class = false;
    let mut j = i + 1;
    loop {
        let Some(&c) = chars.get(j) else {
            return Err(unterminated());
        };
        match c {
            '\n' | '\r' => return Err(unterminated()),
            '\\' => {
                let Some(&e) = chars.get(j + 1) else {
                    return Err(unterminated());
                };
                if e != '/' {
                    pattern.push('\\');
                }
                pattern.push(e);
                j += 2;
                continue;
            }
            '[' => in_class = true,
            ']' => in_class = false,
            '/' if !in_class => break,
            _ => {}
        }
        pattern.push(c);
        j += 1;
    }
    if pattern.is_empty() {
        return Err(format!("empty regex literal at character {}", i + 1));
    }
    j += 1;
    let mut flags: Vec<char> = Vec::new();
    while let Some(&f) = chars.get(j).filter(|c| c.is_alphanumeric() || **c == '_') {
        if !REGEX_FLAGS.contains(f) {
            return Err(format!(
                "invalid regex flag '{f}' at character {} (the flags are i, m, s, u and x)",
                j + 1
            ));
        }
        if flags.contains(&f) {
            return Err(format!("regex flag '{f}' repeated at character {}", j + 1));
        }
        flags.push(f);
        j += 1;
    }
    // BSON keeps a regex's options in alphabetical order.
    flags.sort_unstable();
    let mut s = String::from(r#"{"$regularExpression":{"pattern":"#);
    push_json_string(&mut s, &pattern);
    s.push_str(r#","options":"#);
    push_json_string(&mut s, &flags.iter().collect::<String>());
    s.push_str("}}");
    Ok((s, j))
}

fn skip_ws(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// Reads a string quoted with `"` or `'` starting at `i`; returns its value and the index
/// after the closing quote.
fn read_string(chars: &[char], i: usize) -> Result<(String, usize), String> {
    let quote = chars[i];
    let mut s = String::new();
    let mut j = i + 1;
    while j < chars.len() {
        let c = chars[j];
        if c == quote {
            return Ok((s, j + 1));
        }
        if c == '\\' {
            let Some(&e) = chars.get(j + 1) else { break };
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'u' => {
                    let hex: String = chars.get(j + 2..j + 6).unwrap_or(&[]).iter().collect();
                    let code = u32::from_str_radix(&hex, 16)
                        .map_err(|_| format!("bad \\u escape at character {}", j + 1))?;
                    s.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    j += 4;
                }
                other => s.push(other),
            }
            j += 2;
            continue;
        }
        s.push(c);
        j += 1;
    }
    Err(format!(
        "unterminated string starting at character {}",
        i + 1
    ))
}

fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::String(s.to_owned()).to_string());
}

/// Reads the single argument of a helper call up to `)`: a quoted string or a bare number.
fn read_call_arg(chars: &[char], i: usize, name: &str) -> Result<(String, usize), String> {
    let mut j = skip_ws(chars, i);
    let arg = match chars.get(j) {
        Some('"') | Some('\'') => {
            let (s, next) = read_string(chars, j)?;
            j = next;
            s
        }
        Some(')') => String::new(),
        _ => {
            let start = j;
            while j < chars.len() && !chars[j].is_whitespace() && chars[j] != ')' {
                j += 1;
            }
            chars[start..j].iter().collect()
        }
    };
    j = skip_ws(chars, j);
    if chars.get(j) != Some(&')') {
        return Err(format!("{name}(...) is missing its ')'"));
    }
    Ok((arg, j + 1))
}

/// The Extended JSON of a shell helper call.
fn helper(name: &str, arg: &str) -> Result<String, String> {
    let wrap = |key: &str| {
        let mut s = String::from("{");
        push_json_string(&mut s, key);
        s.push(':');
        push_json_string(&mut s, arg);
        s.push('}');
        s
    };
    Ok(match name {
        "ObjectId" => wrap("$oid"),
        "ISODate" => wrap("$date"),
        "NumberLong" => wrap("$numberLong"),
        "NumberInt" => wrap("$numberInt"),
        "NumberDecimal" => wrap("$numberDecimal"),
        "UUID" => wrap("$uuid"),
        other => return Err(format!("unknown helper {other}(...)")),
    })
}

#[cfg(test)]
mod tests {
    use super::to_strict_json;

    fn strict(s: &str) -> String {
        to_strict_json(s).unwrap()
    }

    #[test]
    fn unquoted_keys_and_single_quotes() {
        assert_eq!(strict("{age: {$gt: 30}}"), r#"{"age": {"$gt": 30}}"#);
        assert_eq!(
            strict("{'a.b': 'x\"y', c: true,}"),
            r#"{"a.b": "x\"y", "c": true}"#
        );
        assert_eq!(
            strict(r#"{"already": "strict"}"#),
            r#"{"already": "strict"}"#
        );
        assert_eq!(strict("[1, 2,]"), "[1, 2]");
        assert_eq!(strict("{x: -1.5e3}"), r#"{"x": -1.5e3}"#);
    }

    #[test]
    fn helpers() {
        assert_eq!(
            strict("{_id: ObjectId('507f1f77bcf86cd799439011'), n: NumberLong(5)}"),
            r#"{"_id": {"$oid":"507f1f77bcf86cd799439011"}, "n": {"$numberLong":"5"}}"#
        );
        assert!(to_strict_json("{a: Bogus(1)}").is_err());
        assert!(to_strict_json("{a: bare}").is_err());
        assert!(to_strict_json("{a: 'open}").is_err());
    }
}

#[cfg(test)]
mod regex_tests {
    use super::to_strict_json;

    fn regex(pattern: &str, options: &str) -> String {
        serde_json::json!({"$regularExpression": {"pattern": pattern, "options": options}})
            .to_string()
    }

    #[test]
    fn regex_literals_become_bson_regular_expressions() {
        assert_eq!(
            to_strict_json("{name: /^ad/i}").unwrap(),
            format!(r#"{{"name": {}}}"#, regex("^ad", "i"))
        );
        // Flags are sorted as BSON keeps them; a regex is a value in arrays and operators.
        assert_eq!(
            to_strict_json("{a: {$in: [/x/, /y/sm]}}").unwrap(),
            format!(
                r#"{{"a": {{"$in": [{}, {}]}}}}"#,
                regex("x", ""),
                regex("y", "ms")
            )
        );
        assert_eq!(
            to_strict_json("{a: {$not: /b/x}}").unwrap(),
            format!(r#"{{"a": {{"$not": {}}}}}"#, regex("b", "x"))
        );
    }

    #[test]
    fn regex_escapes_classes_and_strings() {
        // An escaped slash is a slash; other escapes stay for the regex engine.
        assert_eq!(
            to_strict_json(r"{p: /a\/b\d/}").unwrap(),
            format!(r#"{{"p": {}}}"#, regex(r"a/b\d", ""))
        );
        // A '/' inside a character class does not close the literal.
        assert_eq!(
            to_strict_json("{p: /[/]x/}").unwrap(),
            format!(r#"{{"p": {}}}"#, regex("[/]x", ""))
        );
        // An escaped backslash before the closing slash.
        assert_eq!(
            to_strict_json(r"{p: /a\\/}").unwrap(),
            format!(r#"{{"p": {}}}"#, regex(r"a\\", ""))
        );
        // Inside strings a slash is only a character.
        assert_eq!(
            to_strict_json("{p: '/not/i', q: \"a/b\"}").unwrap(),
            r#"{"p": "/not/i", "q": "a/b"}"#
        );
    }

    #[test]
    fn bad_regex_literals_are_refused_clearly() {
        let e = to_strict_json("{a: /x/g}").unwrap_err();
        assert!(e.contains("invalid regex flag 'g'"), "{e}");
        let e = to_strict_json("{a: /x/ii}").unwrap_err();
        assert!(e.contains("regex flag 'i' repeated"), "{e}");
        let e = to_strict_json("{a: /open}").unwrap_err();
        assert!(e.contains("unterminated regex literal"), "{e}");
        let e = to_strict_json("{a: //}").unwrap_err();
        assert!(e.contains("empty regex literal"), "{e}");
        // Not in a value position: JSON has no division.
        let e = to_strict_json("{a: 1/2}").unwrap_err();
        assert!(e.contains("unexpected '/' at character 6"), "{e}");
        assert!(to_strict_json("{/a/: 1}").is_err());
    }
}
