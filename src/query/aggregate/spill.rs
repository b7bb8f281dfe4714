//! Bounded memory for the blocking stages of a pipeline (MongoDB's `allowDiskUse`).
//!
//! [`Memory`] is a pipeline's budget: the most bytes (estimated as BSON) one blocking stage
//! holds, whether it may spill past that, and where its temporary files go. [`Sorter`] is an
//! external merge sort (`$sort`, the sort of `$sortByCount`, `$sample`, and the first-seen
//! order of spilled groups): it holds rows up to the limit, writes them as a sorted *run*,
//! and at the end merges the runs ([`FAN_IN`] at a time, in rounds of consecutive runs, so
//! equal keys keep their input order as the in-memory stable sort does). [`Spool`] holds a
//! stream of documents to read again (the input of `$facet`, the results a cursor returns),
//! in memory up to the limit and in one run past it. Grouping spills through the same runs
//! (see [`super::group::Grouper`]).
//!
//! Runs are unnamed temporary files (the `tempfile` crate: `O_TMPFILE` where the OS has it,
//! otherwise created and unlinked at once) in the directory of the database file, so a large
//! spill lands on the database's disk; an in-memory database, or a directory where no file
//! can be created, uses the system's temporary directory. A file is gone when its [`Run`]
//! (or the cursor reading it) is dropped, on success, on error and after a crash alike.
//!
//! A run is a sequence of blocks: `u32` little-endian length of the sealed block, then the
//! block (about [`BLOCK_BYTES`] of BSON documents back to back, encrypted in place) and its
//! 16-byte Poly1305 tag. Every run is sealed with XChaCha20-Poly1305 under a random key of
//! its own, kept only in memory (the nonce is the block number), so no plaintext document
//! reaches the disk whether the database is encrypted or not; a block that fails its tag is
//! [`Error::Corrupt`].
//!
//! Layer beneath: the filesystem (through `tempfile`) and the `chacha20poly1305` crate.

use crate::error::{Error, Result};
use bson::{Bson, Document};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use std::cell::Cell;
use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The default limit of one blocking stage: 100 MiB, as MongoDB's
/// `internalQueryMaxBlockingSortMemoryUsageBytes` and `$group` limit.
pub(crate) const DEFAULT_MAX_MEMORY_BYTES: usize = 100 * 1024 * 1024;

/// Runs merged at once (each open run holds one block).
pub(crate) const FAN_IN: usize = 16;

/// Bytes of documents per sealed block of a run.
pub(crate) const BLOCK_BYTES: usize = 64 * 1024;

const TAG_LEN: usize = 16;

/// The memory budget of one pipeline run: shared by its blocking stages, each of which may
/// hold up to `limit` bytes (per stage, as MongoDB counts it).
#[derive(Debug)]
pub(crate) struct Memory {
    /// The most bytes one blocking stage holds before it spills (or fails).
    pub(crate) limit: usize,
    /// Whether a stage past `limit` spills to temporary files (`allowDiskUse`); if not, it
    /// fails with [`Error::InvalidArgument`] in MongoDB's words.
    pub(crate) allow_disk_use: bool,
    /// Where runs go first (the database file's directory); `None`: the system's.
    pub(crate) dir: Option<PathBuf>,
    /// Runs written so far (for tests and statistics).
    runs: Cell<u64>,
}

impl Default for Memory {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MEMORY_BYTES, true, None)
    }
}

impl Memory {
    pub(crate) fn new(limit: usize, allow_disk_use: bool, dir: Option<PathBuf>) -> Self {
        Self {
            limit: limit.max(1),
            allow_disk_use,
            dir,
            runs: Cell::new(0),
        }
    }

    /// How many runs were written.
    #[cfg(test)]
    pub(crate) fn runs_written(&self) -> u64 {
        self.runs.get()
    }

