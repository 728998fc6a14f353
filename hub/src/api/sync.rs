//! SyncService: the change feed over a server stream.

use super::{Api, convert};
use crate::feed::{FeedItem, Subscriber, spawn_subscription};
use futures::StreamExt;
use relais_proto::v1::{self as pb, sync_service_server::SyncService};
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
            let stream = ReceiverStream::new(rx).map(move |item| match item {
                Ok(FeedItem::Event { change, local_ids }) => Ok(pb::SubscribeResponse {
                    payload: Some(pb::subscribe_response::Payload::Event(convert::change(
                        &change,
                        &local_ids,
                        clock.now().day(),
                        &viewer,
                    ))),
                }),
                Ok(FeedItem::CaughtUp(position)) => Ok(pb::SubscribeResponse {
                    payload: Some(pb::subscribe_response::Payload::CaughtUp(pb::CaughtUp {
                        position,
                    })),
                }),
                Err(e) => Err(super::status::to_status(e)),
            });
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
