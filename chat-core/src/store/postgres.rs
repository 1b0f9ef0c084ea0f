//! The [`Store`] over PostgreSQL (cargo feature `postgres`): one database shared by several
//! server processes.
//!
//! The embedded backends keep a course's counters in memory behind a lock, which is only right
//! while one process owns the data. Here every node talks to the same database, so **nothing is
//! cached in the process**: heads, messages, watermarks and the epoch are read from PostgreSQL on
//! every call, and every rule that the key-value logic ([`kv`](super::kv)) keeps with a lock is
//! kept by the database instead. The semantics of each method are exactly kv's; the conformance
//! suite runs against both.
//!
//! # Connecting
//!
//! ```no_run
//! # async fn demo() -> chat_core::Result<()> {
//! use std::sync::Arc;
//! use chat_core::store::postgres::PgStore;
//!
//! let store = PgStore::builder("postgres://chat@db.internal:5432/chat")
//!     .schema("chat")
//!     .max_connections(20)
//!     .connect()
//!     .await?;
//! let engine = chat_core::Engine::builder().store(Arc::new(store)).open().await?;
//! # Ok(()) }
//! ```
//!
//! sqlx is built without a TLS backend for now: connections are plain TCP, and a URL with
//! `sslmode=require` is refused. Connection errors are [`Error::Storage`] with sqlx's reason
//! (refused, authentication, unknown database); data that does not decode is
//! [`Error::Corrupt`].
//!
//! # Seqs: one counter row per course
//!
//! `chat_heads(course_id, last_seq, message_count)` holds a course's counters. A new message or
//! a change to one takes its seq with `INSERT ... ON CONFLICT DO UPDATE SET last_seq = last_seq +
//! 1 ... RETURNING` (an `UPDATE ... RETURNING` for edits), and writes the log entry, the message
//! row, the client-id key and the sender's read watermark **in the same transaction**. Never
//! `max(seq) + 1`: that would let two nodes take the same seq.
//!
//! The counter row stays locked until the transaction ends, so the next writer of the course
//! waits for the commit (or the rollback, which gives the seq back) before it takes a seq. Hence:
//! **the seqs of a course commit one after the other, in order, and a reader never sees seq N+1
//! without everything up to N** (PostgreSQL makes a commit visible before it releases the row
//! lock). Other code relies on this: a node told that seq N is committed may read every change up
//! to N, and a gap in what it reads can only mean a bug.
//!
//! # Idempotent sends
//!
//! `UNIQUE (course_id, sender_id, client_id)` on `chat_messages` is the de-duplication. A send
//! looks the key up first (a retry takes no lock); a concurrent twin that slips past the look-up
//! meets the constraint (`ON CONFLICT DO NOTHING`, which waits for the other transaction), rolls
//! its transaction back — the seq it took included — and answers [`Inserted::Duplicate`] with the
//! original. Never an error, never two messages.
//!
//! # Durability
//!
//! A write returns once its transaction has committed. With PostgreSQL's default
//! `synchronous_commit = on` the commit record is flushed to the WAL before the commit returns,
//! so every write is durable when the call returns, as the [`Store`] contract asks; a server set
//! to `synchronous_commit = off` would weaken this (the database's choice, not ours).
//! [`flush`](Store::flush) has nothing left to do.
//!
//! # Tables
//!
//! All in the store's own schema (default `chat`), which every pooled connection selects with
//! `search_path`, so several stores (tests, tenants) can share one database. Text keys use the
//! `"C"` collation: ordered results come back in byte order, like kv's.
//!
//! | table | what |
//! |---|---|
//! | `chat_meta` | the epoch, a ULID made by the first `connect` |
//! | `chat_users`, `chat_courses`, `chat_files` | [`StoredUser`], [`CourseRecord`], [`StoredFile`] as serde JSON |
//! | `chat_participants` | `(course, user) -> role`, indexed both ways |
//! | `chat_heads` | per course: last seq and message count (the lock above) |
//! | `chat_changes` | the change log: `(course, seq) -> kind, message JSON` |
//! | `chat_messages` | per message: creation seq, timeline position, client id, current change seq |
//! | `chat_read_watermarks` / `chat_read_marks` | each reader's watermark / its history |
//!
//! A page of the timeline is a range scan of the `(course_id, position)` index and
//! [`position_of_seq`](Store::position_of_seq) one backward step of `(course_id, seq)`, so neither
//! counts rows, whatever the size of the course.
//!
//! # Migrations
//!
//! The schema is versioned with sqlx's migrator; the SQL files under
//! `chat-core/migrations/postgres/` are embedded in the binary and applied by
//! [`PgStore::connect`], recorded in the schema's own `_chat_migrations` table. The migrator holds
//! a PostgreSQL advisory lock (per database) while it creates the schema and applies what is
//! missing, so processes starting at once against a fresh database all succeed: the first
//! migrates, the others wait and find nothing to do. It runs on a connection of its own, closed
//! afterwards, so a failure cannot leave that session lock held by a connection of the store's
//! pool.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row, SqlSafeStr};

