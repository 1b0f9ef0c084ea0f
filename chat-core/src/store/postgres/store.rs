//! The [`Store`] methods in SQL, with the transactions and locks the module docs describe.

use async_trait::async_trait;

use super::rows::{
    bound, db, decode_col, enc, get, get_u64, kind_from, kind_text, read_mark, role_from,
    role_text, row_limit, storable,
};
use super::PgStore;
use crate::error::{Error, Result};
use crate::model::{
    AuditEntry, Flag, Message, Participant, PushSubscription, Restriction, Role, Timestamp,
};
use crate::store::{
    Change, ChangeKind, CourseRecord, Inserted, ReadAdvance, ReadMark, Store, StoredFile,
    StoredUser, ThreadSummary, Update,
};

impl PgStore {
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

    async fn course_ids(&self) -> Result<Vec<String>> {
        sqlx::query("SELECT id FROM chat_courses ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db("list courses"))?
            .iter()
            .map(|row| get(row, 0))
            .collect()
    }

    async fn drop_course(&self, course_id: &str) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await.map_err(db("begin drop"))?;
        // Holds the course's seq lock: no send or change of it is in flight meanwhile.
        sqlx::query("SELECT last_seq FROM chat_heads WHERE course_id = $1 FOR UPDATE")
            .bind(course_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("lock course"))?;
        let files: Vec<String> = sqlx::query(
            "DELETE FROM chat_files WHERE (file::json ->> 'courseId') = $1 RETURNING id",
        )
        .bind(course_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("drop files"))?
        .iter()
        .map(|row| get(row, 0))
        .collect::<Result<_>>()?;
        for table in [
            "chat_messages",
            "chat_changes",
            "chat_heads",
            "chat_read_watermarks",
            "chat_read_marks",
            "chat_participants",
            "chat_restrictions",
            "chat_flags",
        ] {
            let sql = format!("DELETE FROM {table} WHERE course_id = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(course_id)
                .execute(&mut *tx)
                .await
                .map_err(db("drop course rows"))?;
        }
        sqlx::query("DELETE FROM chat_courses WHERE id = $1")
            .bind(course_id)
            .execute(&mut *tx)
            .await
            .map_err(db("drop course"))?;
        tx.commit().await.map_err(db("commit drop"))?;
        Ok(files)
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
                     (id, course_id, seq, position, sender_id, client_id, change_seq, thread_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $3, $9) \
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
        .bind(&message.thread_id)
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
        // A message never changes course, so this needs no lock.
        let home: String = sqlx::query("SELECT course_id FROM chat_messages WHERE id = $1")
            .bind(&update.message.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("find message"))?
            .map(|row| get(&row, 0))
            .transpose()?
            .ok_or(Error::NotFound("message"))?;
        update.check(&home)?;
        let Update {
            kind,
            mut message,
            expected_change_seq,
            reaction,
        } = update;
        let course = message.course_id.clone();

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
                 INSERT INTO chat_changes (course_id, seq, message_id, kind, message, reaction) \
                 VALUES ($1, $2, $3, $4, $5, $7) \
             ) \
             UPDATE chat_messages SET change_seq = $2, deleted = $6, pinned = $8 WHERE id = $3",
        )
        .bind(&course)
        .bind(seq)
        .bind(&message.id)
        .bind(kind_text(kind))
        .bind(enc(&message)?)
        .bind(message.is_deleted)
        .bind(reaction.as_ref().map(enc).transpose()?)
        .bind(message.pinned)
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
            "SELECT seq, kind, message, reaction FROM chat_changes \
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
                let reaction: Option<String> = get(row, 3)?;
                Ok(Change {
                    seq: get_u64(row, 0)?,
                    kind: kind_from(get(row, 1)?)?,
                    message: decode_col(row, 2)?,
                    reaction: reaction
                        .map(|r| serde_json::from_str(&r).map_err(Error::encoding))
                        .transpose()?,
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

    async fn thread_summaries(
        &self,
        course_id: &str,
        root_ids: &[String],
    ) -> Result<Vec<ThreadSummary>> {
        if root_ids.is_empty() {
            return Ok(Vec::new());
        }
        // The latest reply's creation snapshot (its `new` change) says when it was sent.
        let rows = sqlx::query(
            "SELECT t.thread_id, t.n, c.message FROM ( \
                 SELECT thread_id, count(*) AS n, max(seq) AS last FROM chat_messages \
                 WHERE course_id = $1 AND thread_id = ANY($2) GROUP BY thread_id \
             ) t JOIN chat_changes c ON c.course_id = $1 AND c.seq = t.last",
        )
        .bind(course_id)
        .bind(root_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read thread summaries"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let last: Message = decode_col(row, 2)?;
            out.push(ThreadSummary {
                root_id: get(row, 0)?,
                reply_count: get_u64(row, 1)?,
                last_reply_at: last.created_at,
            });
        }
        Ok(out)
    }

    async fn thread_replies(
        &self,
        root_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        sqlx::query(
            "SELECT c.message FROM chat_messages m \
             JOIN chat_changes c ON c.course_id = m.course_id AND c.seq = m.change_seq \
             WHERE m.thread_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3",
        )
        .bind(root_id)
        .bind(bound(after))
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read thread"))?
        .iter()
        .map(|row| decode_col(row, 0))
        .collect()
    }

    async fn pinned(&self, course_id: &str) -> Result<Vec<Message>> {
        sqlx::query(
            "SELECT c.message FROM chat_messages m \
             JOIN chat_changes c ON c.course_id = m.course_id AND c.seq = m.change_seq \
             WHERE m.course_id = $1 AND m.pinned ORDER BY m.seq",
        )
        .bind(course_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read pinned messages"))?
        .iter()
        .map(|row| decode_col(row, 0))
        .collect()
    }

    async fn put_restriction(&self, restriction: &Restriction) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_restrictions (course_id, user_id, restriction) VALUES ($1, $2, $3) \
             ON CONFLICT (course_id, user_id) DO UPDATE SET restriction = EXCLUDED.restriction",
        )
        .bind(&restriction.course_id)
        .bind(&restriction.user_id)
        .bind(enc(restriction)?)
        .execute(&self.pool)
        .await
        .map_err(db("put restriction"))?;
        Ok(())
    }

    async fn remove_restriction(&self, course_id: &str, user_id: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM chat_restrictions WHERE course_id = $1 AND user_id = $2")
                .bind(course_id)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(db("remove restriction"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn restriction(&self, course_id: &str, user_id: &str) -> Result<Option<Restriction>> {
        sqlx::query(
            "SELECT restriction FROM chat_restrictions WHERE course_id = $1 AND user_id = $2",
        )
        .bind(course_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read restriction"))?
        .map(|row| decode_col(&row, 0))
        .transpose()
    }

    async fn restrictions(&self, course_id: &str) -> Result<Vec<Restriction>> {
        sqlx::query(
            "SELECT restriction FROM chat_restrictions WHERE course_id = $1 ORDER BY user_id",
        )
        .bind(course_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read restrictions"))?
        .iter()
        .map(|row| decode_col(row, 0))
        .collect()
    }

    async fn insert_flag(&self, flag: &Flag) -> Result<Flag> {
        let inserted = sqlx::query(
            "INSERT INTO chat_flags (id, course_id, message_id, reporter_id, open, flag) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (message_id, reporter_id) WHERE open DO NOTHING",
        )
        .bind(&flag.id)
        .bind(&flag.course_id)
        .bind(&flag.message_id)
        .bind(&flag.reporter_id)
        .bind(flag.resolution.is_none())
        .bind(enc(flag)?)
        .execute(&self.pool)
        .await
        .map_err(db("insert flag"))?;
        if inserted.rows_affected() > 0 {
            return Ok(flag.clone());
        }
        sqlx::query(
            "SELECT flag FROM chat_flags WHERE message_id = $1 AND reporter_id = $2 AND open",
        )
        .bind(&flag.message_id)
        .bind(&flag.reporter_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read open flag"))?
        .map(|row| decode_col(&row, 0))
        .transpose()?
        // Resolved between the insert and this read: the caller may try again.
        .ok_or(Error::Conflict)
    }

    async fn update_flag(&self, flag: &Flag) -> Result<()> {
        let done = sqlx::query("UPDATE chat_flags SET open = $2, flag = $3 WHERE id = $1")
            .bind(&flag.id)
            .bind(flag.resolution.is_none())
            .bind(enc(flag)?)
            .execute(&self.pool)
            .await
            .map_err(db("update flag"))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("flag"));
        }
        Ok(())
    }

    async fn flag(&self, id: &str) -> Result<Option<Flag>> {
        sqlx::query("SELECT flag FROM chat_flags WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read flag"))?
            .map(|row| decode_col(&row, 0))
            .transpose()
    }

    async fn flags(&self, course_id: &str, open_only: bool) -> Result<Vec<Flag>> {
        sqlx::query(
            "SELECT flag FROM chat_flags WHERE course_id = $1 AND (open OR NOT $2) ORDER BY id",
        )
        .bind(course_id)
        .bind(open_only)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read flags"))?
        .iter()
        .map(|row| decode_col(row, 0))
        .collect()
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        sqlx::query("INSERT INTO chat_audit (id, course_id, entry) VALUES ($1, $2, $3)")
            .bind(&entry.id)
            .bind(&entry.course_id)
            .bind(enc(entry)?)
            .execute(&self.pool)
            .await
            .map_err(db("append audit entry"))?;
        Ok(())
    }

    async fn audit(
        &self,
        course_id: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        sqlx::query(
            "SELECT entry FROM chat_audit \
             WHERE ($1::text IS NULL OR course_id = $1) AND ($2::text IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(course_id)
        .bind(before)
        .bind(row_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read audit log"))?
        .iter()
        .map(|row| decode_col(row, 0))
        .collect()
    }

    async fn put_push_subscription(&self, subscription: &PushSubscription) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_push_subscriptions (user_id, endpoint, subscription) \
             VALUES ($1, $2, $3) ON CONFLICT (user_id, endpoint) \
             DO UPDATE SET subscription = EXCLUDED.subscription",
        )
        .bind(&subscription.user_id)
        .bind(&subscription.endpoint)
        .bind(enc(subscription)?)
        .execute(&self.pool)
        .await
        .map_err(db("put push subscription"))?;
        Ok(())
    }

    async fn remove_push_subscription(&self, user_id: &str, endpoint: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM chat_push_subscriptions WHERE user_id = $1 AND endpoint = $2")
                .bind(user_id)
                .bind(endpoint)
                .execute(&self.pool)
                .await
                .map_err(db("remove push subscription"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn push_subscriptions(&self, user_id: &str) -> Result<Vec<PushSubscription>> {
        sqlx::query(
            "SELECT subscription FROM chat_push_subscriptions WHERE user_id = $1 ORDER BY endpoint",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read push subscriptions"))?
        .iter()
        .map(|row| decode_col(row, 0))
        .collect()
    }

    async fn push_subscribers(
        &self,
        course_id: &str,
    ) -> Result<Vec<(String, Vec<PushSubscription>)>> {
        let subscriptions = sqlx::query(
            "SELECT s.subscription FROM chat_push_subscriptions s \
             JOIN chat_participants p ON p.user_id = s.user_id AND p.course_id = $1 \
             ORDER BY s.user_id, s.endpoint",
        )
        .bind(course_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read push subscribers"))?
        .iter()
        .map(|row| decode_col(row, 0))
        .collect::<Result<Vec<PushSubscription>>>()?;
        Ok(crate::store::by_user(subscriptions))
    }

    async fn flush(&self) -> Result<()> {
        // Every write committed, durably, before it returned.
        Ok(())
    }
}
