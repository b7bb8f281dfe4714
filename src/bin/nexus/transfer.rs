//! `nexus import` and `nexus export`: option mapping from the command line, a progress bar
//! (indicatif) when stderr is a terminal and `--quiet` is not given, and a one-line summary
//! on stderr.

use crate::shell::one_line;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nexus::io::{ExportReport, ImportReport, Progress};
use std::io::IsTerminal;

/// A progress bar on stderr, or nothing.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar counting bytes (import) or documents (export); hidden unless stderr is a terminal.
    pub fn new(quiet: bool, bytes: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let template = if bytes {
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}"
        } else {
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} documents {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            pb.set_style(style);
        }
        Self(Some(pb))
    }

    /// Updates the bar from a progress report.
    pub fn update(&self, p: &Progress, bytes: bool) {
        let Some(pb) = &self.0 else { return };
        if bytes {
            if let Some(t) = p.total_bytes {
                pb.set_length(t);
            }
            pb.set_position(p.bytes);
            pb.set_message(format!("{} docs, {} failed", p.documents, p.failed));
        } else {
            if let Some(t) = p.total_documents {
                pb.set_length(t);
            }
            pb.set_position(p.documents);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

/// `n` and the noun, singular for one: "1 document", "2 documents".
pub fn count_of(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The import summary line.
pub fn import_summary(path: &str, r: &ImportReport) -> String {
    let mut s = format!(
        "{} {} of {} from {path} ({}, {} failed, {}) in {:.2} s ({} docs/s)",
        if r.dry_run { "checked" } else { "imported" },
        r.imported,
        count_of(r.read, "row"),
        r.format.as_str(),
        r.failed,
        count_of(r.bytes, "byte"),
        r.elapsed_ms as f64 / 1000.0,
        r.to_json()["docs_per_sec"]
    );
    if let Some(p) = &r.error_sidecar {
        s.push_str(&format!("; failed rows are listed in {}", p.display()));
    }
    one_line(&s)
}

/// The export summary line.
pub fn export_summary(r: &ExportReport) -> String {
    format!(
        "exported {} to {} ({}, {}) in {:.2} s",
        count_of(r.exported, "document"),
        r.path.display(),
        r.format.as_str(),
        count_of(r.bytes, "byte"),
        r.elapsed_ms as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::count_of;

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count_of(0, "document"), "0 documents");
        assert_eq!(count_of(1, "document"), "1 document");
        assert_eq!(count_of(2, "row"), "2 rows");
    }
}
