//! History pages: which slice of a course's timeline a query asks for.
//!
//! Positions count messages from the oldest (0). Page 1 is the newest `limit` messages; every page
//! lists oldest first. `before` / `after` cut by creation seq, for infinite scroll and catch-up.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Message;

/// A history request (`?page=&limit=&before=&after=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// 1-based page, newest first (default 1). Ignored with `before` / `after`.
    pub page: Option<u32>,
    /// Page size (default 50, at most 100; larger values are capped).
    pub limit: Option<u32>,
    /// Only messages created before this seq (the newest `limit` of them).
    pub before: Option<u64>,
    /// Only messages created after this seq (the oldest `limit` of them).
    pub after: Option<u64>,
}

/// The contract's `pagination` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// The page served (1 for `before` / `after` queries).
    pub page: u32,
    /// The page size used.
    pub limit: u32,
    /// Messages in the course, tombstones included.
    pub total: u64,
    /// Pages of `limit` in the course.
    pub total_pages: u64,
    /// Whether more messages lie beyond this page in the direction of the query (older for pages
    /// and `before`, newer for `after`).
    pub has_more: bool,
}

/// A page of history: messages oldest first, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Where the page stands.
    pub pagination: Pagination,
}

/// The positions `[start, end)` a query selects, given the course's total and the positions of
/// its `before` / `after` bounds (`before_pos`: messages older than `before`; `after_pos`:
/// messages at or older than `after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slice {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) page: u32,
    pub(crate) limit: u32,
    pub(crate) has_more: bool,
}

pub(crate) fn resolve(
    q: &HistoryQuery,
    default_limit: u32,
    max_limit: u32,
    total: u64,
    before_pos: Option<u64>,
    after_pos: Option<u64>,
) -> Result<Slice> {
    let limit = q.limit.unwrap_or(default_limit);
    if limit == 0 {
        return Err(Error::validation("limit must be at least 1"));
    }
    let limit = limit.min(max_limit);
    let l = u64::from(limit);
    if before_pos.is_some() || after_pos.is_some() {
        let upper = before_pos.unwrap_or(total).min(total);
        let (start, end, has_more) = match after_pos {
            Some(a) => {
                let start = a.min(upper);
                let end = (start + l).min(upper);
                (start, end, end < upper)
            }
            None => {
                let start = upper.saturating_sub(l);
                (start, upper, start > 0)
            }
        };
        return Ok(Slice {
            start,
            end,
            page: 1,
            limit,
            has_more,
        });
    }
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(Error::validation("page must be at least 1"));
    }
    let skip = u64::from(page - 1).saturating_mul(l);
    let end = total.saturating_sub(skip);
    let start = end.saturating_sub(l);
    Ok(Slice {
        start,
        end,
        page,
        limit,
        has_more: start > 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(page: Option<u32>, limit: Option<u32>) -> HistoryQuery {
        HistoryQuery {
            page,
            limit,
            ..Default::default()
        }
    }

    #[test]
    fn page_one_is_the_newest() {
        let s = resolve(&q(None, Some(10)), 50, 100, 25, None, None).unwrap();
        assert_eq!((s.start, s.end, s.has_more), (15, 25, true));
        let s = resolve(&q(Some(3), Some(10)), 50, 100, 25, None, None).unwrap();
        assert_eq!((s.start, s.end, s.has_more), (0, 5, false));
        let s = resolve(&q(Some(9), Some(10)), 50, 100, 25, None, None).unwrap();
        assert_eq!((s.start, s.end), (0, 0));
    }

    #[test]
    fn limits_are_checked_and_capped() {
        assert!(resolve(&q(None, Some(0)), 50, 100, 5, None, None).is_err());
        assert!(resolve(&q(Some(0), None), 50, 100, 5, None, None).is_err());
        assert_eq!(
            resolve(&q(None, Some(1000)), 50, 100, 500, None, None)
                .unwrap()
                .limit,
            100
        );
    }

    #[test]
    fn before_and_after_cut_by_position() {
        let s = resolve(&q(None, Some(3)), 50, 100, 10, Some(5), None).unwrap();
        assert_eq!((s.start, s.end, s.has_more), (2, 5, true));
        let s = resolve(&q(None, Some(3)), 50, 100, 10, None, Some(8)).unwrap();
        assert_eq!((s.start, s.end, s.has_more), (8, 10, false));
        let s = resolve(&q(None, Some(3)), 50, 100, 10, Some(6), Some(2)).unwrap();
        assert_eq!((s.start, s.end, s.has_more), (2, 5, true));
    }
}
