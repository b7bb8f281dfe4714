//! The layer check: every module of `src/` imports only from layers below its own.
//!
//! The layer table is the block between `<!-- layers:begin -->` and `<!-- layers:end -->` in
//! `docs/ARCHITECTURE.md`, one line per layer from the bottom up: the layer's modules
//! (top-level modules of `src/`, comma-separated) before ` -- `, its job after. This test
//! reads that table, so the documentation and the check cannot disagree, and fails when
//!
//! - a file refers (`use crate::...`, `crate::x::y` in code, or `super::` past its own
//!   top-level module) to a module of a higher layer, or of its own layer but another module;
//! - the storage backends reach into each other (`storage::wasp` and `storage::memlog` share
//!   only what `storage/` itself holds);
//! - a top-level module of `src/` is missing from the table, or the table names one that
//!   does not exist.
//!
//! What is not checked: test code (files named `tests.rs` or `*_tests.rs`, and everything
//! after `#[cfg(test)] mod tests {`), which may build a whole database to test a low layer;
//! `src/lib.rs` (the crate root only declares modules and re-exports); and `src/bin/` (the
//! CLI uses the public API only, like any other program). Paths through the crate root's
//! re-exports (`crate::Database`) count as references to the module that defines the item.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A layer table: module -> (layer index, from the bottom).
type Layers = BTreeMap<String, usize>;

fn parse_layers(architecture: &str) -> Layers {
    let begin = architecture
        .find("<!-- layers:begin -->")
        .expect("docs/ARCHITECTURE.md has a <!-- layers:begin --> marker");
    let end = architecture
        .find("<!-- layers:end -->")
        .expect("docs/ARCHITECTURE.md has a <!-- layers:end --> marker");
    let mut rows: Vec<Vec<String>> = Vec::new();
    for line in architecture[begin..end].lines().skip(1) {
        let Some((modules, _job)) = line.split_once(" -- ") else {
            continue;
        };
        rows.push(
            modules
                .split(',')
                .map(|m| m.trim().trim_matches('`').to_owned())
                .filter(|m| !m.is_empty())
                .collect(),
        );
    }
    // The document lists the top layer first (as the layers are drawn); index 0 is the bottom.
    rows.reverse();
    let mut layers = Layers::new();
    for (i, modules) in rows.into_iter().enumerate() {
        for m in modules {
            assert!(layers.insert(m.clone(), i).is_none(), "{m} is listed twice");
        }
    }
    layers
}

/// The crate root's re-exported names and the module each comes from.
fn root_reexports(lib_rs: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let text = strip_comments(lib_rs);
    let mut rest = text.as_str();
    while let Some(i) = rest.find("pub use ") {
        rest = &rest[i + "pub use ".len()..];
        let stmt = &rest[..rest.find(';').unwrap_or(rest.len())];
        let module = stmt
            .split("::")
            .next()
            .unwrap_or("")
            .trim()
            .trim_start_matches("crate::")
            .to_owned();
        let names = match (stmt.find('{'), stmt.rfind('}')) {
            (Some(a), Some(b)) => stmt[a + 1..b].to_owned(),
            _ => stmt.rsplit("::").next().unwrap_or("").to_owned(),
        };
        for name in names.split(',') {
            let name = name.rsplit(" as ").next().unwrap_or("").trim();
            let name = name.rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_owned(), module.clone());
            }
        }
    }
    out
}

/// The text with `//` and `/* */` comments and string literals blanked out (so that a
/// comment or a message mentioning `crate::x` is not an import).
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            // A string literal (raw strings with hashes are rare enough to treat the same way
            // up to their closing quote).
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal such as '"' or '\n' (lifetimes have no closing quote).
            let close = b[i + 1..]
                .iter()
                .position(|&c| c == b'\'')
                .map_or(1, |p| p + 1);
            i += close + 1;
        } else {
            let ch = src[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The part of a file that is not unit-test code.
fn without_test_module(src: &str) -> &str {
    match src.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &src[..i],
        None => src,
    }
}

/// What a file refers to: `(top-level module, second path segment)` for every path that
/// starts at the crate root, directly or through `super::`.
fn references(
    file_module: &[String],
    src: &str,
    reexports: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let code = strip_comments(without_test_module(src));
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]);
        if starts_word && code[i..].starts_with("crate::") {
            i += "crate::".len();
            let paths = expand(&code[i..]);
            for p in paths {
                push_path(&p, reexports, &mut out);
            }
        } else if starts_word && code[i..].starts_with("super::") {
            // Resolve a chain of `super::` against the file's module path.
            let mut depth = 0;
            while code[i..].starts_with("super::") {
                depth += 1;
                i += "super::".len();
            }
            if depth >= file_module.len() {
                for p in expand(&code[i..]) {
                    push_path(&p, reexports, &mut out);
                }
            } else {
                let base = &file_module[..file_module.len() - depth];
                for p in expand(&code[i..]) {
                    let mut full: Vec<String> = base.to_vec();
                    full.extend(p);
                    push_path(&full, reexports, &mut out);
                }
            }
        } else {
            i += 1;
        }
    }
    out
}

