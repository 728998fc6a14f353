//! ConsentService: consent records and mandates, granted and withdrawn at the counter.

use super::{AdminCall, Api, Call, convert, disclose, request_id};
use crate::documents;
use crate::domain::change::{ConsentNotice, Redaction};
use crate::domain::consent::{
    CollectionMethod, Consent, ConsentId, Countersignature, Grantee, LegalBasis, Mandate, MandateId,
};
use crate::domain::ids::free_text;
use crate::domain::{AgentId, DataCategory, Partner, PartnerId, Theme};
use crate::error::{Error, Result, Violations};
use crate::store::WriteMeta;
use relais_proto::v1::{self as pb, consent_service_server::ConsentService};
use std::collections::HashMap;
use tonic::{Request, Response, Status};

fn parse_list<T>(
    v: &mut Violations,
    field: &str,
    raw: &[T],
    parse: impl Fn(&T) -> std::result::Result<crate::domain::DataCategory, crate::error::Invalid>,
) -> Vec<DataCategory> {
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        if let Some(c) = v.field(&format!("{field}[{i}]"), parse(r))
            && !out.contains(&c)
        {
            out.push(c);
        }
    }
    if raw.is_empty() {
        v.push(field, "required: at least one");
    }
    out
}

fn channel(raw: &str, v: &mut Violations) -> Option<String> {
    let c = v.field("channel", free_text(raw, 64))?;
    if c.is_empty() {
        v.push(
            "channel",
            "required: how the person asked (guichet, telephone, courrier, bus, en_ligne…)",
        );
        return None;
    }
    Some(c)
}

impl Api {
    async fn grantee(&self, g: Option<&pb::Grantee>, call: &Call) -> Result<Grantee> {
        use pb::grantee::Grantee as G;
        match g.and_then(|g| g.grantee.as_ref()) {
            None => Err(Error::invalid(
                "grantee",
                "required: a partner, a partner kind or an agent",
            )),
            Some(G::Partner(p)) => {
                let partner =
                    PartnerId::parse(p).map_err(|e| convert::invalid("grantee.partner", e))?;
                self.existing_partner("grantee.partner", &partner).await?;
                Ok(Grantee::Partner { partner })
            }
            Some(G::Kind(k)) => Ok(Grantee::Kind {
                kind: convert::partner_kind_from_pb(*k)
                    .map_err(|e| convert::invalid("grantee.kind", e))?,
            }),
            Some(G::Agent(a)) => {
                let (partner, agent) = self.agent_ref("grantee.agent", a, call).await?;
                Ok(Grantee::Agent { partner, agent })
            }
        }
    }

    async fn existing_partner(&self, field: &str, id: &PartnerId) -> Result<Partner> {
        self.store
            .get_partner(id)
            .await?
            .ok_or_else(|| Error::invalid(field, format!("no partner `{id}` on this hub")))
    }

    async fn agent_ref(
        &self,
        field: &str,
        a: &pb::AgentRef,
        call: &Call,
    ) -> Result<(PartnerId, AgentId)> {
        let mut v = Violations::new();
        let partner = if a.partner.is_empty() {
            Some(call.id().clone())
        } else {
            v.field(&format!("{field}.partner"), PartnerId::parse(&a.partner))
        };
        let agent = v.field(&format!("{field}.agent"), AgentId::parse(&a.agent));
        v.finish()?;
        let (Some(partner), Some(agent)) = (partner, agent) else {
            return Err(Error::Internal("validated fields missing".into()));
        };
        self.existing_partner(&format!("{field}.partner"), &partner)
            .await?;
        Ok((partner, agent))
    }

