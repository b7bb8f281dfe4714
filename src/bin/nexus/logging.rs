//! Logging for the CLI through log4rs: `--log-config FILE` loads a log4rs YAML file;
//! otherwise records at `warn` and above (or the level in `NEXUS_LOG`) go to stderr.

use log::LevelFilter;
use log4rs::append::console::{ConsoleAppender, Target};
use log4rs::config::{Appender, Config, Root};
use log4rs::encode::pattern::PatternEncoder;
use std::path::Path;

/// Installs the process logger.
pub fn init(config: Option<&Path>) -> Result<(), String> {
    if let Some(path) = config {
        return log4rs::init_file(path, Default::default())
            .map_err(|e| format!("log config {}: {e}", path.display()));
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
