//! CaseService: cases and their lifecycle, referrals (fiches navettes).

use super::{Api, Call, convert, disclose, request_id};
use crate::domain::case::{Case, CaseTransition, Procedure, TransitionRequest, parse_documents};
use crate::domain::ids::{CaseId, PartnerId, ReferralId, free_text};
use crate::domain::partner::PartnerStatus;
use crate::domain::referral::{Referral, ReferralAction};
use crate::domain::{AgentId, CaseStatus, DataCategory, Day, Purpose, ReferralState, Theme};
use crate::error::{Error, Result, Violations};
use crate::policy::{Action, Subject};
use crate::store::{CaseFilter, Direction, ReferralFilter};
use relais_proto::v1::{self as pb, case_service_server::CaseService};
use tonic::{Request, Response, Status};

impl Api {
    /// A case the caller may see — it holds it, a referral it is party to names it, or the
    /// rules and the person's consent share it — or `NOT_FOUND`, the same as for no case. The
    /// read is audited.
    async fn visible_case(&self, call: &Call, id: CaseId) -> Result<Case> {
        let Some(case) = self.store.get_case(id).await? else {
            return self.no_such_record(call, "case", id).await;
        };
        let facts = self.gate.facts(&call.partner, case.person).await?;
        let mut access = self.access(call, facts);
        if !access.case(&case) {
            // Refused: audited off the caller's path, as for a person it may not know.
            let (entry, _) = access.finish(format!("read:{}", call.method), format!("case {id}"));
            disclose::audit_in_background(&self.store, entry);
            return Err(disclose::no_record("case", id));
        }
        let withheld = access
            .record(
                &self.store,
                format!("read:{}", call.method),
                format!("case {id}"),
            )
            .await?;
        if withheld.keeps(&case) {
            Ok(case)
        } else {
            Err(disclose::no_record("case", id))
        }
    }

    /// The latest reply deadline a referral sent now may have: the territory's delay.
    fn latest_reply_day(&self, call: &Call) -> Day {
        call.at
            .day()
            .plus_days(i64::from(self.settings.referrals.reply_days))
    }

    /// A deadline the sender gives: after today, and no later than the territory's delay.
    fn check_reply_day(&self, call: &Call, due: Day, latest: Day, v: &mut Violations) {
        if due <= call.at.day() {
            v.push("due_date", "must be after today");
        } else if due > latest {
            v.push(
                "due_date",
                format!(
                    "at most {} days ahead ({latest}): a sender may shorten the territory's delay, not lengthen it",
                    self.settings.referrals.reply_days
                ),
            );
        }
    }

    /// The day an unanswered referral with this deadline expires.
    fn expiry_day(&self, due: Day) -> Day {
        due.plus_days(i64::from(self.settings.referrals.expire_after_days))
    }

    /// A referral the caller sent, or received while referrals may still reach it (the
    /// person's consent, or a rule, decides again at every read); otherwise `NOT_FOUND`.
    async fn own_referral(&self, call: &Call, id: ReferralId) -> Result<Referral> {
        let referral = self
            .store
            .get_referral(id)
            .await?
            .filter(|r| &r.from == call.id() || &r.to == call.id())
            .ok_or_else(|| disclose::no_record("referral", id))?;
        if &referral.from == call.id() {
            return Ok(referral);
        }
        let facts = self.gate.facts(&call.partner, referral.person).await?;
        let mut access = self.access(call, facts);
        if !access.referral(&referral) {
            let (entry, _) =
                access.finish(format!("read:{}", call.method), format!("referral {id}"));
            disclose::audit_in_background(&self.store, entry);
            return Err(disclose::no_record("referral", id));
        }
        let withheld = access
            .record(
                &self.store,
                format!("read:{}", call.method),
                format!("referral {id}"),
            )
            .await?;
        if withheld.keeps(&referral) {
            Ok(referral)
        } else {
            Err(disclose::no_record("referral", id))
        }
    }

