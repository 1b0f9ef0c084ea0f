-- Threads: a reply names its thread's root; a thread's replies are one indexed range by seq.
ALTER TABLE chat_messages ADD COLUMN thread_id text COLLATE "C";
CREATE INDEX chat_messages_thread ON chat_messages (thread_id, seq) WHERE thread_id IS NOT NULL;
