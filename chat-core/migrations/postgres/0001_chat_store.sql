-- The chat store's tables (see chat-core/src/store/postgres.rs for why they look like this).
-- Every statement is unqualified: the store runs with `search_path` set to its own schema.
-- Text keys use the "C" collation so that ORDER BY is byte order, the order of the key-value
-- backends (participants by user id, courses by id, read marks by user id).

-- One row: the store's epoch, a ULID written by the first `connect`.
CREATE TABLE chat_meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch     text    NOT NULL
);

-- Profiles, course settings and file metadata: serde JSON documents, read and written whole.
CREATE TABLE chat_users (
    id      text COLLATE "C" PRIMARY KEY,
    profile text NOT NULL
);

CREATE TABLE chat_courses (
    id     text COLLATE "C" PRIMARY KEY,
    record text NOT NULL
);

CREATE TABLE chat_files (
    id   text COLLATE "C" PRIMARY KEY,
    file text NOT NULL
);

CREATE TABLE chat_participants (
    course_id text COLLATE "C" NOT NULL,
    user_id   text COLLATE "C" NOT NULL,
    role      text NOT NULL,
    PRIMARY KEY (course_id, user_id)
);
CREATE INDEX chat_participants_by_user ON chat_participants (user_id, course_id);

-- A course's counters. Every message change takes the next seq with
-- `UPDATE ... SET last_seq = last_seq + 1 ... RETURNING`, which locks this row until the
-- transaction ends: seqs of a course commit one after the other, in order, without gaps.
CREATE TABLE chat_heads (
    course_id     text COLLATE "C" PRIMARY KEY,
    last_seq      bigint NOT NULL CHECK (last_seq >= 0),
    message_count bigint NOT NULL CHECK (message_count >= 0)
);

-- The change log: the message as it was right after change `seq` (serde JSON of `Message`).
CREATE TABLE chat_changes (
    course_id  text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL CHECK (seq > 0),
    message_id text COLLATE "C" NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('new', 'edited', 'deleted')),
    message    text NOT NULL,
    PRIMARY KEY (course_id, seq)
);
CREATE INDEX chat_changes_by_message ON chat_changes (message_id);

-- One row per message: where it sits in its course's timeline (`position`, 0-based creation
-- order), its creation seq, its idempotency key, and which log entry is its current state.
CREATE TABLE chat_messages (
    id         text COLLATE "C" PRIMARY KEY,
    course_id  text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL CHECK (seq > 0),
    position   bigint NOT NULL CHECK (position >= 0),
    sender_id  text COLLATE "C" NOT NULL,
    client_id  text COLLATE "C",
    change_seq bigint NOT NULL,
    deleted    boolean NOT NULL DEFAULT false,
    CONSTRAINT chat_messages_seq UNIQUE (course_id, seq),
    CONSTRAINT chat_messages_position UNIQUE (course_id, position),
    -- Idempotent sends: NULL client ids never collide.
    CONSTRAINT chat_messages_client_id UNIQUE (course_id, sender_id, client_id),
    CONSTRAINT chat_messages_current FOREIGN KEY (course_id, change_seq)
        REFERENCES chat_changes (course_id, seq)
);

-- Read receipts: each user's watermark in a course, and the history of its steps.
CREATE TABLE chat_read_watermarks (
    course_id text COLLATE "C" NOT NULL,
    user_id   text COLLATE "C" NOT NULL,
    seq       bigint NOT NULL,
    at_ms     bigint NOT NULL,
    PRIMARY KEY (course_id, user_id)
);

CREATE TABLE chat_read_marks (
    course_id text COLLATE "C" NOT NULL,
    user_id   text COLLATE "C" NOT NULL,
    seq       bigint NOT NULL,
    at_ms     bigint NOT NULL,
    PRIMARY KEY (course_id, user_id, seq)
);
