//! The gRPC services. This layer authenticates the caller from its client certificate, reads
//! the request context (purpose, acting agent), parses input into domain values, asks the
//! policy, calls the store, and maps errors to statuses. No SQL and no access rule here.

mod admin;
mod cases;
pub mod convert;
mod flags;
mod persons;
pub mod status;
mod sync;

use crate::config::FeedConfig;
use crate::domain::ids::{PartnerId, PersonId, RequestId};
use crate::domain::partner::{Partner, PartnerStatus};
use crate::domain::pivot::MatchingKey;
use crate::domain::{AgentId, Clock, RequestContext};
use crate::error::{Error, Result, Violations};
use crate::pki::Authority;
use crate::policy;
use crate::store::{DynStore, Principal, WriteMeta};
use relais_proto::v1 as pb;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Everything the services share. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    pub(crate) store: DynStore,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) matching: Arc<MatchingKey>,
    pub(crate) authority: Arc<Authority>,
    pub(crate) settings: Arc<Settings>,
}

/// Service settings from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub certificate_validity_days: i64,
    pub cog_vintage: i32,
    pub feed: FeedConfig,
}

/// An authenticated partner call: who, why, and a digest of the request for idempotency.
pub(crate) struct Call {
    pub partner: Partner,
    pub ctx: RequestContext,
    fingerprint: String,
    at: crate::domain::Timestamp,
}

impl Call {
    pub fn id(&self) -> &PartnerId {
        &self.partner.id
    }

    pub fn meta(&self, request_id: RequestId) -> WriteMeta {
        WriteMeta {
            principal: self.partner.id.to_string(),
            agent: self.ctx.agent.clone(),
            request_id,
            fingerprint: self.fingerprint.clone(),
            at: self.at,
        }
    }
}

/// Requests that carry a `RequestContext`.
pub(crate) trait WithContext {
    fn context(&self) -> Option<&pb::RequestContext>;
}

macro_rules! with_context {
    ($($t:ty),* $(,)?) => {
        $(impl WithContext for $t {
            fn context(&self) -> Option<&pb::RequestContext> {
                self.context.as_ref()
            }
        })*
    };
}

with_context!(
    pb::LinkPersonRequest,
    pb::ResolvePersonRequest,
    pb::UnlinkPersonRequest,
    pb::GetPersonSummaryRequest,
    pb::RaiseFlagRequest,
    pb::RetractFlagRequest,
    pb::ListFlagsRequest,
    pb::OpenCaseRequest,
    pb::TransitionCaseRequest,
    pb::GetCaseRequest,
    pb::ListCasesRequest,
    pb::SendReferralRequest,
    pb::AcknowledgeReferralRequest,
    pb::AnswerReferralRequest,
    pb::CloseReferralRequest,
    pb::GetReferralRequest,
    pb::ListReferralsRequest,
    pb::SubscribeRequest,
);

fn digest<M: prost::Message>(m: &M) -> String {
    hex::encode(Sha256::digest(m.encode_to_vec()))
}

/// The request id of a write, parsed.
pub(crate) fn request_id(raw: &str, v: &mut Violations) -> Option<RequestId> {
    v.field("request_id", RequestId::parse(raw))
}

