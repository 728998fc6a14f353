//! AdminService: partners and their certificates. Only the administrator principal calls it.

use super::{AdminCall, Api, convert, request_id};
use crate::audit::Verifier;
use crate::documents;
use crate::domain::consent::ConsentId;
use crate::domain::ids::{PartnerId, free_text};
use crate::domain::partner::{Partner, PartnerStatus, parse_territory_code};
use crate::domain::priority::Priorities;
use crate::domain::{AgentId, DataCategory, FlagCode, PersonId, Theme};
use crate::error::{Error, Result, Violations};
use crate::policy::{Action, DecisionRequest, RuleError, Subject, coverage};
use crate::store::{AlertPlan, RulesVersion, Setting};
use relais_proto::v1::{self as pb, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

impl Api {
    async fn change_status(
        &self,
        call: AdminCall,
        id: &str,
        reason: &str,
        raw_request_id: &str,
        status: PartnerStatus,
    ) -> Result<pb::Partner> {
        let mut v = Violations::new();
        let id = v.field("id", PartnerId::parse(id));
        let reason = v.field("reason", free_text(reason, 500));
        let request_id = request_id(raw_request_id, &mut v);
        v.finish()?;
        let (Some(id), Some(reason), Some(request_id)) = (id, reason, request_id) else {
            return Err(Error::Internal("validated fields missing".into()));
        };
        let meta = call.meta(request_id, format!("partner {id} {}", status.as_str()));
        let partner = self
            .store
            .set_partner_status(&id, status, reason, &meta)
            .await?;
        tracing::info!(partner = %partner.id, status = partner.status.as_str(), "partner status");
        Ok(convert::partner(&partner))
    }
}

fn rules_version(v: &RulesVersion) -> pb::RulesVersion {
    pb::RulesVersion {
        version: v.version,
        author: v.author.clone(),
        comment: v.comment.clone(),
        created_at: convert::timestamp(v.created_at),
        restores: v.restores.unwrap_or(0),
    }
}

fn rule_errors(errors: Vec<RuleError>) -> Vec<pb::RuleError> {
    errors
        .into_iter()
        .map(|e| pb::RuleError {
            message: e.message,
            line: e.line,
            column: e.column,
            rule: e.policy,
        })
        .collect()
}

/// A question, parsed, with what the decision needs from the store.
struct Question {
    partner: Partner,
    agent: AgentId,
    subject: Subject,
    action: Action,
    purpose: crate::domain::Purpose,
    facts: crate::policy::Facts,
}

impl Question {
    fn request(&self) -> DecisionRequest<'_> {
        let coverage = coverage(
            &self.facts.consents,
            &self.facts.mandates,
            &self.partner,
            &self.agent,
            &self.subject,
            self.purpose,
            self.facts.now,
        );
        DecisionRequest {
            partner: &self.partner,
            agent: &self.agent,
            action: self.action,
            subject: self.subject,
            purpose: self.purpose,
            relation: self.facts.relation,
            coverage,
            alert_plan: self.facts.alert_plan,
            self_grant: false,
        }
    }
}

impl Api {
    async fn question(&self, field: &str, q: Option<&pb::AccessQuestion>) -> Result<Question> {
        let Some(q) = q else {
            return Err(Error::invalid(field, "required"));
        };
        let mut v = Violations::new();
        let partner = v.field(&format!("{field}.partner"), PartnerId::parse(&q.partner));
        let agent = v.field(&format!("{field}.agent"), AgentId::parse(&q.agent));
        let person = v.field(&format!("{field}.person_id"), PersonId::parse(&q.person_id));
        let category = v.field(
            &format!("{field}.category"),
            DataCategory::parse(&q.category),
        );
        let purpose = v.field(
            &format!("{field}.purpose"),
            convert::purpose_from_pb(q.purpose),
        );
        let code = if q.code.is_empty() {
            Some(None)
        } else {
            v.field(&format!("{field}.code"), FlagCode::parse(&q.code))
                .map(Some)
        };
        let theme = if q.theme.is_empty() {
            Some(None)
        } else {
            v.field(&format!("{field}.theme"), Theme::parse(&q.theme))
                .map(Some)
        };
        if let (Some(Some(code)), Some(category)) = (code, category)
            && DataCategory::from(code.category()) != category
        {
            v.push(
                format!("{field}.code"),
                format!("{code} is not in category {category}"),
            );
        }
        v.finish()?;
        let (
            Some(partner),
            Some(agent),
            Some(person),
            Some(category),
            Some(purpose),
            Some(code),
            Some(theme),
        ) = (partner, agent, person, category, purpose, code, theme)
        else {
            return Err(Error::Internal("validated fields missing".into()));
        };
        let partner = self.store.get_partner(&partner).await?.ok_or_else(|| {
            Error::invalid(
                format!("{field}.partner"),
                format!("no partner `{partner}`"),
            )
        })?;
        let facts = self.gate.facts(&partner, person).await?;
        Ok(Question {
            partner,
            agent,
            subject: Subject {
                category,
                code,
                theme,
            },
            action: if q.write { Action::Write } else { Action::Read },
            purpose,
            facts,
        })
    }

    /// Stores `text` as the new rules version and puts it in force.
    async fn activate_rules(
        &self,
        call: &AdminCall,
        text: &str,
        author: &str,
        comment: &str,
        restores: Option<i64>,
        request_id: crate::domain::RequestId,
    ) -> Result<RulesVersion> {
        self.gate.engine.validate(text).map_err(|errors| {
            Error::Invalid(
                errors
                    .iter()
                    .map(|e| crate::error::FieldViolation::new("text", e.to_string()))
                    .collect(),
            )
        })?;
        let meta = call.meta(request_id, format!("rules changed by {author}: {comment}"));
        let version = self
            .store
            .add_setting(Setting::Rules, text, author, comment, restores, &meta)
            .await?;
        // A retried request returns the version it made; only the newest is put in force.
        if let Some((active, active_text)) = self.store.active_setting(Setting::Rules).await? {
            self.gate
                .engine
                .activate(active.version, &active_text)
                .map_err(|e| Error::Internal(format!("stored rules do not compile: {e:?}")))?;
        }
        tracing::info!(version = version.version, author, "access rules activated");
        Ok(version)
    }
}

