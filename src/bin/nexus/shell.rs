//! `nexus shell DB`: an interactive shell in the manner of `sqlite3` and `mongosh`. On a
//! terminal it uses rustyline (line editing, history in `~/.nexus_history`); with stdin
//! redirected it reads commands line by line without prompts, so scripts can be piped in.
//! Commands: find, aggregate, count, insert, update, delete, collections, stats, create-index,
//! drop-index, indexes, explain, begin, commit, rollback, help, exit. JSON arguments may be written as in mongosh (unquoted keys).

use crate::commands::{self, parse_filter, parse_find_options, parse_object};
use nexus::{Database, UpdateOptions};
use std::io::{BufRead, IsTerminal, Write};

const HELP: &str = "\
commands (JSON may use unquoted keys, single quotes, ObjectId(..), ISODate(..)):
  find COLL [FILTER] [OPTIONS]        documents, one per line; OPTIONS: {sort:{age:-1}, limit:10, skip:0, projection:{...}}
  aggregate COLL PIPELINE [OPTIONS]   aggregation results, one per line, e.g. aggregate people [{$group: {_id: '$city', n: {$sum: 1}}}]
  count COLL [FILTER]                 number of matching documents
  insert COLL DOC|[DOC,...]           insert; prints the _id(s)
  update COLL FILTER UPDATE [--multi] [--upsert]
  delete COLL FILTER [--multi]
  collections                         collection names
  stats                               database statistics
  create-index COLL KEYS [OPTIONS] [--unique] [--sparse]
                                      secondary index, e.g. create-index people {email: 1} --unique; prints its name
  drop-index COLL NAME                drop an index
  indexes COLL                        the indexes as a JSON array
  explain COLL [FILTER] [OPTIONS]     query plan and what it examined (OPTIONS as for find)
  begin | commit | rollback           a transaction on this connection
  help                                this text
  exit | quit                         leave (end of input does too)";

/// Splits a command line into words: a word is either a balanced `{...}` / `[...]` group
/// (quotes respected, whitespace allowed inside) or a run of non-space characters.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if chars[i] == '{' || chars[i] == '[' {
            let mut depth = 0i32;
            let mut quote: Option<char> = None;
            let mut escaped = false;
            while i < chars.len() {
                let c = chars[i];
                i += 1;
                if let Some(q) = quote {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                    continue;
                }
                match c {
                    '"' | '\'' => quote = Some(c),
                    '{' | '[' => depth += 1,
                    '}' | ']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if depth != 0 || quote.is_some() {
                return Err(format!(
                    "unbalanced JSON starting at character {}",
                    start + 1
                ));
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
        }
        words.push(chars[start..i].iter().collect());
    }
    Ok(words)
}