fn push_path(p: &[String], reexports: &BTreeMap<String, String>, out: &mut Vec<(String, String)>) {
    let Some(first) = p.first() else { return };
    let second = p.get(1).cloned().unwrap_or_default();
    match reexports.get(first) {
        Some(module) => out.push((module.clone(), String::new())),
        None => out.push((first.clone(), second)),
    }
}

/// The paths a `use` tree (or a plain path) at the start of `text` names, each as its
/// segments: `a::{b, c::d}` gives `[a, b]` and `[a, c, d]`.
fn expand(text: &str) -> Vec<Vec<String>> {
    let mut segs = Vec::new();
    let mut rest = text.trim_start();
    loop {
        if !rest.starts_with('{') {
            let n = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if n == 0 {
                break;
            }
            segs.push(rest[..n].to_owned());
            rest = &rest[n..];
        }
        if let Some(r) = rest
            .strip_prefix("::")
            .or(rest.starts_with('{').then_some(rest))
        {
            rest = r;
            if rest.starts_with('{') {
                // A group: split its top level on commas.
                let mut depth = 0;
                let mut end = 0;
                for (j, c) in rest.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = j;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let inner = &rest[1..end];
                let mut out = Vec::new();
                let mut depth = 0;
                let mut start = 0;
                for (j, c) in inner.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            out.extend(expand_item(&segs, &inner[start..j]));
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                out.extend(expand_item(&segs, &inner[start..]));
                return out;
            }
        } else {
            break;
        }
    }
    vec![segs]
}

fn expand_item(prefix: &[String], item: &str) -> Vec<Vec<String>> {
    let item = item.trim();
    if item.is_empty() || item == "self" || item.starts_with("self ") {
        return vec![prefix.to_vec()];
    }
    expand(item)
        .into_iter()
        .map(|p| prefix.iter().cloned().chain(p).collect())
        .collect()
}

/// One import that breaks the layering.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    message: String,
}

