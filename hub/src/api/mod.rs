//! The gRPC services. This layer authenticates the caller from its client certificate, reads
//! the request context (purpose, acting agent), parses input into domain values, asks the
//! policy, calls the store, and maps errors to statuses. No SQL and no access rule here.

mod admin;
mod cases;
mod consent;
pub mod convert;
mod disclose;

mod flags;
pub mod fuzzing;
mod persons;
mod queue;
mod reach;
pub mod status;
mod sync;
mod territory;

use crate::audit::AuditEntry;
use crate::config::FeedConfig;
use crate::domain::ids::{PartnerId, PersonId, RequestId};
use crate::domain::partner::{Partner, PartnerStatus};
use crate::domain::pivot::MatchingKey;
use crate::domain::{AgentId, Clock, RequestContext};
use crate::error::{Error, Result, Violations};
use crate::pki::Authority;
use crate::policy::{Access, Action, Decision, Facts, Gate, Subject, Viewer};
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
    pub(crate) gate: Arc<Gate>,
    /// Subscriptions sharing their decisions.
    pub(crate) feed: Arc<crate::feed::Groups>,
    /// Per-partner call rates and subscription caps.
    pub(crate) limits: Arc<crate::limits::Limits>,
    /// Stopping, and whether the database answers.
    pub(crate) life: Arc<crate::lifecycle::Lifecycle>,
}

/// Service settings from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub certificate_validity_days: i64,
    pub cog_vintage: i32,
    pub feed: FeedConfig,
    pub flags: crate::config::FlagsConfig,
    pub referrals: crate::config::ReferralsConfig,
    /// Who answers for the data, on the person's documents.
    pub territory: crate::config::TerritoryConfig,
}

/// An authenticated partner call: who, why, and a digest of the request for idempotency.
pub(crate) struct Call {
    pub partner: Partner,
    pub ctx: RequestContext,
    pub method: &'static str,
    fingerprint: String,
    /// Fingerprint of the client certificate the call came with.
    pub certificate: String,
    pub at: crate::domain::Timestamp,
}

impl Call {
    pub fn id(&self) -> &PartnerId {
        &self.partner.id
    }

    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            partner: &self.partner,
            agent: &self.ctx.agent,
            purpose: self.ctx.purpose,
        }
    }

    /// The metadata of a write, audited as this call about `person`.
    pub fn meta(&self, request_id: RequestId) -> WriteMeta {
        WriteMeta {
            principal: self.partner.id.to_string(),
            agent: self.ctx.agent.clone(),
            request_id,
            fingerprint: self.fingerprint.clone(),
            at: self.at,
            audit: vec![],
        }
    }

    /// The audit entry of this call's write about `person`, with the decision that allowed it.
    pub fn write_entry(
        &self,
        person: Option<PersonId>,
        categories: &[crate::domain::DataCategory],
        decision: Option<&Decision>,
    ) -> AuditEntry {
        let mut e = AuditEntry::new(
            self.at,
            self.partner.id.as_str(),
            self.ctx.agent.as_str(),
            format!("write:{}", self.method),
        );
        e.person = person;
        e.categories = categories.iter().map(|c| c.as_str().to_string()).collect();
        e.purpose = Some(self.ctx.purpose.as_str().to_string());
        if let Some(d) = decision {
            e.policies = d.policies.clone();
            e.records = d.coverage.record.iter().cloned().collect();
        }
        e
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
    pb::EscalateReferralRequest,
    pb::GetReferralRequest,
    pb::ListReferralsRequest,
    pb::ListWorkQueueRequest,
    pb::SetResidenceRequest,
    pb::SetAccessibilityRequest,
    pb::GetAccessibilityRequest,
    pb::PlanTourRequest,
    pb::GetMediatorSheetRequest,
    pb::GetActivityFiguresRequest,
    pb::SubscribeRequest,
    pb::GrantConsentRequest,
    pb::WithdrawConsentRequest,
    pb::ListConsentsRequest,
    pb::GetConsentReceiptRequest,
    pb::GrantMandateRequest,
    pb::RevokeMandateRequest,
    pb::ListMandatesRequest,
);

/// What a request asked for: `<method>:<digest of its body>`, so that a request id reused for
/// another method with the same fields is told apart (the store also accepts a bare digest,
/// as recorded before the method was part of it, for retries across an upgrade).
fn digest<M: prost::Message>(method: &str, m: &M) -> String {
    format!(
        "{method}:{}",
        hex::encode(Sha256::digest(m.encode_to_vec()))
    )
}

