-- Web Push: each user's device subscriptions (serde JSON of `PushSubscription`), by endpoint.
CREATE TABLE chat_push_subscriptions (
    user_id      text COLLATE "C" NOT NULL,
    endpoint     text COLLATE "C" NOT NULL,
    subscription text NOT NULL,
    PRIMARY KEY (user_id, endpoint)
);