/// Checks every file against the table. `files` holds (path relative to `src/`, text).
fn check(layers: &Layers, lib_rs: &str, files: &[(String, String)]) -> Vec<Violation> {
    let reexports = root_reexports(lib_rs);
    let mut out = Vec::new();
    for (path, text) in files {
        let module_path: Vec<String> = {
            let p = path.trim_end_matches(".rs");
            let mut parts: Vec<String> = p.split('/').map(str::to_owned).collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            parts
        };
        let own = &module_path[0];
        let Some(&own_layer) = layers.get(own) else {
            out.push(Violation {
                file: path.clone(),
                message: format!(
                    "module `{own}` is not in the layer table of docs/ARCHITECTURE.md"
                ),
            });
            continue;
        };
        for (target, second) in references(&module_path, text, &reexports) {
            if &target == own {
                // Within storage: the backends do not reach into each other.
                let backends = ["wasp", "memlog"];
                if own == "storage"
                    && module_path.len() > 1
                    && backends.contains(&module_path[1].as_str())
                    && backends.contains(&second.as_str())
                    && second != module_path[1]
                {
                    out.push(Violation {
                        file: path.clone(),
                        message: format!(
                            "storage backend `{}` imports from the other backend `{second}`",
                            module_path[1]
                        ),
                    });
                }
                continue;
            }
            let Some(&target_layer) = layers.get(&target) else {
                // `crate::SOMETHING` that is neither a module nor a root re-export: an item
                // defined in lib.rs itself (VERSION, bench_hooks), the root layer.
                out.push(Violation {
                    file: path.clone(),
                    message: format!("refers to `crate::{target}`, which is defined in lib.rs (the root, above every layer)"),
                });
                continue;
            };
            if target_layer >= own_layer {
                out.push(Violation {
                    file: path.clone(),
                    message: format!(
                        "module `{own}` (layer {own_layer}) imports from `{target}` (layer {target_layer}), which is {}",
                        if target_layer == own_layer { "in the same layer" } else { "above it" }
                    ),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.file, &a.message).cmp(&(&b.file, &b.message)));
    out.dedup();
    out
}

fn is_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "tests.rs" || name.ends_with("_tests.rs") || path.contains("/tests/")
}

fn read_sources(src: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read src/")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p
                .strip_prefix(root)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            if p.is_dir() {
                if rel != "bin" {
                    walk(&p, root, out);
                }
            } else if rel.ends_with(".rs") && rel != "lib.rs" && !is_test_file(&rel) {
                out.push((rel, std::fs::read_to_string(&p).expect("read source")));
            }
        }
    }
    let mut out = Vec::new();
    walk(src, src, &mut out);
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn table() -> Layers {
    parse_layers(
        &std::fs::read_to_string(repo().join("docs/ARCHITECTURE.md"))
            .expect("read docs/ARCHITECTURE.md"),
    )
}

#[test]
fn src_imports_only_from_lower_layers() {
    let layers = table();
    let lib_rs = std::fs::read_to_string(repo().join("src/lib.rs")).expect("read lib.rs");
    let files = read_sources(&repo().join("src"));
    assert!(files.len() > 50, "found only {} source files", files.len());
    let violations = check(&layers, &lib_rs, &files);
    let listing: Vec<String> = violations
        .iter()
        .map(|v| format!("{}: {}", v.file, v.message))
        .collect();
    assert!(
        listing.is_empty(),
        "layering broken:\n{}",
        listing.join("\n")
    );
}

#[test]
fn the_table_names_every_module_of_src_and_nothing_else() {
    let layers = table();
    let mut modules = Vec::new();
    for e in std::fs::read_dir(repo().join("src")).expect("read src/") {
        let p = e.expect("entry").path();
        let name = p.file_stem().expect("name").to_string_lossy().into_owned();
        if name == "lib" || name == "bin" {
            continue;
        }
        modules.push(name);
    }
    modules.sort();
    modules.dedup();
    let listed: Vec<String> = layers.keys().cloned().collect();
    assert_eq!(
        listed, modules,
        "docs/ARCHITECTURE.md's layer table against the modules of src/"
    );
}

/// The check's own test: a table, a crate root and files made up here, with each kind of
/// violation added on purpose.
#[test]
fn the_check_catches_upward_and_sideways_imports() {
    let layers = parse_layers(
        "intro\n<!-- layers:begin -->\n```\napi -- the API\nexec, cache -- two in one layer\nstorage -- tables\nerror -- errors\n```\n<!-- layers:end -->\n",
    );
    assert_eq!(layers["error"], 0);
    assert_eq!(layers["api"], 3);
    let lib_rs = "mod api;\npub use api::{Database, options::OpenOptions as Options};\n";
    let file = |path: &str, text: &str| vec![(path.to_owned(), text.to_owned())];
    let clean = |f: Vec<(String, String)>| check(&layers, lib_rs, &f).is_empty();

    // Downward imports pass, in every spelling.
    assert!(clean(file(
        "api/mod.rs",
        "use crate::exec::run;\nuse crate::{storage::{Bytes, ReadView}, error::Error};\n"
    )));
    assert!(clean(file(
        "exec/plan.rs",
        "fn f() { crate::storage::scan(); }\nuse super::cursor::Cursor;\n"
    )));
    // Comments, strings and unit tests do not count.
    assert!(clean(file(
        "storage/log.rs",
        "// see crate::api::Database\nconst M: &str = \"crate::api\";\n"
    )));
    assert!(clean(file(
        "storage/log.rs",
        "fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::api::Database;\n}\n"
    )));

    // A deliberately added upward import fails, whichever way it is written.
    for (path, text) in [
        ("storage/log.rs", "use crate::exec::plan::choose;\n"),
        (
            "storage/log.rs",
            "use crate::{error::Error, api::Database};\n",
        ),
        (
            "storage/wasp/mod.rs",
            "fn f() { let _ = crate::api::database::open(); }\n",
        ),
        (
            "storage/wasp/page.rs",
            "use super::super::super::cache::Lookup;\n",
        ),
        ("error/mod.rs", "use crate::Database;\n"),
        ("error/mod.rs", "use crate::Options;\n"),
    ] {
        let v = check(&layers, lib_rs, &file(path, text));
        assert_eq!(v.len(), 1, "{path}: {text:?} gave {v:?}");
        assert!(v[0].message.contains("above it"), "{v:?}");
    }
    // Each of these gives exactly one violation, saying why.
    for (path, text, why) in [
        // The same layer, another module: a layer's modules do not import each other.
        (
            "exec/scan.rs",
            "use crate::cache::DocCache;\n",
            "same layer",
        ),
        // The backends stay apart.
        (
            "storage/wasp/mod.rs",
            "use crate::storage::memlog::MemLog;\n",
            "other backend",
        ),
        (
            "storage/memlog/mod.rs",
            "use super::wasp::pager;\n",
            "other backend",
        ),
        // A module missing from the table.
        (
            "server/mod.rs",
            "use crate::api::Database;\n",
            "not in the layer table",
        ),
    ] {
        let v = check(&layers, lib_rs, &file(path, text));
        assert!(
            v.len() == 1 && v[0].message.contains(why),
            "{path}: {text:?} gave {v:?}"
        );
    }
}