    /// Fails unless `stage` may spill: MongoDB's messages for a stage past its limit.
    pub(crate) fn check_spill(&self, stage: &str) -> Result<()> {
        if self.allow_disk_use {
            return Ok(());
        }
        Err(Error::invalid(if stage == "$sort" {
            format!(
                "Sort exceeded memory limit of {} bytes, but did not opt in to external sorting. Pass allowDiskUse:true to opt in.",
                self.limit
            )
        } else {
            format!(
                "Exceeded memory limit for {stage}, but didn't allow external sort. Pass allowDiskUse:true to opt in. (limit: {} bytes)",
                self.limit
            )
        }))
    }

    fn temp_file(&self) -> Result<File> {
        if let Some(dir) = &self.dir {
            if let Ok(f) = tempfile::tempfile_in(dir) {
                return Ok(f);
            }
        }
        tempfile::tempfile().map_err(|e| Error::io(std::env::temp_dir(), e))
    }

    fn spill_path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

/// An estimate of a value's size as BSON (iterative; scalars count 8 bytes).
pub(crate) fn approx_value(v: &Bson) -> usize {
    match v {
        Bson::Document(d) => super::approx_bytes(d),
        Bson::Array(a) => {
            let mut d = 5 + a.len() * 4;
            for x in a {
                d += approx_value(x);
            }
            d
        }
        Bson::String(s) => s.len() + 5,
        Bson::Binary(b) => b.bytes.len() + 5,
        _ => 8,
    }
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

fn nonce(block: u64) -> XNonce {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&block.to_le_bytes());
    XNonce::from(n)
}

/// Writes one run: documents appended in order, sealed a block at a time.
pub(crate) struct RunWriter {
    out: BufWriter<File>,
    aead: XChaCha20Poly1305,
    buf: Vec<u8>,
    blocks: u64,
    path: PathBuf,
}

impl RunWriter {
    /// A new run in a new temporary file.
    ///
    /// Errors: [`Error::Io`] when no temporary file can be created.
    pub(crate) fn create(mem: &Memory) -> Result<Self> {
        let file = mem.temp_file()?;
        mem.runs.set(mem.runs.get() + 1);
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut key[..]);
        let aead = XChaCha20Poly1305::new_from_slice(&key[..])
            .map_err(|_| Error::Internal("a 32-byte XChaCha20-Poly1305 key".into()))?;
        Ok(Self {
            out: BufWriter::new(file),
            aead,
            buf: Vec::with_capacity(BLOCK_BYTES + 1024),
            blocks: 0,
            path: mem.spill_path(),
        })
    }

    /// Appends a document.
    pub(crate) fn push(&mut self, doc: &Document) -> Result<()> {
        doc.to_writer(&mut self.buf)
            .map_err(|e| Error::Internal(format!("aggregate spill: encoding a document: {e}")))?;
        if self.buf.len() >= BLOCK_BYTES {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        let tag = self
            .aead
            .encrypt_in_place_detached(&nonce(self.blocks), b"", &mut self.buf)
            .map_err(|_| Error::Internal("aggregate spill: sealing a block".into()))?;
        let len = u32::try_from(self.buf.len())
            .map_err(|_| Error::Internal("aggregate spill: a block past 4 GiB".into()))?;
        let path = &self.path;
        self.out
            .write_all(&len.to_le_bytes())
            .and_then(|()| self.out.write_all(&self.buf))
            .and_then(|()| self.out.write_all(&tag))
            .map_err(|e| io_err(path, e))?;
        self.blocks += 1;
        self.buf.clear();
        Ok(())
    }

    /// Ends the run, ready to read.
    pub(crate) fn finish(mut self) -> Result<Run> {
        if !self.buf.is_empty() {
            self.flush_block()?;
        }
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| io_err(&path, e.into_error()))?;
        Ok(Run {
            file,
            aead: self.aead,
            blocks: self.blocks,
            path,
        })
    }
}

/// A finished run: its temporary file (removed when this is dropped) and its key.
pub(crate) struct Run {
    file: File,
    aead: XChaCha20Poly1305,
    blocks: u64,
    path: PathBuf,
}