    /// Partners by id, to name them in documents.
    pub(crate) async fn partner_names(&self) -> Result<HashMap<PartnerId, Partner>> {
        let mut out = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_partners(after.as_deref(), 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.to_string());
            let full = page.len() == 500;
            out.extend(page.into_iter().map(|p| (p.id.clone(), p)));
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Withdraws a consent, for a partner at its counter or for the administrator.
    pub(crate) async fn withdraw(
        &self,
        id: ConsentId,
        channel: String,
        by: String,
        agent: String,
        meta: &WriteMeta,
    ) -> Result<(Consent, Vec<Redaction>)> {
        let at = meta.at;
        let (consent, redactions) = self
            .store
            .withdraw_consent(
                id,
                Box::new(move |c| c.withdraw(at, channel, by, agent)),
                meta,
            )
            .await?;
        tracing::info!(consent = %consent.id, redactions = redactions.len(), "consent withdrawn");
        Ok((consent, redactions))
    }

    /// A consent record the caller may see — it collected it, or the record names it —
    /// otherwise `NOT_FOUND`, as for no record. A consent record is personal data.
    async fn consent_for(&self, call: &Call, raw: &str) -> Result<Consent> {
        let id = ConsentId::parse(raw).map_err(|e| convert::invalid("consent_id", e))?;
        let Some(consent) = self
            .store
            .get_consent(id)
            .await?
            .filter(|c| disclose::consent_visible(&call.partner, c))
        else {
            return self.no_such_record(call, "consent", id).await;
        };
        // A grantee that does not (or no longer) know the person — named only as "every
        // mairie", say — does not act on the record either.
        self.known_person(call, consent.person)
            .await
            .map_err(|_| disclose::no_record("consent", id))?;
        Ok(consent)
    }

    pub(crate) fn admin_withdraw_meta(
        call: &AdminCall,
        request_id: crate::domain::RequestId,
        consent: ConsentId,
    ) -> WriteMeta {
        call.meta(
            request_id,
            format!("consent {consent} withdrawn on the person's request"),
        )
    }
}

/// Does the grantee include the partner that records the consent?
fn grants_itself(g: &Grantee, partner: &Partner) -> bool {
    match g {
        Grantee::Partner { partner: p } | Grantee::Agent { partner: p, .. } => *p == partner.id,
        Grantee::Kind { kind } => *kind == partner.kind,
    }
}

impl Api {
    /// Do the rules require an administrator's countersignature for recording this consent
    /// (a forbid on `record_consent` for one of its categories)?
    fn needs_countersignature(
        &self,
        call: &Call,
        facts: &crate::policy::Facts,
        categories: &[DataCategory],
        self_grant: bool,
    ) -> bool {
        categories.iter().any(|c| {
            let d = self.gate.engine.decide(&crate::policy::DecisionRequest {
                partner: &call.partner,
                agent: &call.ctx.agent,
                action: crate::policy::Action::RecordConsent,
                subject: crate::policy::Subject::category(*c),
                purpose: call.ctx.purpose,
                relation: facts.relation,
                coverage: crate::policy::Coverage::NONE,
                alert_plan: facts.alert_plan,
                self_grant,
            });
            !d.allowed && !d.policies.is_empty()
        })
    }