/// The request id of a write, parsed.
pub(crate) fn request_id(raw: &str, v: &mut Violations) -> Option<RequestId> {
    v.field("request_id", RequestId::parse(raw))
}

impl Api {
    /// Finds the principal behind the client certificate of the connection, and that
    /// certificate's fingerprint. A revoked, retired or expired certificate is refused here at
    /// every call, not only at the TLS handshake.
    async fn principal<T>(&self, request: &Request<T>) -> Result<(Principal, String)> {
        let certs = request.peer_certs().ok_or_else(|| {
            Error::Unauthenticated(
                "no client certificate: connect with the bundle the hub issued".into(),
            )
        })?;
        let leaf = certs
            .first()
            .ok_or_else(|| Error::Unauthenticated("empty client certificate chain".into()))?;
        let fingerprint = match request
            .extensions()
            .get::<crate::limits::CertificateFingerprint>()
        {
            Some(known) => known.0.clone(),
            None => crate::pki::fingerprint(leaf),
        };
        let found = self.store.principal_by_fingerprint(&fingerprint).await?;
        if let Some((_, record)) = &found
            && let Some(why) = record.refused_at(self.clock.now())
        {
            return Err(Error::Unauthenticated(format!(
                "certificate {fingerprint} is {why}: use a current certificate"
            )));
        }
        match found.map(|(p, _)| p) {
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
            Some(principal) => {
                if let Principal::Partner(p) = &principal {
                    self.limits.learn(&fingerprint, p);
                }
                Ok((principal, fingerprint))
            }
        }
    }

    /// Runs a partner's call: authenticates, parses the context, logs the outcome with
    /// partner, agent and purpose, records the call's span and metrics, and maps the error.
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
        let span = rpc_span(method, &request);
        let started = std::time::Instant::now();
        async move {
            let mut who: Option<(PartnerId, AgentId)> = None;
            let (result, store, policy) = crate::telemetry::timed(async {
                self.ready()?;
                let (principal, certificate) = self.principal(&request).await?;
                let Principal::Partner(partner) = principal else {
                    return Err(Error::PermissionDenied(
                        "the administrator is not a partner: use a partner's identity".into(),
                    ));
                };
                tracing::Span::current().record("relais.partner", partner.id.as_str());
                let body = request.into_inner();
                let mut v = Violations::new();
                let ctx = convert::context(body.context(), &mut v);
                if let Some(ctx) = &ctx {
                    tracing::Span::current().record("relais.purpose", ctx.purpose.as_str());
                    who = Some((partner.id.clone(), ctx.agent.clone()));
                }
                v.finish()?;
                let ctx = ctx.ok_or_else(|| Error::Internal("context lost".into()))?;
                let call = Call {
                    partner,
                    ctx,
                    method,
                    fingerprint: digest(method, &body),
                    certificate,
                    at: self.clock.now(),
                };
                crate::audit::with_certificate(call.certificate.clone(), handler(call, body)).await
            })
            .await;
            let (partner, agent) = who.unzip();
            finish_call(
                method,
                partner.as_ref().map(|p| p.as_str()),
                agent.as_ref().map(|a| a.as_str()),
                result,
                started,
                store,
                policy,
            )
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
        let span = rpc_span(method, &request);
        span.record("relais.partner", "admin");
        let started = std::time::Instant::now();
        async move {
            let mut name = None;
            let mut role = None;
            let (result, store, policy) = crate::telemetry::timed(async {
                self.ready()?;
                // A console account (set by the console in-process; no client can set it) is
                // checked against its role here, whatever its pages show.
                let console = request
                    .extensions()
                    .get::<crate::console::account::Actor>()
                    .cloned();
                let admin = if let Some(actor) = console {
                    if !actor.role.allows(method) {
                        return Err(Error::PermissionDenied(format!(
                            "the role {} of account `{}` does not allow {method}",
                            actor.role.as_str(),
                            actor.name
                        )));
                    }
                    role = Some(actor.role);
                    actor.name
                } else {
                    match self.principal(&request).await?.0 {
                        Principal::Admin(admin) => admin,
                        Principal::Partner(p) => {
                            return Err(Error::PermissionDenied(format!(
                                "partner `{}` is not the administrator",
                                p.id
                            )));
                        }
                    }
                };
                name = Some(admin.clone());
                let body = request.into_inner();
                let call = AdminCall {
                    method,
                    role,
                    name: admin,
                    fingerprint: digest(method, &body),
                    at: self.clock.now(),
                };
                handler(call, body).await
            })
            .await;
            finish_call(
                method,
                Some("admin"),
                name.as_deref(),
                result,
                started,
                store,
                policy,
            )
        }
        .instrument(span)
        .await
    }