impl Run {
    /// Reads the run from the start, owning the file (it is removed when the reader is
    /// dropped).
    pub(crate) fn into_reader(self) -> Result<RunReader> {
        let mut file = self.file;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io_err(&self.path, e))?;
        Ok(RunReader {
            input: BufReader::new(file),
            aead: self.aead,
            blocks: self.blocks,
            next: 0,
            buf: Vec::new(),
            pos: 0,
            path: self.path,
        })
    }

    /// Reads the run from the start through another handle of the same file (one reader at
    /// a time: the handles share the file position).
    pub(crate) fn reader(&self) -> Result<RunReader> {
        let file = self.file.try_clone().map_err(|e| io_err(&self.path, e))?;
        Run {
            file,
            aead: self.aead.clone(),
            blocks: self.blocks,
            path: self.path.clone(),
        }
        .into_reader()
    }
}

/// Reads the documents of a run in order.
pub(crate) struct RunReader {
    input: BufReader<File>,
    aead: XChaCha20Poly1305,
    blocks: u64,
    next: u64,
    buf: Vec<u8>,
    pos: usize,
    path: PathBuf,
}

impl RunReader {
    fn read_block(&mut self) -> Result<()> {
        let path = &self.path;
        let mut len = [0u8; 4];
        self.input
            .read_exact(&mut len)
            .map_err(|e| io_err(path, e))?;
        let len = u32::from_le_bytes(len) as usize;
        if len > 1 << 30 {
            return Err(damaged());
        }
        self.buf.resize(len, 0);
        self.input
            .read_exact(&mut self.buf)
            .map_err(|e| io_err(path, e))?;
        let mut tag = [0u8; TAG_LEN];
        self.input
            .read_exact(&mut tag)
            .map_err(|e| io_err(path, e))?;
        self.aead
            .decrypt_in_place_detached(&nonce(self.next), b"", &mut self.buf, &Tag::from(tag))
            .map_err(|_| damaged())?;
        self.next += 1;
        self.pos = 0;
        Ok(())
    }

    fn read_doc(&mut self) -> Result<Option<Document>> {
        if self.pos >= self.buf.len() {
            if self.next == self.blocks {
                return Ok(None);
            }
            self.read_block()?;
        }
        let rest = &self.buf[self.pos..];
        let Some(len) = rest
            .get(..4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n >= 5 && *n <= rest.len())
        else {
            return Err(damaged());
        };
        let doc = Document::from_reader(&rest[..len]).map_err(|_| damaged())?;
        self.pos += len;
        Ok(Some(doc))
    }
}

fn damaged() -> Error {
    Error::Corrupt(
        "aggregate: a spilled run failed its check (its temporary file was changed or damaged)"
            .into(),
    )
}

impl Iterator for RunReader {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.read_doc() {
            Ok(d) => d.map(Ok),
            Err(e) => {
                // An error ends the run.
                self.next = self.blocks;
                self.buf.clear();
                Some(Err(e))
            }
        }
    }
}

/// A sort key (as [`crate::query::sort::SortSpec::key_of`] gives: `None` is missing).
pub(crate) type Key = Vec<Option<Bson>>;

/// Compares two keys.
pub(crate) type KeyOrder<'a> = Box<dyn Fn(&[Option<Bson>], &[Option<Bson>]) -> Ordering + 'a>;

fn key_doc(key: &[Option<Bson>]) -> Document {
    let mut d = Document::new();
    d.insert("n", i64::try_from(key.len()).unwrap_or(i64::MAX));
    for (i, k) in key.iter().enumerate() {
        if let Some(v) = k {
            d.insert(i.to_string(), v.clone());
        }
    }
    d
}

fn key_from_doc(d: &Document) -> Result<Key> {
    let n = d
        .get_i64("n")
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(damaged)?;
    Ok((0..n).map(|i| d.get(i.to_string()).cloned()).collect())
}

fn row_bytes(key: &[Option<Bson>], doc: &Document) -> usize {
    64 + super::approx_bytes(doc) + key.iter().flatten().map(approx_value).sum::<usize>()
}

/// An external merge sort of `(key, document)` rows, stable: rows with equal keys come out
/// in the order they were pushed. With `keep`, only the first `keep` rows are returned
/// (and held).
pub(crate) struct Sorter<'a> {
    mem: &'a Memory,
    stage: &'static str,
    order: KeyOrder<'a>,
    keep: Option<usize>,
    rows: Vec<(Key, Document)>,
    used: usize,
    runs: Vec<Run>,
}

