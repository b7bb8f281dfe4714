//! mongosh-style relaxed JSON for the command line: [`to_strict_json`] rewrites unquoted
//! keys (`{age: {$gt: 30}}`), single-quoted strings, trailing commas and the shell helpers
//! `ObjectId("..")`, `ISODate("..")`, `NumberLong(..)`, `NumberInt(..)`,
//! `NumberDecimal("..")` and `UUID("..")` into strict Extended JSON, which the library then
//! parses. Text that is already strict JSON passes through unchanged.

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
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
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