    /// Refuses at once, instead of waiting on the database, while the hub stops or while its
    /// database is unreachable.
    fn ready(&self) -> Result<()> {
        if self.life.is_stopping() {
            return Err(Error::ShuttingDown);
        }
        if !self.life.database_up() {
            return Err(Error::Unavailable(
                "the database did not answer the last health check".into(),
            ));
        }
        Ok(())
    }

    /// The facts about a person the caller may know of, or `NOT_FOUND` — the very answer a
    /// person that does not exist gets (`disclose::no_person`). The refusal is audited in the
    /// background, so that it costs the caller no more time than an unknown person.
    pub(crate) async fn known_person(&self, call: &Call, person: PersonId) -> Result<Facts> {
        let facts = self.gate.facts(&call.partner, person).await?;
        if self
            .gate
            .may_know(&facts, &call.partner, &call.ctx.agent, call.ctx.purpose)
        {
            return Ok(facts);
        }
        let mut entry = AuditEntry::new(
            call.at,
            call.partner.id.as_str(),
            call.ctx.agent.as_str(),
            format!("read:{}", call.method),
        );
        entry.person = Some(person);
        entry.denied = vec!["identity".into()];
        entry.purpose = Some(call.ctx.purpose.as_str().to_string());
        entry.decision = "deny".into();
        entry.detail = "the partner may not know this person".into();
        disclose::audit_in_background(&self.store, entry);
        tracing::info!("person not disclosed");
        Err(disclose::no_person())
    }

    /// The answer for traits that match nobody: the same work as for a person the caller may
    /// not know (the facts of a random id are read and dropped, the request is audited in the
    /// background), then the same `NOT_FOUND`.
    pub(crate) async fn nobody<T>(&self, call: &Call) -> Result<T> {
        let facts = self.gate.facts(&call.partner, PersonId::new()).await?;
        let _ = self
            .gate
            .may_know(&facts, &call.partner, &call.ctx.agent, call.ctx.purpose);
        let mut entry = AuditEntry::new(
            call.at,
            call.partner.id.as_str(),
            call.ctx.agent.as_str(),
            format!("read:{}", call.method),
        );
        entry.purpose = Some(call.ctx.purpose.as_str().to_string());
        entry.decision = "deny".into();
        entry.detail = "no person matches".into();
        disclose::audit_in_background(&self.store, entry);
        Err(disclose::no_person())
    }

    /// The answer for a record id that names nothing: `NOT_FOUND`, after the work a hidden
    /// record costs (the facts of a random person are read and dropped), so that time does not
    /// tell the two apart.
    pub(crate) async fn no_such_record<T>(
        &self,
        call: &Call,
        what: &'static str,
        sent: impl ToString,
    ) -> Result<T> {
        let _ = self.gate.facts(&call.partner, PersonId::new()).await?;
        Err(disclose::no_record(what, sent))
    }

    /// Resolves a `PersonRef` (hub id or the caller's local id) to a person the caller may
    /// know of, with the facts for deciding on their data.
    pub(crate) async fn person_ref(
        &self,
        call: &Call,
        field: &str,
        person: Option<&pb::PersonRef>,
    ) -> Result<Facts> {
        use pb::person_ref::Ref;
        match person.and_then(|p| p.r#ref.as_ref()) {
            None => Err(Error::invalid(field, "required: person_id or local_id")),
            Some(Ref::PersonId(id)) => {
                let id = PersonId::parse(id)
                    .map_err(|e| convert::invalid(&format!("{field}.person_id"), e))?;
                self.known_person(call, id).await
            }
            Some(Ref::LocalId(local)) => {
                let local = crate::domain::LocalId::parse(local)
                    .map_err(|e| convert::invalid(&format!("{field}.local_id"), e))?;
                let person = self
                    .store
                    .person_by_local_id(call.id(), &local)
                    .await?
                    .ok_or_else(|| Error::not_found("local id", &local))?;
                self.known_person(call, person).await
            }
        }
    }

    /// A read of one person's data by this call, item by item.
    pub(crate) fn access<'a>(&'a self, call: &'a Call, facts: Facts) -> Access<'a> {
        Access::new(&self.gate, call.viewer(), facts)
    }

