//! The bus over Redis pub/sub: one channel per deployment, nothing stored; after a lost
//! connection it subscribes again and says so, and the node catches up from the store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::mpsc;

use super::{timed, Health};
use crate::cluster::{Bus, Delivery};
use crate::error::Result;

pub(super) struct RedisBus {
    pub(super) client: Client,
    pub(super) subscriber: SubscriberClient,
    pub(super) channel: String,
    pub(super) health: Arc<Health>,
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, message: Vec<u8>) -> Result<()> {
        self.health
            .call(
                "publishing",
                self.client
                    .publish::<i64, _, _>(self.channel.as_str(), Bytes::from(message)),
            )
            .await
            .map(|_| ())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Delivery>> {
        let mut messages = self.subscriber.message_rx();
        let mut reconnects = self.subscriber.reconnect_rx();
        timed(
            "subscribing",
            self.subscriber.subscribe(self.channel.as_str()),
        )
        .await?;
        let (tx, rx) = mpsc::channel(4096);
        let subscriber = self.subscriber.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let delivery = tokio::select! {
                    m = messages.recv() => match m {
                        Ok(m) => match m.value.as_bytes() {
                            Some(b) => Delivery::Message(b.to_vec()),
                            None => continue,
                        },
                        // Messages were lost in this process: the same as a lost connection.
                        Err(RecvError::Lagged(_)) => Delivery::Resubscribed,
                        Err(RecvError::Closed) => return,
                    },
                    r = reconnects.recv() => match r {
                        Ok(_) | Err(RecvError::Lagged(_)) => {
                            // Subscribe again before saying so: what the node reads from the
                            // store afterwards then overlaps what the bus delivers next.
                            loop {
                                match subscriber.resubscribe_all().await {
                                    Ok(()) => break,
                                    Err(e) => {
                                        tracing::warn!(error = %e, "redis: resubscribing failed; retrying");
                                        tokio::time::sleep(Duration::from_millis(500)).await;
                                    }
                                }
                            }
                            tracing::info!("redis bus: resubscribed");
                            Delivery::Resubscribed
                        }
                        Err(RecvError::Closed) => return,
                    },
                };
                if tx.send(delivery).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
