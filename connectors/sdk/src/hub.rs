//! The hub client of a connector: mTLS with the partner's bundle, the acting agent and purpose
//! of the connector on every call, and the translation of outbox writes into hub calls.

use crate::state::{Pending, State};
use crate::write::Write;
use relais_hub::pki::Bundle;
use relais_proto::v1::{
    self as pb, case_service_client::CaseServiceClient, flag_service_client::FlagServiceClient,
    person_service_client::PersonServiceClient, sync_service_client::SyncServiceClient,
};
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// Why the hub did not take a write.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: tonic::Code,
    pub message: String,
    /// How long the hub asked to wait before trying again (`google.rpc.RetryInfo`: a partner
    /// over its call rate).
    pub retry_after: Option<std::time::Duration>,
}

impl Refusal {
    pub fn from_status(s: tonic::Status) -> Self {
        use tonic_types::StatusExt;
        use tonic_types_details::describe;
        Self {
            code: s.code(),
            message: describe(&s),
            retry_after: s.get_details_retry_info().and_then(|r| r.retry_delay),
        }
    }

    /// A refusal made here, not by the hub.
    pub fn local(code: tonic::Code, message: String) -> Self {
        Self {
            code,
            message,
            retry_after: None,
        }
    }

    pub fn retryable(&self) -> bool {
        crate::retry::retryable(self.code)
    }
}

/// A request carrying the current span's trace context (W3C `traceparent`), so that the hub's
/// span of the call joins the connector's trace. Without telemetry, a plain request.
pub fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    crate::telemetry::inject(request.metadata_mut());
    request
}

mod tonic_types_details {
    /// The status message with its field violations, as the hub gave them.
    pub fn describe(s: &tonic::Status) -> String {
        s.message().to_string()
    }
}

pub struct Hub {
    url: String,
    bundle: Bundle,
    context: pb::RequestContext,
    channel: Mutex<Option<Channel>>,
}

impl Hub {
    pub fn new(url: &str, bundle: Bundle, agent: &str, purpose: pb::Purpose) -> Self {
        Self {
            url: url.to_string(),
            bundle,
            context: pb::RequestContext {
                purpose: purpose as i32,
                agent: agent.to_string(),
            },
            channel: Mutex::new(None),
        }
    }

    pub fn context(&self) -> Option<pb::RequestContext> {
        Some(self.context.clone())
    }

