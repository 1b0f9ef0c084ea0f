//! File bytes behind a small trait, and the upload policy.
//!
//! The engine decides what a file is from its bytes ([`sniff`]: magic numbers, and the tracks of
//! media containers), never from the client's name or claimed type, checks size and allow-list,
//! and stores it under a server-made id. Backends: [`fs`] (default, one fsync'd file per blob) and [`memory`].

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod duration;
pub mod fs;
pub mod memory;
mod sniff;

pub use duration::duration_ms;
pub use sniff::sniff;

/// Where uploaded bytes live.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores bytes under a server-made id; durable when it returns.
    async fn put(&self, id: &str, bytes: Bytes) -> Result<()>;
    /// The bytes of a blob.
    async fn get(&self, id: &str) -> Result<Option<Bytes>>;
    /// Removes a blob (no error if absent).
    async fn delete(&self, id: &str) -> Result<()>;
}

/// Blob ids are ULIDs made by the engine: 26 characters of Crockford base32. Anything else is
/// refused before it reaches a backend, so no id can name a path.
pub(crate) fn check_blob_id(id: &str) -> Result<()> {
    if id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(Error::NotFound("file"))
    }
}

/// A display name made safe: no path, no control characters, at most 255 characters.
pub(crate) fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "file".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_and_controls() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\x\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("a\u{0}b\nc.png"), "abc.png");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(&"n".repeat(1000)).chars().count(), 255);
    }

    #[test]
    fn blob_ids_must_be_ulids() {
        assert!(check_blob_id("01JD0000000000000000000000").is_ok());
        assert!(check_blob_id("../../../../etc/passwd").is_err());
        assert!(check_blob_id("01JD00000000000000000000/.").is_err());
    }
}
