//! `nexus shell DB`: an interactive shell in the manner of `sqlite3` and `mongosh`. On a
//! terminal it uses rustyline (line editing, history in `~/.nexus_history`); with stdin
//! redirected it reads commands line by line without prompts, so scripts can be piped in.
//! A command whose `{`, `[` or quote is still open goes on on the next line(s) (under a
//! `...> ` prompt on a terminal); one still open at the end of input is an error.
//! Commands: find, aggregate, count, insert, update, delete, collections, stats, create-index,
//! drop-index, indexes, explain, begin, commit, rollback, help, exit. JSON arguments may be written as in mongosh (unquoted keys).

use crate::commands::{self, parse_filter, parse_find_options, parse_object};
use nexus::{Database, UpdateOptions};
use std::io::{BufRead, IsTerminal, Write};

const HELP: &str = "\
commands (JSON may use unquoted keys, single quotes, ObjectId(..), ISODate(..), /regex/i;
a command with an open {, [ or quote goes on on the next lines):
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

/// Why a command line could not be split into words.
#[derive(Debug, PartialEq)]
pub enum SplitError {
    /// A `{`, `[` or quote is still open at the end: the statement goes on on the next line.
    /// The index is the character where the innermost open one starts.
    Open(usize, char),
    /// Not JSON that more lines could fix (a `]` closing a `{`).
    Bad(String),
}

impl SplitError {
    /// The message for a statement left open (at the end of input) or a bad one.
    pub fn message(&self) -> String {
        match self {
            SplitError::Open(at, c) => {
                let what = match c {
                    '"' | '\'' => "string",
                    _ => "JSON",
                };
                format!(
                    "unterminated {what}: the {c} at character {} is never closed",
                    at + 1
                )
            }
            SplitError::Bad(m) => m.clone(),
        }
    }
}

/// Follows a command's text as it is fed, line by line: where its words start and end, and
/// which brackets and quotes are open, so that a statement of many lines is scanned once.
/// A word is either a balanced `{...}` / `[...]` group (quotes and regex literals respected,
/// whitespace and newlines allowed inside) or a run of non-space characters. Positions are
/// byte offsets into the text fed.
#[derive(Default)]
struct Scanner {
    fed: usize,
    words: Vec<(usize, usize)>,
    /// The start of the word being read.
    word: Option<usize>,
    /// The closing brackets the current group still needs, with where each opened.
    closers: Vec<(char, usize)>,
    quote: Option<(char, usize)>,
    /// Inside a regex literal: whether inside a `[...]` class of it.
    regex: Option<bool>,
    escaped: bool,
    /// The last non-space character of the current group (a regex may follow `:`, `[`, `,`).
    last: char,
    /// A closing bracket that matches nothing, with its position.
    bad: Option<(char, usize)>,
}

impl Scanner {
    fn feed(&mut self, text: &str) {
        for (at, c) in text.char_indices() {
            if self.bad.is_none() {
                self.step(self.fed + at, c);
            }
        }
        self.fed += text.len();
    }

    fn step(&mut self, i: usize, c: char) {
        let Some(start) = self.word else {
            if !c.is_whitespace() {
                self.word = Some(i);
                self.last = c;
                match c {
                    '{' => self.closers.push(('}', i)),
                    '[' => self.closers.push((']', i)),
                    _ => {}
                }
            }
            return;
        };
        if self.closers.is_empty() {
            // A plain word runs to the next space.
            if c.is_whitespace() {
                self.words.push((start, i));
                self.word = None;
            }
            return;
        }
        if self.escaped {
            self.escaped = false;
            return;
        }
        if let Some((q, _)) = self.quote {
            match c {
                '\\' => self.escaped = true,
                c if c == q => {
                    self.quote = None;
                    self.last = c;
                }
                _ => {}
            }
            return;
        }
        if let Some(in_class) = self.regex {
            // A regex literal cannot span lines: it ends at its closing '/' or the line's end
            // (relaxed.rs then says it is unterminated).
            match c {
                '\\' => self.escaped = true,
                '[' => self.regex = Some(true),
                ']' => self.regex = Some(false),
                '/' if !in_class => self.regex = None,
                '\n' => self.regex = None,
                _ => {}
            }
            self.last = c;
            return;
        }
        match c {
            '"' | '\'' => self.quote = Some((c, i)),
            // Where a value may start, '/' opens a regex literal (see relaxed.rs).
            '/' if matches!(self.last, ':' | '[' | ',') => self.regex = Some(false),
            '{' => self.closers.push(('}', i)),
            '[' => self.closers.push((']', i)),
            '}' | ']' => match self.closers.pop() {
                Some((want, _)) if want == c => {
                    if self.closers.is_empty() {
                        self.words.push((start, i + 1));
                        self.word = None;
                    }
                }
                _ => self.bad = Some((c, i)),
            },
            _ => {}
        }
        if !c.is_whitespace() {
            self.last = c;
        }
    }

    /// The innermost quote or bracket still open, with its position (none after a bad
    /// closing bracket: more lines cannot help).
    fn open(&self) -> Option<(char, usize)> {
        if self.bad.is_some() {
            return None;
        }
        if let Some(q) = self.quote {
            return Some(q);
        }
        self.closers
            .last()
            .map(|&(closer, at)| (if closer == '}' { '{' } else { '[' }, at))
    }

    /// The words of `text`, the text that was fed.
    fn finish(mut self, text: &str) -> Result<Vec<String>, SplitError> {
        let chars_before = |at: usize| text[..at].chars().count();
        if let Some((c, at)) = self.bad {
            return Err(SplitError::Bad(format!(
                "unbalanced JSON: unexpected {c} at character {}",
                chars_before(at) + 1
            )));
        }
        if let Some((c, at)) = self.open() {
            return Err(SplitError::Open(chars_before(at), c));
        }
        if let Some(start) = self.word.take() {
            self.words.push((start, text.len()));
        }
        Ok(self
            .words
            .iter()
            .map(|&(a, b)| text[a..b].to_owned())
            .collect())
    }
}

/// Splits a command into words (see [`Scanner`]).
pub fn split_words(line: &str) -> Result<Vec<String>, SplitError> {
    let mut scanner = Scanner::default();
    scanner.feed(line);
    scanner.finish(line)
}

/// A statement being read, perhaps over several lines.
#[derive(Default)]
struct Statement {
    text: String,
    scanner: Scanner,
    /// The 1-based input line where it starts (0 before its first line).
    first_line: usize,
    last_line: usize,
}

impl Statement {
    /// Adds a line; returns whether the statement is complete (or cannot become valid by
    /// adding lines). Comment lines inside a statement are left out, as at its start.
    fn push(&mut self, line: &str, n: usize) -> bool {
        // Inside a quoted string a line is part of the string, kept as it is.
        let in_string = self.scanner.quote.is_some();
        let line = if in_string { line } else { line.trim() };
        if !in_string && (line.starts_with('#') || line.starts_with("//")) {
            return self.text.is_empty();
        }
        if self.text.is_empty() {
            self.first_line = n;
        } else {
            self.text.push('\n');
            self.scanner.feed("\n");
        }
        self.text.push_str(line);
        self.scanner.feed(line);
        self.last_line = n;
        self.scanner.open().is_none()
    }

    /// "line 3", or "lines 3-5" for a statement over several lines.
    fn lines(&self) -> String {
        if self.first_line == self.last_line {
            format!("line {}", self.first_line)
        } else {
            format!("lines {}-{}", self.first_line, self.last_line)
        }
    }

    /// Why a statement still open at the end of input is incomplete.
    fn unfinished(&self) -> String {
        let at = match self.scanner.open() {
            Some((c, at)) => {
                let line = self.first_line + self.text[..at].matches('\n').count();
                format!(" (the {c} on line {line} is never closed)")
            }
            None => String::new(),
        };
        format!("end of input inside an unfinished statement{at}")
    }
}

/// Runs one shell line. `Ok(false)` means exit.
fn run_line(db: &Database, line: &str, out: &mut dyn Write) -> Result<bool, String> {
    let words = split_words(line).map_err(|e| e.message())?;
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
        let mut statement = Statement::default();
        for (n, line) in std::io::stdin().lock().lines().enumerate() {
            let Ok(line) = line else {
                eprintln!(
                    "nexus: error: standard input is not UTF-8 text (line {})",
                    n + 1
                );
                return 1;
            };
            if statement.text.is_empty() && line.trim().is_empty() {
                continue;
            }
            if !statement.push(&line, n + 1) {
                continue;
            }
            let st = std::mem::take(&mut statement);
            if st.text.is_empty() {
                continue; // a comment line
            }
            let mut out = stdout.lock();
            match run_line(db, &st.text, &mut out) {
                Ok(true) => {}
                Ok(false) => return i32::from(failed),
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("error: {}: {}", st.lines(), one_line(&e));
                    failed = true;
                }
            }
        }
        if !statement.text.is_empty() {
            eprintln!("error: {}: {}", statement.lines(), statement.unfinished());
            failed = true;
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
    let mut statement = Statement::default();
    loop {
        // As in mongosh and sqlite3, an unfinished statement goes on under a "...> " prompt.
        let prompt = if statement.text.is_empty() {
            "nexus> "
        } else {
            "...> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if statement.text.is_empty() && line.trim().is_empty() {
                    continue;
                }
                let n = statement.last_line + 1;
                if !statement.push(&line, n) {
                    continue;
                }
                let st = std::mem::take(&mut statement);
                if st.text.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(st.text.as_str());
                let mut out = std::io::stdout().lock();
                match run_line(db, &st.text, &mut out) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        let _ = out.flush();
                        eprintln!("error: {}", one_line(&e));
                    }
                }
            }
            // Ctrl-C drops an unfinished statement (and is otherwise ignored).
            Err(rustyline::error::ReadlineError::Interrupted) => statement = Statement::default(),
            Err(rustyline::error::ReadlineError::Eof) => {
                if !statement.text.is_empty() {
                    eprintln!("error: {}", statement.unfinished());
                }
                break;
            }
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
    use super::{split_words, SplitError, Statement};

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

    #[test]
    fn open_and_mismatched_groups() {
        assert_eq!(split_words("find c {a: 1"), Err(SplitError::Open(7, '{')));
        assert_eq!(
            split_words("find c {a: [1, {b: 'x"),
            Err(SplitError::Open(19, '\''))
        );
        let bad = split_words("find c {a: [1}").unwrap_err();
        assert_eq!(
            bad,
            SplitError::Bad("unbalanced JSON: unexpected } at character 14".into())
        );
        // Brackets and quotes inside a regex literal do not count.
        assert_eq!(
            split_words("find c {a: /[}'\\/]/i} {limit: 1}").unwrap(),
            ["find", "c", "{a: /[}'\\/]/i}", "{limit: 1}"]
        );
    }

    #[test]
    fn a_statement_goes_on_until_its_brackets_close() {
        let mut st = Statement::default();
        assert!(!st.push("insert c {", 3));
        assert!(!st.push("  // a comment inside is left out", 4));
        assert!(!st.push("  a: [1,", 5));
        assert!(!st.push("  2], s: 'two", 6));
        assert!(!st.push("  # kept: inside a string", 7));
        assert!(st.push("lines'}", 8));
        assert_eq!(
            st.text,
            "insert c {\na: [1,\n2], s: 'two\n  # kept: inside a string\nlines'}"
        );
        assert_eq!(st.lines(), "lines 3-8");

        let mut open = Statement::default();
        assert!(!open.push("find c {a: {$gt:", 1));
        assert!(!open.push("1}", 2));
        assert_eq!(
            open.unfinished(),
            "end of input inside an unfinished statement (the { on line 1 is never closed)"
        );
        let mut one = Statement::default();
        assert!(one.push("count c", 9));
        assert_eq!(one.lines(), "line 9");
    }
}