impl Api {
    /// The version a rollback activates again (the one before the current when 0), and its
    /// text.
    async fn rollback_target(&self, setting: Setting, to_version: i64) -> Result<(i64, String)> {
        let versions = self.store.setting_versions(setting).await?;
        let target = if to_version == 0 {
            let active = versions.last().map_or(0, |v| v.version);
            versions
                .iter()
                .rev()
                .find(|v| v.version < active)
                .map(|v| v.version)
                .ok_or_else(|| {
                    Error::FailedPrecondition("there is no earlier version to roll back to".into())
                })?
        } else {
            to_version
        };
        let text = self
            .store
            .setting_text(setting, target)
            .await?
            .ok_or_else(|| Error::not_found("version", target))?;
        Ok((target, text))
    }

    /// Stores `text` as the new priorities version, in force for every queue from now on.
    async fn activate_priorities(
        &self,
        call: &AdminCall,
        text: &str,
        author: &str,
        comment: &str,
        restores: Option<i64>,
        request_id: crate::domain::RequestId,
    ) -> Result<RulesVersion> {
        Priorities::check(text).map_err(|e| {
            Error::Invalid(vec![crate::error::FieldViolation::new(
                "text",
                e.to_string(),
            )])
        })?;
        let meta = call.meta(
            request_id,
            format!("priorities changed by {author}: {comment}"),
        );
        let version = self
            .store
            .add_setting(Setting::Priorities, text, author, comment, restores, &meta)
            .await?;
        tracing::info!(version = version.version, author, "priorities activated");
        Ok(version)
    }

    /// Who changes a setting, and why: both required.
    fn author_and_comment(
        req_author: &str,
        req_comment: &str,
        raw_request_id: &str,
        comment_required: bool,
    ) -> Result<(String, String, crate::domain::RequestId)> {
        let mut v = Violations::new();
        let author = v.field("author", free_text(req_author, 200));
        let comment = v.field("comment", free_text(req_comment, 1000));
        if req_author.trim().is_empty() {
            v.push("author", "required: who makes the change");
        }
        if comment_required && req_comment.trim().is_empty() {
            v.push("comment", "required: why it changes");
        }
        let request_id = request_id(raw_request_id, &mut v);
        v.finish()?;
        match (author, comment, request_id) {
            (Some(a), Some(c), Some(r)) => Ok((a, c, r)),
            _ => Err(Error::Internal("validated fields missing".into())),
        }
    }
}

fn priority_errors(e: &crate::domain::priority::SettingError) -> Vec<pb::RuleError> {
    vec![pb::RuleError {
        message: e.message.clone(),
        line: e.line,
        column: e.column,
        rule: String::new(),
    }]
}

/// Ids a partner may not take: the principals the hub writes under.
const RESERVED_IDS: [&str; 4] = ["admin", "hub", "relais", "system"];

#[tonic::async_trait]
impl AdminService for Api {
    async fn add_partner(
        &self,
        request: Request<pb::AddPartnerRequest>,
    ) -> Result<Response<pb::AddPartnerResponse>, Status> {
        self.admin_call("AddPartner", request, |call, req| async move {
            let mut v = Violations::new();
            let id = v.field("id", PartnerId::parse(&req.id));
            // The names the hub writes under itself are not partners' (its own writes must
            // not pass for a partner's).
            if RESERVED_IDS.contains(&req.id.as_str()) {
                v.push(
                    "id",
                    "reserved: the hub writes under this name; choose another id",
                );
            }
            let kind = v.field("kind", convert::partner_kind_from_pb(req.kind));
            let name = v.field("name", free_text(&req.name, 200));
            if req.name.trim().is_empty() {
                v.push("name", "required: the partner's display name");
            }
            let mut territory = Vec::new();
            for (i, code) in req.territory.iter().enumerate() {
                if let Some(code) = v.field(&format!("territory[{i}]"), parse_territory_code(code))
                    && !territory.contains(&code)
                {
                    territory.push(code);
                }
            }
            if req.territory.is_empty() {
                v.push("territory", "required: at least one INSEE COG code");
            }
            if req.csr_pem.is_empty() {
                v.push(
                    "csr_pem",
                    "required: the connector's certificate signing request (PEM)",
                );
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(id), Some(kind), Some(name), Some(request_id)) = (id, kind, name, request_id)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let (_, mut record) = self.authority.sign_client_csr(
                &req.csr_pem,
                id.as_str(),
                self.settings.certificate_validity_days,
            )?;
            record.awaiting_approval = call.needs_approval();
            let partner = Partner {
                id,
                kind,
                name,
                territory,
                cog_vintage: if req.cog_vintage == 0 {
                    self.settings.cog_vintage
                } else {
                    req.cog_vintage
                },
                status: PartnerStatus::Active,
                status_reason: String::new(),
                certificates: vec![record],
                created_at: call.at(),
                updated_at: call.at(),
                version: 1,
            };
            // On a retry the store returns the partner of the first call, with the certificate
            // signed then; this call's signature is simply not used.
            let meta = call.meta(
                request_id,
                format!(
                    "partner {} added with certificate {}",
                    partner.id,
                    partner
                        .certificates
                        .first()
                        .map_or("", |c| c.fingerprint.as_str())
                ),
            );
            let stored = self.store.add_partner(partner, &meta).await?;
            tracing::info!(partner = %stored.id, kind = stored.kind.as_str(), "partner added");
            Ok(pb::AddPartnerResponse {
                certificate_pem: stored
                    .certificates
                    .first()
                    .map(|c| c.pem.clone())
                    .unwrap_or_default(),
                partner: Some(convert::partner(&stored)),
                ca_certificate_pem: self.authority.cert_pem().to_string(),
            })
        })
        .await
    }

    async fn get_partner(
        &self,
        request: Request<pb::GetPartnerRequest>,
    ) -> Result<Response<pb::GetPartnerResponse>, Status> {
        self.admin_call("GetPartner", request, |_call, req| async move {
            let id = PartnerId::parse(&req.id).map_err(|e| convert::invalid("id", e))?;
            let partner = self
                .store
                .get_partner(&id)
                .await?
                .ok_or_else(|| Error::not_found("partner", &id))?;
            Ok(pb::GetPartnerResponse {
                partner: Some(convert::partner(&partner)),
            })
        })
        .await
    }

