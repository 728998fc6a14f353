//! FlagService: raise, retract, list difficulty flags.

use super::{Api, convert, disclose, request_id};
use crate::domain::flag::{Flag, Qualification, Qualified, Retraction};
use crate::domain::ids::{FlagId, free_text};
use crate::domain::{Day, FlagCode};
use crate::error::{Error, Violations};
use crate::policy::{Action, Subject};
use crate::store::Raised;

/// How far ahead a review day may be (ten years, as the territory's longest delay).
const MAX_REVIEW_DAYS: i64 = 3660;

/// A run of six digits or more: a file, card or social security number.
fn has_a_number(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() >= 6)
}
use relais_proto::v1::{self as pb, flag_service_server::FlagService};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl FlagService for Api {
    async fn raise_flag(
        &self,
        request: Request<pb::RaiseFlagRequest>,
    ) -> Result<Response<pb::RaiseFlagResponse>, Status> {
        self.partner_call("RaiseFlag", request, |call, req| async move {
            let mut v = Violations::new();
            let code = v.field("code", FlagCode::parse(&req.code));
            let note = v.field("note", free_text(&req.note, 280));
            let valid_until = v.field("valid_until", Day::parse_optional(&req.valid_until));
            let how = v.field("qualification", convert::qualification_from_pb(req.qualification));
            let evidence = v.field("evidence", free_text(&req.evidence, 140));
            let review_on = v.field("review_on", Day::parse_optional(&req.review_on));
            let request_id = request_id(&req.request_id, &mut v);
            let today = call.at.day();
            if let Some(Some(until)) = valid_until
                && until < today
            {
                v.push("valid_until", "is in the past");
            }
            if let Some(Some(review)) = review_on
                && review <= today
            {
                v.push("review_on", "must be after today");
            }
            if let Some(Some(review)) = review_on
                && review > today.plus_days(MAX_REVIEW_DAYS)
            {
                v.push(
                    "review_on",
                    format!("at most {MAX_REVIEW_DAYS} days ahead: a difficulty is checked again with the person"),
                );
            }
            match (how, evidence.as_deref()) {
                (Some(Qualification::Attested), Some(e)) if e.trim().is_empty() => v.push(
                    "evidence",
                    "required for an attested difficulty: what attests it (\"notification APA du département\")",
                ),
                (Some(Qualification::Attested), Some(e)) if has_a_number(e) => v.push(
                    "evidence",
                    "names the kind of document or decision, without its number (no file, card or social security number)",
                ),
                (Some(Qualification::Declared | Qualification::Observed), Some(e)) if !e.is_empty() => {
                    v.push("evidence", "only for an attested difficulty")
                }
                _ => {}
            }
            v.finish()?;
            let (Some(code), Some(note), Some(valid_until), Some(how), Some(evidence), Some(review_on), Some(request_id)) =
                (code, note, valid_until, how, evidence, review_on, request_id)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let review_on = review_on.unwrap_or_else(|| {
                today.plus_days(i64::from(self.settings.flags.review_days(how)))
            });
            let facts = self
                .person_ref(&call, "person", req.person.as_ref())
                .await?;
            let decision = self.may_write(&call, &facts, Subject::flag(code))?;
            let person = facts.person;
            // Tell us once: a flag of this code that another partner raised and the caller may
            // read is the answer (read and audited as such). One it may not read is none of its
            // business: the caller raises its own, and learns nothing of the other.
            // A partner that holds the code itself upgrades or confirms its own flag (the store
            // decides): another's answer would leave its own as it was.
            let others = self.store.list_flags(person, false, None, 500).await?;
            let holds = others
                .iter()
                .any(|f| f.code == code && &f.source_partner == call.id());
            let readable = others.iter().find(|f| {
                !holds &&
                f.code == code
                    && &f.source_partner != call.id()
                    // The caller knows it more surely: it raises its own, qualified as it is.
                    && f.qualified().how >= how
                    && f.current(today)
                    && self
                        .gate
                        .decide(
                            &facts,
                            &call.partner,
                            &call.ctx.agent,
                            Action::Read,
                            Subject::flag(code),
                            call.ctx.purpose,
                        )
                        .allowed
            });
            if let Some(known) = readable {
                let mut access = self.access(&call, facts.clone());
                if access.flag(known) {
                    let withheld = access
                        .record(
                            &self.store,
                            "read:RaiseFlag".into(),
                            "already raised".into(),
                        )
                        .await?;
                    if withheld.keeps(known) {
                        return Ok(pb::RaiseFlagResponse {
                            flag: Some(convert::flag(known, today, Some(call.id()))),
                            created: false,
                            requalified: false,
                        });
                    }
                }
            }
            let flag = Flag {
                id: FlagId::new(),
                person,
                code,
                source_partner: call.id().clone(),
                source_agent: call.ctx.agent.clone(),
                raised_at: call.at,
                note,
                valid_until,
                retraction: None,
                version: 1,
                qualification: Some(Qualified {
                    how,
                    partner: call.id().clone(),
                    agent: call.ctx.agent.clone(),
                    at: call.at,
                    evidence,
                }),
                qualification_history: vec![],
                review_on: Some(review_on),
            };
            let meta = call.meta(request_id).audited(call.write_entry(
                Some(person),
                &[code.category().into()],
                Some(&decision),
            ));
            let (flag, raised) = self.store.raise_flag(flag, &meta).await?;
            Ok(pb::RaiseFlagResponse {
                flag: Some(convert::flag(&flag, today, Some(call.id()))),
                created: raised == Raised::Created,
                requalified: raised == Raised::Requalified,
            })
        })
        .await
    }

    async fn retract_flag(
        &self,
        request: Request<pb::RetractFlagRequest>,
    ) -> Result<Response<pb::RetractFlagResponse>, Status> {
        self.partner_call("RetractFlag", request, |call, req| async move {
            let mut v = Violations::new();
            let id = v.field("flag_id", FlagId::parse(&req.flag_id));
            let reason = v.field("reason", free_text(&req.reason, 280));
            let request_id = request_id(&req.request_id, &mut v);
            if req.expected_version <= 0 {
                v.push(
                    "expected_version",
                    "required: the version of the flag you read",
                );
            }
            v.finish()?;
            let (Some(id), Some(reason), Some(request_id)) = (id, reason, request_id) else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            // A flag belongs to who raised it. Another partner learns nothing of a flag it may
            // not read — the same answer as for no flag — and may not retract one it may read.
            let Some(current) = self.store.get_flag(id).await? else {
                return self.no_such_record(&call, "flag", id).await;
            };
            let facts = self
                .known_person(&call, current.person)
                .await
                .map_err(|_| disclose::no_record("flag", id))?;
            if &current.source_partner != call.id() {
                let mut access = self.access(&call, facts);
                let readable = access.flag(&current);
                let (entry, _) = access.finish("read:RetractFlag".into(), format!("flag {id}"));
                disclose::audit_in_background(&self.store, entry);
                return Err(if readable {
                    Error::PermissionDenied(
                        "only the partner that raised a flag retracts it (or the administrator)"
                            .into(),
                    )
                } else {
                    disclose::no_record("flag", id)
                });
            }
            let decision = self.may_write(&call, &facts, Subject::flag(current.code))?;
            let meta = call.meta(request_id).audited(call.write_entry(
                Some(current.person),
                &[current.code.category().into()],
                Some(&decision),
            ));
            let retraction = Retraction {
                at: call.at,
                partner: call.id().clone(),
                agent: call.ctx.agent.clone(),
                reason,
            };
            let flag = self
                .store
                .update_flag(
                    id,
                    req.expected_version,
                    Box::new(move |flag| flag.retract(retraction)),
                    &meta,
                )
                .await?;
            Ok(pb::RetractFlagResponse {
                flag: Some(convert::flag(&flag, call.at.day(), Some(call.id()))),
            })
        })
        .await
    }

    async fn list_flags(
        &self,
        request: Request<pb::ListFlagsRequest>,
    ) -> Result<Response<pb::ListFlagsResponse>, Status> {
        self.partner_call("ListFlags", request, |call, req| async move {
            let mut v = Violations::new();
            let page = convert::page(req.page_size, &req.page_token, &mut v);
            v.finish()?;
            let facts = self
                .person_ref(&call, "person", req.person.as_ref())
                .await?;
            let person = facts.person;
            let mut peek = self.access(&call, facts.clone());
            let mut access = self.access(&call, facts);
            let store = &self.store;
            let (shown, next_page_token) = disclose::visible_page(
                page.after,
                page.size,
                |after, limit| async move {
                    store
                        .list_flags(person, req.include_retracted, after.as_deref(), limit)
                        .await
                },
                |f| f.id.to_string(),
                |f| access.flag(f),
                |f| peek.flag(f),
            )
            .await?;
            let withheld = access
                .record(&self.store, "read:ListFlags".into(), String::new())
                .await?;
            let flags =
                disclose::fold_flags(shown.iter().filter(|f| withheld.keeps(*f)), call.id())
                    .into_iter()
                    .map(|f| convert::flag(f, call.at.day(), Some(call.id())))
                    .collect();
            Ok(pb::ListFlagsResponse {
                flags,
                next_page_token,
            })
        })
        .await
    }
}
