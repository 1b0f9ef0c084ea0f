-- Reactions are changes of their own: a 'reacted' change records who added or removed which
-- emoji (serde JSON of `ReactionChange`), so a resume replays it.
ALTER TABLE chat_changes DROP CONSTRAINT chat_changes_kind_check;
ALTER TABLE chat_changes
    ADD CONSTRAINT chat_changes_kind_check CHECK (kind IN ('new', 'edited', 'deleted', 'reacted'));
ALTER TABLE chat_changes ADD COLUMN reaction text;