impl<'a> Sorter<'a> {
    pub(crate) fn new(
        mem: &'a Memory,
        stage: &'static str,
        order: KeyOrder<'a>,
        keep: Option<usize>,
    ) -> Self {
        Self {
            mem,
            stage,
            order,
            keep,
            rows: Vec::new(),
            used: 0,
            runs: Vec::new(),
        }
    }

    /// Adds a row; past the limit the rows held are written as a run.
    ///
    /// Errors: past the limit without `allowDiskUse` (see [`Memory::check_spill`]); I/O.
    pub(crate) fn push(&mut self, key: Key, doc: Document) -> Result<()> {
        self.used += row_bytes(&key, &doc);
        self.rows.push((key, doc));
        if let Some(k) = self.keep {
            if self.rows.len() >= k.max(64).saturating_mul(2) {
                self.sort_rows();
                self.used = self.rows.iter().map(|(k, d)| row_bytes(k, d)).sum();
            }
        }
        if self.used > self.mem.limit {
            self.spill()?;
        }
        Ok(())
    }

    /// Sorts the rows held (stable) and cuts them to `keep`.
    fn sort_rows(&mut self) {
        let order = &self.order;
        self.rows.sort_by(|a, b| order(&a.0, &b.0));
        if let Some(k) = self.keep {
            self.rows.truncate(k);
        }
    }

    fn spill(&mut self) -> Result<()> {
        self.mem.check_spill(self.stage)?;
        self.sort_rows();
        let mut w = RunWriter::create(self.mem)?;
        for (k, d) in self.rows.drain(..) {
            w.push(&key_doc(&k))?;
            w.push(&d)?;
        }
        self.runs.push(w.finish()?);
        self.used = 0;
        Ok(())
    }

    /// The rows in order (the first `keep` of them).
    ///
    /// Errors: I/O while merging runs (later ones come out of the iterator).
    pub(crate) fn finish(mut self) -> Result<Box<dyn Iterator<Item = Result<Document>> + 'a>> {
        if self.runs.is_empty() {
            self.sort_rows();
            return Ok(Box::new(self.rows.into_iter().map(|(_, d)| Ok(d))));
        }
        if !self.rows.is_empty() {
            self.spill()?;
        }
        let runs = merge_rounds(std::mem::take(&mut self.runs), self.mem, |chunk, w| {
            let mut merged = SortMerge::new(chunk, &*self.order)?;
            let mut n = 0usize;
            while let Some(row) = merged.next_row()? {
                if self.keep.is_some_and(|k| n >= k) {
                    break;
                }
                w.push(&key_doc(&row.0))?;
                w.push(&row.1)?;
                n += 1;
            }
            Ok(())
        })?;
        let keep = self.keep.unwrap_or(usize::MAX);
        let merged = SortMerge::new(runs, self.order)?;
        Ok(Box::new(
            std::iter::from_fn({
                let mut merged = merged;
                move || merged.next_row().transpose()
            })
            .map(|r| r.map(|(_, d)| d))
            .take(keep),
        ))
    }
}

/// Merges consecutive runs in rounds, [`FAN_IN`] at a time, until at most [`FAN_IN`] are
/// left for the final merge: `merge` writes the merge of one chunk of runs into a new run.
pub(crate) fn merge_rounds(
    mut runs: Vec<Run>,
    mem: &Memory,
    mut merge: impl FnMut(Vec<Run>, &mut RunWriter) -> Result<()>,
) -> Result<Vec<Run>> {
    while runs.len() > FAN_IN {
        let mut next = Vec::with_capacity(runs.len().div_ceil(FAN_IN));
        let mut it = runs.into_iter();
        loop {
            let chunk: Vec<Run> = it.by_ref().take(FAN_IN).collect();
            if chunk.is_empty() {
                break;
            }
            let mut w = RunWriter::create(mem)?;
            merge(chunk, &mut w)?;
            next.push(w.finish()?);
        }
        runs = next;
    }
    Ok(runs)
}

