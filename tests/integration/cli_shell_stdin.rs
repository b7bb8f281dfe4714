//! `nexus shell DB` fed through stdin (no terminal): commands run in order without prompts,
//! results go to stdout, errors to stderr with their line number, and the exit status is 1
//! when any command failed. A command with a bracket or quote still open goes on on the next
//! lines; one still open at the end of input is an error.

use std::io::Write;
use std::process::{Command, Stdio};

fn shell(db: &std::path::Path, script: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(["shell".as_ref(), db.as_os_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

#[test]
fn a_script_runs_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let script = "\
# comments and blank lines are skipped

insert people {_id: 1, name: 'ada', age: 36, tags: ['math']}
insert people {_id: 2, name: \"alan\", age: 41}
insert people [{_id: 3, name: 'grace', age: 85}]
find people {age: {$gt: 40}} {sort: {age: -1}, projection: {name: 1, _id: 0}}
count people
count people {tags: 'math'}
update people {age: {$lt: 50}} {$inc: {age: 1}} --multi
delete people {_id: 3}
find people
collections
begin
insert people {_id: 9}
rollback
count people
help
exit
count people
";
    let (code, out, err) = shell(&db, script);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..12],
        [
            "1",
            "2",
            "3",
            "{\"name\":\"grace\"}",
            "{\"name\":\"alan\"}",
            "3",
            "1",
            "matched 2, modified 2",
            "deleted 1",
            "{\"_id\":1,\"name\":\"ada\",\"age\":37,\"tags\":[\"math\"]}",
            "{\"_id\":2,\"name\":\"alan\",\"age\":42}",
            "people",
        ]
    );
    assert_eq!(
        lines[12], "9",
        "the insert inside the transaction printed its _id"
    );
    assert_eq!(lines[13], "2", "the rolled-back insert is gone");
    assert!(out.contains("find COLL [FILTER] [OPTIONS]"), "help text");
    assert_eq!(
        lines.last(),
        Some(&"  exit | quit                         leave (end of input does too)"),
        "nothing after exit"
    );
}

#[test]
fn errors_name_their_line_and_the_shell_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let (code, out, err) = shell(
        &db,
        "insert c {a: 1}\nfrobnicate\nfind c {a: ]\nfind c {a: {$nope: 1}}\ndelete c {a: 1} --all\ncount c\n",
    );
    assert_eq!(code, 1);
    let errs: Vec<&str> = err.lines().collect();
    assert_eq!(errs.len(), 4, "{err}");
    assert!(
        errs[0].starts_with("error: line 2: unknown command 'frobnicate'"),
        "{err}"
    );
    assert!(
        errs[1].starts_with("error: line 3: unbalanced JSON: unexpected ] at character 12"),
        "{err}"
    );
    assert!(errs[2].starts_with("error: line 4:"), "{err}");
    assert!(errs[3].contains("unknown flag --all"), "{err}");
    assert!(out.ends_with("1\n"), "count still ran: {out}");
}

#[test]
fn an_open_bracket_or_quote_continues_on_the_next_lines() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let script = "\
insert people {
  _id: 1,
  // a comment line inside the document
  name: 'ada',
  tags: [
    'math',
    'engines'
  ]
}
insert people [{_id: 2, name: 'alan'},
               {_id: 3, name: 'grace', note: 'two
lines'}]
find people {name: /^a/} {
  sort: {_id: -1},
  projection: {name: 1}
}
update people {_id: 9} {$set: {x: 1}} --bogus
count people
";
    let (code, out, err) = shell(&db, script);
    assert_eq!(code, 1, "{err}");
    // An error in a statement over several lines names its lines.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: line 17: update: unknown flag --bogus"),
        "{err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "1",
            "2",
            "3",
            "{\"_id\":2,\"name\":\"alan\"}",
            "{\"_id\":1,\"name\":\"ada\"}",
            "3"
        ],
        "{out}"
    );
    let (_, out, _) = shell(&db, "find people {_id: 1}\nfind people {_id: 3}\n");
    let docs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs[0]["tags"], serde_json::json!(["math", "engines"]));
    assert_eq!(
        docs[1]["note"], "two\nlines",
        "a string goes on over a line break"
    );

    // A failing multi-line statement is reported with its first and last lines.
    let (code, _, err) = shell(&db, "count people\nfind people {\n  _id: {$bad: 1}\n}\n");
    assert_eq!(code, 1);
    assert!(err.starts_with("error: lines 2-4: "), "{err}");
}

#[test]
fn a_statement_still_open_at_the_end_of_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    let (code, out, err) = shell(&db, "insert c {_id: 1}\nfind c {a: {$gt:\n  1}\ncount c\n");
    assert_eq!(code, 1);
    assert_eq!(out, "1\n", "the open find swallowed count and never ran");
    assert_eq!(
        err,
        "error: lines 2-4: end of input inside an unfinished statement (the { on line 2 is never closed)\n"
    );
    let (code, _, err) = shell(&db, "insert c {s: 'abc}\n");
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: line 1: end of input inside an unfinished statement (the ' on line 1 is never closed)\n"
    );
    assert_eq!(
        shell(&db, "count c\n").1,
        "1\n",
        "nothing was inserted by the open statement"
    );
}

#[test]
fn index_commands_in_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("i.db");
    let script = "\
insert people [{_id: 1, email: 'ada@x', age: 36}, {_id: 2, email: 'bob@x', age: 25}]
create-index people {email: 1} --unique
create-index people {age: -1} {name: 'by_age'}
indexes people
insert people {_id: 3, email: 'ada@x'}
explain people {email: 'bob@x'}
drop-index people email_1
indexes people
";
    let (code, out, err) = shell(&db, script);
    assert_eq!(code, 1, "the duplicate insert fails: {err}");
    let errs: Vec<&str> = err.lines().collect();
    assert_eq!(errs.len(), 1, "{err}");
    assert!(errs[0].starts_with("error: line 5:"), "{err}");
    assert!(errs[0].contains("duplicate"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..4], ["1", "2", "email_1", "by_age"], "{out}");
    let list: serde_json::Value = serde_json::from_str(lines[4]).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["_id_", "email_1", "by_age"]);
    // explain prints indented JSON; the index list after the drop is the last line.
    let plan_text = lines[5..lines.len() - 1].join("\n");
    let plan: serde_json::Value = serde_json::from_str(&plan_text).unwrap();
    assert_eq!(
        plan["queryPlanner"]["winningPlan"]["inputStage"]["indexName"], "email_1",
        "{plan}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.contains("by_age") && !last.contains("email_1"),
        "{last}"
    );
}

#[test]
fn aggregate_runs_in_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let script = "\
insert sales [{item: 'abc', q: 2}, {item: 'xyz', q: 10}, {item: 'abc', q: 5}]
aggregate sales [{$group: {_id: '$item', n: {$sum: 1}}}, {$sort: {_id: 1}}]
aggregate sales [{$bogus: 1}]
aggregate sales
";
    let (code, out, err) = shell(&db, script);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&r#"{"_id":"abc","n":2}"#), "{out}");
    assert!(lines.contains(&r#"{"_id":"xyz","n":1}"#), "{out}");
    assert!(err.contains("$bogus"), "{err}");
    assert!(err.contains("usage: aggregate COLL PIPELINE"), "{err}");
}
