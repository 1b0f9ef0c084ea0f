//! Full-text search: an embedded tantivy index that follows the store's change log.
//!
//! The store is the truth; the index is a cache of it kept in step by the spine. For every course
//! it remembers the seq it has indexed up to, and before answering a query about a course it
//! reads the course's change log after that seq (`Store::changes`) and applies it: a new message
//! is added, an edit replaces the document, a deletion removes it — so a deleted message is never
//! found, whichever node deleted it. The per-course seqs are saved with each commit of the index
//! (its commit payload, with the store's epoch), atomically with the documents; an index that is
//! missing, unreadable or from another store's history is started over and rebuilt from the log
//! as courses are searched.
//!
//! What is indexed: a message's text, its course and seq (for the `before` filter) and its id.
//! Texts are not stored in the index: hits are read back from the store in their current state,
//! and highlighted snippets made from that text.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::error::{Error, Result};
use crate::model::Message;
use crate::store::{ChangeKind, Store};

/// How many log entries a catch-up reads at a time.
const CATCH_UP_CHUNK: usize = 2_000;
/// The indexing thread's memory budget.
const WRITER_BYTES: usize = 32_000_000;

/// One hit of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    /// The message, as history shows it except `readBy`, which is left empty.
    pub message: Message,
    /// Its relevance (BM25; higher is better).
    pub score: f32,
    /// Up to 150 characters of its text around the matched words, HTML-escaped, each match in
    /// `<b>…</b>`.
    pub highlight: String,
}

/// What [`SearchIndex::query`] found.
pub struct Ranking {
    /// Message ids and scores, best first.
    pub hits: Vec<(String, f32)>,
    /// The parsed query, for [`SearchIndex::highlights`].
    pub query: Box<dyn Query>,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    course: Field,
    seq: Field,
    text: Field,
}

/// What each commit records besides the documents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    epoch: String,
    courses: HashMap<String, u64>,
}

struct Writer {
    /// Shared with the blocking task that commits.
    writer: Arc<parking_lot::Mutex<IndexWriter>>,
    progress: Progress,
}

/// The index of one engine (one node).
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// Held while a course catches up and commits: one writer at a time.
    writer: tokio::sync::Mutex<Writer>,
}

fn err(what: &'static str) -> impl Fn(tantivy::TantivyError) -> Error {
    move |e| Error::storage_during(format!("search index: {what}"), e)
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        course: b.add_text_field("course", STRING),
        seq: b.add_u64_field("seq", INDEXED | FAST),
        text: b.add_text_field("text", TEXT),
    };
    (b.build(), fields)
}

