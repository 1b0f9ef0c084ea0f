//! The test suite every [`BlobStore`] must pass. Call [`run`] from a backend's tests.

use bytes::Bytes;

use super::BlobStore;

/// Checks put/get/delete round trips and that ids which could name a path are refused.
pub async fn run(blobs: &dyn BlobStore) {
    let id = "01JD0000000000000000000001";
    assert_eq!(
        blobs.get(id).await.unwrap(),
        None,
        "absent blob reads as None"
    );
    blobs.put(id, Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(blobs.get(id).await.unwrap().as_deref(), Some(&b"hello"[..]));
    blobs.put(id, Bytes::from_static(b"again")).await.unwrap();
    assert_eq!(
        blobs.get(id).await.unwrap().as_deref(),
        Some(&b"again"[..]),
        "put replaces"
    );
    blobs.delete(id).await.unwrap();
    assert_eq!(blobs.get(id).await.unwrap(), None);
    blobs.delete(id).await.unwrap();
    for bad in ["../../etc/passwd", "", "a/b", "01JD000000000000000000000/"] {
        assert!(
            blobs.put(bad, Bytes::from_static(b"x")).await.is_err(),
            "{bad:?} refused"
        );
        assert!(blobs.get(bad).await.is_err(), "{bad:?} refused");
    }
}