    /// May `recipient` receive the case's data for orientation? A fiche navette and a
    /// redirection both hand the case over: they go only where the person's consent (or a
    /// rule's legal basis) lets it go.
    async fn may_receive(
        &self,
        recipient: &PartnerId,
        person: crate::domain::PersonId,
        subjects: &[Subject],
    ) -> Result<crate::policy::Decision> {
        let recipient = self
            .store
            .get_partner(recipient)
            .await?
            .ok_or_else(|| Error::not_found("partner", recipient))?;
        let facts = self.gate.facts(&recipient, person).await?;
        let mut last = None;
        for subject in subjects {
            let d = self.gate.decide(
                &facts,
                &recipient,
                &AgentId::system(),
                Action::Read,
                *subject,
                Purpose::Orientation,
            );
            if !d.allowed {
                // The reasons (which consent records exist, in which state) are the person's
                // data: they go to the hub's log, not to the caller.
                tracing::info!(recipient = %recipient.id, reasons = ?d.reasons, "hand-over refused");
                return Err(Error::PermissionDenied(format!(
                    "the person's consent does not let {} go to `{}` for orientation",
                    subject.category, recipient.id,
                )));
            }
            last = Some(d);
        }
        last.ok_or_else(|| Error::Internal("nothing to decide".into()))
    }

    /// Another partner, active, that can receive a case or a referral.
    async fn active_partner(&self, field: &str, raw: &str) -> Result<PartnerId> {
        let id = PartnerId::parse(raw).map_err(|e| convert::invalid(field, e))?;
        match self.store.get_partner(&id).await? {
            Some(p) if p.status == PartnerStatus::Active => Ok(id),
            Some(_) => Err(Error::FailedPrecondition(format!(
                "partner `{id}` is suspended"
            ))),
            None => Err(Error::invalid(
                field,
                format!("no partner `{id}` on this hub"),
            )),
        }
    }

    async fn referral_action(
        &self,
        call: Call,
        raw_id: &str,
        expected_version: i64,
        raw_request_id: &str,
        action: Result<ReferralAction>,
    ) -> Result<Referral> {
        let mut v = Violations::new();
        let id = v.field("referral_id", ReferralId::parse(raw_id));
        let request_id = request_id(raw_request_id, &mut v);
        if expected_version <= 0 {
            v.push(
                "expected_version",
                "required: the version of the referral you read",
            );
        }
        let action = v.merge(action)?;
        v.finish()?;
        let (Some(id), Some(request_id), Some(action)) = (id, request_id, action) else {
            return Err(Error::Internal("validated fields missing".into()));
        };
        let current = self.own_referral(&call, id).await?;
        let meta = call.meta(request_id).audited(call.write_entry(
            Some(current.person),
            &[DataCategory::Referrals],
            None,
        ));
        let partner = call.id().clone();
        let agent = call.ctx.agent.clone();
        let at = call.at;
        self.store
            .update_referral(
                id,
                expected_version,
                Box::new(move |r| r.apply(action, &partner, &agent, at)),
                &meta,
            )
            .await
    }
}

#[tonic::async_trait]
impl CaseService for Api {
    async fn open_case(
        &self,
        request: Request<pb::OpenCaseRequest>,
    ) -> Result<Response<pb::OpenCaseResponse>, Status> {
        self.partner_call("OpenCase", request, |call, req| async move {
            let mut v = Violations::new();
            let procedure = v.field("procedure", Procedure::parse(&req.procedure));
            let documents = v.field("missing_documents", parse_documents(&req.missing_documents));
            let due_date = v.field("due_date", Day::parse_optional(&req.due_date));
            let request_id = request_id(&req.request_id, &mut v);
            let status = match req.initial_status {
                0 => Some(CaseStatus::Draft),
                s => match convert::case_status_from_pb(s) {
                    Ok(s @ (CaseStatus::Draft | CaseStatus::Sent)) => Some(s),
                    Ok(other) => {
                        v.push(
                            "initial_status",
                            format!("a case opens as `draft` or `sent`, not `{other}`"),
                        );
                        None
                    }
                    Err(e) => v.field("initial_status", Err(e)),
                },
            };
            v.finish()?;
            let (Some(procedure), Some(documents), Some(due_date), Some(request_id), Some(status)) =
                (procedure, documents, due_date, request_id, status)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let theme = match req.theme.as_str() {
                "" => None,
                t => Some(Theme::parse(t).map_err(|e| convert::invalid("theme", e))?),
            };
            let facts = self
                .person_ref(&call, "person", req.person.as_ref())
                .await?;
            let decision = self.may_write(&call, &facts, Subject::case(theme))?;
            let person = facts.person;
            let mut history = Vec::new();
            if status == CaseStatus::Sent {
                history.push(CaseTransition {
                    from: CaseStatus::Draft,
                    to: CaseStatus::Sent,
                    partner: call.id().clone(),
                    agent: call.ctx.agent.clone(),
                    at: call.at,
                    reason: String::new(),
                });
            }
            let case = Case {
                id: CaseId::new(),
                person,
                procedure,
                owner: call.id().clone(),
                status,
                missing_documents: documents,
                due_date,
                opened_at: call.at,
                updated_at: call.at,
                parent: None,
                duplicate_of: None,
                outcome_reason: String::new(),
                history,
                version: 1,
                theme,
            };
            let meta = call.meta(request_id).audited(call.write_entry(
                Some(person),
                &[DataCategory::CaseStatus],
                Some(&decision),
            ));
            let case = self.store.open_case(case, &meta).await?;
            Ok(pb::OpenCaseResponse {
                r#case: Some(convert::case(&case)),
            })
        })
        .await
    }