use super::{
    Change, ChangeKind, CourseRecord, Inserted, ReadAdvance, ReadMark, Store, StoredFile,
    StoredUser, Update,
};
use crate::error::{Error, Result};
use crate::model::{Message, Participant, Role, Timestamp};

/// The embedded migrations: version, description, SQL. Never edit one that has shipped (its
/// checksum is recorded); add the next version instead.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "chat store",
    include_str!("../../migrations/postgres/0001_chat_store.sql"),
)];

/// The schema a store uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "chat";

/// A [`Store`] over a PostgreSQL database, through a pool of connections.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    schema: String,
}

/// Options for [`PgStore`]: which schema, how many connections.
#[derive(Debug, Clone)]
pub struct PgStoreBuilder {
    url: String,
    schema: String,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl PgStoreBuilder {
    /// Keep every table in this schema (created if missing). Lowercase ASCII letters, digits and
    /// `_`, not starting with a digit, at most 63 bytes. Default [`DEFAULT_SCHEMA`].
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The most connections the pool opens (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a call waits for a free connection (or a new one) before failing (default 30 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Connects, creates the schema or brings it up to date, and makes the epoch if the store is
    /// new.
    pub async fn connect(self) -> Result<PgStore> {
        check_schema(&self.schema)?;
        let options = PgConnectOptions::from_str(&self.url)
            .map_err(|e| Error::storage_during("postgres: bad connection url", e))?
            .options([("search_path", self.schema.as_str())]);

        // One plain connection first: its errors say what is wrong (refused, authentication, no
        // such database), where a pool's only say that it timed out.
        let probe =
            tokio::time::timeout(self.acquire_timeout, PgConnection::connect_with(&options))
                .await
                .map_err(|_| Error::Storage("postgres connect: no answer in time".into()))?
                .map_err(db("connect"))?;
        probe.close().await.map_err(db("close"))?;

        // Migrate on a connection of its own (a pool of one, closed afterwards): see the module
        // docs. A pool, not the bare connection, because sqlx's migrator awaited on a `&mut
        // PgConnection` makes this future lose `Send` (its `Acquire` is not general enough), and
        // a server spawns `connect` in a task.
        let migrating = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(db("connect"))?;
        let prepared = prepare(&migrating, &self.schema).await;
        migrating.close().await;
        prepared?;

        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(db("connect"))?;
        Ok(PgStore {
            pool,
            schema: self.schema,
        })
    }
}

/// Applies the migrations and makes the epoch, under the migrator's advisory lock.
async fn prepare(pool: &PgPool, schema: &str) -> Result<()> {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.create_schema(schema.to_string());
    migrator.dangerous_set_table_name(format!("{schema}._chat_migrations"));
    migrator
        .run(pool)
        .await
        .map_err(|e| Error::storage_during(format!("postgres: migrating schema {schema}"), e))?;
    // Whoever comes first makes the epoch; everyone after keeps it.
    sqlx::query(
        "INSERT INTO chat_meta (singleton, epoch) VALUES (true, $1) ON CONFLICT DO NOTHING",
    )
    .bind(ulid::Ulid::new().to_string())
    .execute(pool)
    .await
    .map_err(db("make epoch"))?;
    Ok(())
}

/// A schema name that needs no quoting anywhere (`search_path`, `CREATE SCHEMA`).
fn check_schema(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 && !schema.starts_with("pg_") {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "bad postgres schema name {schema:?}: lowercase ASCII letters, digits and _, \
             not starting with a digit or pg_, at most 63 bytes"
        )))
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and uses the
    /// [`DEFAULT_SCHEMA`], creating or migrating it.
    pub async fn connect(url: &str) -> Result<PgStore> {
        Self::builder(url).connect().await
    }

    /// Like [`connect`](Self::connect), with every table in `schema` (created if missing): one
    /// database can hold several independent stores.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<PgStore> {
        Self::builder(url).schema(schema).connect().await
    }

