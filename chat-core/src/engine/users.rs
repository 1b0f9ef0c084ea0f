//! Users: profiles as their tokens describe them, the presence status a user sets, `lastSeen`.

use super::uncancellable::uncancellable;
use super::Engine;
use crate::cluster::Notice;
use crate::error::{Error, Result};
use crate::model::{check_id, Actor, Role, Timestamp, User};
use crate::store::StoredUser;

impl Engine {
    /// Records the caller's profile (name, avatar, role) if it changed, and returns the user.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id), err(level = "debug"))]
    pub async fn upsert_user(&self, actor: &Actor) -> Result<User> {
        self.ensure_profile(actor).await?;
        self.user_view(&actor.id).await
    }

    /// A user with presence.
    #[tracing::instrument(level = "debug", skip(self), err(level = "debug"))]
    pub async fn user(&self, user_id: &str) -> Result<User> {
        check_id("userId", user_id)?;
        if self.profile(user_id).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        self.user_view(user_id).await
    }

    pub(super) async fn ensure_profile(&self, actor: &Actor) -> Result<()> {
        check_id("user id", actor.id.as_str())?;
        let same = |p: &StoredUser| {
            p.name == actor.name && p.avatar == actor.avatar && p.role == actor.role
        };
        if self.inner.profiles.lock().get(&actor.id).is_some_and(same) {
            return Ok(());
        }
        let stored = self.inner.store.user(&actor.id).await?;
        let profile = match stored {
            Some(p) if same(&p) => p,
            other => {
                let p = StoredUser {
                    id: actor.id.clone(),
                    name: actor.name.clone(),
                    avatar: actor.avatar.clone(),
                    role: actor.role,
                    last_seen: other.and_then(|o| o.last_seen),
                };
                self.inner.store.put_user(&p).await?;
                p
            }
        };
        self.inner.profiles.lock().insert(actor.id.clone(), profile);
        Ok(())
    }

    /// Drops a cached profile (another node changed its `lastSeen`).
    pub(super) fn forget_profile(&self, user_id: &str) {
        self.inner.profiles.lock().remove(user_id);
    }

    /// Whether a user is online on any node.
    pub(super) async fn is_online(&self, user_id: &str) -> Result<bool> {
        let flags = self
            .inner
            .cluster
            .presence
            .online(&[user_id.to_string()])
            .await?;
        Ok(flags.first().copied().unwrap_or(false))
    }

    pub(super) async fn profile(&self, user_id: &str) -> Result<Option<StoredUser>> {
        if let Some(p) = self.inner.profiles.lock().get(user_id) {
            return Ok(Some(p.clone()));
        }
        let stored = self.inner.store.user(user_id).await?;
        if let Some(p) = &stored {
            self.inner
                .profiles
                .lock()
                .insert(user_id.to_string(), p.clone());
        }
        Ok(stored)
    }

    pub(super) async fn user_view(&self, user_id: &str) -> Result<User> {
        let profile = self.profile(user_id).await?;
        let is_online = self.is_online(user_id).await?;
        Ok(self.user_from(user_id, profile, is_online))
    }

    /// A user as shown, from their profile (if any) and whether they are online.
    pub(super) fn user_from(
        &self,
        user_id: &str,
        profile: Option<StoredUser>,
        is_online: bool,
    ) -> User {
        match profile {
            Some(p) => User {
                id: p.id,
                name: p.name,
                avatar: p.avatar,
                role: p.role,
                is_online,
                last_seen: p.last_seen,
            },
            // Enrolled by the LMS but never seen: shown by id.
            None => User {
                id: user_id.to_string(),
                name: user_id.to_string(),
                avatar: None,
                role: Role::Student,
                is_online,
                last_seen: None,
            },
        }
    }

    /// Sets the caller's online status (`PUT /status`); it holds until their next connection
    /// opens or closes.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id), err(level = "debug"))]
    pub async fn set_status(&self, actor: &Actor, is_online: bool) -> Result<User> {
        self.ensure_profile(actor).await?;
        let now = Timestamp::now();
        if self
            .inner
            .cluster
            .presence
            .force(&actor.id, is_online)
            .await?
        {
            // The change is announced even if the caller stops waiting.
            let engine = self.clone();
            let user = actor.id.clone();
            uncancellable(async move {
                if !is_online {
                    engine.save_last_seen(&user, now).await?;
                }
                engine.presence_changed(&user).await;
                engine.tell(Notice::Presence { user_id: user });
                Ok(())
            })
            .await?;
        }
        self.user_view(&actor.id).await
    }

    pub(super) async fn save_last_seen(&self, user_id: &str, at: Timestamp) -> Result<()> {
        if let Some(mut p) = self.profile(user_id).await? {
            p.last_seen = Some(at);
            self.inner.store.put_user(&p).await?;
            self.inner.profiles.lock().insert(user_id.to_string(), p);
        }
        Ok(())
    }
}
