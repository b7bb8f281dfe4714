//! `nexus completions SHELL` and the hidden `nexus manpage`, which `make install` uses to put
//! the shell completions and nexus.1 in place: each names the real subcommands and options.

use crate::common;
use common::{nexus, ok};

#[test]
fn completions_name_the_subcommands_in_each_shells_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let bash = ok(&["completions", "bash"], dir.path());
    assert!(bash.contains("complete -F _nexus"), "{bash}");
    assert!(bash.contains("create-index") && bash.contains("--skip-errors"));
    let zsh = ok(&["completions", "zsh"], dir.path());
    assert!(zsh.starts_with("#compdef nexus"), "{zsh}");
    assert!(zsh.contains("create-index") && zsh.contains("--skip-errors"));
    let fish = ok(&["completions", "fish"], dir.path());
    assert!(fish.contains("complete -c nexus"), "{fish}");
    assert!(fish.contains("create-index") && fish.contains("skip-errors"));
}

#[test]
fn bash_completes_subcommands_and_their_options() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("nexus.bash");
    std::fs::write(&script, ok(&["completions", "bash"], dir.path())).unwrap();
    // What bash does on TAB: COMP_WORDS / COMP_CWORD set, the function called, COMPREPLY read.
    let complete = |words: &str, cword: usize| {
        let o = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
                 _nexus nexus \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .expect("run bash");
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(complete("nexus cre", 1), "create-index\n");
    assert_eq!(
        complete("nexus import a.db c f.csv --skip", 5),
        "--skip-errors\n"
    );
    assert_eq!(complete("nexus completions z", 2), "zsh\n");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = nexus(&["completions", "tcsh"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(o.stdout.is_empty());
}

#[test]
fn manpage_is_roff_for_section_1_listing_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let man = ok(&["manpage"], dir.path());
    assert!(man.contains(".TH nexus 1"), "{man}");
    assert!(man.contains(".SH SYNOPSIS") && man.contains(".SH SUBCOMMANDS"));
    assert!(man.contains("create\\-index") || man.contains("create-index"));
    assert!(man.contains("completions"));
    // Hidden from `nexus --help` and from the page itself.
    assert!(!man.contains("manpage"), "{man}");
    let help = ok(&["--help"], dir.path());
    assert!(!help.contains("manpage") && help.contains("completions"));
}
