//! Query execution: the planner's choice of access path (`plan`), index interval scans
//! (`ixscan`), collection scans and point lookups by `_id` (`scan`), `explain`, and the
//! [`Cursor`] that reads through the chosen path. It sits above the index and storage layers
//! (it reads index entries and documents through a storage snapshot) and below the engine
//! and the public API, which call it.

pub(crate) mod cursor;
pub(crate) mod expire;
pub(crate) mod explain;
pub(crate) mod ixscan;
pub(crate) mod plan;
pub(crate) mod scan;

pub use cursor::Cursor;
