//! Logging for the CLI through log4rs: `--log-config FILE` loads a log4rs YAML file;
//! otherwise records at `warn` and above (or the level in `NEXUS_LOG`) go to stderr.
//!
//! A `file` appender of the YAML file is refused when its path is a file of the database
//! the command works on, or an existing NexusLite database or log ([`GuardedFile`]): log
//! lines appended to `app.db` would destroy it.

use log::{LevelFilter, Record};
use log4rs::append::console::{ConsoleAppender, Target};
use log4rs::append::file::{FileAppenderConfig, FileAppenderDeserializer};
use log4rs::append::Append;
use log4rs::config::{Appender, Config, Deserialize, Deserializers, Root};
use log4rs::encode::pattern::PatternEncoder;
use nexus::Database;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Installs the process logger. `database`: the database the command is about to open.
pub fn init(config: Option<&Path>, database: Option<&Path>) -> Result<(), String> {
    if let Some(path) = config {
        let refused = Arc::new(Mutex::new(Vec::new()));
        let mut deserializers = Deserializers::default();
        deserializers.insert(
            "file",
            GuardedFile {
                database: database.map(Path::to_path_buf),
                refused: Arc::clone(&refused),
            },
        );
        log4rs::init_file(path, deserializers)
            .map_err(|e| format!("log config {}: {e}", path.display()))?;
        let refused = refused.lock().map(|r| r.first().cloned()).unwrap_or(None);
        return match refused {
            Some(why) => Err(format!("log config {}: {why}", path.display())),
            None => Ok(()),
        };
    }
    let level = match std::env::var("NEXUS_LOG") {
        Ok(v) => v.parse::<LevelFilter>().map_err(|_| {
            format!("NEXUS_LOG={v:?} is not a log level (off, error, warn, info, debug, trace)")
        })?,
        Err(_) => LevelFilter::Warn,
    };
    let stderr = ConsoleAppender::builder()
        .target(Target::Stderr)
        .encoder(Box::new(PatternEncoder::new("nexus: {l} {t}: {m}{n}")))
        .build();
    let config = Config::builder()
        .appender(Appender::builder().build("stderr", Box::new(stderr)))
        .build(Root::builder().appender("stderr").build(level))
        .map_err(|e| format!("logging: {e}"))?;
    log4rs::init_config(config)
        .map(|_| ())
        .map_err(|e| format!("logging: {e}"))
}

/// log4rs's `file` appender, but one whose path is a database's file is not opened (which
/// would create or truncate it): it becomes an appender that drops every record, and the
/// reason goes to `refused` (log4rs would only print an error it gets and go on).
struct GuardedFile {
    database: Option<PathBuf>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Deserialize for GuardedFile {
    type Trait = dyn Append;
    type Config = serde_json::Value;

    fn deserialize(
        &self,
        config: serde_json::Value,
        deserializers: &Deserializers,
    ) -> anyhow::Result<Box<dyn Append>> {
        if let Some(path) = config.get("path").and_then(serde_json::Value::as_str) {
            if let Some(why) = self.refuse(Path::new(&expand_env(path))) {
                if let Ok(mut r) = self.refused.lock() {
                    r.push(why);
                }
                return Ok(Box::new(Discard));
            }
        }
        let config: FileAppenderConfig = serde_json::from_value(config)?;
        FileAppenderDeserializer.deserialize(config, deserializers)
    }
}

impl GuardedFile {
    fn refuse(&self, log: &Path) -> Option<String> {
        if let Some(db) = &self.database {
            if Database::is_database_file(db, log) {
                return Some(format!(
                    "log file {} is a file of the database {}; refusing to write to it",
                    log.display(),
                    db.display()
                ));
            }
        }
        Database::check_output_path(log, "log file")
            .err()
            .map(|e| e.to_string())
    }
}

/// `$ENV{NAME}` in a path replaced by the variable's value, as log4rs does for file paths
/// (left as it is when the variable is not set).
fn expand_env(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(at) = rest.find("$ENV{") {
        let (before, tail) = rest.split_at(at);
        out.push_str(before);
        let name_and_more = &tail["$ENV{".len()..];
        match name_and_more.find('}') {
            Some(end) => {
                let name = &name_and_more[..end];
                match std::env::var(name) {
                    Ok(v) if !name.is_empty() => out.push_str(&v),
                    _ => out.push_str(&tail[..("$ENV{".len() + end + 1)]),
                }
                rest = &name_and_more[end + 1..];
            }
            None => {
                out.push_str(tail);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// An appender that drops every record (in place of a refused file appender).
#[derive(Debug)]
struct Discard;

impl Append for Discard {
    fn append(&self, _record: &Record) -> anyhow::Result<()> {
        Ok(())
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::expand_env;

    #[test]
    fn env_variables_in_log_paths_are_expanded() {
        std::env::set_var("NEXUS_TEST_LOG_DIR", "/var/log");
        assert_eq!(
            expand_env("$ENV{NEXUS_TEST_LOG_DIR}/n.log"),
            "/var/log/n.log"
        );
        assert_eq!(
            expand_env("a/$ENV{NEXUS_TEST_UNSET_X}/b"),
            "a/$ENV{NEXUS_TEST_UNSET_X}/b"
        );
        assert_eq!(expand_env("plain.log"), "plain.log");
        assert_eq!(expand_env("x$ENV{open"), "x$ENV{open");
    }
}
