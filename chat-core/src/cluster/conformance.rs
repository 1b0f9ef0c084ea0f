//! The behaviour every cluster backend must have, as tests: what one node sees, and what two
//! nodes of one deployment see together. Backends' tests call [`one_node`] with a fresh
//! presence and rate limits, and [`two_nodes`] with two nodes' views of one fresh deployment.

use std::time::Duration;

use super::{Cluster, Rule};
use crate::error::Error;

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// One node: tabs count once, a status holds until the next connection change, rooms count
/// connections, buckets allow a burst and refuse the next with the wait, per user, course and
/// rule.
pub async fn one_node(node: &Cluster) {
    let p = &node.presence;
    assert!(p.connect("u").await.expect("connect"), "first tab: online");
    assert!(
        !p.connect("u").await.expect("connect"),
        "second tab: no change"
    );
    assert!(
        !p.disconnect("u").await.expect("disconnect"),
        "one tab left"
    );
    assert_eq!(
        p.online(&ids(&["u", "v"])).await.expect("online"),
        [true, false]
    );
    assert!(
        p.disconnect("u").await.expect("disconnect"),
        "last tab: offline"
    );
    assert_eq!(p.online(&ids(&["u"])).await.expect("online"), [false]);
    assert_eq!(p.online(&[]).await.expect("online"), Vec::<bool>::new());

    p.connect("s").await.expect("connect");
    assert!(p.force("s", false).await.expect("force"), "shown offline");
    assert_eq!(p.online(&ids(&["s"])).await.expect("online"), [false]);
    assert!(
        !p.force("s", false).await.expect("force"),
        "already offline"
    );
    assert!(
        p.connect("s").await.expect("connect"),
        "a new connection ends the status"
    );
    assert!(
        p.force("f", true).await.expect("force"),
        "online without a connection"
    );
    assert_eq!(p.online(&ids(&["f"])).await.expect("online"), [true]);

    assert!(p.enter("c", "u").await.expect("enter"), "first in the room");
    assert!(p.enter("d", "u").await.expect("enter"), "rooms are apart");
    assert!(p.exit("c", "u").await.expect("exit"), "last out");
    assert!(!p.exit("c", "u").await.expect("exit"), "not in it any more");
    p.evict("d", "u").await.expect("evict");
    assert!(!p.exit("d", "u").await.expect("exit"), "evicted");

    let rule = Rule {
        name: "send",
        burst: 3,
        window: Duration::from_secs(30),
    };
    for _ in 0..3 {
        node.rate_limits
            .take(&rule, "u", "c")
            .await
            .expect("a token");
    }
    match node.rate_limits.take(&rule, "u", "c").await {
        Err(Error::RateLimited { retry_after }) => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(10));
        }
        other => panic!("the 4th take must be limited: {other:?}"),
    }
    node.rate_limits
        .take(&rule, "v", "c")
        .await
        .expect("another user");
    node.rate_limits
        .take(&rule, "u", "d")
        .await
        .expect("another course");
    let typing = Rule {
        name: "typing",
        ..rule
    };
    node.rate_limits
        .take(&typing, "u", "c")
        .await
        .expect("another rule");
}

/// Two nodes of one deployment: a user with a connection on each is online once and offline
/// when both closed (exactly one of the calls says so); a room's first and last connection are
/// told once across nodes; a bucket is shared.
pub async fn two_nodes(a: &Cluster, b: &Cluster) {
    let (pa, pb) = (&a.presence, &b.presence);
    assert!(pa.connect("u").await.expect("connect"));
    assert!(!pb.connect("u").await.expect("connect"), "online once");
    assert_eq!(pb.online(&ids(&["u"])).await.expect("online"), [true]);
    assert!(!pa.disconnect("u").await.expect("disconnect"), "still on b");
    assert_eq!(pa.online(&ids(&["u"])).await.expect("online"), [true]);
    assert!(
        pb.disconnect("u").await.expect("disconnect"),
        "gone everywhere"
    );
    assert_eq!(pa.online(&ids(&["u"])).await.expect("online"), [false]);

    assert!(pa.enter("c", "u").await.expect("enter"));
    assert!(
        !pb.enter("c", "u").await.expect("enter"),
        "already in the room on a"
    );
    assert!(!pa.exit("c", "u").await.expect("exit"), "still in it on b");
    assert!(pb.exit("c", "u").await.expect("exit"), "the last one out");

    // A status set through one node holds on the other.
    pa.connect("s").await.expect("connect");
    assert!(pb.force("s", false).await.expect("force"));
    assert_eq!(pa.online(&ids(&["s"])).await.expect("online"), [false]);

    let rule = Rule {
        name: "send",
        burst: 10,
        window: Duration::from_secs(30),
    };
    for i in 0..10 {
        let node = if i % 2 == 0 { a } else { b };
        node.rate_limits
            .take(&rule, "u", "c")
            .await
            .expect("a token");
    }
    assert!(matches!(
        a.rate_limits.take(&rule, "u", "c").await,
        Err(Error::RateLimited { .. })
    ));
    assert!(matches!(
        b.rate_limits.take(&rule, "u", "c").await,
        Err(Error::RateLimited { .. })
    ));
}
