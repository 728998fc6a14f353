//! SyncService: the change feed over a server stream.

use super::{Api, convert};
use crate::feed::{FeedItem, Subscriber, spawn_subscription};
use futures::StreamExt;
use relais_proto::v1::{self as pb, sync_service_server::SyncService};
use std::future::Future;
use std::pin::Pin;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

type EventStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl SyncService for Api {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.partner_call("Subscribe", request, |call, req| async move {
            // Counted until the stream ends, whoever ends it.
            let slot = self.limits.open_subscription(call.id())?;
            let lag = crate::telemetry::FeedCursor::new(
                call.id().as_str(),
                call.ctx.purpose.as_str(),
                req.after_position,
            );
            let mut stopping = self.life.stopping();
            let rx = spawn_subscription(
                self.store.clone(),
                self.gate.clone(),
                &self.feed,
                Subscriber {
                    partner: call.id().clone(),
                    agent: call.ctx.agent.clone(),
                    purpose: call.ctx.purpose,
                    certificate: call.certificate.clone(),
                },
                req.after_position,
                &self.settings.feed,
            );
            let clock = self.clock.clone();
            let viewer = call.id().clone();
            let events = ReceiverStream::new(rx).map(move |item| match item {
                Ok(FeedItem::Event { change, local_ids }) => {
                    lag.delivered(change.position);
                    Ok(pb::SubscribeResponse {
                        payload: Some(pb::subscribe_response::Payload::Event(convert::change(
                            &change,
                            &local_ids,
                            clock.now().day(),
                            &viewer,
                        ))),
                    })
                }
                Ok(FeedItem::CaughtUp(position)) => {
                    lag.delivered(position);
                    Ok(pb::SubscribeResponse {
                        payload: Some(pb::subscribe_response::Payload::CaughtUp(pb::CaughtUp {
                            position,
                        })),
                    })
                }
                Err(e) => Err(super::status::to_status(e)),
            });
            // When the hub stops, the stream ends with UNAVAILABLE "shutting down": the
            // connector resumes from its cursor, here once restarted or on another replica.
            let stop: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
                let _ = stopping.wait_for(|s| *s).await;
            });
            let stream = futures::stream::unfold(
                (events, stop, Some(slot)),
                |(mut events, mut stop, slot)| async move {
                    slot.as_ref()?;
                    tokio::select! {
                        biased;
                        () = &mut stop => Some((
                            Err(super::status::to_status(crate::error::Error::ShuttingDown)),
                            (events, stop, None),
                        )),
                        item = events.next() => item.map(|item| (item, (events, stop, slot))),
                    }
                },
            );
            Ok(Box::pin(stream) as EventStream)
        })
        .await
    }

    async fn get_position(
        &self,
        request: Request<pb::GetPositionRequest>,
    ) -> Result<Response<pb::GetPositionResponse>, Status> {
        // The position reveals no personal data; any authenticated partner may read it.
        self.principal(&request)
            .await
            .map_err(super::status::to_status)?;
        let position = self
            .store
            .head_position()
            .await
            .map_err(super::status::to_status)?;
        Ok(Response::new(pb::GetPositionResponse { position }))
    }
}
