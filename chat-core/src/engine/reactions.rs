//! Reactions: a user's emoji on a message, added and removed.
//!
//! Each change is a seq'd change of the course, like an edit: it takes the next seq in the same
//! atomic write that stores the message with its new reactions, is published as
//! `reaction-added` / `reaction-removed` once durable, and a resume replays it. Adding a
//! reaction one already has, or removing one one does not have, changes nothing (no seq, no
//! event) and answers the message as it is.
//!
//! Rules: the caller may write in the message's course (participant or admin, chat enabled); the
//! message is not deleted; the emoji is one grapheme cluster that is not plain ASCII text (`👍`,
//! `❤️`, `👩🏽‍💻`) or a `:shortcode:` (lowercase letters, digits, `_`, `+`, `-`; 1 to 32); a message
//! has at most [`MAX_DISTINCT`] distinct emoji. A deleted message loses its reactions.

use unicode_segmentation::UnicodeSegmentation;

use super::courses::Need;
use super::writes::CONFLICT_RETRIES;
use super::Engine;
use crate::error::{Error, Result};
use crate::model::{Actor, Message, Timestamp};
use crate::store::{ChangeKind, ReactionChange, Update};

/// Distinct emoji a message may carry.
pub const MAX_DISTINCT: usize = 20;

/// Checks an emoji: one grapheme cluster, not ASCII text, or a `:shortcode:`.
pub fn check_emoji(emoji: &str) -> Result<()> {
    let shortcode = emoji.len() >= 3
        && emoji.len() <= 34
        && emoji.starts_with(':')
        && emoji.ends_with(':')
        && emoji[1..emoji.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+-".contains(&b));
    let grapheme = emoji.len() <= 64
        && emoji.graphemes(true).count() == 1
        && !emoji
            .chars()
            .any(|c| c.is_ascii() || c.is_control() || c.is_whitespace());
    if shortcode || grapheme {
        Ok(())
    } else {
        Err(Error::validation(
            "emoji must be one emoji (a single grapheme cluster) or a :shortcode:",
        ))
    }
}

/// Adds or removes `user`'s `emoji` on `message` within the cap; whether anything changed.
fn toggle(message: &mut Message, user: &str, emoji: &str, add: bool) -> Result<bool> {
    let new_emoji = !message.reactions.iter().any(|r| r.emoji == emoji);
    if add && new_emoji && message.reactions.len() >= MAX_DISTINCT {
        return Err(Error::validation(format!(
            "a message has at most {MAX_DISTINCT} different emoji"
        )));
    }
    Ok(message.apply_reaction(user, emoji, add))
}

impl Engine {
    /// Adds the caller's `emoji` to a message (nothing changes if it is there already).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn react(&self, actor: &Actor, message_id: &str, emoji: &str) -> Result<Message> {
        self.set_reaction(actor, message_id, emoji, true).await
    }

    /// Removes the caller's `emoji` from a message (nothing changes if it is not there).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn unreact(&self, actor: &Actor, message_id: &str, emoji: &str) -> Result<Message> {
        self.set_reaction(actor, message_id, emoji, false).await
    }

    async fn set_reaction(
        &self,
        actor: &Actor,
        message_id: &str,
        emoji: &str,
        add: bool,
    ) -> Result<Message> {
        self.alive()?;
        check_emoji(emoji)?;
        for _ in 0..CONFLICT_RETRIES {
            let (current, _, _) = self.message_for(actor, message_id, Need::Write).await?;
            if current.is_deleted {
                return Err(Error::NotFound("message"));
            }
            let mut next = current.clone();
            if !toggle(&mut next, &actor.id, emoji, add)? {
                return self.hydrate_one(current).await;
            }
            next.updated_at = Timestamp::now();
            let update = Update {
                kind: ChangeKind::Reacted,
                message: next,
                expected_change_seq: current.change_seq,
                reaction: Some(ReactionChange {
                    user_id: actor.id.clone(),
                    emoji: emoji.to_string(),
                    added: add,
                }),
            };
            if let Some(m) = self.commit_update(update, None).await? {
                return Ok(m);
            }
        }
        Err(Error::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_are_one_grapheme_or_a_shortcode() {
        for ok in [
            "👍",
            "❤️",
            "👩🏽‍💻",
            "🇫🇷",
            ":thumbsup:",
            ":+1:",
            ":party_parrot:",
            "é",
        ] {
            assert!(check_emoji(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "1", " ", "👍👍", "👍 ", ":", "::", ":Thumbs:", ":a b:", "\u{7}", "ab",
        ] {
            assert!(check_emoji(bad).is_err(), "{bad:?}");
        }
        assert!(check_emoji(&format!(":{}:", "a".repeat(33))).is_err());
    }

    #[test]
    fn toggling_counts_users_once_and_caps_distinct_emoji() {
        let mut m = crate::store::conformance::message("c1", "ada", "hi", None);
        assert!(toggle(&mut m, "ada", "👍", true).unwrap());
        assert!(!toggle(&mut m, "ada", "👍", true).unwrap());
        assert!(toggle(&mut m, "bob", "👍", true).unwrap());
        let r = &m.reactions[0];
        assert_eq!(
            (r.count, r.user_ids.clone()),
            (2, vec!["ada".to_string(), "bob".into()])
        );
        assert!(toggle(&mut m, "ada", "👍", false).unwrap());
        assert!(!toggle(&mut m, "ada", "👍", false).unwrap());
        assert!(toggle(&mut m, "bob", "👍", false).unwrap());
        assert!(m.reactions.is_empty(), "an emoji nobody uses is gone");
        for i in 0..MAX_DISTINCT {
            toggle(&mut m, "ada", &format!(":e{i}:"), true).unwrap();
        }
        assert!(toggle(&mut m, "ada", ":one-more:", true).is_err());
        assert!(
            toggle(&mut m, "bob", ":e0:", true).unwrap(),
            "an existing emoji still counts"
        );
    }
}
