//! The built-in word filter: a moderation [`Plugin`] configured by a list of words
//! ([`Config::blocked_words`](crate::Config::blocked_words)), installed ahead of the embedder's
//! plugins when the list is not empty.
//!
//! A blocked word matches a whole word of a message or an edit, in any case (`Darn`, `DARN`), by
//! Unicode word boundaries, so `class` never matches inside `classic`. With
//! [`WordFilterAction::Mask`] (the default) each match is replaced by as many `*` as it has
//! characters and the message is stored so; with [`WordFilterAction::Reject`] the send or edit is
//! refused (`FORBIDDEN`, "rejected by moderation"). A word is a single word: phrases are not
//! matched.

use std::collections::HashSet;

use async_trait::async_trait;
use unicode_segmentation::UnicodeSegmentation;

use crate::plugin::{Draft, Plugin, PluginError, Verdict};

/// What the filter does with a message holding a blocked word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WordFilterAction {
    /// Store it with each blocked word replaced by `*`s.
    #[default]
    Mask,
    /// Refuse it.
    Reject,
}

/// The word filter plugin.
#[derive(Debug, Clone)]
pub struct WordFilter {
    words: HashSet<String>,
    action: WordFilterAction,
}

impl WordFilter {
    /// A filter of `words` (compared lowercased; blank entries are ignored).
    pub fn new<I, S>(words: I, action: WordFilterAction) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        WordFilter {
            words: words
                .into_iter()
                .map(|w| w.as_ref().trim().to_lowercase())
                .filter(|w| !w.is_empty())
                .collect(),
            action,
        }
    }

    /// The text with every blocked word masked, or `None` when it holds none.
    pub fn mask(&self, text: &str) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut hit = false;
        for (_, token) in text.split_word_bound_indices() {
            if self.words.contains(&token.to_lowercase()) {
                hit = true;
                out.extend(std::iter::repeat_n('*', token.chars().count()));
            } else {
                out.push_str(token);
            }
        }
        hit.then_some(out)
    }
}

#[async_trait]
impl Plugin for WordFilter {
    fn name(&self) -> String {
        "word-filter".to_string()
    }

    async fn before_send(&self, draft: &Draft) -> Result<Verdict, PluginError> {
        Ok(match (self.mask(&draft.text), self.action) {
            (None, _) => Verdict::Accept,
            (Some(masked), WordFilterAction::Mask) => Verdict::Rewrite(masked),
            (Some(_), WordFilterAction::Reject) => {
                Verdict::Reject("the message contains a blocked word".into())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_in_any_case_are_masked() {
        let f = WordFilter::new(["darn", " Heck ", "", "ärger"], WordFilterAction::Mask);
        assert_eq!(
            f.mask("Well DARN it, heck!").as_deref(),
            Some("Well **** it, ****!")
        );
        assert_eq!(f.mask("darning and checks are fine"), None);
        assert_eq!(f.mask("so much Ärger"), Some("so much *****".into()));
        assert_eq!(f.mask(""), None);
    }
}