    async fn transition_case(
        &self,
        request: Request<pb::TransitionCaseRequest>,
    ) -> Result<Response<pb::TransitionCaseResponse>, Status> {
        self.partner_call("TransitionCase", request, |call, req| async move {
            let mut v = Violations::new();
            let id = v.field("case_id", CaseId::parse(&req.case_id));
            let to = v.field("to_status", convert::case_status_from_pb(req.to_status));
            let reason = v.field("reason", free_text(&req.reason, 1000));
            let documents = match &req.missing_documents {
                Some(list) => v
                    .field("missing_documents.items", parse_documents(&list.items))
                    .map(Some),
                None => Some(None),
            };
            let duplicate_of = if req.duplicate_of.is_empty() {
                Some(None)
            } else {
                v.field("duplicate_of", CaseId::parse(&req.duplicate_of))
                    .map(Some)
            };
            let redirect_procedure = if req.redirect_procedure.is_empty() {
                Some(None)
            } else {
                v.field(
                    "redirect_procedure",
                    Procedure::parse(&req.redirect_procedure),
                )
                .map(Some)
            };
            let request_id = request_id(&req.request_id, &mut v);
            if req.expected_version <= 0 {
                v.push(
                    "expected_version",
                    "required: the version of the case you read",
                );
            }
            v.finish()?;
            let (
                Some(id),
                Some(to),
                Some(reason),
                Some(missing_documents),
                Some(duplicate_of),
                Some(redirect_procedure),
                Some(request_id),
            ) = (
                id,
                to,
                reason,
                documents,
                duplicate_of,
                redirect_procedure,
                request_id,
            )
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let case = self.visible_case(&call, id).await?;
            if &case.owner != call.id() {
                return Err(Error::PermissionDenied(format!(
                    "case {id} is held by `{}`: only its holder moves it",
                    case.owner
                )));
            }
            let redirect = if req.redirect_to_partner.is_empty() {
                None
            } else {
                let partner = self
                    .active_partner("redirect_to_partner", &req.redirect_to_partner)
                    .await?;
                // Redirecting hands the case — and a tie to the person — to the target: the
                // same check as a fiche navette (once the move itself is a legal one, so that
                // an illegal move is still told as such).
                if case.status.can_move_to(to) {
                    self.may_receive(&partner, case.person, &[Subject::case(case.theme)])
                        .await?;
                }
                Some((partner, redirect_procedure))
            };
            if let Some(original) = duplicate_of {
                self.visible_case(&call, original).await.map_err(|_| {
                    Error::invalid("duplicate_of", format!("no case {original} visible to you"))
                })?;
            }
            let transition = TransitionRequest {
                to,
                reason,
                missing_documents,
                duplicate_of,
                redirect,
            };
            let partner = call.id().clone();
            let agent = call.ctx.agent.clone();
            let at = call.at;
            let meta = call.meta(request_id).audited(call.write_entry(
                Some(case.person),
                &[DataCategory::CaseStatus],
                None,
            ));
            let (case, child) = self
                .store
                .update_case(
                    id,
                    req.expected_version,
                    Box::new(move |case| case.transition(transition, &partner, &agent, at)),
                    &meta,
                )
                .await?;
            tracing::info!(case = %case.id, status = %case.status, "case moved");
            Ok(pb::TransitionCaseResponse {
                r#case: Some(convert::case(&case)),
                child_case: child.as_ref().map(convert::case),
            })
        })
        .await
    }

