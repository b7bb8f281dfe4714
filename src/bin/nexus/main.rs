//! `nexus`: the NexusLite command-line tool. `nexus shell DB` is an interactive shell (see
//! `shell`); the other subcommands do one thing and exit: import, export, find, count,
//! insert, update, delete, collections, stats, check, checkpoint, backup, compact, and the
//! secondary index commands create-index, drop-index, indexes, explain.
//!
//! Exit codes: 0 success, 1 an error (one line on stderr), 2 a usage error. Everything goes
//! through the public Rust API of the `nexus` library; logging is configured with log4rs.

mod commands;
mod logging;
mod relaxed;
#[cfg(feature = "server")]
mod serve;
mod shell;
mod transfer;

use clap::{Parser, Subcommand};
use commands::{parse_filter, parse_object};
use nexus::io::{CsvOptions, ExportOptions, ExtJsonMode, Format, ImportOptions};
use nexus::{Database, FindOptions, LogRecovery, OpenOptions, StorageEngine, UpdateOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// NexusLite: an embedded document database (SQLite's deployment model, MongoDB's data model).
#[derive(Parser)]
#[command(name = "nexus", version, about, propagate_version = true)]
struct Cli {
    /// No progress bars or summaries on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// A log4rs YAML configuration file (default: warnings and errors to stderr).
    #[arg(long, global = true, value_name = "FILE")]
    log_config: Option<PathBuf>,
    /// Storage engine for databases this command creates: wasp (the default) or memlog (an
    /// existing database always opens with the engine that wrote it).
    #[arg(long, global = true, value_name = "ENGINE")]
    storage: Option<String>,
    /// A PEM key file: for a command that opens a database, the private key of an encrypted
    /// one (a database it creates is then encrypted to it); for sign, the private key; for
    /// verify, the public key.
    #[arg(long, global = true, value_name = "FILE")]
    key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Interactive shell (commands from stdin when it is not a terminal).
    Shell {
        /// The database file (created when missing).
        db: PathBuf,
    },
    /// Import a CSV, NDJSON, JSON or BSON file into a collection.
    Import {
        /// The database file (created when missing).
        db: PathBuf,
        /// The collection to import into.
        coll: String,
        /// The file to read.
        file: PathBuf,
        /// auto, csv, ndjson, json or bson.
        #[arg(long, default_value = "auto")]
        format: String,
        /// Skip bad rows, listing them in the error sidecar.
        #[arg(long)]
        skip_errors: bool,
        /// Where skipped rows are listed (default FILE.errors.jsonl).
        #[arg(long, value_name = "PATH")]
        error_sidecar: Option<PathBuf>,
        /// Field whose value makes each document ephemeral (needs TTL support).
        #[arg(long, value_name = "FIELD")]
        ttl_field: Option<String>,
        /// Documents per committed transaction.
        #[arg(long, default_value_t = 1000)]
        batch_size: u64,
        /// Commit nothing unless the whole file imports.
        #[arg(long)]
        atomic: bool,
        /// Read and check everything, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// CSV field separator (detected when absent; "\t" or "tab" for tabs).
        #[arg(long)]
        delimiter: Option<String>,
        /// CSV: the first row is data, not column names.
        #[arg(long)]
        no_headers: bool,
        /// CSV: keep every cell as a string.
        #[arg(long)]
        no_type_infer: bool,
        /// Check FILE.sig against FILE and the public key in this PEM file first; import
        /// nothing when it is missing or does not match.
        #[arg(long, value_name = "KEY")]
        verify_key: Option<PathBuf>,
    },
    /// Export a collection to a CSV, NDJSON, JSON or BSON file (written atomically).
    Export {
        /// The database file.
        db: PathBuf,
        /// The collection to export.
        coll: String,
        /// The file to write (replaced when it exists).
        file: PathBuf,
        /// auto (from the extension, else ndjson), csv, ndjson, json or bson.
        #[arg(long, default_value = "auto")]
        format: String,
        /// Only documents matching this filter (mongosh syntax accepted).
        #[arg(long)]
        filter: Option<String>,
        /// CSV columns, comma-separated dotted paths, in order.
        #[arg(long, value_delimiter = ',')]
        fields: Option<Vec<String>>,
        /// Extended JSON mode: relaxed or canonical (exact types).
        #[arg(long, default_value = "relaxed")]
        extended_json: String,
        /// JSON: indent.
        #[arg(long)]
        pretty: bool,
        /// JSON: concatenated documents instead of one array.
        #[arg(long)]
        no_array: bool,
        /// CSV field separator (default ",").
        #[arg(long)]
        delimiter: Option<String>,
        /// CSV: no header row.
        #[arg(long)]
        no_headers: bool,
        /// Sign the exported file with the private key in this PEM file (writes FILE.sig).
        #[arg(long, value_name = "KEY")]
        sign_key: Option<PathBuf>,
    },
    /// Print matching documents as NDJSON.
    Find {
        /// The database file.
        db: PathBuf,
        /// The collection.
        coll: String,
        /// The filter, JSON or mongosh syntax (default: every document).
        filter: Option<String>,
        #[command(flatten)]
        options: FindArgs,
    },
    /// Run an aggregation pipeline (a JSON array of stages) and print the results as NDJSON.
    Aggregate {
        /// The database file.
        db: PathBuf,
        /// The collection.
        coll: String,
        /// The stages, e.g. '[{"$group": {"_id": "$city", "n": {"$sum": 1}}}]'.
        pipeline: String,
        /// Aggregate options as JSON: let, allowDiskUse, maxMemoryBytes, batchSize, explain.
        #[arg(long)]
        options: Option<String>,
    },
    /// Run a vector search ($vectorSearch's body: path, queryVector, limit,
    /// numCandidates, filter, exact, index, projection, scoreField) and print the
    /// documents, best first, as NDJSON.
    #[command(name = "vector-search")]
    VectorSearch {
        /// The database file.
        db: PathBuf,
        /// The collection.
        coll: String,
        /// The search, e.g. '{"path": "embedding", "queryVector": [0.1, 0.2], "limit": 5}'.
        spec: String,
    },
    /// Print the number of matching documents.
    Count {
        /// The database file.
        db: PathBuf,
        /// The collection.
        coll: String,
        /// The filter, JSON or mongosh syntax (default: every document).
        filter: Option<String>,
    },
    /// Insert a document (or a JSON array of documents, atomically); prints the _id(s).
    Insert {
        /// The database file (created when missing).
        db: PathBuf,
        /// The collection.
        coll: String,
        /// The document, or a JSON array of documents (mongosh syntax accepted).
        doc: String,
    },
    /// Update the first matching document (all with --multi).
    Update {
        /// The database file (created by --upsert when missing).
        db: PathBuf,
        /// The collection.
        coll: String,
        /// Which documents to update (JSON or mongosh syntax; {} for any).
        filter: String,
        /// The update: operators such as {$set: {a: 1}}, or a replacement document.
        update: String,
        /// Update every matching document, not only the first.
        #[arg(long)]
        multi: bool,
        /// Insert a document made from the filter and the update when nothing matches.
        #[arg(long)]
        upsert: bool,
        /// The conditions of the update's `$[<identifier>]` paths, a JSON array
        /// (`[{x: {$gte: 100}}]`); the update must then use operators.
        #[arg(long)]
        array_filters: Option<String>,
    },
    /// Delete the first matching document (all with --multi).
    Delete {
        /// The database file.
        db: PathBuf,
        /// The collection.
        coll: String,
        /// Which documents to delete (JSON or mongosh syntax; {} for any).
        filter: String,
        /// Delete every matching document, not only the first.
        #[arg(long)]
        multi: bool,
    },
    /// List the collections.
    Collections {
        /// The database file.
        db: PathBuf,
    },
    /// Print statistics as JSON.
    Stats {
        /// The database file.
        db: PathBuf,
    },
    /// Check the database's integrity; prints the JSON report, exit 1 when damaged.
    Check {
        /// The database file.
        db: PathBuf,
        /// Accept the loss of a damaged log (commits after the damage), a missing one, or one
        /// of another database: open with recover "discard-damaged-log", keep what the file
        /// and the intact part of the log hold, and report what was dropped ("repair" in
        /// the report) before checking the rest.
        #[arg(long)]
        repair: bool,
    },
    /// Fold the log into the database file.
    Checkpoint {
        /// The database file.
        db: PathBuf,
    },
    /// Consistent online copy to DEST (WASP databases; a new file). An encrypted database's
    /// copy is encrypted under the same keys.
    Backup {
        /// The database file.
        db: PathBuf,
        /// The copy's file (must not exist).
        dest: PathBuf,
        /// Sign the copy with the private key in this PEM file: writes DEST.sig.
        #[arg(long, value_name = "FILE")]
        sign_key: Option<PathBuf>,
        /// Encrypt the copy, under a fresh data key, to the public key in this PEM file
        /// (repeat for several recipients); of a plain database too.
        #[arg(long, value_name = "PUBLIC", conflicts_with = "decrypt")]
        encrypt_to: Vec<PathBuf>,
        /// Make the copy plain (unencrypted).
        #[arg(long)]
        decrypt: bool,
    },
    /// Rewrite the database smaller.
    Compact {
        /// The database file.
        db: PathBuf,
    },
    /// Create a secondary index (keys such as {email: 1} or {a: 1, b: -1}); prints its name.
    CreateIndex {
        /// The database file (created when missing).
        db: PathBuf,
        /// The collection.
        coll: String,
        /// The index keys: field to 1 (ascending) or -1 (descending), e.g. {a: 1, b: -1}.
        keys: String,
        /// Reject documents whose key is already present.
        #[arg(long)]
        unique: bool,
        /// Leave out documents that lack the indexed fields.
        #[arg(long)]
        sparse: bool,
        /// The index name (default: MongoDB's, e.g. a_1_b_-1).
        #[arg(long)]
        name: Option<String>,
        /// Further options as JSON, e.g. {partialFilterExpression: {...}, expireAfterSeconds: 60}.
        #[arg(long)]
        options: Option<String>,
    },
    /// Drop the secondary index NAME.
    DropIndex {
        /// The database file.
        db: PathBuf,
        /// The collection.
        coll: String,
        /// The index name (as `indexes` lists it).
        name: String,
    },
    /// Print the collection's indexes as a JSON array (the _id index first).
    Indexes {
        /// The database file.
        db: PathBuf,
        /// The collection.
        coll: String,
    },
    /// Print the query plan of a find and what it examined, as JSON.
    Explain {
        /// The database file.
        db: PathBuf,
        /// The collection.
        coll: String,
        /// The filter, JSON or mongosh syntax (default: every document).
        filter: Option<String>,
        #[command(flatten)]
        options: FindArgs,
    },
    /// Make a key pair: PRIVATE gets the private key (PEM, readable by its owner only),
    /// PUBLIC the public key (PEM); neither file may exist.
    Keygen {
        /// The private key file to write (PEM).
        private: PathBuf,
        /// The public key file to write (PEM).
        public: PathBuf,
        /// The algorithm: p256 (the default); in a build with the feature pqc also
        /// ml-kem-512, ml-kem-768, ml-kem-1024 (hybrid P-256 + ML-KEM encryption keys),
        /// ml-dsa-65, slh-dsa-sha2-128s, slh-dsa-sha2-192s, slh-dsa-sha2-256s (signature keys).
        #[arg(long)]
        algorithm: Option<String>,
    },
    /// Sign FILE with the private key in the PEM file KEY: writes FILE.sig (DER ECDSA-SHA256
    /// for a P-256 key, what `openssl dgst -sha256 -sign` writes; the raw signature for an
    /// ML-DSA or SLH-DSA key).
    Sign {
        /// The file to sign.
        file: PathBuf,
    },
    /// Check FILE.sig against FILE and the public key in the PEM file KEY; exit 1 when it is
    /// missing or does not match.
    Verify {
        /// The signed file (its signature is FILE.sig).
        file: PathBuf,
    },
    /// Let the holder of the private key of the public key in the PEM file PUBLIC open the
    /// encrypted database DB (opened with --key).
    AddKey {
        /// The encrypted database file.
        db: PathBuf,
        /// The PEM file of the public key to add.
        public: PathBuf,
    },
    /// Remove the recipient whose public key is in the PEM file PUBLIC from the encrypted
    /// database DB (opened with --key); refused for its last key.
    RemoveKey {
        /// The encrypted database file.
        db: PathBuf,
        /// The PEM file of the public key to remove.
        public: PathBuf,
    },
    /// Change the data key of the encrypted database DB (opened with --key): every page is
    /// rewritten under a new random key, the recipients stay the same. Needs the database to
    /// this process alone.
    Rekey {
        /// The encrypted database file.
        db: PathBuf,
    },
    /// Print the completion script for SHELL (bash, zsh, fish, elvish or powershell), e.g.
    /// `nexus completions bash > ~/.local/share/bash-completion/completions/nexus`.
    Completions {
        /// The shell to write the completion script for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout; `make install` installs it as nexus.1.
    #[command(hide = true)]
    Manpage,
    /// Serve the databases of a directory over MongoDB's wire protocol and / or HTTP (each
    /// database NAME is the file DIR/NAME.db), in the foreground until SIGINT or SIGTERM.
    #[cfg(feature = "server")]
    Serve {
        /// The data directory (created when missing).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The address and port of the MongoDB protocol [default: 127.0.0.1:27017 when no
        /// other front end is given; with --http or --grpc, only when given].
        #[arg(long, value_name = "ADDR")]
        mongo: Option<String>,
        /// The address and port of the HTTP front end (the Atlas Data API v1 actions, native
        /// endpoints, /healthz, /metrics, /openapi.json).
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
        /// The address and port of the gRPC front end (nexus.v1.Nexus of
        /// proto/nexus/v1/nexus.proto, grpc.health.v1, server reflection).
        #[arg(long, value_name = "ADDR")]
        grpc: Option<String>,
        /// The largest HTTP request body (and gRPC message) accepted, in bytes (413 past it).
        #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
        http_max_body: usize,
        /// Seconds an HTTP request (gRPC call) may take before it is answered 504.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        http_timeout: u64,
        /// HTTP requests (and, apart, gRPC calls) served at once (more are answered 503).
        #[arg(long, value_name = "N", default_value_t = 256)]
        http_max_concurrent: usize,
        /// The most connections served at once (more are closed on accept).
        #[arg(long, value_name = "N", default_value_t = 1000)]
        max_connections: usize,
        /// The most open cursors one connection may hold.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        max_cursors_per_connection: usize,
        /// Seconds a cursor may stay unused before it is killed (MongoDB's 10 minutes).
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        cursor_idle_timeout: u64,
        /// Require SCRAM-SHA-256 authentication by a user of DIR's users file (`nexus user
        /// add`) on the MongoDB protocol, and an API key of DIR's keys file (`nexus apikey
        /// add`) on HTTP; needed to listen beyond the loopback address.
        #[arg(long)]
        auth: bool,
        /// TLS: the server's certificate chain, a PEM file (with --tls-key).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS: the certificate's private key, a PEM file (PKCS#8, PKCS#1 or SEC1).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Manage the users of `nexus serve --auth`: add (or change the password of), remove or
    /// list the users of the data directory DIR (kept in DIR/nexus-users.json as SCRAM-SHA-256
    /// credentials, never the passwords).
    #[cfg(feature = "server")]
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage the API keys of `nexus serve --auth --http`: add (printing the new key once),
    /// remove or list the keys of the data directory DIR (kept in DIR/nexus-apikeys.json as
    /// SHA-256 digests, never the keys).
    #[cfg(feature = "server")]
    Apikey {
        #[command(subcommand)]
        action: ApikeyAction,
    },
}

/// `nexus apikey` subcommands.
#[cfg(feature = "server")]
#[derive(Subcommand)]
enum ApikeyAction {
    /// Add the key NAME (replacing a key of that name) and print it on standard output: it is
    /// shown this once. Read-write on every database unless limited.
    Add {
        /// The data directory.
        dir: PathBuf,
        /// The key's name.
        name: String,
        /// Reads only.
        #[arg(long)]
        read_only: bool,
        /// A database the key may use (repeat for more; none: every database).
        #[arg(long = "database", value_name = "NAME")]
        databases: Vec<String>,
    },
    /// Remove the key NAME.
    Remove {
        /// The data directory.
        dir: PathBuf,
        /// The key's name.
        name: String,
    },
    /// List the keys: name, access (read or readWrite), databases (* for all).
    List {
        /// The data directory.
        dir: PathBuf,
    },
}

/// `nexus user` subcommands.
#[cfg(feature = "server")]
#[derive(Subcommand)]
enum UserAction {
    /// Add the user NAME (or give it a new password): the password is the first line of
    /// standard input (e.g. `read -rs PW; printf '%s\n' "$PW" | nexus user add DIR NAME`).
    Add {
        /// The data directory.
        dir: PathBuf,
        /// The user name.
        name: String,
    },
    /// Remove the user NAME.
    Remove {
        /// The data directory.
        dir: PathBuf,
        /// The user name.
        name: String,
    },
    /// List the user names.
    List {
        /// The data directory.
        dir: PathBuf,
    },
}

impl Command {
    /// The database the command works on (none for the key and signature commands).
    fn database(&self) -> Option<&std::path::Path> {
        Some(match self {
            Command::Shell { db }
            | Command::AddKey { db, .. }
            | Command::RemoveKey { db, .. }
            | Command::Rekey { db }
            | Command::Import { db, .. }
            | Command::Export { db, .. }
            | Command::Find { db, .. }
            | Command::Aggregate { db, .. }
            | Command::VectorSearch { db, .. }
            | Command::Count { db, .. }
            | Command::Insert { db, .. }
            | Command::Update { db, .. }
            | Command::Delete { db, .. }
            | Command::Collections { db }
            | Command::Stats { db }
            | Command::Check { db, .. }
            | Command::Checkpoint { db }
            | Command::Backup { db, .. }
            | Command::Compact { db }
            | Command::CreateIndex { db, .. }
            | Command::DropIndex { db, .. }
            | Command::Indexes { db, .. }
            | Command::Explain { db, .. } => db,
            Command::Keygen { .. } | Command::Sign { .. } | Command::Verify { .. } => return None,
            Command::Completions { .. } | Command::Manpage => return None,
            #[cfg(feature = "server")]
            Command::Serve { .. } | Command::User { .. } | Command::Apikey { .. } => return None,
        })
    }
}

/// The options of `find` and `explain`.
#[derive(clap::Args)]
struct FindArgs {
    /// Sort order, e.g. '{age: -1, name: 1}'.
    #[arg(long)]
    sort: Option<String>,
    /// At most this many documents (0: no limit).
    #[arg(long)]
    limit: Option<u64>,
    /// Skip this many matching documents first.
    #[arg(long)]
    skip: Option<u64>,
    /// The fields to return, e.g. '{name: 1, _id: 0}'.
    #[arg(long)]
    projection: Option<String>,
}

impl FindArgs {
    fn parse(self) -> Result<FindOptions, String> {
        Ok(FindOptions {
            sort: self
                .sort
                .as_deref()
                .map(|s| parse_object(s, "sort"))
                .transpose()?,
            projection: self
                .projection
                .as_deref()
                .map(|s| parse_object(s, "projection"))
                .transpose()?,
            skip: self.skip.unwrap_or(0),
            limit: self.limit.unwrap_or(0),
            hint: None,
        })
    }
}

/// Opens an existing database (commands that only read or maintain must not create one).
fn open_existing(path: &PathBuf) -> Result<Database, String> {
    open_existing_with(path, OpenOptions::default())
}

/// Opens an existing database with `options` (never creating one).
fn open_existing_with(path: &PathBuf, options: OpenOptions) -> Result<Database, String> {
    if !path.exists() {
        return Err(format!("{}: no such database", path.display()));
    }
    Database::open(
        path,
        OpenOptions {
            create: false,
            encryption_key: KEY.get().cloned().flatten(),
            ..options
        },
    )
    .map_err(|e| e.to_string())
}

/// The `--key` of an encrypted database, for the commands that open one.
static KEY: std::sync::OnceLock<Option<nexus::crypto::PrivatePem>> = std::sync::OnceLock::new();

/// The `--storage` choice for new databases.
static STORAGE: std::sync::OnceLock<Option<StorageEngine>> = std::sync::OnceLock::new();

fn open_or_create(path: &PathBuf) -> Result<Database, String> {
    let options = OpenOptions {
        storage: STORAGE.get().copied().flatten(),
        encryption_key: KEY.get().cloned().flatten(),
        ..OpenOptions::default()
    };
    Database::open(path, options).map_err(|e| e.to_string())
}

/// `nexus user add|remove|list DIR`.
#[cfg(feature = "server")]
fn user_command(action: UserAction, out: &mut impl Write, quiet: bool) -> Result<(), String> {
    use serve::users;
    match action {
        UserAction::Add { dir, name } => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("reading the password from standard input: {e}"))?;
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            let existed = users::add(&dir, &name, password)?;
            if !quiet {
                eprintln!(
                    "{} user {name} in {}",
                    if existed {
                        "changed the password of"
                    } else {
                        "added"
                    },
                    users::path(&dir).display()
                );
            }
            Ok(())
        }
        UserAction::Remove { dir, name } => users::remove(&dir, &name),
        UserAction::List { dir } => {
            for u in users::load(&dir)? {
                writeln!(out, "{}", u.name).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    }
}

/// `nexus apikey add|remove|list DIR`.
#[cfg(feature = "server")]
fn apikey_command(action: ApikeyAction, out: &mut impl Write, quiet: bool) -> Result<(), String> {
    use serve::apikeys;
    match action {
        ApikeyAction::Add {
            dir,
            name,
            read_only,
            databases,
        } => {
            let key = apikeys::add(&dir, &name, read_only, &databases)?;
            writeln!(out, "{key}").map_err(|e| e.to_string())?;
            if !quiet {
                eprintln!(
                    "added the API key {name} to {} (shown once: keep it)",
                    apikeys::path(&dir).display()
                );
            }
            Ok(())
        }
        ApikeyAction::Remove { dir, name } => apikeys::remove(&dir, &name),
        ApikeyAction::List { dir } => {
            for k in apikeys::load(&dir)? {
                writeln!(out, "{}", apikeys::describe(&k)).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    }
}

fn delimiter(d: Option<String>) -> Result<Option<u8>, String> {
    match d.as_deref() {
        None => Ok(None),
        Some("\\t") | Some("tab") => Ok(Some(b'\t')),
        Some(s) if s.len() == 1 && s.is_ascii() => Ok(Some(s.as_bytes()[0])),
        Some(s) => Err(format!(
            "--delimiter must be one ASCII character, not {s:?}"
        )),
    }
}

fn format(s: &str) -> Result<Format, String> {
    Format::parse(s).map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    let storage = match cli.storage.as_deref() {
        None => None,
        Some(name) => match StorageEngine::parse(name) {
            Some(engine) => Some(engine),
            None => return Err(format!("--storage must be wasp or memlog, not {name}")),
        },
    };
    let _ = STORAGE.set(storage);
    if cli.command.database().is_some() {
        let key = match &cli.key {
            None => None,
            Some(path) => Some(nexus::crypto::PrivatePem::new(
                commands::read_key(path)?.to_string(),
            )),
        };
        let _ = KEY.set(key);
    }
    let key_file = || {
        cli.key
            .clone()
            .ok_or_else(|| "this command needs --key FILE (a PEM key file)".to_string())
    };
    let quiet = cli.quiet;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let r = match cli.command {
        Command::Shell { db } => {
            drop(out);
            let name = db.display().to_string();
            let code = shell::run(&open_or_create(&db)?, &name);
            return if code == 0 {
                Ok(())
            } else {
                Err(String::new())
            };
        }
        Command::Import {
            db,
            coll,
            file,
            format: f,
            skip_errors,
            error_sidecar,
            ttl_field,
            batch_size,
            atomic,
            dry_run,
            delimiter: d,
            no_headers,
            no_type_infer,
            verify_key,
        } => {
            let verify_key = match verify_key {
                Some(k) => Some(commands::read_key(&k)?.to_string()),
                None => None,
            };
            let opts = ImportOptions {
                verify_key,
                format: format(&f)?,
                batch_size: usize::try_from(batch_size).unwrap_or(usize::MAX).max(1),
                ttl_field,
                skip_errors,
                error_sidecar,
                atomic,
                dry_run,
                csv: CsvOptions {
                    delimiter: delimiter(d)?,
                    has_headers: !no_headers,
                    type_infer: !no_type_infer,
                },
                ..ImportOptions::default()
            };
            let db = if dry_run {
                open_existing(&db)
                    .or_else(|_| Database::open_in_memory().map_err(|e| e.to_string()))?
            } else {
                open_or_create(&db)?
            };
            let bar = transfer::Bar::new(quiet, true);
            let r = db
                .collection(&coll)
                .import_with_progress(&file, &opts, &mut |p| bar.update(p, true));
            bar.finish();
            let report = r.map_err(|e| e.to_string())?;
            if !quiet {
                eprintln!(
                    "{}",
                    transfer::import_summary(&file.display().to_string(), &report)
                );
            }
            Ok(())
        }
        Command::Export {
            db,
            coll,
            file,
            format: f,
            filter,
            fields,
            extended_json,
            pretty,
            no_array,
            delimiter: d,
            no_headers,
            sign_key,
        } => {
            let sign_key = match sign_key {
                Some(k) => Some(nexus::crypto::PrivatePem::new(
                    commands::read_key(&k)?.to_string(),
                )),
                None => None,
            };
            let opts = ExportOptions {
                sign_key,
                format: format(&f)?,
                filter: filter
                    .as_deref()
                    .map(|t| parse_object(t, "filter"))
                    .transpose()?,
                fields,
                extended_json: match extended_json.as_str() {
                    "relaxed" => ExtJsonMode::Relaxed,
                    "canonical" => ExtJsonMode::Canonical,
                    other => {
                        return Err(format!(
                            "--extended-json must be relaxed or canonical, not {other:?}"
                        ))
                    }
                },
                csv: CsvOptions {
                    delimiter: delimiter(d)?,
                    has_headers: !no_headers,
                    type_infer: true,
                },
                array_mode: Some(!no_array),
                pretty,
            };
            let db = open_existing(&db)?;
            let bar = transfer::Bar::new(quiet, false);
            let r = db
                .collection(&coll)
                .export_with_progress(&file, &opts, &mut |p| bar.update(p, false));
            bar.finish();
            let report = r.map_err(|e| e.to_string())?;
            if !quiet {
                eprintln!("{}", transfer::export_summary(&report));
            }
            Ok(())
        }
        Command::Find {
            db,
            coll,
            filter,
            options,
        } => {
            let filter = parse_filter(filter.as_deref())?;
            commands::find(
                &open_existing(&db)?,
                &coll,
                &filter,
                options.parse()?,
                &mut out,
            )
        }
        Command::Aggregate {
            db,
            coll,
            pipeline,
            options,
        } => commands::aggregate(
            &open_existing(&db)?,
            &coll,
            &pipeline,
            options.as_deref(),
            &mut out,
        ),
        Command::VectorSearch { db, coll, spec } => {
            commands::vector_search(&open_existing(&db)?, &coll, &spec, &mut out)
        }
        Command::Count { db, coll, filter } => commands::count(
            &open_existing(&db)?,
            &coll,
            &parse_filter(filter.as_deref())?,
            &mut out,
        ),
        Command::Insert { db, coll, doc } => {
            commands::insert(&open_or_create(&db)?, &coll, &doc, &mut out)
        }
        Command::Update {
            db,
            coll,
            filter,
            update,
            multi,
            upsert,
            array_filters,
        } => {
            let f = parse_object(&filter, "filter")?;
            let u = parse_object(&update, "update")?;
            let array_filters = array_filters
                .as_deref()
                .map(commands::parse_array_filters)
                .transpose()?;
            let db = if upsert {
                open_or_create(&db)?
            } else {
                open_existing(&db)?
            };
            commands::update(
                &db,
                &coll,
                &f,
                &u,
                UpdateOptions { multi, upsert },
                array_filters,
                &mut out,
            )
        }
        Command::Delete {
            db,
            coll,
            filter,
            multi,
        } => {
            let f = parse_object(&filter, "filter")?;
            commands::delete(&open_existing(&db)?, &coll, &f, multi, &mut out)
        }
        Command::Collections { db } => commands::collections(&open_existing(&db)?, &mut out),
        Command::Stats { db } => commands::stats(&open_existing(&db)?, &mut out),
        Command::Check { db, repair } => {
            let database = if repair {
                open_existing_with(
                    &db,
                    OpenOptions {
                        recover: LogRecovery::DiscardDamaged,
                        ..OpenOptions::default()
                    },
                )?
            } else {
                open_existing(&db)?
            };
            let mut report = database.check_report().map_err(|e| e.to_string())?;
            if repair {
                let stats = database.stats().map_err(|e| e.to_string())?;
                report["repair"] = stats["storage"]["recovery"].clone();
            }
            writeln!(out, "{report}").map_err(|e| e.to_string())?;
            if report["ok"] == serde_json::Value::Bool(true) {
                Ok(())
            } else {
                Err(format!(
                    "integrity check failed: {}",
                    report["errors"][0].as_str().unwrap_or("damaged")
                ))
            }
        }
        Command::Backup {
            db,
            dest,
            sign_key,
            encrypt_to,
            decrypt,
        } => {
            let key = sign_key.as_deref().map(commands::read_key).transpose()?;
            if let Some(k) = &key {
                nexus::crypto::PrivatePem::new(k.to_string())
                    .check()
                    .map_err(|e| e.to_string())?;
            }
            let recipients = encrypt_to
                .iter()
                .map(|p| commands::read_key(p).map(|k| k.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            let source = open_existing(&db)?;
            if !recipients.is_empty() {
                source.backup_encrypted(&dest, &recipients)
            } else if decrypt {
                source.backup_decrypted(&dest)
            } else {
                source.backup(&dest)
            }
            .map_err(|e| e.to_string())?;
            match &key {
                Some(k) => nexus::io::sign_file(&dest, k).map_err(|e| e.to_string()),
                None => Ok(()),
            }
        }
        Command::Checkpoint { db } => open_existing(&db)?.checkpoint().map_err(|e| e.to_string()),
        Command::Compact { db } => open_existing(&db)?.compact().map_err(|e| e.to_string()),
        Command::CreateIndex {
            db,
            coll,
            keys,
            unique,
            sparse,
            name,
            options,
        } => {
            let keys = parse_object(&keys, "index keys")?;
            let mut opts = match options {
                Some(o) => parse_object(&o, "index options")?,
                None => bson::Document::new(),
            };
            if unique {
                opts.insert("unique", true);
            }
            if sparse {
                opts.insert("sparse", true);
            }
            if let Some(name) = name {
                opts.insert("name", name);
            }
            commands::create_index(&open_or_create(&db)?, &coll, &keys, &opts, &mut out)
        }
        Command::DropIndex { db, coll, name } => {
            commands::drop_index(&open_existing(&db)?, &coll, &name)
        }
        Command::Indexes { db, coll } => commands::indexes(&open_existing(&db)?, &coll, &mut out),
        Command::Explain {
            db,
            coll,
            filter,
            options,
        } => {
            let filter = parse_filter(filter.as_deref())?;
            commands::explain(
                &open_existing(&db)?,
                &coll,
                &filter,
                options.parse()?,
                &mut out,
            )
        }
        Command::Keygen {
            private,
            public,
            algorithm,
        } => commands::keygen(&private, &public, algorithm.as_deref()),
        Command::Sign { file } => commands::sign(&file, &key_file()?),
        Command::Verify { file } => commands::verify(&file, &key_file()?, quiet, &mut out),
        Command::AddKey { db, public } => open_existing(&db)?
            .add_key(&commands::read_key(&public)?)
            .map_err(|e| e.to_string()),
        Command::RemoveKey { db, public } => open_existing(&db)?
            .remove_key(&commands::read_key(&public)?)
            .map_err(|e| e.to_string()),
        Command::Rekey { db } => open_existing(&db)?.rekey().map_err(|e| e.to_string()),
        // Made in memory, then written: clap_complete panics when its writer fails (`| head`),
        // and a closed pipe is no error here, as in the flush below.
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "nexus", &mut script);
            match out.write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
                _ => Ok(()),
            }
        }
        Command::Manpage => {
            use clap::CommandFactory;
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| e.to_string())?;
            match out.write_all(&page) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
                _ => Ok(()),
            }
        }
        #[cfg(feature = "server")]
        Command::Serve {
            data_dir,
            mongo,
            http,
            grpc,
            http_max_body,
            http_timeout,
            http_max_concurrent,
            max_connections,
            max_cursors_per_connection,
            cursor_idle_timeout,
            auth,
            tls_cert,
            tls_key,
        } => {
            drop(out);
            // Today's default: the MongoDB protocol on 27017 when no other front end is asked.
            let mongo = match (mongo, &http, &grpc) {
                (None, None, None) => Some("127.0.0.1:27017".to_owned()),
                (m, _, _) => m,
            };
            return serve::run(serve::ServeOptions {
                data_dir,
                mongo,
                http,
                grpc,
                http_limits: serve::HttpLimits {
                    max_body: http_max_body,
                    timeout: std::time::Duration::from_secs(http_timeout.max(1)),
                    max_concurrent: http_max_concurrent,
                },
                max_connections,
                max_cursors_per_connection,
                cursor_idle: std::time::Duration::from_secs(cursor_idle_timeout),
                auth,
                tls: tls_cert.zip(tls_key),
            });
        }
        #[cfg(feature = "server")]
        Command::User { action } => user_command(action, &mut out, quiet),
        #[cfg(feature = "server")]
        Command::Apikey { action } => apikey_command(action, &mut out, quiet),
    };
    r?;
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(2);
            }
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("nexus: usage error: {first} (see nexus --help)");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(cli.log_config.as_deref(), cli.command.database()) {
        eprintln!("nexus: error: {}", shell::one_line(&e));
        return ExitCode::from(1);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_empty() => ExitCode::from(1),
        Err(e) => {
            eprintln!("nexus: error: {}", shell::one_line(&e));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Adds to `missing` every subcommand and argument under `cmd` that has no help text,
    /// named by its path (`nexus find db`).
    fn without_help(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(sub_path.clone());
            }
            without_help(sub, &sub_path, missing);
        }
    }

    #[test]
    fn every_subcommand_and_argument_has_help() {
        let mut cmd = Cli::command();
        // Built as for parsing: the global options are copied into each subcommand, and
        // clap's own --help, --version and help subcommand are added.
        cmd.build();
        let mut missing = Vec::new();
        without_help(&cmd, "nexus", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
        // The walk reaches the arguments of every subcommand, positional ones included.
        let find = cmd.find_subcommand("find").expect("find");
        let db = find.get_arguments().find(|a| a.get_id() == "db");
        assert!(db.is_some_and(|a| a.is_positional()));
    }
}