    /// Checks that the caller may write `subject` about the person; the decision goes into the
    /// write's audit entry.
    pub(crate) fn may_write(
        &self,
        call: &Call,
        facts: &Facts,
        subject: Subject,
    ) -> Result<Decision> {
        let d = self.gate.decide(
            facts,
            &call.partner,
            &call.ctx.agent,
            Action::Write,
            subject,
            call.ctx.purpose,
        );
        if d.allowed {
            Ok(d)
        } else {
            tracing::info!(reasons = ?d.reasons, "write refused");
            Err(Error::PermissionDenied(format!(
                "partner `{}` may not write {} data about this person for {}",
                call.id(),
                subject.category,
                call.ctx.purpose,
            )))
        }
    }
}

/// An authenticated administrator call.
pub(crate) struct AdminCall {
    method: &'static str,
    /// The administrator's name, from their certificate: every act is audited under it.
    pub name: String,
    /// The console account's role, when a console account acts.
    pub role: Option<crate::console::account::Role>,
    fingerprint: String,
    at: crate::domain::Timestamp,
}

impl AdminCall {
    /// The metadata of an administrator's write, audited.
    pub fn meta(&self, request_id: RequestId, detail: String) -> WriteMeta {
        let mut entry = self.entry();
        entry.detail = detail;
        WriteMeta {
            principal: "admin".into(),
            agent: AgentId::parse(&self.name).unwrap_or_else(|_| AgentId::system()),
            request_id,
            fingerprint: self.fingerprint.clone(),
            at: self.at,
            audit: vec![entry],
        }
    }

    /// The audit entry of this call.
    pub fn entry(&self) -> AuditEntry {
        AuditEntry::new(
            self.at,
            "admin",
            &self.name,
            format!("admin:{}", self.method),
        )
    }

    pub fn at(&self) -> crate::domain::Timestamp {
        self.at
    }

    /// A certificate this call has issued waits for an administrateur's approval: an
    /// opérateur of the console issues, another person approves.
    pub fn needs_approval(&self) -> bool {
        self.role == Some(crate::console::account::Role::Operateur)
    }
}

/// The span of one call: the only span exported as telemetry, so its fields are chosen to
/// name no person and no agent (see `telemetry`). A connector's trace context, if it sent one,
/// is its parent.
fn rpc_span<T>(method: &'static str, request: &Request<T>) -> tracing::Span {
    let span = tracing::info_span!(
        target: "relais::rpc",
        "rpc",
        otel.name = method,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
        relais.partner = tracing::field::Empty,
        relais.purpose = tracing::field::Empty,
        relais.outcome = tracing::field::Empty,
        relais.store_ms = tracing::field::Empty,
        relais.policy_ms = tracing::field::Empty,
    );
    if let Some(parent) = crate::telemetry::parent_context(request.metadata()) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let _ = span.set_parent(parent);
    }
    span
}

/// Logs the outcome (with the agent: the local log may name them, telemetry does not),
/// records it on the span and in the metrics, and maps the error to its status.
fn finish_call<Resp>(
    method: &'static str,
    partner: Option<&str>,
    agent: Option<&str>,
    result: Result<Resp>,
    started: std::time::Instant,
    store: std::time::Duration,
    policy: std::time::Duration,
) -> Result<Response<Resp>, Status> {
    let span = tracing::Span::current();
    span.record("relais.store_ms", store.as_secs_f64() * 1000.0);
    span.record("relais.policy_ms", policy.as_secs_f64() * 1000.0);
    let agent = agent.unwrap_or("");
    let result = match result {
        Ok(r) => {
            tracing::info!(outcome = "ok", agent, "request");
            span.record("relais.outcome", "ok");
            Ok(Response::new(r))
        }
        Err(e) => {
            let outcome = match &e {
                Error::Internal(_) | Error::Unavailable(_) => {
                    tracing::error!(outcome = "error", agent, error = %e, "request");
                    span.record("otel.status_code", "ERROR");
                    "error"
                }
                _ => {
                    tracing::info!(outcome = "refused", agent, error = %e, "request");
                    "refused"
                }
            };
            span.record("relais.outcome", outcome);
            Err(status::to_status(e))
        }
    };
    let code = result.as_ref().err().map_or(tonic::Code::Ok, Status::code);
    span.record("rpc.grpc.status_code", code as i64);
    crate::telemetry::call_done(method, partner.unwrap_or("-"), code, started.elapsed());
    result
}
