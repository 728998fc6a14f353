//! PersonService: links, resolution by local id or pivot identity, the person summary.

use super::{Api, convert, disclose, request_id};
use crate::domain::ids::PersonId;
use crate::domain::pivot::PivotIdentity;
use crate::domain::{DataCategory, Day, LocalId, ReferralState};
use crate::error::{Error, Violations};
use crate::store::{CaseFilter, LinkOutcome, LinkTarget};
use relais_proto::v1::{self as pb, person_service_server::PersonService};
use tonic::{Request, Response, Status};

/// The pivot identity of a request; a birth date after `today` is refused with the others.
pub(crate) fn pivot(
    p: &pb::PivotIdentity,
    prefix: &str,
    today: Day,
) -> Result<PivotIdentity, Error> {
    let parsed = PivotIdentity::parse(
        prefix,
        &p.family_name,
        &p.first_given_name,
        &p.birth_date,
        &p.birth_place_cog,
    );
    let future = Day::parse(&p.birth_date).is_ok_and(|d| d > today);
    match (parsed, future) {
        (Ok(_), true) => Err(Error::invalid(
            format!("{prefix}.birth_date"),
            "is in the future",
        )),
        (Err(Error::Invalid(mut v)), true) => {
            v.push(crate::error::FieldViolation::new(
                format!("{prefix}.birth_date"),
                "is in the future",
            ));
            Err(Error::Invalid(v))
        }
        (result, _) => result,
    }
}