    /// The channel, connecting (again) when needed. A connection failure is retryable.
    pub async fn channel(&self) -> Result<Channel, Refusal> {
        let mut guard = self.channel.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = relais_hub::cli::connect::channel(&self.url, &self.bundle)
            .await
            .map_err(|e| Refusal::local(tonic::Code::Unavailable, format!("{e:#}")))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Forgets the channel after a transport error, so that the next call reconnects.
    pub async fn reset(&self) {
        *self.channel.lock().await = None;
    }

    pub async fn position(&self) -> Result<u64, Refusal> {
        let c = self.channel().await?;
        SyncServiceClient::new(c)
            .get_position(traced(pb::GetPositionRequest {}))
            .await
            .map(|r| r.into_inner().position)
            .map_err(Refusal::from_status)
    }

    /// The partner's work queue in priority order, at most `most` items.
    pub async fn work_queue(&self, most: usize) -> Result<Vec<crate::adapter::Priority>, Refusal> {
        let c = self.channel().await?;
        let mut client = relais_proto::v1::case_service_client::CaseServiceClient::new(c);
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_work_queue(traced(pb::ListWorkQueueRequest {
                    context: self.context(),
                    page_size: 200,
                    page_token: token,
                    ..Default::default()
                }))
                .await
                .map_err(Refusal::from_status)?
                .into_inner();
            for item in page.items {
                let key = match &item.item {
                    Some(pb::work_item::Item::Case(c)) => format!("case:{}", c.id),
                    Some(pb::work_item::Item::Referral(r)) => format!("referral:{}", r.id),
                    None => continue,
                };
                out.push(crate::adapter::Priority {
                    key,
                    rank: item.rank,
                    explanation: item.explanation,
                });
            }
            if page.next_page_token.is_empty() || out.len() >= most {
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }

    pub async fn subscribe(
        &self,
        after: u64,
    ) -> Result<tonic::Streaming<pb::SubscribeResponse>, Refusal> {
        let c = self.channel().await?;
        SyncServiceClient::new(c)
            .subscribe(traced(pb::SubscribeRequest {
                context: self.context(),
                after_position: after,
            }))
            .await
            .map(tonic::Response::into_inner)
            .map_err(Refusal::from_status)
    }

    fn person(local_id: &str) -> Option<pb::PersonRef> {
        Some(pb::PersonRef {
            r#ref: Some(pb::person_ref::Ref::LocalId(local_id.to_string())),
        })
    }

    /// Sends one outbox write; its request id makes a repeated send harmless.
    pub async fn send(&self, p: &Pending, state: &State) -> Result<(), Refusal> {
        let c = self.channel().await?;
        let internal = |e: anyhow::Error| {
            Refusal::local(tonic::Code::Internal, format!("connector state: {e:#}"))
        };
        match &p.write {
            Write::Link { local_id, pivot } => {
                PersonServiceClient::new(c)
                    .link_person(traced(pb::LinkPersonRequest {
                        context: self.context(),
                        local_id: local_id.clone(),
                        pivot: pivot.as_ref().map(|p| pb::PivotIdentity {
                            family_name: p.family_name.clone(),
                            first_given_name: p.first_given_name.clone(),
                            birth_date: p.birth_date.clone(),
                            birth_place_cog: p.birth_place_cog.clone(),
                        }),
                        person_id: String::new(),
                        request_id: p.request_id.clone(),
                    }))
                    .await
                    .map_err(Refusal::from_status)?;
            }
            Write::RaiseFlag {
                local_id,
                code,
                note,
                qualification,
                evidence,
                review_on,
            } => {
                let qualification = crate::write::qualification(qualification)
                    .map_err(|message| Refusal::local(tonic::Code::InvalidArgument, message))?;
                FlagServiceClient::new(c)
                    .raise_flag(traced(pb::RaiseFlagRequest {
                        context: self.context(),
                        person: Self::person(local_id),
                        code: code.clone(),
                        note: note.clone(),
                        valid_until: String::new(),
                        request_id: p.request_id.clone(),
                        qualification: qualification as i32,
                        evidence: evidence.clone(),
                        review_on: review_on.clone(),
                    }))
                    .await
                    .map_err(Refusal::from_status)?;
            }
            Write::OpenCase {
                case_ref,
                local_id,
                procedure,
                theme,
                missing_documents,
            } => {
                // A case the partner's export names again (the whole file dropped anew after a
                // correction) is the one already opened, not a new one.
                if state.case_ref(case_ref).await.map_err(internal)?.is_some() {
                    return Ok(());
                }
                let case = CaseServiceClient::new(c)
                    .open_case(traced(pb::OpenCaseRequest {
                        context: self.context(),
                        person: Self::person(local_id),
                        procedure: procedure.clone(),
                        missing_documents: missing_documents.clone(),
                        due_date: String::new(),
                        initial_status: 0,
                        request_id: p.request_id.clone(),
                        theme: theme.clone(),
                    }))
                    .await
                    .map_err(Refusal::from_status)?
                    .into_inner()
                    .r#case
                    .unwrap_or_default();
                state
                    .set_case_ref(case_ref, &case.id, case.version)
                    .await
                    .map_err(internal)?;
            }
            Write::MoveCase {
                case_ref,
                to,
                reason,
                missing_documents,
            } => {
                let Some((case_id, version)) = state.case_ref(case_ref).await.map_err(internal)?
                else {
                    return Err(Refusal::local(
                        tonic::Code::FailedPrecondition,
                        format!("case `{case_ref}` was never opened through this connector"),
                    ));
                };
                let to_status = pb::CaseStatus::from_str_name(&format!(
                    "CASE_STATUS_{}",
                    to.to_ascii_uppercase()
                ))
                .map_or(0, |s| s as i32);
                let mut cases = CaseServiceClient::new(c);
                let request = |expected_version| pb::TransitionCaseRequest {
                    context: self.context(),
                    case_id: case_id.clone(),
                    expected_version,
                    to_status,
                    reason: reason.clone(),
                    missing_documents: missing_documents
                        .clone()
                        .map(|items| pb::DocumentList { items }),
                    duplicate_of: String::new(),
                    redirect_to_partner: String::new(),
                    redirect_procedure: String::new(),
                    request_id: p.request_id.clone(),
                };
                let moved = match cases.transition_case(traced(request(version))).await {
                    // The partner's system is the record: on a stale version (moved meanwhile
                    // by this partner from elsewhere), read the case and move it from there.
                    Err(s) if s.code() == tonic::Code::Aborted => {
                        let current = cases
                            .get_case(traced(pb::GetCaseRequest {
                                context: self.context(),
                                case_id: case_id.clone(),
                            }))
                            .await
                            .map_err(Refusal::from_status)?
                            .into_inner()
                            .r#case
                            .unwrap_or_default();
                        cases
                            .transition_case(traced(request(current.version)))
                            .await
                    }
                    other => other,
                }
                .map_err(Refusal::from_status)?
                .into_inner()
                .r#case
                .unwrap_or_default();
                state
                    .set_case_ref(case_ref, &moved.id, moved.version)
                    .await
                    .map_err(internal)?;
            }
            Write::AnswerReferral {
                referral_id,
                answer,
            } => {
                let mut cases = CaseServiceClient::new(c);
                let current = cases
                    .get_referral(traced(pb::GetReferralRequest {
                        context: self.context(),
                        referral_id: referral_id.clone(),
                    }))
                    .await
                    .map_err(Refusal::from_status)?
                    .into_inner()
                    .referral
                    .unwrap_or_default();
                // A retry after the answer went through: the hub recognises the request id.
                cases
                    .answer_referral(traced(pb::AnswerReferralRequest {
                        context: self.context(),
                        referral_id: referral_id.clone(),
                        expected_version: current.version,
                        answer: answer.clone(),
                        request_id: p.request_id.clone(),
                    }))
                    .await
                    .map_err(Refusal::from_status)?;
            }
        }
        Ok(())
    }
}