    async fn get_case(
        &self,
        request: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        self.partner_call("GetCase", request, |call, req| async move {
            let id = CaseId::parse(&req.case_id).map_err(|e| convert::invalid("case_id", e))?;
            let case = self.visible_case(&call, id).await?;
            Ok(pb::GetCaseResponse {
                r#case: Some(convert::case(&case)),
            })
        })
        .await
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        self.partner_call("ListCases", request, |call, req| async move {
            let mut v = Violations::new();
            let page = convert::page(req.page_size, &req.page_token, &mut v);
            let statuses = convert::case_statuses(&req.statuses, &mut v);
            v.finish()?;
            let Some(person) = &req.person else {
                // The caller's own work queue: its own cases, no one else's data.
                let filter = CaseFilter {
                    owner: Some(call.id().clone()),
                    person: None,
                    statuses,
                };
                let mut cases = self
                    .store
                    .list_cases(&filter, page.after.as_deref(), page.size + 1)
                    .await?;
                let next_page_token =
                    convert::next_page(&mut cases, page.size, |c| c.id.to_string());
                return Ok(pb::ListCasesResponse {
                    cases: cases.iter().map(convert::case).collect(),
                    next_page_token,
                });
            };
            let facts = self.person_ref(&call, "person", Some(person)).await?;
            let filter = CaseFilter {
                owner: None,
                person: Some(facts.person),
                statuses,
            };
            let mut peek = self.access(&call, facts.clone());
            let mut access = self.access(&call, facts);
            let store = &self.store;
            let filter = &filter;
            let (shown, next_page_token) =
                disclose::visible_page(
                    page.after,
                    page.size,
                    |after, limit| async move {
                        store.list_cases(filter, after.as_deref(), limit).await
                    },
                    |c| c.id.to_string(),
                    |c| access.case(c),
                    |c| peek.case(c),
                )
                .await?;
            let withheld = access
                .record(&self.store, "read:ListCases".into(), String::new())
                .await?;
            let cases = shown
                .iter()
                .filter(|c| withheld.keeps(*c))
                .map(convert::case)
                .collect();
            Ok(pb::ListCasesResponse {
                cases,
                next_page_token,
            })
        })
        .await
    }

    async fn send_referral(
        &self,
        request: Request<pb::SendReferralRequest>,
    ) -> Result<Response<pb::SendReferralResponse>, Status> {
        self.partner_call("SendReferral", request, |call, req| async move {
            let mut v = Violations::new();
            let case_id = v.field("case_id", CaseId::parse(&req.case_id));
            let reason = v.field("reason", free_text(&req.reason, 1000));
            let action = v.field("requested_action", free_text(&req.requested_action, 1000));
            let due_date = v.field("due_date", Day::parse_optional(&req.due_date));
            let request_id = request_id(&req.request_id, &mut v);
            if req.reason.trim().is_empty() {
                v.push("reason", "required: why the person is referred");
            }
            if req.to_partner == call.id().as_str() {
                v.push("to_partner", "a referral goes to another partner");
            }
            let latest = self.latest_reply_day(&call);
            if let Some(Some(due)) = due_date {
                self.check_reply_day(&call, due, latest, &mut v);
            }
            v.finish()?;
            let (
                Some(case_id),
                Some(reason),
                Some(requested_action),
                Some(due_date),
                Some(request_id),
            ) = (case_id, reason, action, due_date, request_id)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let to = self.active_partner("to_partner", &req.to_partner).await?;
            let case = self.visible_case(&call, case_id).await?;
            // The holder of a case sends its fiches navettes: a partner that only sees the case
            // (through the person's consent or a referral it received) does not pass it on,
            // nor gain by sending one a tie that would outlive that consent.
            if &case.owner != call.id() {
                return Err(Error::PermissionDenied(
                    "a fiche navette is sent by the partner holding the case".into(),
                ));
            }
            // A fiche navette discloses the case to its recipient: it goes only where the
            // person's consent (or a rule's legal basis) lets referrals go, for orientation.
            let receiving = self
                .may_receive(
                    &to,
                    case.person,
                    &[Subject::category(DataCategory::Referrals)],
                )
                .await?;
            let meta = call.meta(request_id).audited(call.write_entry(
                Some(case.person),
                &[DataCategory::Referrals, DataCategory::CaseStatus],
                Some(&receiving),
            ));
            let referral = Referral {
                id: ReferralId::new(),
                case: case.id,
                person: case.person,
                from: call.id().clone(),
                to,
                reason,
                requested_action,
                due_date: Some(due_date.unwrap_or(latest)),
                state: ReferralState::Sent,
                answer: String::new(),
                sent_at: call.at,
                updated_at: call.at,
                history: vec![],
                version: 1,
                expires_on: Some(self.expiry_day(due_date.unwrap_or(latest))),
                due_reminded_at: None,
                overdue_notified_at: None,
                expiry_reason: String::new(),
                escalations: 0,
            };
            let referral = self.store.send_referral(referral, &meta).await?;
            Ok(pb::SendReferralResponse {
                referral: Some(convert::referral(&referral, call.at.day())),
            })
        })
        .await
    }