    /// The notice of a consent recorded: the partners, other than the collector, whose data
    /// about the person it opens to its grantee are told who recorded it, for which
    /// categories, on what evidence.
    async fn consent_notice(&self, call: &Call, c: &Consent) -> Result<ConsentNotice> {
        let mut writers: Vec<PartnerId> = Vec::new();
        let mut add = |partner: &PartnerId, category: DataCategory| {
            if partner != call.id()
                && c.categories.contains(&category)
                && !writers.contains(partner)
            {
                writers.push(partner.clone());
            }
        };
        for f in self.store.list_flags(c.person, false, None, 10_000).await? {
            add(&f.source_partner, f.code.category().into());
        }
        let cases = self
            .store
            .list_cases(
                &crate::store::CaseFilter {
                    person: Some(c.person),
                    ..Default::default()
                },
                None,
                10_000,
            )
            .await?;
        for case in cases {
            add(&case.owner, DataCategory::CaseStatus);
        }
        for r in self.store.referrals_of_person(c.person, 10_000).await? {
            add(&r.from, DataCategory::Referrals);
        }
        writers.sort();
        Ok(ConsentNotice {
            person: c.person,
            partners: writers,
            consent: c.id.to_string(),
            collected_by: c.collected_by.clone(),
            collected_by_agent: c.collected_by_agent.clone(),
            categories: c.categories.clone(),
            evidence_ref: c.evidence_ref.clone(),
            method: c.method.as_str().to_string(),
            countersignature_required: c.countersignature.is_some(),
        })
    }
}

fn redacted_partners(r: &[Redaction]) -> Vec<String> {
    r.iter().map(|r| r.partner.to_string()).collect()
}

#[tonic::async_trait]
impl ConsentService for Api {
    async fn grant_consent(
        &self,
        request: Request<pb::GrantConsentRequest>,
    ) -> Result<Response<pb::GrantConsentResponse>, Status> {
        self.partner_call("GrantConsent", request, |call, req| async move {
            let mut v = Violations::new();
            let categories = parse_list(&mut v, "categories", &req.categories, |c| DataCategory::parse(c));
            let mut purposes = Vec::new();
            for (i, p) in req.purposes.iter().enumerate() {
                if let Some(p) = v.field(&format!("purposes[{i}]"), convert::purpose_from_pb(*p))
                    && !purposes.contains(&p)
                {
                    purposes.push(p);
                }
            }
            if req.purposes.is_empty() {
                v.push("purposes", "required: at least one");
            }
            let basis = v.field("legal_basis", convert::legal_basis_from_pb(req.legal_basis));
            let method = v.field("method", convert::method_from_pb(req.method));
            let witness = v.field("witness", free_text(&req.witness, 200));
            if method == Some(CollectionMethod::OralWithWitness)
                && witness.as_ref().is_some_and(String::is_empty)
            {
                v.push("witness", "required for an oral consent: who witnessed it");
            }
            let notice_version = v.field("notice_version", free_text(&req.notice_version, 64));
            if req.notice_version.trim().is_empty() {
                v.push("notice_version", "required: the version of the notice the person was given");
            }
            let language = if req.notice_language.is_empty() { "fr".to_string() } else { req.notice_language.clone() };
            if language.len() > 35 || !language.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                v.push("notice_language", "a BCP 47 language tag (fr, oc, es, ar…)");
            }
            let evidence = v.field("evidence_ref", free_text(&req.evidence_ref, 200));
            let channel = v.field("channel", convert::channel_from_pb(req.channel));
            // Special categories (GDPR art. 9) are recorded only on evidence the collector
            // keeps: a signed paper, or an oral consent before a named witness.
            if categories.iter().any(|c| c.special()) {
                if method == Some(CollectionMethod::Digital) {
                    v.push("method", "health data needs a signed paper or an oral consent before a named witness");
                }
                if req.evidence_ref.trim().is_empty() {
                    v.push("evidence_ref", "required for health data: where the signed paper or the witness statement is kept");
                }
            }
            let expires_at = match &req.expires_at {
                None => None,
                Some(t) => v.field("expires_at", convert::timestamp_from_pb(t)),
            };
            if expires_at.is_some_and(|e| e <= call.at) {
                v.push("expires_at", "is in the past");
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(basis), Some(method), Some(witness), Some(notice_version), Some(evidence), Some(request_id), Some(channel)) =
                (basis, method, witness, notice_version, evidence, request_id, channel)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let grantee = self.grantee(req.grantee.as_ref(), &call).await?;
            let facts = self.person_ref(&call, "person", req.person.as_ref()).await?;
            if !(facts.relation.linked || facts.relation.owns_case) {
                return Err(Error::PermissionDenied(
                    "a partner records consent only for a person it serves (link them first)".into(),
                ));
            }
            if categories.contains(&DataCategory::Health)
                && !matches!(basis, LegalBasis::Consent | LegalBasis::VitalInterest | LegalBasis::LegalObligation)
            {
                return Err(Error::invalid(
                    "legal_basis",
                    "health data (GDPR art. 9) is shared only on explicit consent, a legal obligation or a vital interest",
                ));
            }
            let consent = Consent {
                id: ConsentId::new(),
                person: facts.person,
                grantee,
                categories: categories.clone(),
                purposes,
                legal_basis: basis,
                collected_by: call.id().clone(),
                collected_by_agent: call.ctx.agent.clone(),
                method,
                witness,
                notice_version,
                notice_language: language,
                evidence_ref: evidence,
                granted_at: call.at,
                expires_at,
                withdrawal: None,
                history: vec![crate::domain::consent::StatusChange {
                    at: call.at,
                    status: crate::domain::consent::RecordState::Granted,
                    by: call.id().to_string(),
                    agent: call.ctx.agent.to_string(),
                    channel: method.as_str().to_string(),
                }],
                version: 1,
                channel: Some(channel),
                countersignature: None,
            };
            let self_grant = grants_itself(&consent.grantee, &call.partner);
            let mut consent = consent;
            if self.needs_countersignature(&call, &facts, &categories, self_grant) {
                consent.countersignature = Some(Countersignature { at: None, by: String::new() });
            }
            let notice = self.consent_notice(&call, &consent).await?;
            let mut entry = call.write_entry(Some(facts.person), &categories, None);
            entry.records = vec![format!("consent:{}", consent.id)];
            entry.detail = format!(
                "consent recorded ({}, {}){}",
                consent.method.as_str(),
                channel.as_str(),
                if consent.countersignature.is_some() { ", awaiting countersignature" } else { "" }
            );
            let consent = self
                .store
                .grant_consent(consent, notice, &call.meta(request_id).audited(entry))
                .await?;
            Ok(pb::GrantConsentResponse {
                consent: Some(convert::consent(&consent, call.at)),
            })
        })
        .await
    }

