//! Mentions: `@someone` in a message's text, recorded on the message as the user ids it names.
//!
//! A mention is `@` followed by a word (letters, digits, `_`, `-`, `.`), at the start of the text
//! or after a character that is not part of a word (so an e-mail address is not a mention). The
//! word names a participant of the course when it equals their user id, or their display name
//! with its spaces removed, in any case (`@ada`, `@AdaLovelace`, `@u-42`). Mentions are worked
//! out when a message is sent and again when it is edited; the sender is never listed.

use super::Engine;
use crate::error::Result;

/// The words after each `@` in `text`.
pub(crate) fn mention_words(text: &str) -> Vec<String> {
    let word_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    let mut out = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if c == '@' && !prev.is_some_and(word_char) {
            let rest = &text[i + 1..];
            let end = rest.find(|c: char| !word_char(c)).unwrap_or(rest.len());
            let word = rest[..end].trim_end_matches('.');
            if !word.is_empty() {
                out.push(word.to_lowercase());
            }
        }
        prev = Some(c);
    }
    out.sort();
    out.dedup();
    out
}

impl Engine {
    /// The participants of `course_id` that `text` mentions, by user id, without `sender`.
    pub(super) async fn mentions_in(
        &self,
        course_id: &str,
        sender: &str,
        text: &str,
    ) -> Result<Vec<String>> {
        let words = mention_words(text);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for p in self.inner.store.participants(course_id).await? {
            if p.user_id == sender {
                continue;
            }
            let id = p.user_id.to_lowercase();
            let name = match self.profile(&p.user_id).await? {
                Some(profile) => profile
                    .name
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_lowercase(),
                None => String::new(),
            };
            if words
                .iter()
                .any(|w| *w == id || (!name.is_empty() && *w == name))
            {
                out.push(p.user_id);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::mention_words;

    #[test]
    fn mentions_are_words_after_an_at_sign() {
        assert_eq!(mention_words("hi @Ada and @bob."), ["ada", "bob"]);
        assert_eq!(mention_words("@u-42: see @u-42"), ["u-42"]);
        assert!(mention_words("mail me at ada@example.org").is_empty());
        assert!(mention_words("@ alone, @@, @").is_empty());
        assert_eq!(mention_words("(@zoë)"), ["zoë"]);
    }
}