/// Merges sorted runs of `(key, document)` records; equal keys come from the earlier run
/// first.
struct SortMerge<O> {
    readers: Vec<RunReader>,
    heads: Vec<Option<(Key, Document)>>,
    order: O,
    failed: bool,
}

impl<O: Fn(&[Option<Bson>], &[Option<Bson>]) -> Ordering> SortMerge<O> {
    fn new(runs: Vec<Run>, order: O) -> Result<Self> {
        let mut readers = Vec::with_capacity(runs.len());
        for r in runs {
            readers.push(r.into_reader()?);
        }
        let mut heads = Vec::with_capacity(readers.len());
        for r in &mut readers {
            heads.push(read_row(r)?);
        }
        Ok(Self {
            readers,
            heads,
            order,
            failed: false,
        })
    }

    fn next_row(&mut self) -> Result<Option<(Key, Document)>> {
        if self.failed {
            return Ok(None);
        }
        let mut best: Option<usize> = None;
        for (i, h) in self.heads.iter().enumerate() {
            let Some(h) = h else { continue };
            best = match best {
                Some(b) => {
                    let bk = &self.heads[b].as_ref().expect("a head").0;
                    // Strictly less: an equal key stays with the earlier run.
                    if (self.order)(&h.0, bk) == Ordering::Less {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
                None => Some(i),
            };
        }
        let Some(b) = best else { return Ok(None) };
        let row = self.heads[b].take();
        match read_row(&mut self.readers[b]) {
            Ok(h) => self.heads[b] = h,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(row)
    }
}

fn read_row(r: &mut RunReader) -> Result<Option<(Key, Document)>> {
    let Some(k) = r.next().transpose()? else {
        return Ok(None);
    };
    let Some(d) = r.next().transpose()? else {
        return Err(damaged());
    };
    Ok(Some((key_from_doc(&k)?, d)))
}

/// Documents held to be read again, in memory up to the limit and in one run past it.
pub(crate) struct Spool<'a> {
    mem: &'a Memory,
    stage: &'static str,
    docs: Vec<Document>,
    used: usize,
    run: Option<RunWriter>,
}

/// What a [`Spool`] holds once finished.
pub(crate) enum Spooled {
    Memory(Vec<Document>),
    Disk(Run),
}

impl<'a> Spool<'a> {
    pub(crate) fn new(mem: &'a Memory, stage: &'static str) -> Self {
        Self {
            mem,
            stage,
            docs: Vec::new(),
            used: 0,
            run: None,
        }
    }

    /// Adds a document.
    ///
    /// Errors: past the limit without `allowDiskUse`; I/O.
    pub(crate) fn push(&mut self, doc: Document) -> Result<()> {
        if let Some(w) = &mut self.run {
            return w.push(&doc);
        }
        self.used += 16 + super::approx_bytes(&doc);
        self.docs.push(doc);
        if self.used > self.mem.limit {
            self.mem.check_spill(self.stage)?;
            let mut w = RunWriter::create(self.mem)?;
            for d in self.docs.drain(..) {
                w.push(&d)?;
            }
            self.run = Some(w);
            self.used = 0;
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Spooled> {
        Ok(match self.run {
            Some(w) => Spooled::Disk(w.finish()?),
            None => Spooled::Memory(self.docs),
        })
    }
}

impl Spooled {
    /// Reads the documents from the start (one reader at a time).
    pub(crate) fn replay(&self) -> Result<Box<dyn Iterator<Item = Result<Document>> + '_>> {
        Ok(match self {
            Spooled::Memory(docs) => Box::new(docs.iter().cloned().map(Ok)),
            Spooled::Disk(run) => Box::new(run.reader()?),
        })
    }

    /// Reads the documents once, owning them (and the file, removed when the iterator is
    /// dropped).
    pub(crate) fn into_iter_owned(
        self,
    ) -> Result<Box<dyn Iterator<Item = Result<Document>> + Send>> {
        Ok(match self {
            Spooled::Memory(docs) => Box::new(docs.into_iter().map(Ok)),
            Spooled::Disk(run) => Box::new(run.into_reader()?),
        })
    }
}