    async fn acknowledge_referral(
        &self,
        request: Request<pb::AcknowledgeReferralRequest>,
    ) -> Result<Response<pb::AcknowledgeReferralResponse>, Status> {
        self.partner_call("AcknowledgeReferral", request, |call, req| async move {
            let today = call.at.day();
            let referral = self
                .referral_action(
                    call,
                    &req.referral_id,
                    req.expected_version,
                    &req.request_id,
                    Ok(ReferralAction::Acknowledge),
                )
                .await?;
            Ok(pb::AcknowledgeReferralResponse {
                referral: Some(convert::referral(&referral, today)),
            })
        })
        .await
    }

    async fn answer_referral(
        &self,
        request: Request<pb::AnswerReferralRequest>,
    ) -> Result<Response<pb::AnswerReferralResponse>, Status> {
        self.partner_call("AnswerReferral", request, |call, req| async move {
            let answer = match free_text(&req.answer, 2000) {
                Ok(a) if a.is_empty() => Err(Error::invalid("answer", "required: the answer")),
                Ok(a) => Ok(ReferralAction::Answer(a)),
                Err(e) => Err(convert::invalid("answer", e)),
            };
            let today = call.at.day();
            let referral = self
                .referral_action(
                    call,
                    &req.referral_id,
                    req.expected_version,
                    &req.request_id,
                    answer,
                )
                .await?;
            Ok(pb::AnswerReferralResponse {
                referral: Some(convert::referral(&referral, today)),
            })
        })
        .await
    }

    async fn close_referral(
        &self,
        request: Request<pb::CloseReferralRequest>,
    ) -> Result<Response<pb::CloseReferralResponse>, Status> {
        self.partner_call("CloseReferral", request, |call, req| async move {
            let today = call.at.day();
            let referral = self
                .referral_action(
                    call,
                    &req.referral_id,
                    req.expected_version,
                    &req.request_id,
                    Ok(ReferralAction::Close),
                )
                .await?;
            Ok(pb::CloseReferralResponse {
                referral: Some(convert::referral(&referral, today)),
            })
        })
        .await
    }

    async fn escalate_referral(
        &self,
        request: Request<pb::EscalateReferralRequest>,
    ) -> Result<Response<pb::EscalateReferralResponse>, Status> {
        self.partner_call("EscalateReferral", request, |call, req| async move {
            let latest = self.latest_reply_day(&call);
            let due = match Day::parse_optional(&req.due_date) {
                Ok(due) => {
                    let mut v = Violations::new();
                    if let Some(due) = due {
                        self.check_reply_day(&call, due, latest, &mut v);
                    }
                    v.finish()?;
                    Ok(due.unwrap_or(latest))
                }
                Err(e) => Err(convert::invalid("due_date", e)),
            };
            let action = due.map(|due| ReferralAction::Escalate {
                due,
                expires: self.expiry_day(due),
            });
            let today = call.at.day();
            let referral = self
                .referral_action(
                    call,
                    &req.referral_id,
                    req.expected_version,
                    &req.request_id,
                    action,
                )
                .await?;
            Ok(pb::EscalateReferralResponse {
                referral: Some(convert::referral(&referral, today)),
            })
        })
        .await
    }