impl Api {
    /// Finds the principal behind the client certificate of the connection.
    async fn principal<T>(&self, request: &Request<T>) -> Result<Principal> {
        let certs = request.peer_certs().ok_or_else(|| {
            Error::Unauthenticated(
                "no client certificate: connect with the bundle the hub issued".into(),
            )
        })?;
        let leaf = certs
            .first()
            .ok_or_else(|| Error::Unauthenticated("empty client certificate chain".into()))?;
        let fingerprint = crate::pki::fingerprint(leaf);
        match self.store.principal_by_fingerprint(&fingerprint).await? {
            None => Err(Error::Unauthenticated(format!(
                "certificate {fingerprint} is not registered with this hub"
            ))),
            Some(Principal::Partner(p)) if p.status == PartnerStatus::Suspended => {
                Err(Error::PermissionDenied(format!(
                    "partner `{}` is suspended{}",
                    p.id,
                    if p.status_reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", p.status_reason)
                    }
                )))
            }
            Some(principal) => Ok(principal),
        }
    }

    /// Runs a partner's call: authenticates, parses the context, logs the outcome with
    /// partner, agent and purpose, and maps the error.
    pub(crate) async fn partner_call<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        handler: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: WithContext + prost::Message,
        F: FnOnce(Call, Req) -> Fut,
        Fut: Future<Output = Result<Resp>>,
    {
        let span = tracing::info_span!(
            "rpc",
            method,
            partner = tracing::field::Empty,
            agent = tracing::field::Empty,
            purpose = tracing::field::Empty,
        );
        async move {
            let result = async {
                let principal = self.principal(&request).await?;
                let Principal::Partner(partner) = principal else {
                    return Err(Error::PermissionDenied(
                        "the administrator is not a partner: use a partner's identity".into(),
                    ));
                };
                tracing::Span::current().record("partner", partner.id.as_str());
                let body = request.into_inner();
                let mut v = Violations::new();
                let ctx = convert::context(body.context(), &mut v);
                if let Some(ctx) = &ctx {
                    let span = tracing::Span::current();
                    span.record("agent", ctx.agent.as_str());
                    span.record("purpose", ctx.purpose.as_str());
                }
                v.finish()?;
                let ctx = ctx.ok_or_else(|| Error::Internal("context lost".into()))?;
                let call = Call {
                    partner,
                    ctx,
                    fingerprint: digest(&body),
                    at: self.clock.now(),
                };
                handler(call, body).await
            }
            .await;
            log_outcome(result.as_ref().err());
            result.map(Response::new).map_err(status::to_status)
        }
        .instrument(span)
        .await
    }

    /// Runs an administrator's call.
    pub(crate) async fn admin_call<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        handler: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message,
        F: FnOnce(AdminCall, Req) -> Fut,
        Fut: Future<Output = Result<Resp>>,
    {
        let span = tracing::info_span!("rpc", method, partner = "admin");
        async move {
            let result = async {
                match self.principal(&request).await? {
                    Principal::Admin => {}
                    Principal::Partner(p) => {
                        return Err(Error::PermissionDenied(format!(
                            "partner `{}` is not the administrator",
                            p.id
                        )));
                    }
                }
                let body = request.into_inner();
                let call = AdminCall {
                    fingerprint: digest(&body),
                    at: self.clock.now(),
                };
                handler(call, body).await
            }
            .await;
            log_outcome(result.as_ref().err());
            result.map(Response::new).map_err(status::to_status)
        }
        .instrument(span)
        .await
    }

    /// The person a partner may see, or `NOT_FOUND`: a partner that may not see a person does
    /// not learn that it exists.
    pub(crate) async fn visible_person(&self, call: &Call, person: PersonId) -> Result<PersonId> {
        let relation = self.store.relation(call.id(), person).await?;
        match policy::person_access(relation, call.ctx.purpose) {
            policy::Decision::Allow(_) => Ok(person),
            policy::Decision::Deny(reason) => {
                tracing::info!(person = %person, reason, "access denied");
                Err(Error::NotFound {
                    what: "person",
                    id: format!("{person} (or not visible to partner `{}`)", call.id()),
                })
            }
        }
    }

    /// Resolves a `PersonRef` (hub id or the caller's local id) to a person the caller may see.
    pub(crate) async fn person_ref(
        &self,
        call: &Call,
        field: &str,
        person: Option<&pb::PersonRef>,
    ) -> Result<PersonId> {
        use pb::person_ref::Ref;
        match person.and_then(|p| p.r#ref.as_ref()) {
            None => Err(Error::invalid(field, "required: person_id or local_id")),
            Some(Ref::PersonId(id)) => {
                let id = PersonId::parse(id)
                    .map_err(|e| convert::invalid(&format!("{field}.person_id"), e))?;
                self.visible_person(call, id).await
            }
            Some(Ref::LocalId(local)) => {
                let local = crate::domain::LocalId::parse(local)
                    .map_err(|e| convert::invalid(&format!("{field}.local_id"), e))?;
                let person = self
                    .store
                    .person_by_local_id(call.id(), &local)
                    .await?
                    .ok_or_else(|| Error::not_found("local id", &local))?;
                self.visible_person(call, person).await
            }
        }
    }
}

/// An authenticated administrator call.
pub(crate) struct AdminCall {
    fingerprint: String,
    at: crate::domain::Timestamp,
}

impl AdminCall {
    pub fn meta(&self, request_id: RequestId) -> WriteMeta {
        WriteMeta {
            principal: "admin".into(),
            agent: AgentId::system(),
            request_id,
            fingerprint: self.fingerprint.clone(),
            at: self.at,
        }
    }

    pub fn at(&self) -> crate::domain::Timestamp {
        self.at
    }
}

fn log_outcome(error: Option<&Error>) {
    match error {
        None => tracing::info!(outcome = "ok", "request"),
        Some(e @ (Error::Internal(_) | Error::Unavailable(_))) => {
            tracing::error!(outcome = "error", error = %e, "request")
        }
        Some(e) => tracing::info!(outcome = "refused", error = %e, "request"),
    }
}