    /// Options before connecting.
    pub fn builder(url: &str) -> PgStoreBuilder {
        PgStoreBuilder {
            url: url.to_string(),
            schema: DEFAULT_SCHEMA.to_string(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        }
    }

    /// The schema holding this store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Closes every connection of the pool, waiting for calls in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn current_by_client_id(
        &self,
        course: &str,
        sender: &str,
        client_id: &str,
    ) -> Result<Option<Message>> {
        sqlx::query(
            "SELECT c.message FROM chat_messages m \
             JOIN chat_changes c ON c.course_id = m.course_id AND c.seq = m.change_seq \
             WHERE m.course_id = $1 AND m.sender_id = $2 AND m.client_id = $3",
        )
        .bind(course)
        .bind(sender)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("find client id"))?
        .map(|row| decode_col::<Message>(&row, 0))
        .transpose()
    }
}

/// Maps a database error to ours, saying what was being done.
fn db(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
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

fn enc<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::encoding)
}

fn dec<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(Error::corrupt)
}

/// A JSON column of `row`, decoded.
fn decode_col<T: DeserializeOwned>(row: &PgRow, index: usize) -> Result<T> {
    let text: &str = row.try_get(index).map_err(db("read row"))?;
    dec(text)
}

fn get<'r, T>(row: &'r PgRow, index: usize) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(index).map_err(db("read row"))
}

/// A stored seq or count (never negative).
fn get_u64(row: &PgRow, index: usize) -> Result<u64> {
    let n: i64 = get(row, index)?;
    u64::try_from(n).map_err(|_| Error::corrupt(format!("negative number {n} in the database")))
}

/// A bound of a range query: seqs above `i64::MAX` do not exist, so clamping keeps the meaning.
fn bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A seq to store: one beyond `i64::MAX` cannot be.
fn storable(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| Error::validation(format!("seq {seq} is out of range")))
}

fn row_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn timestamp(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millis(ms).ok_or_else(|| Error::corrupt(format!("bad timestamp {ms}")))
}

fn role_text(role: Role) -> Result<String> {
    match serde_json::to_value(role) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        other => Err(Error::encoding(format!("encode role: {other:?}"))),
    }
}

fn role_from(text: String) -> Result<Role> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(Error::corrupt)
}

fn kind_text(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::New => "new",
        ChangeKind::Edited => "edited",
        ChangeKind::Deleted => "deleted",
    }
}

fn kind_from(text: &str) -> Result<ChangeKind> {
    match text {
        "new" => Ok(ChangeKind::New),
        "edited" => Ok(ChangeKind::Edited),
        "deleted" => Ok(ChangeKind::Deleted),
        other => Err(Error::corrupt(format!("unknown change kind {other:?}"))),
    }
}

/// A `(user_id, seq, at_ms)` row as a mark.
fn read_mark(row: &PgRow) -> Result<ReadMark> {
    Ok(ReadMark {
        user_id: get(row, 0)?,
        seq: get_u64(row, 1)?,
        at: timestamp(get(row, 2)?)?,
    })
}

