//! Search: the messages of a course matching a query, ranked, with highlighted snippets.
//!
//! Only readers of the course may search it (the same access check as history). The index
//! ([`crate::search::SearchIndex`]) is opened at the first search and brought up to the course's
//! head from the change log before each query, so what is found is what the store holds: an
//! edit is found by its new words only, a deleted message never. Hits carry the message with
//! its reply preview and thread counts but an empty `readBy`.

use std::sync::Arc;

use super::courses::Need;
use super::Engine;
use crate::error::{Error, Result};
use crate::model::Actor;
use crate::search::{SearchHit, SearchIndex};

/// The most hits one search returns.
pub const MAX_SEARCH_LIMIT: u32 = 50;
/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

impl Engine {
    async fn search_index(&self) -> Result<Arc<SearchIndex>> {
        self.inner
            .search
            .get_or_try_init(|| async {
                let dir = self.inner.search_dir.clone();
                let epoch = self.inner.epoch.clone();
                let index =
                    tokio::task::spawn_blocking(move || SearchIndex::open(dir.as_deref(), &epoch))
                        .await
                        .map_err(Error::storage)??;
                Ok(Arc::new(index))
            })
            .await
            .cloned()
    }

    /// The messages of a course matching every word of `query`, best first, at most `limit`
    /// (default 20, at most 50), created before seq `before` when given (participants and
    /// admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn search(
        &self,
        actor: &Actor,
        course_id: &str,
        query: &str,
        limit: Option<u32>,
        before: Option<u64>,
    ) -> Result<Vec<SearchHit>> {
        self.alive()?;
        self.access(actor, course_id, Need::Read).await?;
        let query = query.trim();
        if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::validation(format!(
                "q must be 1 to {MAX_QUERY_CHARS} characters"
            )));
        }
        let limit = limit.unwrap_or(20);
        if limit == 0 || limit > MAX_SEARCH_LIMIT {
            return Err(Error::validation(format!(
                "limit must be 1 to {MAX_SEARCH_LIMIT}"
            )));
        }
        let index = self.search_index().await?;
        index.catch_up(self.inner.store.as_ref(), course_id).await?;
        let (course, q) = (course_id.to_string(), query.to_string());
        let searcher = index.clone();
        let ranking = tokio::task::spawn_blocking(move || {
            searcher.query(&course, &q, limit as usize, before)
        })
        .await
        .map_err(Error::storage)??;
        let mut found = Vec::with_capacity(ranking.hits.len());
        let mut scores = Vec::with_capacity(ranking.hits.len());
        for (id, score) in ranking.hits {
            // The index is at the head it read; a change since is the store's to tell.
            match self.inner.store.message(&id).await? {
                Some(m) if !m.is_deleted && m.course_id == course_id => {
                    found.push(m);
                    scores.push(score);
                }
                _ => {}
            }
        }
        // Hits lie anywhere in the history: reading the read marks of the span between them
        // would cost as much as the span, so hits leave `readBy` empty (history and
        // `Engine::message` fill it).
        self.fill_links(course_id, &mut found).await?;
        let texts: Vec<&str> = found.iter().map(|m| m.message.as_str()).collect();
        let highlights = index.highlights(ranking.query.as_ref(), &texts)?;
        Ok(found
            .into_iter()
            .zip(scores)
            .zip(highlights)
            .map(|((message, score), highlight)| SearchHit {
                message,
                score,
                highlight,
            })
            .collect())
    }
}
