//! Between rows and our types: database errors as ours, JSON columns, seqs and counts as
//! `u64` (never negative), roles and change kinds as text.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::model::{Role, Timestamp};
use crate::store::{ChangeKind, ReadMark};

/// Maps a database error to ours, saying what was being done.
pub(super) fn db(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| match e {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => {
            Error::Corrupt(format!("postgres {what}: {e}"))
        }
        e => Error::storage_during(format!("postgres {what}"), e),
    }
}

pub(super) fn enc<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::encoding)
}

pub(super) fn dec<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(Error::corrupt)
}

/// A JSON column of `row`, decoded.
pub(super) fn decode_col<T: DeserializeOwned>(row: &PgRow, index: usize) -> Result<T> {
    let text: &str = row.try_get(index).map_err(db("read row"))?;
    dec(text)
}

pub(super) fn get<'r, T>(row: &'r PgRow, index: usize) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(index).map_err(db("read row"))
}

/// A stored seq or count (never negative).
pub(super) fn get_u64(row: &PgRow, index: usize) -> Result<u64> {
    let n: i64 = get(row, index)?;
    u64::try_from(n).map_err(|_| Error::corrupt(format!("negative number {n} in the database")))
}

/// A bound of a range query: seqs above `i64::MAX` do not exist, so clamping keeps the meaning.
pub(super) fn bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A seq to store: one beyond `i64::MAX` cannot be.
pub(super) fn storable(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| Error::validation(format!("seq {seq} is out of range")))
}

pub(super) fn row_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn timestamp(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millis(ms).ok_or_else(|| Error::corrupt(format!("bad timestamp {ms}")))
}

pub(super) fn role_text(role: Role) -> Result<String> {
    match serde_json::to_value(role) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        other => Err(Error::encoding(format!("encode role: {other:?}"))),
    }
}

pub(super) fn role_from(text: String) -> Result<Role> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(Error::corrupt)
}

pub(super) fn kind_text(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::New => "new",
        ChangeKind::Edited => "edited",
        ChangeKind::Deleted => "deleted",
        ChangeKind::Reacted => "reacted",
        ChangeKind::Pinned => "pinned",
    }
}

pub(super) fn kind_from(text: &str) -> Result<ChangeKind> {
    match text {
        "new" => Ok(ChangeKind::New),
        "edited" => Ok(ChangeKind::Edited),
        "deleted" => Ok(ChangeKind::Deleted),
        "reacted" => Ok(ChangeKind::Reacted),
        "pinned" => Ok(ChangeKind::Pinned),
        other => Err(Error::corrupt(format!("unknown change kind {other:?}"))),
    }
}

/// A `(user_id, seq, at_ms)` row as a mark.
pub(super) fn read_mark(row: &PgRow) -> Result<ReadMark> {
    Ok(ReadMark {
        user_id: get(row, 0)?,
        seq: get_u64(row, 1)?,
        at: timestamp(get(row, 2)?)?,
    })
}