#[tonic::async_trait]
impl PersonService for Api {
    async fn link_person(
        &self,
        request: Request<pb::LinkPersonRequest>,
    ) -> Result<Response<pb::LinkPersonResponse>, Status> {
        self.partner_call("LinkPerson", request, |call, req| async move {
            let mut v = Violations::new();
            let local_id = v.field("local_id", LocalId::parse(&req.local_id));
            let request_id = request_id(&req.request_id, &mut v);
            let by_id = if req.person_id.is_empty() {
                None
            } else {
                v.field("person_id", PersonId::parse(&req.person_id))
            };
            let pivot = match &req.pivot {
                Some(p) => v.merge(pivot(p, "pivot", call.at.day()))?,
                None => None,
            };
            if !req.person_id.is_empty() && req.pivot.is_some() {
                v.push("person_id", "give either person_id or pivot, not both");
            }
            v.finish()?;
            let (Some(local_id), Some(request_id)) = (local_id, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let target = match (by_id, pivot) {
                (Some(person), _) => {
                    self.known_person(&call, person).await?;
                    LinkTarget::Person(person)
                }
                (None, Some(p)) => LinkTarget::Pivot(self.matching.key(&p)),
                (None, None) => LinkTarget::New,
            };
            let meta = call.meta(request_id);
            let result = self
                .store
                .link_person(call.id(), &local_id, target, &meta)
                .await?;
            // Whether other partners already knew the person is itself personal data: it is
            // told only when the person's consent lets this partner know them.
            let outcome = match result.outcome {
                LinkOutcome::AlreadyLinked => pb::LinkOutcome::AlreadyLinked,
                LinkOutcome::LinkedById => pb::LinkOutcome::LinkedById,
                LinkOutcome::Created if req.pivot.is_none() => pb::LinkOutcome::Created,
                LinkOutcome::Created | LinkOutcome::MatchedByPivot => {
                    let mut facts = self.gate.facts(&call.partner, result.person).await?;
                    // The link just made does not count: would the partner know them otherwise?
                    facts.relation.linked = false;
                    let disclosed = result.outcome == LinkOutcome::MatchedByPivot
                        && self.gate.may_know(
                            &facts,
                            &call.partner,
                            &call.ctx.agent,
                            call.ctx.purpose,
                        );
                    if disclosed {
                        pb::LinkOutcome::MatchedByPivot
                    } else {
                        pb::LinkOutcome::LinkedByPivot
                    }
                }
            };
            let mut entry = call.write_entry(Some(result.person), &[DataCategory::Identity], None);
            entry.detail = format!("local id linked ({})", outcome.as_str_name());
            self.store.record_access(vec![entry], vec![]).await?;
            tracing::info!(person = %result.person, outcome = ?result.outcome, "person linked");
            Ok(pb::LinkPersonResponse {
                person_id: result.person.to_string(),
                outcome: outcome as i32,
            })
        })
        .await
    }

    async fn resolve_person(
        &self,
        request: Request<pb::ResolvePersonRequest>,
    ) -> Result<Response<pb::ResolvePersonResponse>, Status> {
        use pb::resolve_person_request::By;
        self.partner_call("ResolvePerson", request, |call, req| async move {
            let person = match &req.by {
                None => return Err(Error::invalid("by", "required: local_id or pivot")),
                Some(By::LocalId(local)) => {
                    let local =
                        LocalId::parse(local).map_err(|e| convert::invalid("local_id", e))?;
                    self.store
                        .person_by_local_id(call.id(), &local)
                        .await?
                        .ok_or_else(|| Error::not_found("local id", &local))?
                }
                Some(By::Pivot(p)) => {
                    let key = self.matching.key(&pivot(p, "pivot", call.at.day())?);
                    match self.store.person_by_pivot(&key).await? {
                        Some(person) => person,
                        // Traits of nobody: the same work and answer as traits of a person
                        // the caller may not know.
                        None => return self.nobody(&call).await,
                    }
                }
            };
            // Matching by traits tells the caller the person exists: a read of their identity,
            // audited when given as when refused.
            self.known_person(&call, person).await?;
            let local_ids = self.store.local_ids(call.id(), person).await?;
            let mut entry = call.write_entry(Some(person), &[DataCategory::Identity], None);
            entry.action = "read:ResolvePerson".into();
            entry.detail = "person resolved".into();
            self.store.record_access(vec![entry], vec![]).await?;
            Ok(pb::ResolvePersonResponse {
                person_id: person.to_string(),
                local_ids: local_ids.iter().map(ToString::to_string).collect(),
            })
        })
        .await
    }

    async fn unlink_person(
        &self,
        request: Request<pb::UnlinkPersonRequest>,
    ) -> Result<Response<pb::UnlinkPersonResponse>, Status> {
        self.partner_call("UnlinkPerson", request, |call, req| async move {
            let mut v = Violations::new();
            let local_id = v.field("local_id", LocalId::parse(&req.local_id));
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(local_id), Some(request_id)) = (local_id, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let meta = call.meta(request_id).audited(call.write_entry(
                None,
                &[DataCategory::Identity],
                None,
            ));
            let person = self
                .store
                .unlink_person(call.id(), &local_id, &meta)
                .await?;
            Ok(pb::UnlinkPersonResponse {
                person_id: person.to_string(),
            })
        })
        .await
    }

    async fn get_person_summary(
        &self,
        request: Request<pb::GetPersonSummaryRequest>,
    ) -> Result<Response<pb::GetPersonSummaryResponse>, Status> {
        self.partner_call("GetPersonSummary", request, |call, req| async move {
            let facts = self
                .person_ref(&call, "person", req.person.as_ref())
                .await?;
            let person = facts.person;
            // A summary is what a counter shows: bounded; the lists page further.
            const MAX: u32 = 500;
            let flags = self
                .store
                .list_flags(person, req.include_history, None, MAX)
                .await?;
            let mut cases = self
                .store
                .list_cases(
                    &CaseFilter {
                        person: Some(person),
                        ..CaseFilter::default()
                    },
                    None,
                    MAX,
                )
                .await?;
            if !req.include_history {
                cases.retain(|c| !c.status.is_terminal());
            }
            // Every referral about the person: the rules decide which the caller sees.
            let mut referrals = self.store.referrals_of_person(person, MAX).await?;
            if !req.include_history {
                referrals.retain(|r| r.state != ReferralState::Closed);
            }
            let local_ids = self.store.local_ids(call.id(), person).await?;
            let mut access = self.access(&call, facts);
            let flags: Vec<_> = flags.iter().filter(|f| access.flag(f)).collect();
            let cases: Vec<_> = cases.iter().filter(|c| access.case(c)).collect();
            let referrals: Vec<_> = referrals.iter().filter(|r| access.referral(r)).collect();
            let withheld = access
                .record(&self.store, "read:GetPersonSummary".into(), String::new())
                .await?;
            let flags =
                disclose::fold_flags(flags.into_iter().filter(|f| withheld.keeps(*f)), call.id());
            let today = call.at.day();
            let flags = flags
                .into_iter()
                .map(|f| convert::flag(f, today, Some(call.id())))
                .collect();
            let cases = cases
                .into_iter()
                .filter(|c| withheld.keeps(*c))
                .map(convert::case)
                .collect();
            let referrals = referrals
                .into_iter()
                .filter(|r| withheld.keeps(*r))
                .map(|r| convert::referral(r, today))
                .collect();
            Ok(pb::GetPersonSummaryResponse {
                person_id: person.to_string(),
                local_ids: local_ids.iter().map(ToString::to_string).collect(),
                flags,
                cases,
                referrals,
            })
        })
        .await
    }

    async fn set_residence(
        &self,
        request: Request<pb::SetResidenceRequest>,
    ) -> Result<Response<pb::SetResidenceResponse>, Status> {
        self.partner_call("SetResidence", request, |call, req| async move {
            Api::set_residence(self, &call, req).await
        })
        .await
    }

    async fn set_accessibility(
        &self,
        request: Request<pb::SetAccessibilityRequest>,
    ) -> Result<Response<pb::SetAccessibilityResponse>, Status> {
        self.partner_call("SetAccessibility", request, |call, req| async move {
            Api::set_accessibility(self, &call, req).await
        })
        .await
    }

    async fn get_accessibility(
        &self,
        request: Request<pb::GetAccessibilityRequest>,
    ) -> Result<Response<pb::GetAccessibilityResponse>, Status> {
        self.partner_call("GetAccessibility", request, |call, req| async move {
            Api::get_accessibility(self, &call, req).await
        })
        .await
    }
}
