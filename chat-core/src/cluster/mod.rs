//! Several nodes, one deployment: what a node shares with the others besides the store.
//!
//! The store is the truth. Everything here only tells a node that something happened, or holds
//! state that lives as long as connections do:
//!
//! - [`Bus`]: notices between nodes ([`Notice`]): "change N of course C is durable", room events
//!   that are not stored (typing, receipts, joins and leaves), presence changes, unenrolments. A
//!   notice may be lost, duplicated or late: a node that is told of change N+2 before N+1, or that
//!   hears nothing for a while, or whose bus connection was re-established, reads what it missed
//!   from the store by seq, so the sockets it serves still see every change once and in order;
//! - [`Presence`]: who is online and who is in which room, counted over every node's
//!   connections, so a user with a tab on node A and one on node B is online once and leaves a
//!   room only when their last connection anywhere does; entries of a node that stops
//!   heartbeating expire;
//! - [`RateLimits`]: token buckets shared by all nodes, so a user's 10 sends per 10 s hold
//!   wherever they connect.
//!
//! [`local`] holds the single-node implementations the engine uses by default (no bus, counts in
//! memory). Backends for several nodes implement the three traits over a shared service (Redis:
//! `chat_core::cluster::redis`, with the `redis` feature).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::Result;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod local;
#[cfg(feature = "redis")]
pub mod redis;

/// What one node tells the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Notice {
    /// Change `seq` of a course is durable in the shared store (and so is every change before
    /// it: stores that serve several nodes commit a course's seqs in order).
    #[serde(rename_all = "camelCase")]
    Change {
        /// The course.
        course_id: String,
        /// The change's seq.
        seq: u64,
    },
    /// An event for a course's room that is not stored (typing, a read receipt, a user joining
    /// or leaving), as `{"event", "data"}`.
    #[serde(rename_all = "camelCase")]
    Room {
        /// The course.
        course_id: String,
        /// The event, as the native protocol encodes it.
        event: serde_json::Value,
        /// A user the event is not for (the typist).
        exclude_user: Option<String>,
        /// Only the course's moderators receive it (`message-flagged`).
        #[serde(default)]
        moderators_only: bool,
    },
    /// A user came online or went offline somewhere: the online lists that show them change.
    #[serde(rename_all = "camelCase")]
    Presence {
        /// The user.
        user_id: String,
    },
    /// A user was removed from a course (unenrolled, or banned from its chat): their
    /// connections everywhere leave its room.
    #[serde(rename_all = "camelCase")]
    Unenrolled {
        /// The course.
        course_id: String,
        /// The user.
        user_id: String,
    },
}

/// A notice with the node it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Wire {
    /// The sending node's id.
    pub(crate) node: String,
    /// What it says.
    #[serde(flatten)]
    pub(crate) notice: Notice,
}

/// What a bus subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A message some node published (possibly this one).
    Message(Vec<u8>),
    /// The subscription was lost and is back: messages published meanwhile may be gone.
    Resubscribed,
}

/// Carries opaque messages between the nodes of a deployment: at most once, in no promised
/// order. The engine encodes [`Notice`]s into them.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes a message to every subscribed node. An error means it was not sent.
    async fn publish(&self, message: Vec<u8>) -> Result<()>;
    /// Every message published from now on, by any node. A backend that loses its connection
    /// reconnects by itself and then yields [`Delivery::Resubscribed`]. The stream ends only
    /// when the bus is closed.
    async fn subscribe(&self) -> Result<mpsc::Receiver<Delivery>>;
}

/// A user or room membership that went away without a goodbye (its node stopped heartbeating).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Departure {
    /// The user.
    pub user_id: String,
    /// They have no connection left anywhere (and no status override).
    pub offline: bool,
    /// Rooms they have no connection in any more.
    pub rooms: Vec<String>,
}

/// Who is online, and who is in which room, over every node.
///
/// A user is online while they have a connection on any node, unless `PUT /status` forced
/// otherwise (until their next connection opens or closes). Room membership counts a user's
/// connections that joined the room, on every node. The `bool` answers say whether the call
/// changed what the others see, so exactly one node announces it.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// A connection of `user` opened here; true if that brought them online.
    async fn connect(&self, user: &str) -> Result<bool>;
    /// A connection of `user` closed here; true if that took them offline.
    async fn disconnect(&self, user: &str) -> Result<bool>;
    /// `PUT /status`: `online` holds until the user's next connection opens or closes; true if
    /// it changed whether they are shown online.
    async fn force(&self, user: &str, online: bool) -> Result<bool>;
    /// Whether each user is online.
    async fn online(&self, users: &[String]) -> Result<Vec<bool>>;
    /// A connection of `user` here joined the room of `course`; true if it is their first in it
    /// anywhere.
    async fn enter(&self, course: &str, user: &str) -> Result<bool>;
    /// A connection of `user` here left the room; true if it was their last in it anywhere.
    async fn exit(&self, course: &str, user: &str) -> Result<bool>;
    /// The user was unenrolled: forget their connections in the room here.
    async fn evict(&self, course: &str, user: &str) -> Result<()>;
    /// Keeps this node's entries alive, and returns what nodes that stopped doing so left
    /// behind (each departure reported to one node only). Called every
    /// [`heartbeat`](Self::heartbeat_interval).
    async fn heartbeat(&self) -> Result<Vec<Departure>>;
    /// How often [`heartbeat`](Self::heartbeat) must run; `None` when it need not (one node).
    fn heartbeat_interval(&self) -> Option<Duration>;
}

/// A token-bucket rule: `burst` actions, refilled over `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What is limited (part of the bucket's key), e.g. `send`.
    pub name: &'static str,
    /// Bucket size.
    pub burst: u32,
    /// Time to refill a whole bucket.
    pub window: Duration,
}

/// Token buckets per user and course.
#[async_trait]
pub trait RateLimits: Send + Sync + 'static {
    /// Takes a token from `user`'s bucket in `course` for `rule`, or answers
    /// [`Error::RateLimited`](crate::Error::RateLimited) with when one will be there.
    async fn take(&self, rule: &Rule, user: &str, course: &str) -> Result<()>;
}

/// The shared pieces a node of a deployment runs with.
#[derive(Clone)]
pub struct Cluster {
    /// This node's id (unique in the deployment).
    pub node_id: String,
    /// Notices between nodes; `None` for a single node.
    pub bus: Option<Arc<dyn Bus>>,
    /// Presence and rooms.
    pub presence: Arc<dyn Presence>,
    /// Rate limits.
    pub rate_limits: Arc<dyn RateLimits>,
}

impl Cluster {
    /// One node on its own: no bus, presence and rate limits in memory.
    pub fn single() -> Self {
        Cluster {
            node_id: ulid::Ulid::new().to_string(),
            bus: None,
            presence: Arc::new(local::LocalPresence::default()),
            rate_limits: Arc::new(local::LocalRateLimits::default()),
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("bus", &self.bus.is_some())
            .finish_non_exhaustive()
    }
}