/// Runs one shell line. `Ok(false)` means exit.
fn run_line(db: &Database, line: &str, out: &mut dyn Write) -> Result<bool, String> {
    let words = split_words(line)?;
    let Some((cmd, rest)) = words.split_first() else {
        return Ok(true);
    };
    let flags: Vec<&str> = rest
        .iter()
        .filter(|w| w.starts_with("--"))
        .map(String::as_str)
        .collect();
    let args: Vec<&str> = rest
        .iter()
        .filter(|w| !w.starts_with("--"))
        .map(String::as_str)
        .collect();
    let allowed: &[&str] = match cmd.as_str() {
        "update" => &["--multi", "--upsert"],
        "delete" => &["--multi"],
        "create-index" => &["--unique", "--sparse"],
        _ => &[],
    };
    if let Some(bad) = flags.iter().find(|f| !allowed.contains(f)) {
        return Err(format!("{cmd}: unknown flag {bad}"));
    }
    let arity = |min: usize, max: usize, usage: &str| {
        if args.len() < min || args.len() > max {
            Err(format!("usage: {usage}"))
        } else {
            Ok(())
        }
    };
    match cmd.as_str() {
        "exit" | "quit" | ".exit" => return Ok(false),
        "help" | ".help" => writeln!(out, "{HELP}").map_err(|e| e.to_string())?,
        "find" => {
            arity(1, 3, "find COLL [FILTER] [OPTIONS]")?;
            let filter = parse_filter(args.get(1).copied())?;
            let opts = parse_find_options(args.get(2).copied())?;
            commands::find(db, args[0], &filter, opts, out)?;
        }
        "aggregate" => {
            arity(2, 3, "aggregate COLL PIPELINE [OPTIONS]")?;
            commands::aggregate(db, args[0], args[1], args.get(2).copied(), out)?;
        }
        "count" => {
            arity(1, 2, "count COLL [FILTER]")?;
            commands::count(db, args[0], &parse_filter(args.get(1).copied())?, out)?;
        }
        "insert" => {
            arity(2, 2, "insert COLL DOC")?;
            commands::insert(db, args[0], args[1], out)?;
        }
        "update" => {
            arity(3, 3, "update COLL FILTER UPDATE [--multi] [--upsert]")?;
            let options = UpdateOptions {
                multi: flags.contains(&"--multi"),
                upsert: flags.contains(&"--upsert"),
            };
            let filter = parse_object(args[1], "filter")?;
            let update = parse_object(args[2], "update")?;
            commands::update(db, args[0], &filter, &update, options, None, out)?;
        }
        "delete" => {
            arity(2, 2, "delete COLL FILTER [--multi]")?;
            let filter = parse_object(args[1], "filter")?;
            commands::delete(db, args[0], &filter, flags.contains(&"--multi"), out)?;
        }
        "collections" | "show" => {
            arity(0, 1, "collections")?;
            commands::collections(db, out)?;
        }
        "stats" => {
            arity(0, 0, "stats")?;
            commands::stats(db, out)?;
        }
        "create-index" => {
            arity(
                2,
                3,
                "create-index COLL KEYS [OPTIONS] [--unique] [--sparse]",
            )?;
            let keys = parse_object(args[1], "index keys")?;
            let mut options = match args.get(2) {
                Some(o) => parse_object(o, "index options")?,
                None => bson::Document::new(),
            };
            for flag in ["unique", "sparse"] {
                if flags.contains(&format!("--{flag}").as_str()) {
                    options.insert(flag, true);
                }
            }
            commands::create_index(db, args[0], &keys, &options, out)?;
        }
        "drop-index" => {
            arity(2, 2, "drop-index COLL NAME")?;
            commands::drop_index(db, args[0], args[1])?;
        }
        "indexes" => {
            arity(1, 1, "indexes COLL")?;
            commands::indexes(db, args[0], out)?;
        }
        "explain" => {
            arity(1, 3, "explain COLL [FILTER] [OPTIONS]")?;
            let filter = parse_filter(args.get(1).copied())?;
            let opts = parse_find_options(args.get(2).copied())?;
            commands::explain(db, args[0], &filter, opts, out)?;
        }
        "begin" => db.begin().map_err(|e| e.to_string())?,
        "commit" => db.commit().map_err(|e| e.to_string())?,
        "rollback" => db.rollback().map_err(|e| e.to_string())?,
        other => return Err(format!("unknown command '{other}' (type help)")),
    }
    Ok(true)
}

fn history_path() -> Option<std::path::PathBuf> {
    std::env::var_os("NEXUS_HISTORY")
        .map(Into::into)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".nexus_history"))
        })
}

/// Runs the shell on `db`; returns the process exit code: 0, or 1 when reading commands
/// from a pipe and any command failed.
pub fn run(db: &Database, db_name: &str) -> i32 {
    let stdout = std::io::stdout();
    if !std::io::stdin().is_terminal() {
        let mut failed = false;
        for (n, line) in std::io::stdin().lock().lines().enumerate() {
            let Ok(line) = line else {
                eprintln!(
                    "nexus: error: standard input is not UTF-8 text (line {})",
                    n + 1
                );
                return 1;
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let mut out = stdout.lock();
            match run_line(db, line, &mut out) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("error: line {}: {}", n + 1, one_line(&e));
                    failed = true;
                }
            }
        }
        return i32::from(failed);
    }
    interactive(db, db_name)
}

fn interactive(db: &Database, db_name: &str) -> i32 {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("nexus: error: cannot start the line editor: {e}");
            return 1;
        }
    };
    let history = history_path().filter(|h| {
        // Saving the history writes the file: never over a database file (NEXUS_HISTORY=app.db).
        match Database::check_output_path(h, "history file") {
            Ok(()) => true,
            Err(e) => {
                eprintln!(
                    "nexus: warning: {}; history is not kept",
                    one_line(&e.to_string())
                );
                false
            }
        }
    });
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "NexusLite {} shell on {db_name}; type help, exit to leave",
        nexus::VERSION
    );
    loop {
        match editor.readline("nexus> ") {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                let mut out = std::io::stdout().lock();
                match run_line(db, line, &mut out) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        let _ = out.flush();
                        eprintln!("error: {}", one_line(&e));
                    }
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("nexus: error: {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    0
}

/// A message on one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn words_keep_json_groups_whole() {
        assert_eq!(
            split_words(r#"find people {age: {$gt: 30}} {sort: {"a b": 1}}"#).unwrap(),
            [
                "find",
                "people",
                "{age: {$gt: 30}}",
                r#"{sort: {"a b": 1}}"#
            ]
        );
        assert_eq!(
            split_words("update c {} {$set: {s: '}'}} --multi")
                .unwrap()
                .len(),
            5
        );
        assert!(split_words("find c {a: 1").is_err());
    }
}
