-- Moderation: pins are changes of their own ('pinned' changes) and a column of the message row
-- (so a course's pinned messages are one indexed query); restrictions (mutes and bans), flags
-- and the audit log are serde JSON documents with the columns their queries need.
ALTER TABLE chat_changes DROP CONSTRAINT chat_changes_kind_check;
ALTER TABLE chat_changes
    ADD CONSTRAINT chat_changes_kind_check
    CHECK (kind IN ('new', 'edited', 'deleted', 'reacted', 'pinned'));
ALTER TABLE chat_messages ADD COLUMN pinned boolean NOT NULL DEFAULT false;
CREATE INDEX chat_messages_pinned ON chat_messages (course_id, seq) WHERE pinned;

CREATE TABLE chat_restrictions (
    course_id   text COLLATE "C" NOT NULL,
    user_id     text COLLATE "C" NOT NULL,
    restriction text NOT NULL,
    PRIMARY KEY (course_id, user_id)
);

CREATE TABLE chat_flags (
    id          text COLLATE "C" PRIMARY KEY,
    course_id   text COLLATE "C" NOT NULL,
    message_id  text COLLATE "C" NOT NULL,
    reporter_id text COLLATE "C" NOT NULL,
    open        boolean NOT NULL,
    flag        text NOT NULL
);
CREATE INDEX chat_flags_by_course ON chat_flags (course_id, id);
-- A reporter has at most one open flag per message.
CREATE UNIQUE INDEX chat_flags_open ON chat_flags (message_id, reporter_id) WHERE open;

CREATE TABLE chat_audit (
    id        text COLLATE "C" PRIMARY KEY,
    course_id text COLLATE "C" NOT NULL,
    entry     text NOT NULL
);
CREATE INDEX chat_audit_by_course ON chat_audit (course_id, id);
