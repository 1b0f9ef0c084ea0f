//! Writes that finish even if the caller stops waiting.

use std::future::Future;

use crate::error::{Error, Result};

/// Runs a write with the publish that must follow it to the end even if the caller stops
/// waiting: a REST client that disconnects mid-request drops its request's future, and a seq
/// taken but never published would hold back every later change of the course (a receipt stored
/// but never announced would leave the room's view behind). Outside a Tokio runtime the write runs
/// in place.
///
/// The write is spawned when this is called, not when the result is first awaited, so the
/// caller's future holds a task handle instead of the whole write: a connection handling a request
/// stays small.
pub(super) fn uncancellable<T: Send + 'static>(
    write: impl Future<Output = Result<T>> + Send + 'static,
) -> impl Future<Output = Result<T>> {
    let run = match tokio::runtime::Handle::try_current() {
        Ok(rt) => Uncancellable::Spawned(rt.spawn(write)),
        Err(_) => Uncancellable::InPlace(Box::pin(write)),
    };
    async move {
        match run {
            Uncancellable::Spawned(task) => match task.await {
                Ok(outcome) => outcome,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(Error::Closed),
            },
            Uncancellable::InPlace(write) => write.await,
        }
    }
}

/// How [`uncancellable`] runs its write.
enum Uncancellable<T> {
    Spawned(tokio::task::JoinHandle<Result<T>>),
    InPlace(std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send>>),
}