#[async_trait]
impl Store for PgStore {
    async fn put_user(&self, user: &StoredUser) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_users (id, profile) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET profile = EXCLUDED.profile",
        )
        .bind(&user.id)
        .bind(enc(user)?)
        .execute(&self.pool)
        .await
        .map_err(db("put user"))?;
        Ok(())
    }

    async fn user(&self, id: &str) -> Result<Option<StoredUser>> {
        sqlx::query("SELECT profile FROM chat_users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read user"))?
            .map(|row| decode_col(&row, 0))
            .transpose()
    }

    async fn put_course(&self, course: &CourseRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_courses (id, record) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
        )
        .bind(&course.id)
        .bind(enc(course)?)
        .execute(&self.pool)
        .await
        .map_err(db("put course"))?;
        Ok(())
    }

    async fn course(&self, id: &str) -> Result<Option<CourseRecord>> {
        sqlx::query("SELECT record FROM chat_courses WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read course"))?
            .map(|row| decode_col(&row, 0))
            .transpose()
    }

    async fn put_participant(&self, course_id: &str, user_id: &str, role: Role) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_participants (course_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (course_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        )
        .bind(course_id)
        .bind(user_id)
        .bind(role_text(role)?)
        .execute(&self.pool)
        .await
        .map_err(db("put participant"))?;
        Ok(())
    }

    async fn remove_participant(&self, course_id: &str, user_id: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM chat_participants WHERE course_id = $1 AND user_id = $2")
                .bind(course_id)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(db("remove participant"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn participant(&self, course_id: &str, user_id: &str) -> Result<Option<Role>> {
        sqlx::query("SELECT role FROM chat_participants WHERE course_id = $1 AND user_id = $2")
            .bind(course_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read participant"))?
            .map(|row| role_from(get(&row, 0)?))
            .transpose()
    }

    async fn participants(&self, course_id: &str) -> Result<Vec<Participant>> {
        let rows = sqlx::query(
            "SELECT user_id, role FROM chat_participants WHERE course_id = $1 ORDER BY user_id",
        )
        .bind(course_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read participants"))?;
        rows.iter()
            .map(|row| {
                Ok(Participant {
                    user_id: get(row, 0)?,
                    role: role_from(get(row, 1)?)?,
                })
            })
            .collect()
    }

    async fn courses_of(&self, user_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT course_id FROM chat_participants WHERE user_id = $1 ORDER BY course_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read courses of user"))?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    async fn insert_message(&self, mut message: Message) -> Result<Inserted> {
        let course = message.course_id.clone();
        let sender = message.sender.id.clone();
        let client_id = message.client_id.clone();
        // A retry finds its original without taking the course's lock.
        if let Some(cid) = &client_id {
            if let Some(original) = self.current_by_client_id(&course, &sender, cid).await? {
                return Ok(Inserted::Duplicate(original));
            }
        }

        let mut tx = self.pool.begin().await.map_err(db("begin send"))?;
        // Takes the seq, and the course's lock until commit.
        let head = sqlx::query(
            "INSERT INTO chat_heads AS h (course_id, last_seq, message_count) VALUES ($1, 1, 1) \
             ON CONFLICT (course_id) DO UPDATE \
             SET last_seq = h.last_seq + 1, message_count = h.message_count + 1 \
             RETURNING h.last_seq, h.message_count",
        )
        .bind(&course)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("take seq"))?;
        let seq: i64 = get(&head, 0)?;
        let count: i64 = get(&head, 1)?;
        let position = count - 1;
        message.seq = get_u64(&head, 0)?;
        message.change_seq = message.seq;
        let at = message.created_at.as_millis();
        // The message row, its log entry and the sender's watermark, all or nothing: a client id
        // taken meanwhile by a concurrent send writes none of them.
        let stored = sqlx::query(
            "WITH m AS ( \
                 INSERT INTO chat_messages \
                     (id, course_id, seq, position, sender_id, client_id, change_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $3) \
                 ON CONFLICT (course_id, sender_id, client_id) DO NOTHING \
                 RETURNING course_id, seq, sender_id \
             ), l AS ( \
                 INSERT INTO chat_changes (course_id, seq, message_id, kind, message) \
                 SELECT course_id, seq, $1, 'new', $7 FROM m \
             ), w AS ( \
                 INSERT INTO chat_read_watermarks (course_id, user_id, seq, at_ms) \
                 SELECT course_id, sender_id, seq, $8 FROM m \
                 ON CONFLICT (course_id, user_id) \
                 DO UPDATE SET seq = EXCLUDED.seq, at_ms = EXCLUDED.at_ms \
             ), r AS ( \
                 INSERT INTO chat_read_marks (course_id, user_id, seq, at_ms) \
                 SELECT course_id, sender_id, seq, $8 FROM m \
                 ON CONFLICT (course_id, user_id, seq) DO UPDATE SET at_ms = EXCLUDED.at_ms \
             ) \
             SELECT count(*) FROM m",
        )
        .bind(&message.id)
        .bind(&course)
        .bind(seq)
        .bind(position)
        .bind(&sender)
        .bind(&client_id)
        .bind(enc(&message)?)
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("store message"))?;
        let stored: i64 = get(&stored, 0)?;
        if stored == 0 {
            // The twin committed first: give the seq back and answer with its message.
            tx.rollback().await.map_err(db("roll back send"))?;
            let cid = client_id.as_deref().unwrap_or_default();
            let original = self
                .current_by_client_id(&course, &sender, cid)
                .await?
                .ok_or_else(|| Error::corrupt("a client id conflict without its message"))?;
            return Ok(Inserted::Duplicate(original));
        }
        tx.commit().await.map_err(db("commit send"))?;
        Ok(Inserted::New(message))
    }

    async fn update_message(&self, update: Update) -> Result<Message> {
        let Update {
            kind,
            mut message,
            expected_change_seq,
        } = update;
        if kind == ChangeKind::New {
            return Err(Error::validation(
                "update_message takes an edit or a deletion",
            ));
        }
        let course = message.course_id.clone();
        // A message never changes course, so this needs no lock.
        let home: String = sqlx::query("SELECT course_id FROM chat_messages WHERE id = $1")
            .bind(&message.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("find message"))?
            .map(|row| get(&row, 0))
            .transpose()?
            .ok_or(Error::NotFound("message"))?;
        if home != course {
            return Err(Error::validation("a message cannot move to another course"));
        }

        let mut tx = self.pool.begin().await.map_err(db("begin update"))?;
        let head = sqlx::query(
            "UPDATE chat_heads SET last_seq = last_seq + 1 WHERE course_id = $1 RETURNING last_seq",
        )
        .bind(&course)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("take seq"))?
        .ok_or_else(|| Error::corrupt("a message in a course without counters"))?;
        let seq: i64 = get(&head, 0)?;
        // Read under the course's lock: only a holder of it changes a message.
        let row = sqlx::query("SELECT change_seq, deleted FROM chat_messages WHERE id = $1")
            .bind(&message.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db("read message"))?;
        let current_change_seq = get_u64(&row, 0)?;
        let deleted: bool = get(&row, 1)?;
        if current_change_seq != expected_change_seq || deleted {
            tx.rollback().await.map_err(db("roll back update"))?;
            return Err(Error::Conflict);
        }
        message.change_seq = get_u64(&head, 0)?;
        if kind == ChangeKind::Deleted {
            // Scrub what the message said from every earlier snapshot.
            let rows = sqlx::query(
                "SELECT seq, message FROM chat_changes WHERE course_id = $1 AND message_id = $2",
            )
            .bind(&course)
            .bind(&message.id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("read message history"))?;
            let at = message.deleted_at.unwrap_or(message.updated_at);
            let mut seqs = Vec::with_capacity(rows.len());
            let mut scrubbed = Vec::with_capacity(rows.len());
            for row in &rows {
                let old: Message = decode_col(row, 1)?;
                let change_seq = old.change_seq;
                let mut tomb = old.into_tombstone(at);
                tomb.change_seq = change_seq;
                seqs.push(get::<i64>(row, 0)?);
                scrubbed.push(enc(&tomb)?);
            }
            sqlx::query(
                "UPDATE chat_changes AS c SET message = u.message \
                 FROM unnest($2::bigint[], $3::text[]) AS u(seq, message) \
                 WHERE c.course_id = $1 AND c.seq = u.seq",
            )
            .bind(&course)
            .bind(&seqs)
            .bind(&scrubbed)
            .execute(&mut *tx)
            .await
            .map_err(db("scrub message history"))?;
        }
        sqlx::query(
            "WITH l AS ( \
                 INSERT INTO chat_changes (course_id, seq, message_id, kind, message) \
                 VALUES ($1, $2, $3, $4, $5) \
             ) \
             UPDATE chat_messages SET change_seq = $2, deleted = $6 WHERE id = $3",
        )
        .bind(&course)
        .bind(seq)
        .bind(&message.id)
        .bind(kind_text(kind))
        .bind(enc(&message)?)
        .bind(message.is_deleted)
        .execute(&mut *tx)
        .await
        .map_err(db("store change"))?;
        tx.commit().await.map_err(db("commit update"))?;
        Ok(message)
    }

    async fn message(&self, id: &str) -> Result<Option<Message>> {
        sqlx::query(
            "SELECT c.message FROM chat_messages m \
             JOIN chat_changes c ON c.course_id = m.course_id AND c.seq = m.change_seq \
             WHERE m.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read message"))?
        .map(|row| decode_col(&row, 0))
        .transpose()
    }

    async fn last_seq(&self, course_id: &str) -> Result<u64> {
        sqlx::query("SELECT last_seq FROM chat_heads WHERE course_id = $1")
            .bind(course_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read last seq"))?
            .map_or(Ok(0), |row| get_u64(&row, 0))
    }

    async fn last_seqs(&self, course_ids: &[String]) -> Result<Vec<u64>> {
        if course_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT coalesce(h.last_seq, 0) \
             FROM unnest($1::text[]) WITH ORDINALITY AS q(course_id, ord) \
             LEFT JOIN chat_heads h ON h.course_id = q.course_id \
             ORDER BY q.ord",
        )
        .bind(course_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read last seqs"))?;
        rows.iter().map(|row| get_u64(row, 0)).collect()
    }

    async fn epoch(&self) -> Result<String> {
        sqlx::query("SELECT epoch FROM chat_meta")
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read epoch"))?
            .map(|row| get(&row, 0))
            .transpose()?
            .ok_or_else(|| Error::corrupt("the store has no epoch"))
    }

    async fn changes(
        &self,
        course_id: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Change>> {
        if upto <= after || limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT seq, kind, message FROM chat_changes \
             WHERE course_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        )
        .bind(course_id)
        .bind(bound(after))
        .bind(bound(upto))
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read changes"))?;
        rows.iter()
            .map(|row| {
                Ok(Change {
                    seq: get_u64(row, 0)?,
                    kind: kind_from(get(row, 1)?)?,
                    message: decode_col(row, 2)?,
                })
            })
            .collect()
    }

    async fn message_count(&self, course_id: &str) -> Result<u64> {
        sqlx::query("SELECT message_count FROM chat_heads WHERE course_id = $1")
            .bind(course_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read message count"))?
            .map_or(Ok(0), |row| get_u64(&row, 0))
    }

    async fn messages_at(&self, course_id: &str, from: u64, limit: usize) -> Result<Vec<Message>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT c.message FROM chat_messages m \
             JOIN chat_changes c ON c.course_id = m.course_id AND c.seq = m.change_seq \
             WHERE m.course_id = $1 AND m.position >= $2 \
             ORDER BY m.position LIMIT $3",
        )
        .bind(course_id)
        .bind(bound(from))
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read timeline"))?;
        rows.iter().map(|row| decode_col(row, 0)).collect()
    }

    async fn position_of_seq(&self, course_id: &str, seq: u64) -> Result<u64> {
        let row = sqlx::query(
            "SELECT position FROM chat_messages WHERE course_id = $1 AND seq < $2 \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(course_id)
        .bind(bound(seq))
        .fetch_optional(&self.pool)
        .await
        .map_err(db("find position"))?;
        match row {
            Some(row) => Ok(get_u64(&row, 0)? + 1),
            None => Ok(0),
        }
    }

    async fn advance_read(
        &self,
        course_id: &str,
        user_id: &str,
        seq: u64,
        at: Timestamp,
    ) -> Result<ReadAdvance> {
        let stored_seq = storable(seq)?;
        // One statement: the watermark moves only up, and its history gets the step.
        let advanced = sqlx::query(
            "WITH w AS ( \
                 INSERT INTO chat_read_watermarks AS w (course_id, user_id, seq, at_ms) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (course_id, user_id) \
                 DO UPDATE SET seq = EXCLUDED.seq, at_ms = EXCLUDED.at_ms \
                 WHERE w.seq < EXCLUDED.seq \
                 RETURNING seq \
             ) \
             INSERT INTO chat_read_marks (course_id, user_id, seq, at_ms) \
             SELECT $1, $2, seq, $4 FROM w \
             ON CONFLICT (course_id, user_id, seq) DO UPDATE SET at_ms = EXCLUDED.at_ms \
             RETURNING seq",
        )
        .bind(course_id)
        .bind(user_id)
        .bind(stored_seq)
        .bind(at.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(db("advance read"))?;
        if advanced.is_some() {
            return Ok(ReadAdvance::Advanced(ReadMark {
                user_id: user_id.to_string(),
                seq,
                at,
            }));
        }
        // Already there: the earliest mark that covers `seq` says when it was first read.
        let first = sqlx::query(
            "SELECT user_id, seq, at_ms FROM chat_read_marks \
             WHERE course_id = $1 AND user_id = $2 AND seq >= $3 ORDER BY seq LIMIT 1",
        )
        .bind(course_id)
        .bind(user_id)
        .bind(stored_seq)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read marks"))?;
        match first {
            Some(row) => Ok(ReadAdvance::Already(read_mark(&row)?)),
            None => self
                .read_watermark(course_id, user_id)
                .await?
                .map(ReadAdvance::Already)
                .ok_or_else(|| Error::corrupt("a watermark that is neither moved nor there")),
        }
    }

    async fn read_watermark(&self, course_id: &str, user_id: &str) -> Result<Option<ReadMark>> {
        sqlx::query(
            "SELECT user_id, seq, at_ms FROM chat_read_watermarks \
             WHERE course_id = $1 AND user_id = $2",
        )
        .bind(course_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read watermark"))?
        .map(|row| read_mark(&row))
        .transpose()
    }

    async fn read_marks(&self, course_id: &str, lo: u64, hi: u64) -> Result<Vec<ReadMark>> {
        if i64::try_from(lo).is_err() {
            return Ok(Vec::new());
        }
        // For every reader whose watermark reached `lo`: their marks in [lo, hi], then their
        // first mark above hi (still at least lo), by user then seq, like kv's scan.
        let rows = sqlx::query(
            "SELECT w.user_id, r.seq, r.at_ms FROM chat_read_watermarks w \
             CROSS JOIN LATERAL ( \
                 (SELECT seq, at_ms FROM chat_read_marks \
                  WHERE course_id = w.course_id AND user_id = w.user_id \
                    AND seq >= $2 AND seq <= $3) \
                 UNION ALL \
                 (SELECT seq, at_ms FROM chat_read_marks \
                  WHERE course_id = w.course_id AND user_id = w.user_id \
                    AND seq >= $2 AND seq > $3 \
                  ORDER BY seq LIMIT 1) \
             ) r \
             WHERE w.course_id = $1 AND w.seq >= $2 \
             ORDER BY w.user_id, r.seq",
        )
        .bind(course_id)
        .bind(bound(lo))
        .bind(bound(hi))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read marks"))?;
        rows.iter().map(read_mark).collect()
    }

    async fn put_file(&self, file: &StoredFile) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_files (id, file) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET file = EXCLUDED.file",
        )
        .bind(&file.id)
        .bind(enc(file)?)
        .execute(&self.pool)
        .await
        .map_err(db("put file"))?;
        Ok(())
    }

    async fn file(&self, id: &str) -> Result<Option<StoredFile>> {
        sqlx::query("SELECT file FROM chat_files WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read file"))?
            .map(|row| decode_col(&row, 0))
            .transpose()
    }

    async fn flush(&self) -> Result<()> {
        // Every write committed, durably, before it returned.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server spawns `connect` in a task: its future must be `Send` (sqlx's migrator makes
    /// that easy to lose).
    #[test]
    fn connecting_is_send() {
        fn is_send<T: Send>(_: &T) {}
        is_send(&PgStore::connect("postgres://nobody@127.0.0.1:1/none"));
    }

    #[test]
    fn schema_names_need_no_quoting() {
        for ok in ["chat", "_x", "chat_test_01arz3ndektsv4rrffq69g5fav"] {
            assert!(check_schema(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Chat",
            "9a",
            "a-b",
            "a b",
            "a;b",
            "pg_temp",
            "\u{e9}t\u{e9}",
            &long,
        ] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }
}
