//! [`AtomicFile`]: export's output. Bytes go to a temporary file beside the destination
//! (same directory, so the rename cannot cross file systems); [`AtomicFile::commit`]
//! flushes, syncs, renames it over the destination and syncs the directory. Dropped
//! without `commit` (an error, a panic), it removes the temporary file, so the
//! destination is either the old file or the complete new one, never half a file.
//!
//! `std::fs::rename` replaces an existing destination atomically on POSIX (`rename(2)`) and
//! on Windows (`MoveFileExW` with `MOVEFILE_REPLACE_EXISTING`, which std uses).

use crate::error::{Error, Result};
use crate::storage::file;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What names export's temporaries: `.NAME.nexus-tmp-PID-SEQ` ([`file::temp_sibling`]).
const TEMP_TAG: &str = "nexus-tmp";

/// A file written under a temporary name and renamed into place on commit.
pub(crate) struct AtomicFile {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    dest: PathBuf,
    written: u64,
}

impl AtomicFile {
    /// Creates the temporary file beside `dest`. Refuses a directory as `dest`; an
    /// unwritable directory fails here, before anything is read.
    pub(crate) fn create(dest: &Path) -> Result<Self> {
        if dest.is_dir() {
            return Err(Error::invalid(format!(
                "{} is a directory; export needs a file name",
                dest.display()
            )));
        }
        // Temporaries left by killed exports to this name are removed first.
        file::remove_stale_temps(dest, TEMP_TAG);
        let tmp = file::temp_sibling(dest, TEMP_TAG, "")?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(dest, e))?;
        Ok(Self {
            out: Some(BufWriter::with_capacity(256 * 1024, file)),
            tmp,
            dest: dest.to_path_buf(),
            written: 0,
        })
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Flushes, syncs and renames the temporary file to the destination.
    pub(crate) fn commit(mut self) -> Result<u64> {
        let out = self.out.take().expect("present until commit");
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        // Makes the rename durable; best effort (some file systems refuse to sync a
        // directory, and the data itself is already synced).
        let _ = file::sync_dir(&self.dest);
        self.tmp = PathBuf::new();
        Ok(self.written)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self
            .out
            .as_mut()
            .expect("present until commit")
            .write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.as_mut().expect("present until commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.out.take();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