    async fn list_work_queue(
        &self,
        request: Request<pb::ListWorkQueueRequest>,
    ) -> Result<Response<pb::ListWorkQueueResponse>, Status> {
        self.partner_call("ListWorkQueue", request, |call, req| async move {
            self.work_queue(&call, req).await
        })
        .await
    }

    async fn get_referral(
        &self,
        request: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::GetReferralResponse>, Status> {
        self.partner_call("GetReferral", request, |call, req| async move {
            let id = ReferralId::parse(&req.referral_id)
                .map_err(|e| convert::invalid("referral_id", e))?;
            let referral = self.own_referral(&call, id).await?;
            Ok(pb::GetReferralResponse {
                referral: Some(convert::referral(&referral, call.at.day())),
            })
        })
        .await
    }

    async fn list_referrals(
        &self,
        request: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        self.partner_call("ListReferrals", request, |call, req| async move {
            let mut v = Violations::new();
            let page = convert::page(req.page_size, &req.page_token, &mut v);
            let direction = match pb::ReferralDirection::try_from(req.direction) {
                Ok(pb::ReferralDirection::Unspecified) => None,
                Ok(pb::ReferralDirection::Inbound) => Some(Direction::Inbound),
                Ok(pb::ReferralDirection::Outbound) => Some(Direction::Outbound),
                Err(_) => {
                    v.push("direction", format!("unknown direction {}", req.direction));
                    None
                }
            };
            let states: Vec<_> = req
                .states
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    v.field(&format!("states[{i}]"), convert::referral_state_from_pb(*s))
                })
                .collect();
            v.finish()?;
            let filter = ReferralFilter {
                partner: call.id().clone(),
                direction,
                person: None,
                states,
                overdue_on: req.overdue_only.then(|| call.at.day()),
            };
            // The referrals it sent are its own; those it received are shown while referrals
            // may still reach it, decided per person and audited like any read. The page is cut
            // after deciding (see `disclose::visible_page`): no empty page or token betrays a
            // referral it may no longer see.
            let mut facts_of = std::collections::HashMap::new();
            let mut accesses = std::collections::HashMap::new();
            let mut shown = Vec::new();
            let mut next_page_token = String::new();
            let mut after = page.after.clone();
            'pages: loop {
                let batch = self
                    .store
                    .list_referrals(&filter, after.as_deref(), 256)
                    .await?;
                let exhausted = batch.len() < 256;
                for r in batch {
                    after = Some(r.id.to_string());
                    let full = shown.len() == page.size as usize;
                    let visible = if &r.from == call.id() {
                        true
                    } else {
                        if let std::collections::hash_map::Entry::Vacant(slot) =
                            facts_of.entry(r.person)
                        {
                            slot.insert(self.gate.facts(&call.partner, r.person).await?);
                        }
                        let facts = &facts_of[&r.person];
                        if full {
                            // The look-ahead: decided, not answered, not recorded.
                            self.access(&call, facts.clone()).referral(&r)
                        } else {
                            accesses
                                .entry(r.person)
                                .or_insert_with(|| self.access(&call, facts.clone()))
                                .referral(&r)
                        }
                    };
                    if !visible {
                        continue;
                    }
                    if full {
                        next_page_token = shown
                            .last()
                            .map(|l: &crate::domain::referral::Referral| {
                                convert::page_token(&l.id.to_string())
                            })
                            .unwrap_or_default();
                        break 'pages;
                    }
                    shown.push(r);
                }
                if exhausted {
                    break;
                }
            }
            let mut withheld = crate::policy::Withheld::default();
            for (_, access) in accesses {
                let w = access
                    .record(&self.store, "read:ListReferrals".into(), String::new())
                    .await?;
                withheld.0.extend(w.0);
            }
            Ok(pb::ListReferralsResponse {
                referrals: shown
                    .iter()
                    .filter(|r| withheld.keeps(*r))
                    .map(|r| convert::referral(r, call.at.day()))
                    .collect(),
                next_page_token,
            })
        })
        .await
    }
}