    async fn withdraw_consent(
        &self,
        request: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::WithdrawConsentResponse>, Status> {
        self.partner_call("WithdrawConsent", request, |call, req| async move {
            let mut v = Violations::new();
            let channel = channel(&req.channel, &mut v);
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(channel), Some(request_id)) = (channel, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let consent = self.consent_for(&call, &req.consent_id).await?;
            let mut entry = call.write_entry(Some(consent.person), &consent.categories, None);
            entry.records = vec![format!("consent:{}", consent.id)];
            entry.detail = format!("consent withdrawn ({channel})");
            let meta = call.meta(request_id).audited(entry);
            let (consent, redactions) = self
                .withdraw(
                    consent.id,
                    channel,
                    call.id().to_string(),
                    call.ctx.agent.to_string(),
                    &meta,
                )
                .await?;
            // Who had received the data is the collector's to know (it answers for the record);
            // another partner is told only about itself.
            let mut redacted = redacted_partners(&redactions);
            if &consent.collected_by != call.id() {
                redacted.retain(|p| p == call.id().as_str());
            }
            Ok(pb::WithdrawConsentResponse {
                consent: Some(convert::consent(&consent, call.at)),
                redacted_partners: redacted,
            })
        })
        .await
    }

    async fn list_consents(
        &self,
        request: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        self.partner_call("ListConsents", request, |call, req| async move {
            let facts = self
                .person_ref(&call, "person", req.person.as_ref())
                .await?;
            let mut entry = call.write_entry(Some(facts.person), &[], None);
            entry.action = "read:ListConsents".into();
            self.store.record_access(vec![entry], vec![]).await?;
            Ok(pb::ListConsentsResponse {
                consents: facts
                    .consents
                    .iter()
                    .filter(|c| disclose::consent_visible(&call.partner, c))
                    .map(|c| convert::consent(c, call.at))
                    .collect(),
            })
        })
        .await
    }

    async fn get_consent_receipt(
        &self,
        request: Request<pb::GetConsentReceiptRequest>,
    ) -> Result<Response<pb::GetConsentReceiptResponse>, Status> {
        self.partner_call("GetConsentReceipt", request, |call, req| async move {
            let consent = self.consent_for(&call, &req.consent_id).await?;
            let (text, html) = documents::consent_receipt(
                &consent,
                &self.partner_names().await?,
                &self.settings.territory,
                call.at,
            );
            Ok(pb::GetConsentReceiptResponse { text, html })
        })
        .await
    }

    async fn grant_mandate(
        &self,
        request: Request<pb::GrantMandateRequest>,
    ) -> Result<Response<pb::GrantMandateResponse>, Status> {
        self.partner_call("GrantMandate", request, |call, req| async move {
            let mut v = Violations::new();
            let mut themes = Vec::new();
            for (i, t) in req.themes.iter().enumerate() {
                if let Some(t) = v.field(&format!("themes[{i}]"), Theme::parse(t))
                    && !themes.contains(&t)
                {
                    themes.push(t);
                }
            }
            if req.themes.is_empty() {
                v.push("themes", "required: at least one procedure theme");
            }
            let duration = v.field("duration", convert::duration_from_pb(req.duration));
            let method = v.field("method", convert::method_from_pb(req.method));
            let request_id = request_id(&req.request_id, &mut v);
            if req.mandatary.is_none() {
                v.push("mandatary", "required: the agent who receives the mandate");
            }
            v.finish()?;
            let (Some(duration), Some(method), Some(request_id), Some(mandatary)) =
                (duration, method, request_id, req.mandatary.as_ref())
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let (partner, agent) = self.agent_ref("mandatary", mandatary, &call).await?;
            let facts = self
                .person_ref(&call, "person", req.person.as_ref())
                .await?;
            if !facts.relation.any() {
                return Err(Error::PermissionDenied(
                    "a partner records a mandate only for a person it serves (link them first)"
                        .into(),
                ));
            }
            let mandate = Mandate {
                id: MandateId::new(),
                person: facts.person,
                partner,
                agent,
                themes,
                duration,
                granted_at: call.at,
                expires_at: crate::domain::Timestamp::from_micros(
                    call.at.micros() + duration.micros(),
                ),
                revocation: None,
                collected_by: call.id().clone(),
                collected_by_agent: call.ctx.agent.clone(),
                method,
                history: vec![],
                version: 1,
            };
            let mut entry = call.write_entry(Some(facts.person), &[DataCategory::CaseStatus], None);
            entry.records = vec![format!("mandate:{}", mandate.id)];
            entry.detail = "mandate granted".into();
            let mandate = self
                .store
                .grant_mandate(mandate, &call.meta(request_id).audited(entry))
                .await?;
            let (printable_text, printable_html) = documents::mandate(
                &mandate,
                &self.partner_names().await?,
                &self.settings.territory,
                call.at,
            );
            Ok(pb::GrantMandateResponse {
                mandate: Some(convert::mandate(&mandate, call.at)),
                printable_text,
                printable_html,
            })
        })
        .await
    }

    async fn revoke_mandate(
        &self,
        request: Request<pb::RevokeMandateRequest>,
    ) -> Result<Response<pb::RevokeMandateResponse>, Status> {
        self.partner_call("RevokeMandate", request, |call, req| async move {
            let mut v = Violations::new();
            let id = v.field("mandate_id", MandateId::parse(&req.mandate_id));
            let channel = channel(&req.channel, &mut v);
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(id), Some(channel), Some(request_id)) = (id, channel, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let Some(current) = self
                .store
                .get_mandate(id)
                .await?
                .filter(|m| disclose::mandate_visible(&call.partner, m))
            else {
                return self.no_such_record(&call, "mandate", id).await;
            };
            let mut entry =
                call.write_entry(Some(current.person), &[DataCategory::CaseStatus], None);
            entry.records = vec![format!("mandate:{id}")];
            entry.detail = format!("mandate revoked ({channel})");
            let meta = call.meta(request_id).audited(entry);
            let (by, agent, at) = (call.id().to_string(), call.ctx.agent.to_string(), call.at);
            let (mandate, redactions) = self
                .store
                .revoke_mandate(
                    id,
                    Box::new(move |m| m.revoke(at, channel, by, agent)),
                    &meta,
                )
                .await?;
            Ok(pb::RevokeMandateResponse {
                mandate: Some(convert::mandate(&mandate, call.at)),
                redacted_partners: redacted_partners(&redactions),
            })
        })
        .await
    }

    async fn list_mandates(
        &self,
        request: Request<pb::ListMandatesRequest>,
    ) -> Result<Response<pb::ListMandatesResponse>, Status> {
        self.partner_call("ListMandates", request, |call, req| async move {
            let facts = self
                .person_ref(&call, "person", req.person.as_ref())
                .await?;
            let mut entry = call.write_entry(Some(facts.person), &[], None);
            entry.action = "read:ListMandates".into();
            self.store.record_access(vec![entry], vec![]).await?;
            Ok(pb::ListMandatesResponse {
                mandates: facts
                    .mandates
                    .iter()
                    .filter(|m| disclose::mandate_visible(&call.partner, m))
                    .map(|m| convert::mandate(m, call.at))
                    .collect(),
            })
        })
        .await
    }
}
