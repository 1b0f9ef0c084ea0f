//! Push notifications: each user's Web Push subscriptions, and who a new message should be
//! pushed to.
//!
//! Delivery itself (VAPID signing, payload encryption, the HTTP POST) is the host's; the rules
//! are here: a device registers its browser `PushSubscription` for the calling user (at most
//! [`MAX_PUSH_SUBSCRIPTIONS`]), and a new message is pushed to the course's participants other
//! than its sender who have no open connection on any node and at least one subscription — the
//! users it mentions first.

use super::Engine;
use crate::error::{Error, Result};
use crate::model::{Actor, Message, PushSubscription, Timestamp};

/// Subscriptions one user may have (one per browser or device).
pub const MAX_PUSH_SUBSCRIPTIONS: usize = 20;

/// A user a new message should be pushed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// The user.
    pub user_id: String,
    /// Whether the message mentions them.
    pub mentioned: bool,
    /// Their devices.
    pub subscriptions: Vec<PushSubscription>,
}

fn check_key(what: &str, value: &str, max: usize) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='));
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{what} must be base64url, at most {max} characters"
        )))
    }
}

impl Engine {
    /// Registers (or refreshes, by endpoint) a device's push subscription for the caller.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id), err(level = "debug"))]
    pub async fn put_push_subscription(
        &self,
        actor: &Actor,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<PushSubscription> {
        self.alive()?;
        self.ensure_profile(actor).await?;
        let url_ok = (endpoint.starts_with("https://") || endpoint.starts_with("http://"))
            && endpoint.len() <= 2048
            && !endpoint
                .chars()
                .any(|c| c.is_control() || c.is_whitespace());
        if !url_ok {
            return Err(Error::validation(
                "endpoint must be an http(s) URL of at most 2048 characters",
            ));
        }
        check_key("keys.p256dh", p256dh, 128)?;
        check_key("keys.auth", auth, 64)?;
        let existing = self.inner.store.push_subscriptions(&actor.id).await?;
        if existing.len() >= MAX_PUSH_SUBSCRIPTIONS
            && !existing.iter().any(|s| s.endpoint == endpoint)
        {
            return Err(Error::validation(format!(
                "a user has at most {MAX_PUSH_SUBSCRIPTIONS} push subscriptions"
            )));
        }
        let subscription = PushSubscription {
            user_id: actor.id.clone(),
            endpoint: endpoint.to_string(),
            p256dh: p256dh.to_string(),
            auth: auth.to_string(),
            created_at: Timestamp::now(),
        };
        self.inner
            .store
            .put_push_subscription(&subscription)
            .await?;
        Ok(subscription)
    }

    /// Removes one of the caller's push subscriptions (nothing happens if it is not there).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id), err(level = "debug"))]
    pub async fn remove_push_subscription(&self, actor: &Actor, endpoint: &str) -> Result<()> {
        self.alive()?;
        self.inner
            .store
            .remove_push_subscription(&actor.id, endpoint)
            .await?;
        Ok(())
    }

    /// The caller's push subscriptions.
    pub async fn push_subscriptions(&self, actor: &Actor) -> Result<Vec<PushSubscription>> {
        self.inner.store.push_subscriptions(&actor.id).await
    }

    /// Forgets a subscription its push service says is gone (HTTP 404 or 410).
    pub async fn expire_push_subscription(&self, user_id: &str, endpoint: &str) -> Result<()> {
        self.inner
            .store
            .remove_push_subscription(user_id, endpoint)
            .await?;
        Ok(())
    }

    /// Who a new message should be pushed to: the course's participants but its sender, with
    /// no open connection anywhere and at least one subscription; the mentioned ones first.
    pub async fn push_targets(&self, message: &Message) -> Result<Vec<PushTarget>> {
        // Subscribers first (one read, empty when nobody subscribed), then presence for them
        // only: this runs for every new message.
        let subscribers: Vec<(String, Vec<PushSubscription>)> = self
            .inner
            .store
            .push_subscribers(&message.course_id)
            .await?
            .into_iter()
            .filter(|(u, _)| *u != message.sender.id)
            .collect();
        if subscribers.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = subscribers.iter().map(|(u, _)| u.clone()).collect();
        let online = self.inner.cluster.presence.online(&ids).await?;
        let mut targets = Vec::new();
        for ((user_id, subscriptions), on) in subscribers.into_iter().zip(online) {
            if on {
                continue;
            }
            targets.push(PushTarget {
                mentioned: message.mentions.contains(&user_id),
                user_id,
                subscriptions,
            });
        }
        // Mentioned users first; otherwise the participants' order (by user id).
        targets.sort_by_key(|t| !t.mentioned);
        Ok(targets)
    }
}