impl SearchIndex {
    /// Opens the index kept in `dir` (made if missing, started over if unreadable or of another
    /// store `epoch`), or one in memory when `dir` is `None`. Blocking: call it off the runtime.
    pub fn open(dir: Option<&Path>, epoch: &str) -> Result<SearchIndex> {
        let (schema, fields) = schema();
        let index = match dir {
            None => Index::create_in_ram(schema),
            Some(dir) => match Self::open_dir(dir, &schema) {
                Ok(index) => index,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "search index unreadable, rebuilding it");
                    std::fs::remove_dir_all(dir).map_err(Error::storage)?;
                    Self::open_dir(dir, &schema)?
                }
            },
        };
        let mut progress: Progress = index
            .load_metas()
            .map_err(err("read metas"))?
            .payload
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default();
        let writer: IndexWriter = index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(err("open writer"))?;
        if progress.epoch != epoch {
            // Another store's history (or a new index): nothing in it can be trusted.
            writer.delete_all_documents().map_err(err("clear"))?;
            progress = Progress {
                epoch: epoch.to_string(),
                courses: HashMap::new(),
            };
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(err("open reader"))?;
        Ok(SearchIndex {
            index,
            reader,
            fields,
            writer: tokio::sync::Mutex::new(Writer {
                writer: Arc::new(parking_lot::Mutex::new(writer)),
                progress,
            }),
        })
    }

    fn open_dir(dir: &Path, schema: &Schema) -> Result<Index> {
        std::fs::create_dir_all(dir).map_err(Error::storage)?;
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| Error::storage_during("search index: open folder", e))?;
        let index = Index::open_or_create(mmap, schema.clone()).map_err(err("open"))?;
        if index.schema() != *schema {
            return Err(Error::corrupt("search index has another schema"));
        }
        Ok(index)
    }

    /// Brings the course's documents up to the store's head: applies every change after the
    /// seq indexed so far, then commits (documents and progress together) and reloads.
    pub async fn catch_up(self: &Arc<Self>, store: &dyn Store, course_id: &str) -> Result<()> {
        let head = store.last_seq(course_id).await?;
        let mut w = self.writer.lock().await;
        let mut done = w.progress.courses.get(course_id).copied().unwrap_or(0);
        if done == head {
            return Ok(());
        }
        if done > head {
            // The course was dropped and made again: what the index holds of it is gone.
            let course = Term::from_field_text(self.fields.course, course_id);
            w.writer.lock().delete_term(course);
            done = 0;
        }
        let writer = w.writer.clone();
        let done = match self.apply(store, course_id, &writer, done, head).await {
            Ok(done) => done,
            Err(e) => {
                // Drop what was added, so the next catch-up does not add it twice.
                match tokio::task::spawn_blocking(move || writer.lock().rollback()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(re)) => tracing::error!(error = %re, "search index: cannot roll back"),
                    Err(re) => tracing::error!(error = %re, "search index: cannot roll back"),
                }
                return Err(e);
            }
        };
        let mut courses = w.progress.courses.clone();
        courses.insert(course_id.to_string(), done);
        let progress = Progress {
            epoch: w.progress.epoch.clone(),
            courses,
        };
        let payload = serde_json::to_string(&progress).map_err(Error::encoding)?;
        let this = self.clone();
        // Committing waits for the indexing thread and writes files: off the runtime, with the
        // course lock (`w`) held until it is done.
        let committed = tokio::task::spawn_blocking(move || {
            let mut writer = writer.lock();
            let outcome = writer
                .prepare_commit()
                .and_then(|mut prepared| {
                    prepared.set_payload(&payload);
                    prepared.commit()
                })
                .map_err(err("commit"));
            if outcome.is_err() {
                // Drop what was added, so the next catch-up does not add it twice.
                if let Err(e) = writer.rollback() {
                    tracing::error!(error = %e, "search index: cannot roll back");
                }
            }
            outcome?;
            this.reader.reload().map_err(err("reload"))
        })
        .await
        .map_err(Error::storage)?;
        committed?;
        w.progress = progress;
        Ok(())
    }

    /// Queues the course's changes after `done` up to `head` in the writer; the seq reached.
    async fn apply(
        &self,
        store: &dyn Store,
        course_id: &str,
        writer: &parking_lot::Mutex<IndexWriter>,
        mut done: u64,
        head: u64,
    ) -> Result<u64> {
        let f = self.fields;
        while done < head {
            let changes = store.changes(course_id, done, head, CATCH_UP_CHUNK).await?;
            let Some(last) = changes.last().map(|c| c.seq) else {
                break;
            };
            for c in changes {
                let m = &c.message;
                let id = Term::from_field_text(f.id, &m.id);
                let writer = writer.lock();
                match c.kind {
                    ChangeKind::New | ChangeKind::Edited => {
                        if c.kind == ChangeKind::Edited {
                            writer.delete_term(id);
                        }
                        if !m.is_deleted && !m.message.is_empty() {
                            let mut doc = TantivyDocument::default();
                            doc.add_text(f.id, &m.id);
                            doc.add_text(f.course, &m.course_id);
                            doc.add_u64(f.seq, m.seq);
                            doc.add_text(f.text, &m.message);
                            writer.add_document(doc).map_err(err("add"))?;
                        }
                    }
                    ChangeKind::Deleted => {
                        writer.delete_term(id);
                    }
                    ChangeKind::Reacted | ChangeKind::Pinned => {}
                }
            }
            done = last;
        }
        Ok(done)
    }

    /// The ids and scores of the best `limit` messages of `course_id` matching `query`
    /// (all its words, in any order), created before seq `before` if given. Call
    /// [`catch_up`](Self::catch_up) first.
    pub fn query(
        &self,
        course_id: &str,
        query: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Ranking> {
        let f = self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.text]);
        parser.set_conjunction_by_default();
        let (text, _) = parser.parse_query_lenient(query);
        let course: Box<dyn Query> = Box::new(TermQuery::new(
            Term::from_field_text(f.course, course_id),
            IndexRecordOption::Basic,
        ));
        let mut clauses = vec![(Occur::Must, text.box_clone()), (Occur::Must, course)];
        if let Some(before) = before {
            let range = RangeQuery::new(
                Bound::Unbounded,
                Bound::Excluded(Term::from_field_u64(f.seq, before)),
            );
            clauses.push((Occur::Must, Box::new(range)));
        }
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&BooleanQuery::new(clauses), &TopDocs::with_limit(limit))
            .map_err(err("search"))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr).map_err(err("read hit"))?;
            if let Some(id) = doc.get_first(f.id).and_then(|v| v.as_str()) {
                hits.push((id.to_string(), score));
            }
        }
        Ok(Ranking { hits, query: text })
    }

    /// For each text, the part around `query`'s words, HTML-escaped, matches in `<b>…</b>`
    /// (its start when no word matches).
    pub fn highlights(&self, query: &dyn Query, texts: &[&str]) -> Result<Vec<String>> {
        let searcher = self.reader.searcher();
        let generator =
            tantivy::snippet::SnippetGenerator::create(&searcher, query, self.fields.text)
                .map_err(err("snippet"))?;
        Ok(texts
            .iter()
            .map(|text| {
                let snippet = generator.snippet(text);
                if snippet.is_empty() {
                    html_escape(&text.chars().take(150).collect::<String>())
                } else {
                    snippet.to_html()
                }
            })
            .collect())
    }

    /// Where an engine with data folder `dir` keeps its index.
    pub fn dir_in(dir: &Path) -> PathBuf {
        dir.join("search")
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
