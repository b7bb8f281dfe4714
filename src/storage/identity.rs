//! Which file a path names, seen through links and spellings ([`FileId`]), and whether a
//! file holds a NexusLite database or log ([`holds_database`]). The layers above use these to
//! keep what they write for the user (exports, error sidecars, backups) off the files of a
//! database ([`super::database_files`]).
//!
//! Two paths name the same file when, every symbolic link followed, they reach the same
//! (device, inode) pair, so hard links, symbolic links and spellings such as `dir/../app.db`
//! all count; or, for a file that does not exist yet, when they reach the same name in the
//! same canonical directory: writing either would create the same file. A dangling symbolic
//! link is followed to the name its target would be created under.

use super::header::MAGIC;
use super::log::LOG_MAGIC;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Symbolic links followed before giving up (Linux's own limit, `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// The identity of the file a path names (see the module doc). Equal ids: the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileId {
    /// An existing file: its device and inode (on other systems: its canonical path).
    #[cfg(unix)]
    Inode { dev: u64, ino: u64 },
    /// A canonical path: the name a file not there yet would be created under (and, off
    /// Unix, an existing file's canonical path).
    Path(PathBuf),
}

impl FileId {
    /// The identity of the file `path` names, following symbolic links, also dangling ones.
    /// `None` when that cannot be told (a directory on the way is missing or unreadable, a
    /// link loop): nothing could be written there either.
    pub(crate) fn of(path: &Path) -> Option<Self> {
        let mut p = path.to_path_buf();
        for _ in 0..=MAX_LINKS {
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(&p) {
                    Ok(target) => return Some(Self::existing(&p, &target)),
                    // Dangling: where its target would be created.
                    Err(_) => {
                        let to = std::fs::read_link(&p).ok()?;
                        p = match p.parent() {
                            Some(dir) => dir.join(to),
                            None => to,
                        };
                    }
                },
                Ok(m) => return Some(Self::existing(&p, &m)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::missing(&p),
                Err(_) => return None,
            }
        }
        None
    }

    #[cfg(unix)]
    fn existing(_path: &Path, meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self::Inode {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    #[cfg(not(unix))]
    fn existing(path: &Path, _meta: &std::fs::Metadata) -> Self {
        Self::Path(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
    }

    /// A path that does not exist (and is not a link): its canonical directory and name.
    fn missing(path: &Path) -> Option<Self> {
        let name = path.file_name()?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Some(Self::Path(std::fs::canonicalize(dir).ok()?.join(name)))
    }
}

/// Whether `path` is (through links) an existing regular file that starts like a NexusLite
/// database file or log: the header magic of `NAME.db` or of the log `NAME.wasp`.
pub(crate) fn holds_database(path: &Path) -> bool {
    // Only regular files: opening a FIFO to look would block.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = Vec::with_capacity(MAGIC.len());
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAGIC.len() as u64).read_to_end(&mut head));
    read.is_ok() && (head.starts_with(MAGIC) || head.starts_with(LOG_MAGIC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_and_links_of_one_file_have_one_id() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.db"), b"x").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let id = FileId::of(&d.join("a.db")).unwrap();
        assert_eq!(FileId::of(&d.join("sub/../a.db")), Some(id.clone()));
        assert_eq!(FileId::of(&d.join("./sub/.././a.db")), Some(id.clone()));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("a.db", d.join("rel")).unwrap();
            std::os::unix::fs::symlink(d.join("rel"), d.join("abs")).unwrap();
            std::fs::hard_link(d.join("a.db"), d.join("hard")).unwrap();
            assert_eq!(FileId::of(&d.join("rel")), Some(id.clone()));
            assert_eq!(FileId::of(&d.join("abs")), Some(id.clone()));
            assert_eq!(FileId::of(&d.join("hard")), Some(id.clone()));
        }
        std::fs::write(d.join("b.db"), b"x").unwrap();
        assert_ne!(FileId::of(&d.join("b.db")), Some(id));
    }

    #[test]
    fn a_missing_file_is_its_name_in_its_canonical_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        let id = FileId::of(&d.join("new.wasp")).unwrap();
        assert_eq!(FileId::of(&d.join("sub/../new.wasp")), Some(id.clone()));
        assert_ne!(FileId::of(&d.join("sub/new.wasp")), Some(id.clone()));
        assert_eq!(FileId::of(&d.join("nowhere/x")), None);
        #[cfg(unix)]
        {
            // A dangling link, two deep, names where its target would be created.
            std::os::unix::fs::symlink(d.join("new.wasp"), d.join("l1")).unwrap();
            std::os::unix::fs::symlink("l1", d.join("sub/../l2")).unwrap();
            assert_eq!(FileId::of(&d.join("l2")), Some(id));
            // A loop resolves to nothing.
            std::os::unix::fs::symlink("loop2", d.join("loop1")).unwrap();
            std::os::unix::fs::symlink("loop1", d.join("loop2")).unwrap();
            assert_eq!(FileId::of(&d.join("loop1")), None);
        }
    }

    #[test]
    fn holds_database_looks_at_the_magic_of_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("db"), [&MAGIC[..], &[0u8; 48]].concat()).unwrap();
        std::fs::write(d.join("log"), [&LOG_MAGIC[..], &[0u8; 24]].concat()).unwrap();
        std::fs::write(d.join("text"), b"NexusLite").unwrap();
        assert!(holds_database(&d.join("db")));
        assert!(holds_database(&d.join("log")));
        assert!(!holds_database(&d.join("text")));
        assert!(!holds_database(&d.join("missing")));
        assert!(!holds_database(d));
    }
}
