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

mod rows;
mod store;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, SqlSafeStr};

use crate::error::{Error, Result};
use rows::db;

/// The embedded migrations: version, description, SQL. Never edit one that has shipped (its
/// checksum is recorded); add the next version instead.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "chat store",
        include_str!("../../../migrations/postgres/0001_chat_store.sql"),
    ),
    (
        2,
        "reactions",
        include_str!("../../../migrations/postgres/0002_reactions.sql"),
    ),
    (
        3,
        "moderation",
        include_str!("../../../migrations/postgres/0003_moderation.sql"),
    ),
    (
        4,
        "threads",
        include_str!("../../../migrations/postgres/0004_threads.sql"),
    ),
    (
        5,
        "push subscriptions",
        include_str!("../../../migrations/postgres/0005_push.sql"),
    ),
];

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