    async fn list_partners(
        &self,
        request: Request<pb::ListPartnersRequest>,
    ) -> Result<Response<pb::ListPartnersResponse>, Status> {
        self.admin_call("ListPartners", request, |_call, req| async move {
            let mut v = Violations::new();
            let page = convert::page(req.page_size, &req.page_token, &mut v);
            v.finish()?;
            let mut partners = self
                .store
                .list_partners(page.after.as_deref(), page.size + 1)
                .await?;
            let next_page_token =
                convert::next_page(&mut partners, page.size, |p| p.id.to_string());
            Ok(pb::ListPartnersResponse {
                partners: partners.iter().map(convert::partner).collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn suspend_partner(
        &self,
        request: Request<pb::SuspendPartnerRequest>,
    ) -> Result<Response<pb::SuspendPartnerResponse>, Status> {
        self.admin_call("SuspendPartner", request, |call, req| async move {
            let partner = self
                .change_status(
                    call,
                    &req.id,
                    &req.reason,
                    &req.request_id,
                    PartnerStatus::Suspended,
                )
                .await?;
            Ok(pb::SuspendPartnerResponse {
                partner: Some(partner),
            })
        })
        .await
    }

    async fn resume_partner(
        &self,
        request: Request<pb::ResumePartnerRequest>,
    ) -> Result<Response<pb::ResumePartnerResponse>, Status> {
        self.admin_call("ResumePartner", request, |call, req| async move {
            let partner = self
                .change_status(call, &req.id, "", &req.request_id, PartnerStatus::Active)
                .await?;
            Ok(pb::ResumePartnerResponse {
                partner: Some(partner),
            })
        })
        .await
    }

    async fn issue_certificate(
        &self,
        request: Request<pb::IssueCertificateRequest>,
    ) -> Result<Response<pb::IssueCertificateResponse>, Status> {
        self.admin_call("IssueCertificate", request, |call, req| async move {
            let id =
                PartnerId::parse(&req.partner_id).map_err(|e| convert::invalid("partner_id", e))?;
            if self.store.get_partner(&id).await?.is_none() {
                return Err(Error::not_found("partner", &id));
            }
            let (certificate_pem, mut record) = self.authority.sign_client_csr(
                &req.csr_pem,
                id.as_str(),
                self.settings.certificate_validity_days,
            )?;
            record.awaiting_approval = call.needs_approval();
            if !(0..=24 * 90).contains(&req.retire_previous_after_hours) {
                return Err(Error::invalid(
                    "retire_previous_after_hours",
                    "between 0 (keep them) and 2160 (90 days)",
                ));
            }
            let retire = (req.retire_previous_after_hours > 0).then(|| {
                crate::domain::Timestamp::from_micros(
                    call.at().micros() + i64::from(req.retire_previous_after_hours) * 3_600_000_000,
                )
            });
            let mut entry = call.entry();
            entry.detail = format!(
                "certificate {} issued to {id}{}{}",
                record.fingerprint,
                if record.awaiting_approval {
                    ", awaiting an administrateur's approval"
                } else {
                    ""
                },
                retire.map_or(String::new(), |at| format!(
                    "; the others retired at {}",
                    at
                ))
            );
            self.store.add_certificate(&id, record, retire).await?;
            self.store.record_access(vec![entry], vec![]).await?;
            Ok(pb::IssueCertificateResponse {
                certificate_pem,
                ca_certificate_pem: self.authority.cert_pem().to_string(),
            })
        })
        .await
    }

    async fn get_rules(
        &self,
        request: Request<pb::GetRulesRequest>,
    ) -> Result<Response<pb::GetRulesResponse>, Status> {
        self.admin_call("GetRules", request, |_call, _req| async move {
            let (version, text) = self
                .store
                .active_setting(Setting::Rules)
                .await?
                .ok_or_else(|| Error::Internal("no rules stored".into()))?;
            Ok(pb::GetRulesResponse {
                version: Some(rules_version(&version)),
                text,
                schema: crate::policy::engine::SCHEMA.to_string(),
            })
        })
        .await
    }

    async fn validate_rules(
        &self,
        request: Request<pb::ValidateRulesRequest>,
    ) -> Result<Response<pb::ValidateRulesResponse>, Status> {
        self.admin_call("ValidateRules", request, |_call, req| async move {
            let errors = self
                .gate
                .engine
                .validate(&req.text)
                .err()
                .unwrap_or_default();
            Ok(pb::ValidateRulesResponse {
                valid: errors.is_empty(),
                errors: rule_errors(errors),
            })
        })
        .await
    }

    async fn test_rules(
        &self,
        request: Request<pb::TestRulesRequest>,
    ) -> Result<Response<pb::TestRulesResponse>, Status> {
        self.admin_call("TestRules", request, |call, req| async move {
            let mut questions = Vec::new();
            for (i, q) in req.questions.iter().enumerate() {
                questions.push(self.question(&format!("questions[{i}]"), Some(q)).await?);
            }
            // Dry runs evaluate real persons' facts: audited like Explain.
            let entries = questions
                .iter()
                .map(|q| {
                    let mut e = call.entry();
                    e.person = Some(q.facts.person);
                    e.categories = vec![q.subject.category.as_str().to_string()];
                    e.purpose = Some(q.purpose.as_str().to_string());
                    e.detail = format!(
                        "dry run of candidate rules for {}/{}",
                        q.partner.id, q.agent
                    );
                    e
                })
                .collect();
            self.store.record_access(entries, vec![]).await?;
            let requests: Vec<_> = questions.iter().map(Question::request).collect();
            let current = requests
                .iter()
                .map(|r| convert::decision(&self.gate.engine.decide(r)))
                .collect();
            match self.gate.engine.dry_run(&req.text, &requests) {
                Ok(candidate) => Ok(pb::TestRulesResponse {
                    valid: true,
                    errors: vec![],
                    candidate: candidate.iter().map(convert::decision).collect(),
                    current,
                }),
                Err(errors) => Ok(pb::TestRulesResponse {
                    valid: false,
                    errors: rule_errors(errors),
                    candidate: vec![],
                    current,
                }),
            }
        })
        .await
    }

    async fn set_rules(
        &self,
        request: Request<pb::SetRulesRequest>,
    ) -> Result<Response<pb::SetRulesResponse>, Status> {
        self.admin_call("SetRules", request, |call, req| async move {
            let (author, comment, request_id) =
                Self::author_and_comment(&req.author, &req.comment, &req.request_id, true)?;
            let version = self
                .activate_rules(&call, &req.text, &author, &comment, None, request_id)
                .await?;
            Ok(pb::SetRulesResponse {
                version: Some(rules_version(&version)),
            })
        })
        .await
    }

    async fn rollback_rules(
        &self,
        request: Request<pb::RollbackRulesRequest>,
    ) -> Result<Response<pb::RollbackRulesResponse>, Status> {
        self.admin_call("RollbackRules", request, |call, req| async move {
            let (author, comment, request_id) =
                Self::author_and_comment(&req.author, &req.comment, &req.request_id, false)?;
            let (target, text) = self.rollback_target(Setting::Rules, req.to_version).await?;
            let comment = if comment.is_empty() {
                format!("rollback to version {target}")
            } else {
                comment
            };
            let version = self
                .activate_rules(&call, &text, &author, &comment, Some(target), request_id)
                .await?;
            Ok(pb::RollbackRulesResponse {
                version: Some(rules_version(&version)),
            })
        })
        .await
    }

    async fn list_rules_versions(
        &self,
        request: Request<pb::ListRulesVersionsRequest>,
    ) -> Result<Response<pb::ListRulesVersionsResponse>, Status> {
        self.admin_call("ListRulesVersions", request, |_call, _req| async move {
            let versions = self.store.setting_versions(Setting::Rules).await?;
            Ok(pb::ListRulesVersionsResponse {
                active: versions.last().map_or(0, |v| v.version),
                versions: versions.iter().map(rules_version).collect(),
            })
        })
        .await
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        self.admin_call("Explain", request, |call, req| async move {
            let q = self.question("question", req.question.as_ref()).await?;
            let decision = self.gate.engine.decide(&q.request());
            let mut entry = call.entry();
            entry.person = Some(q.facts.person);
            entry.categories = vec![q.subject.category.as_str().to_string()];
            entry.purpose = Some(q.purpose.as_str().to_string());
            entry.policies = decision.policies.clone();
            entry.detail = format!(
                "explain for {}/{}: {}",
                q.partner.id,
                q.agent,
                decision.summary()
            );
            self.store.record_access(vec![entry], vec![]).await?;
            Ok(pb::ExplainResponse {
                decision: Some(convert::decision(&decision)),
            })
        })
        .await
    }

    async fn get_priorities(
        &self,
        request: Request<pb::GetPrioritiesRequest>,
    ) -> Result<Response<pb::GetPrioritiesResponse>, Status> {
        self.admin_call("GetPriorities", request, |_call, _req| async move {
            Ok(
                match self.store.active_setting(Setting::Priorities).await? {
                    Some((version, text)) => pb::GetPrioritiesResponse {
                        version: Some(rules_version(&version)),
                        text,
                    },
                    None => pb::GetPrioritiesResponse {
                        version: Some(pb::RulesVersion {
                            version: 0,
                            author: "relais".into(),
                            comment: "built-in defaults".into(),
                            created_at: None,
                            restores: 0,
                        }),
                        text: crate::domain::priority::DEFAULT_TEXT.to_string(),
                    },
                },
            )
        })
        .await
    }

    async fn dry_run_priorities(
        &self,
        request: Request<pb::DryRunPrioritiesRequest>,
    ) -> Result<Response<pb::DryRunPrioritiesResponse>, Status> {
        self.admin_call("DryRunPriorities", request, |call, req| async move {
            let mut v = Violations::new();
            let partner = v.field("partner", PartnerId::parse(&req.partner));
            let purpose = if req.purpose == 0 {
                Some(crate::domain::Purpose::Accompagnement)
            } else {
                v.field("purpose", convert::purpose_from_pb(req.purpose))
            };
            v.finish()?;
            let (Some(partner), Some(purpose)) = (partner, purpose) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let partner = self
                .store
                .get_partner(&partner)
                .await?
                .ok_or_else(|| Error::invalid("partner", format!("no partner `{partner}`")))?;
            let candidate = match Priorities::check(&req.text) {
                Ok(p) => p,
                Err(e) => {
                    return Ok(pb::DryRunPrioritiesResponse {
                        valid: false,
                        errors: priority_errors(&e),
                        ..Default::default()
                    });
                }
            };
            // The decisions rest on the persons' facts: audited like a dry run of rules, for
            // the call and for each person whose item moves.
            let mut entry = call.entry();
            entry.purpose = Some(purpose.as_str().to_string());
            entry.categories = vec!["case_status".into(), "referrals".into()];
            entry.detail = format!(
                "dry run of candidate priorities on the queue of {}: the ranks that change",
                partner.id
            );
            self.store
                .record_access(vec![entry.clone()], vec![])
                .await?;
            let (current_version, items, changes) = self
                .dry_run_priorities(&partner, purpose, &candidate, call.at().day(), entry)
                .await?;
            Ok(pb::DryRunPrioritiesResponse {
                valid: true,
                errors: vec![],
                items: i32::try_from(items).unwrap_or(i32::MAX),
                changes,
                current_version,
            })
        })
        .await
    }

    async fn set_priorities(
        &self,
        request: Request<pb::SetPrioritiesRequest>,
    ) -> Result<Response<pb::SetPrioritiesResponse>, Status> {
        self.admin_call("SetPriorities", request, |call, req| async move {
            let (author, comment, request_id) =
                Self::author_and_comment(&req.author, &req.comment, &req.request_id, true)?;
            let version = self
                .activate_priorities(&call, &req.text, &author, &comment, None, request_id)
                .await?;
            Ok(pb::SetPrioritiesResponse {
                version: Some(rules_version(&version)),
            })
        })
        .await
    }

    async fn rollback_priorities(
        &self,
        request: Request<pb::RollbackPrioritiesRequest>,
    ) -> Result<Response<pb::RollbackPrioritiesResponse>, Status> {
        self.admin_call("RollbackPriorities", request, |call, req| async move {
            let (author, comment, request_id) =
                Self::author_and_comment(&req.author, &req.comment, &req.request_id, false)?;
            // Before the first stored version come the built-in defaults: rolling back the
            // first restores them.
            let versions = self.store.setting_versions(Setting::Priorities).await?;
            let (target, text) = if req.to_version == 0 && versions.len() == 1 {
                (0, crate::domain::priority::DEFAULT_TEXT.to_string())
            } else {
                self.rollback_target(Setting::Priorities, req.to_version)
                    .await?
            };
            let comment = match (comment.is_empty(), target) {
                (false, _) => comment,
                (true, 0) => "rollback to the built-in defaults".to_string(),
                (true, _) => format!("rollback to version {target}"),
            };
            let version = self
                .activate_priorities(&call, &text, &author, &comment, Some(target), request_id)
                .await?;
            Ok(pb::RollbackPrioritiesResponse {
                version: Some(rules_version(&version)),
            })
        })
        .await
    }

    async fn list_priorities_versions(
        &self,
        request: Request<pb::ListPrioritiesVersionsRequest>,
    ) -> Result<Response<pb::ListPrioritiesVersionsResponse>, Status> {
        self.admin_call(
            "ListPrioritiesVersions",
            request,
            |_call, _req| async move {
                let versions = self.store.setting_versions(Setting::Priorities).await?;
                Ok(pb::ListPrioritiesVersionsResponse {
                    active: versions.last().map_or(0, |v| v.version),
                    versions: versions.iter().map(rules_version).collect(),
                })
            },
        )
        .await
    }

    async fn set_alert_plan(
        &self,
        request: Request<pb::SetAlertPlanRequest>,
    ) -> Result<Response<pb::SetAlertPlanResponse>, Status> {
        self.admin_call("SetAlertPlan", request, |call, req| async move {
            let mut v = Violations::new();
            let reason = v.field("reason", free_text(&req.reason, 500));
            if req.active && req.reason.trim().is_empty() {
                v.push(
                    "reason",
                    "required: which alert (canicule, grand froid…) and who triggered it",
                );
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(reason), Some(request_id)) = (reason, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let plan = AlertPlan {
                active: req.active,
                reason: reason.clone(),
                since: Some(call.at()),
            };
            let meta = call.meta(
                request_id,
                format!(
                    "alert plan {}: {reason}",
                    if req.active { "triggered" } else { "ended" }
                ),
            );
            let plan = self.store.set_alert_plan(plan, &meta).await?;
            Ok(pb::SetAlertPlanResponse {
                active: plan.active,
                reason: plan.reason,
                since: plan.since.and_then(convert::timestamp),
            })
        })
        .await
    }

    async fn list_person_consents(
        &self,
        request: Request<pb::ListPersonConsentsRequest>,
    ) -> Result<Response<pb::ListPersonConsentsResponse>, Status> {
        self.admin_call("ListPersonConsents", request, |call, req| async move {
            let person =
                PersonId::parse(&req.person_id).map_err(|e| convert::invalid("person_id", e))?;
            let consents = self.store.consents_of(person).await?;
            let mandates = self.store.mandates_of(person).await?;
            let mut entry = call.entry();
            entry.person = Some(person);
            self.store.record_access(vec![entry], vec![]).await?;
            Ok(pb::ListPersonConsentsResponse {
                consents: consents
                    .iter()
                    .map(|c| convert::consent(c, call.at()))
                    .collect(),
                mandates: mandates
                    .iter()
                    .map(|m| convert::mandate(m, call.at()))
                    .collect(),
            })
        })
        .await
    }

    async fn withdraw_person_consent(
        &self,
        request: Request<pb::WithdrawPersonConsentRequest>,
    ) -> Result<Response<pb::WithdrawPersonConsentResponse>, Status> {
        self.admin_call("WithdrawPersonConsent", request, |call, req| async move {
            let mut v = Violations::new();
            let id = v.field("consent_id", ConsentId::parse(&req.consent_id));
            let channel = v.field("channel", free_text(&req.channel, 64));
            let note = v.field("note", free_text(&req.note, 500));
            if req.channel.trim().is_empty() {
                v.push(
                    "channel",
                    "required: how the person asked (courrier, telephone…)",
                );
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(id), Some(channel), Some(note), Some(request_id)) =
                (id, channel, note, request_id)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let mut meta = Api::admin_withdraw_meta(&call, request_id, id);
            if !note.is_empty() {
                for entry in &mut meta.audit {
                    entry.detail = format!("{} ({note})", entry.detail);
                }
            }
            // Recorded in the consent's history under the administrator's own name.
            let (_, redactions) = self
                .withdraw(id, channel, "admin".into(), call.name.clone(), &meta)
                .await?;
            Ok(pb::WithdrawPersonConsentResponse {
                redacted_partners: redactions.iter().map(|r| r.partner.to_string()).collect(),
            })
        })
        .await
    }

    async fn countersign_consent(
        &self,
        request: Request<pb::CountersignConsentRequest>,
    ) -> Result<Response<pb::CountersignConsentResponse>, Status> {
        self.admin_call("CountersignConsent", request, |call, req| async move {
            let mut v = Violations::new();
            let id = v.field("consent_id", ConsentId::parse(&req.consent_id));
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(id), Some(request_id)) = (id, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let mut meta = call.meta(request_id, format!("consent {id} countersigned"));
            if let Some(e) = meta.audit.first_mut() {
                e.records = vec![format!("consent:{id}")];
            }
            let at = call.at();
            let consent = self
                .store
                .countersign_consent(
                    id,
                    Box::new(move |c| c.countersign(at, "admin".into())),
                    &meta,
                )
                .await?;
            Ok(pb::CountersignConsentResponse {
                consent: Some(convert::consent(&consent, call.at())),
            })
        })
        .await
    }

    async fn merge_persons(
        &self,
        request: Request<pb::MergePersonsRequest>,
    ) -> Result<Response<pb::MergePersonsResponse>, Status> {
        self.admin_call("MergePersons", request, |call, req| async move {
            let mut v = Violations::new();
            let kept = v.field("kept_person_id", PersonId::parse(&req.kept_person_id));
            let merged = v.field("merged_person_id", PersonId::parse(&req.merged_person_id));
            let reason = v.field("reason", free_text(&req.reason, 500));
            if req.reason.trim().is_empty() {
                v.push(
                    "reason",
                    "required: why they are one person (kept in the audit)",
                );
            }
            if req.kept_person_id == req.merged_person_id {
                v.push("merged_person_id", "a person is not merged into itself");
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(kept), Some(merged), Some(reason), Some(request_id)) =
                (kept, merged, reason, request_id)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let mut meta = call.meta(
                request_id,
                format!("person {merged} merged into {kept}: {reason}"),
            );
            if let Some(e) = meta.audit.first_mut() {
                e.person = Some(kept);
            }
            let mut also = call.entry();
            also.person = Some(merged);
            also.detail = format!("merged into {kept}: {reason}");
            meta.audit.push(also);
            let moved = self.store.merge_persons(kept, merged, &meta).await?;
            tracing::info!(%kept, %merged, links = moved, "persons merged");
            Ok(pb::MergePersonsResponse {
                person_id: kept.to_string(),
                links_moved: moved,
            })
        })
        .await
    }

    async fn unlink_local_id(
        &self,
        request: Request<pb::UnlinkLocalIdRequest>,
    ) -> Result<Response<pb::UnlinkLocalIdResponse>, Status> {
        self.admin_call("UnlinkLocalId", request, |call, req| async move {
            let mut v = Violations::new();
            let partner = v.field("partner_id", PartnerId::parse(&req.partner_id));
            let local = v.field("local_id", crate::domain::LocalId::parse(&req.local_id));
            let reason = v.field("reason", free_text(&req.reason, 500));
            if req.reason.trim().is_empty() {
                v.push(
                    "reason",
                    "required: why the link is wrong (kept in the audit)",
                );
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(partner), Some(local), Some(reason), Some(request_id)) =
                (partner, local, reason, request_id)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let person = self.store.person_by_local_id(&partner, &local).await?;
            let mut meta = call.meta(
                request_id,
                format!("local id `{local}` of {partner} unlinked: {reason}"),
            );
            if let Some(e) = meta.audit.first_mut() {
                e.person = person;
            }
            let person = self.store.unlink_person(&partner, &local, &meta).await?;
            Ok(pb::UnlinkLocalIdResponse {
                person_id: person.to_string(),
            })
        })
        .await
    }

    async fn retract_flag(
        &self,
        request: Request<pb::AdminServiceRetractFlagRequest>,
    ) -> Result<Response<pb::AdminServiceRetractFlagResponse>, Status> {
        self.admin_call("RetractFlag", request, |call, req| async move {
            let mut v = Violations::new();
            let id = v.field("flag_id", crate::domain::FlagId::parse(&req.flag_id));
            let reason = v.field("reason", free_text(&req.reason, 280));
            if req.reason.trim().is_empty() {
                v.push("reason", "required: why the administrator retracts it");
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(id), Some(reason), Some(request_id)) = (id, reason, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let current = self
                .store
                .get_flag(id)
                .await?
                .ok_or_else(|| Error::not_found("flag", id))?;
            let mut meta = call.meta(request_id, format!("flag {id} retracted: {reason}"));
            if let Some(e) = meta.audit.first_mut() {
                e.person = Some(current.person);
            }
            let retraction = crate::domain::flag::Retraction {
                at: call.at(),
                partner: current.source_partner.clone(),
                agent: AgentId::system(),
                reason: format!("retiré par l'administrateur : {reason}"),
            };
            let flag = self
                .store
                .update_flag(
                    id,
                    current.version,
                    Box::new(move |f| f.retract(retraction)),
                    &meta,
                )
                .await?;
            Ok(pb::AdminServiceRetractFlagResponse {
                flag: Some(convert::flag(&flag, self.clock.now().day(), None)),
            })
        })
        .await
    }

    async fn revoke_certificate(
        &self,
        request: Request<pb::RevokeCertificateRequest>,
    ) -> Result<Response<pb::RevokeCertificateResponse>, Status> {
        self.admin_call("RevokeCertificate", request, |call, req| async move {
            let mut v = Violations::new();
            let fingerprint = req.fingerprint.trim().to_ascii_lowercase();
            if fingerprint.len() != 64 || !fingerprint.chars().all(|c| c.is_ascii_hexdigit()) {
                v.push(
                    "fingerprint",
                    "the SHA-256 of the certificate: 64 hex digits",
                );
            }
            let reason = v.field("reason", free_text(&req.reason, 500));
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(reason), Some(request_id)) = (reason, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let meta = call.meta(
                request_id,
                format!("certificate {fingerprint} revoked: {reason}"),
            );
            let partner = self
                .store
                .revoke_certificate(&fingerprint, reason, &meta)
                .await?;
            Ok(pb::RevokeCertificateResponse {
                partner_id: partner.map(|p| p.to_string()).unwrap_or_default(),
                revoked_at: convert::timestamp(call.at()),
            })
        })
        .await
    }

    async fn add_administrator(
        &self,
        request: Request<pb::AddAdministratorRequest>,
    ) -> Result<Response<pb::AddAdministratorResponse>, Status> {
        self.admin_call("AddAdministrator", request, |call, req| async move {
            let mut v = Violations::new();
            let name = req.name.trim().to_string();
            if name.is_empty()
                || name.len() > 64
                || name == "admin"
                || !name.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_@".contains(c)
                })
            {
                v.push(
                    "name",
                    "1 to 64 of a-z, 0-9, `.`, `-`, `_`, `@` (an e-mail address works), not `admin`",
                );
            } else if self.store.console_account(&name).await?.is_some() {
                // The audit must tell a console account from an administrator's certificate.
                v.push("name", "the name of a console account: choose another");
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let Some(request_id) = request_id else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let (certificate_pem, record) = self.authority.sign_client_csr(
                &req.csr_pem,
                &format!("admin-{name}"),
                self.settings.certificate_validity_days,
            )?;
            let meta = call.meta(
                request_id,
                format!("administrator `{name}` added (certificate {})", record.fingerprint),
            );
            self.store.add_administrator(&name, record, &meta).await?;
            Ok(pb::AddAdministratorResponse {
                certificate_pem,
                ca_certificate_pem: self.authority.cert_pem().to_string(),
            })
        })
        .await
    }

    async fn revoke_administrator(
        &self,
        request: Request<pb::RevokeAdministratorRequest>,
    ) -> Result<Response<pb::RevokeAdministratorResponse>, Status> {
        self.admin_call("RevokeAdministrator", request, |call, req| async move {
            let mut v = Violations::new();
            let reason = v.field("reason", free_text(&req.reason, 500));
            let request_id = request_id(&req.request_id, &mut v);
            if req.name.trim().is_empty() {
                v.push("name", "required: the administrator's name");
            }
            v.finish()?;
            let (Some(reason), Some(request_id)) = (reason, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            if req.name == call.name {
                return Err(Error::FailedPrecondition(
                    "an administrator does not revoke their own identity: ask another one".into(),
                ));
            }
            let meta = call.meta(
                request_id,
                format!("administrator `{}` revoked: {reason}", req.name),
            );
            let revoked = self.store.revoke_administrator(&req.name, &meta).await?;
            Ok(pb::RevokeAdministratorResponse { revoked })
        })
        .await
    }

    async fn list_administrators(
        &self,
        request: Request<pb::ListAdministratorsRequest>,
    ) -> Result<Response<pb::ListAdministratorsResponse>, Status> {
        self.admin_call("ListAdministrators", request, |_call, _req| async move {
            let administrators = self
                .store
                .administrators()
                .await?
                .into_iter()
                .map(|(name, c)| pb::Administrator {
                    name,
                    fingerprint: c.fingerprint,
                    not_after: convert::timestamp(c.not_after),
                    revoked_at: c.revoked_at.and_then(convert::timestamp),
                })
                .collect();
            Ok(pb::ListAdministratorsResponse { administrators })
        })
        .await
    }

    async fn verify_audit(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        self.admin_call("VerifyAudit", request, |_call, _req| async move {
            let anchor = self.store.audit_anchor().await?;
            let mut verifier = Verifier::new(&anchor);
            let mut after = anchor.seq;
            'pages: loop {
                let page = self.store.audit_page(after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for entry in &page {
                    if !verifier.step(entry) {
                        break 'pages;
                    }
                }
            }
            let v = verifier.finish();
            if let Some((seq, problem)) = &v.broken {
                tracing::error!(seq, problem, "audit log verification failed");
            }
            Ok(pb::VerifyAuditResponse {
                intact: v.broken.is_none(),
                entries_checked: v.checked,
                first_bad_seq: v.broken.as_ref().map_or(0, |(s, _)| *s),
                problem: v.broken.map(|(_, p)| p).unwrap_or_default(),
                head_seq: v.head.seq,
                head_hash: v.head.hash,
            })
        })
        .await
    }

    async fn get_access_report(
        &self,
        request: Request<pb::GetAccessReportRequest>,
    ) -> Result<Response<pb::GetAccessReportResponse>, Status> {
        self.admin_call("GetAccessReport", request, |call, req| async move {
            let person =
                PersonId::parse(&req.person_id).map_err(|e| convert::invalid("person_id", e))?;
            let audit = self.store.audit_of_person(person).await?;
            let consents = self.store.consents_of(person).await?;
            let mandates = self.store.mandates_of(person).await?;
            if audit.is_empty() && consents.is_empty() {
                return Err(Error::not_found("person", person));
            }
            let partners = self.partner_names().await?;
            let report = documents::AccessReport::new(
                person,
                call.at(),
                audit,
                consents,
                mandates,
                &partners,
            );
            let mut entry = call.entry();
            entry.person = Some(person);
            entry.detail = "access report produced for the person".into();
            self.store.record_access(vec![entry], vec![]).await?;
            Ok(pb::GetAccessReportResponse {
                json: serde_json::to_string_pretty(&documents::rfc3339_times(
                    serde_json::to_value(&report).map_err(Error::from)?,
                ))
                .map_err(Error::from)?,
                html: report.html(&partners, &self.settings.territory),
                text: report.text(&partners, &self.settings.territory),
            })
        })
        .await
    }

    async fn dry_run_rules(
        &self,
        request: Request<pb::DryRunRulesRequest>,
    ) -> Result<Response<pb::DryRunRulesResponse>, Status> {
        self.admin_call("DryRunRules", request, |call, req| async move {
            if let Err(errors) = self.gate.engine.validate(&req.text) {
                return Ok(pb::DryRunRulesResponse {
                    valid: false,
                    errors: rule_errors(errors),
                    ..Default::default()
                });
            }
            let most = match req.max_persons_per_partner {
                0 => 1_000,
                n if (1..=20_000).contains(&n) => n as u32,
                _ => {
                    return Err(Error::invalid(
                        "max_persons_per_partner",
                        "between 1 and 20,000 (0: 1,000)",
                    ));
                }
            };
            let agent = AgentId::system();
            let mut changes = Vec::new();
            let mut considered = 0i32;
            let mut truncated = false;
            let mut partners: Vec<_> = self.partner_names().await?.into_values().collect();
            partners.sort_by(|a, b| a.id.cmp(&b.id));
            for partner in &partners {
                let persons = self.store.persons_linked_to(&partner.id, most + 1).await?;
                truncated |= persons.len() > most as usize;
                let mut facts = Vec::new();
                for person in persons.into_iter().take(most as usize) {
                    facts.push(self.gate.facts(partner, person).await?);
                }
                considered += facts.len() as i32;
                let mut keys = Vec::new();
                let mut requests = Vec::new();
                let pairs: Vec<(DataCategory, crate::domain::Purpose)> = DataCategory::ALL
                    .into_iter()
                    .flat_map(|c| crate::domain::Purpose::ALL.into_iter().map(move |p| (c, p)))
                    .collect();
                for f in &facts {
                    for (index, &(category, purpose)) in pairs.iter().enumerate() {
                        {
                            let subject = Subject {
                                category,
                                code: None,
                                theme: None,
                            };
                            let coverage = coverage(
                                &f.consents,
                                &f.mandates,
                                partner,
                                &agent,
                                &subject,
                                purpose,
                                f.now,
                            );
                            keys.push(index);
                            requests.push(DecisionRequest {
                                partner,
                                agent: &agent,
                                action: Action::Read,
                                subject,
                                purpose,
                                relation: f.relation,
                                coverage,
                                alert_plan: f.alert_plan,
                                self_grant: false,
                            });
                        }
                    }
                }
                let candidate = match self.gate.engine.dry_run(&req.text, &requests) {
                    Ok(c) => c,
                    Err(errors) => {
                        return Ok(pb::DryRunRulesResponse {
                            valid: false,
                            errors: rule_errors(errors),
                            ..Default::default()
                        });
                    }
                };
                let mut counts = vec![(0i32, 0i32); pairs.len()];
                for ((key, r), after) in keys.iter().zip(&requests).zip(&candidate) {
                    let before = self.gate.engine.decide(r).allowed;
                    let entry = &mut counts[*key];
                    match (before, after.allowed) {
                        (false, true) => entry.0 += 1,
                        (true, false) => entry.1 += 1,
                        _ => {}
                    }
                }
                for (&(category, purpose), (gained, lost)) in pairs.iter().zip(counts) {
                    if gained > 0 || lost > 0 {
                        changes.push(pb::AccessChange {
                            partner: partner.id.to_string(),
                            category: category.as_str().to_string(),
                            purpose: convert::purpose_to_pb(purpose) as i32,
                            gained,
                            lost,
                        });
                    }
                }
            }
            // Facts of real persons were read, for counts only: one entry, naming no person.
            let mut entry = call.entry();
            entry.detail = format!(
                "dry run of candidate rules over {considered} linked persons (counts only)"
            );
            self.store.record_access(vec![entry], vec![]).await?;
            Ok(pb::DryRunRulesResponse {
                valid: true,
                errors: vec![],
                changes,
                persons_considered: considered,
                truncated,
            })
        })
        .await
    }

    async fn add_console_account(
        &self,
        request: Request<pb::AddConsoleAccountRequest>,
    ) -> Result<Response<pb::AddConsoleAccountResponse>, Status> {
        self.admin_call("AddConsoleAccount", request, |call, req| async move {
            use crate::console::account;
            let mut v = Violations::new();
            if let Err(e) = account::check_name(&req.name) {
                v.push("name", e);
            } else if ["admin", "relais"].contains(&req.name.as_str())
                || self
                    .store
                    .administrators()
                    .await?
                    .iter()
                    .any(|(name, _)| name == &req.name)
            {
                // The audit must tell a console account from an administrator's certificate.
                v.push(
                    "name",
                    "the name of an administrator identity (or `admin`, `relais`): choose another",
                );
            }
            let full_name = v.field("full_name", free_text(&req.full_name, 200));
            if req.full_name.trim().is_empty() {
                v.push(
                    "full_name",
                    "required: the person's name, as the audit shows it",
                );
            }
            let role = match account::Role::from_pb(req.role) {
                Ok(r) => Some(r),
                Err(e) => {
                    v.push("role", e);
                    None
                }
            };
            if let Err(e) = account::check_password(&req.password) {
                v.push("password", e);
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(full_name), Some(role), Some(request_id)) = (full_name, role, request_id)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let secret = account::new_totp_secret()?;
            let hash = account::hash_password(&req.password)?;
            let record = crate::store::ConsoleAccount {
                name: req.name.clone(),
                role: role.as_str().into(),
                full_name,
                password_hash: hash,
                totp_secret: secret.clone(),
                created_at: call.at(),
                disabled_at: None,
                failures: 0,
                locked_until: crate::domain::Timestamp::from_micros(0),
                last_totp_step: 0,
                last_login_at: None,
            };
            let meta = call.meta(
                request_id,
                format!("console account {} added, role {}", req.name, role.as_str()),
            );
            self.store.add_console_account(record, &meta).await?;
            let stored = self
                .store
                .console_account(&req.name)
                .await?
                .ok_or_else(|| Error::Internal("account not stored".into()))?;
            if stored.totp_secret != secret {
                // A retry of the same request: the secret was given the first time only.
                return Err(Error::AlreadyExists(format!(
                    "console account `{}` exists; its TOTP secret was given when it was made",
                    req.name
                )));
            }
            Ok(pb::AddConsoleAccountResponse {
                account: Some(console_account_pb(&stored)),
                totp_uri: account::totp_uri(&secret, &req.name),
                totp_secret: secret,
            })
        })
        .await
    }

    async fn list_console_accounts(
        &self,
        request: Request<pb::ListConsoleAccountsRequest>,
    ) -> Result<Response<pb::ListConsoleAccountsResponse>, Status> {
        self.admin_call("ListConsoleAccounts", request, |_call, _req| async move {
            let accounts = self.store.console_accounts().await?;
            Ok(pb::ListConsoleAccountsResponse {
                accounts: accounts.iter().map(console_account_pb).collect(),
            })
        })
        .await
    }

    async fn set_console_account_disabled(
        &self,
        request: Request<pb::SetConsoleAccountDisabledRequest>,
    ) -> Result<Response<pb::SetConsoleAccountDisabledResponse>, Status> {
        self.admin_call(
            "SetConsoleAccountDisabled",
            request,
            |call, req| async move {
                let request_id = crate::domain::RequestId::parse(&req.request_id)
                    .map_err(|e| convert::invalid("request_id", e))?;
                let meta = call.meta(
                    request_id,
                    format!(
                        "console account {} {}",
                        req.name,
                        if req.disabled { "disabled" } else { "enabled" }
                    ),
                );
                if !self
                    .store
                    .set_console_account_disabled(&req.name, req.disabled, &meta)
                    .await?
                {
                    return Err(Error::not_found("console account", &req.name));
                }
                let stored = self
                    .store
                    .console_account(&req.name)
                    .await?
                    .ok_or_else(|| Error::not_found("console account", &req.name))?;
                Ok(pb::SetConsoleAccountDisabledResponse {
                    account: Some(console_account_pb(&stored)),
                })
            },
        )
        .await
    }

    async fn approve_certificate(
        &self,
        request: Request<pb::ApproveCertificateRequest>,
    ) -> Result<Response<pb::ApproveCertificateResponse>, Status> {
        self.admin_call("ApproveCertificate", request, |call, req| async move {
            let request_id = crate::domain::RequestId::parse(&req.request_id)
                .map_err(|e| convert::invalid("request_id", e))?;
            let meta = call.meta(
                request_id,
                format!("certificate {} approved", req.fingerprint),
            );
            let partner = self
                .store
                .approve_certificate(&req.fingerprint, &meta)
                .await?;
            Ok(pb::ApproveCertificateResponse {
                partner_id: partner.map(|p| p.to_string()).unwrap_or_default(),
            })
        })
        .await
    }
}

fn console_account_pb(a: &crate::store::ConsoleAccount) -> pb::ConsoleAccount {
    let role = crate::console::account::Role::parse(&a.role)
        .map_or(pb::ConsoleRole::Unspecified, |r| r.to_pb());
    pb::ConsoleAccount {
        name: a.name.clone(),
        full_name: a.full_name.clone(),
        role: role as i32,
        created_at: convert::timestamp(a.created_at),
        disabled_at: a.disabled_at.and_then(convert::timestamp),
        locked_until: (a.locked_until.micros() > 0)
            .then_some(a.locked_until)
            .and_then(convert::timestamp),
        last_login_at: a.last_login_at.and_then(convert::timestamp),
    }
}
