//! The work queue: a partner's open cases and the referrals awaiting its answer, in priority
//! order (`domain::priority`). Each person's difficulties are decided for the caller, item by
//! item, like any read, and the read is audited (the reasons name them); a difficulty it may
//! not read is never an input.

use super::{Api, Call, convert};
use crate::domain::Flag;
use crate::domain::case::Case;
use crate::domain::case::Procedure;
use crate::domain::commune::Commune;
use crate::domain::priority::{Known, Priorities, Scored, Situation};
use crate::domain::referral::{Referral, ReferralState};
use crate::domain::{CaseStatus, Day, PersonId, Theme};
use crate::error::{Error, Result, Violations};
use crate::policy::access::{Access, Viewer, Withheld};
use crate::store::{CaseFilter, Direction, ReferralFilter, Setting};
use relais_proto::v1 as pb;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

/// The most items a queue is built from (open cases and awaiting referrals).
const MOST: usize = 5_000;

enum Work {
    Case(Case),
    Referral(Referral),
}

impl Work {
    fn person(&self) -> PersonId {
        match self {
            Work::Case(c) => c.person,
            Work::Referral(r) => r.person,
        }
    }

    fn id(&self) -> String {
        match self {
            Work::Case(c) => c.id.to_string(),
            Work::Referral(r) => r.id.to_string(),
        }
    }

    fn due(&self) -> Option<Day> {
        match self {
            Work::Case(c) => c.due_date,
            Work::Referral(r) => r.due_date,
        }
    }
}

/// What a queue holds: the caller's open cases and the referrals awaiting it.
pub(crate) struct QueueFilter {
    pub procedure: Option<String>,
    pub theme: Option<Theme>,
    pub statuses: Vec<CaseStatus>,
    pub due_before: Option<Day>,
    pub commune: Option<Commune>,
}

/// A person on the queue: what the caller may read of them, decided (not yet recorded).
struct Seen<'a> {
    access: Access<'a>,
    known: Vec<Known>,
    flags: Vec<Flag>,
}

/// A queue before its order: the items the caller may see, and each person's difficulties.
struct Gathered<'a> {
    people: HashMap<PersonId, Seen<'a>>,
    shown: Vec<Work>,
}

/// The score of one item under `priorities`.
fn score(priorities: &Priorities, w: &Work, known: &[Known], today: Day) -> Scored {
    let situation = match w {
        Work::Case(c) => Situation {
            procedure: c.procedure.as_str(),
            difficulties: known,
            due: c.due_date,
            since: c.history.last().map_or(c.opened_at, |t| t.at).day(),
            missing_documents: c.missing_documents.len(),
            referral_overdue: false,
        },
        Work::Referral(r) => Situation {
            procedure: "",
            difficulties: known,
            due: r.due_date,
            since: r.sent_at.day(),
            missing_documents: 0,
            referral_overdue: r.overdue(today),
        },
    };
    priorities.score(&situation, today)
}

/// The items in priority order: highest score first; then the nearest deadline, then the
/// oldest id (deterministic).
fn rank<'w>(
    priorities: &Priorities,
    shown: &'w [Work],
    people: &HashMap<PersonId, Seen<'_>>,
    today: Day,
) -> Vec<(&'w Work, Scored)> {
    let mut scored: Vec<(&Work, Scored)> = shown
        .iter()
        .map(|w| {
            let known = people.get(&w.person()).map_or(&[][..], |p| &p.known[..]);
            (w, score(priorities, w, known, today))
        })
        .collect();
    scored.sort_by(|a, b| {
        b.1.score
            .cmp(&a.1.score)
            .then_with(|| {
                let due = |w: &Work| (w.due().is_none(), w.due());
                due(a.0).cmp(&due(b.0))
            })
            .then_with(|| a.0.id().cmp(&b.0.id()))
    });
    scored
}

impl Api {
    /// The cases `filter` selects that `keep` keeps, page by page, at most `most`.
    pub(crate) async fn all_cases(
        &self,
        filter: &CaseFilter,
        most: usize,
        keep: impl Fn(&Case) -> bool,
    ) -> Result<Vec<Case>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        while out.len() < most {
            let batch = self.store.list_cases(filter, after.as_deref(), 500).await?;
            let exhausted = batch.len() < 500;
            after = batch.last().map(|c| c.id.to_string());
            out.extend(batch.into_iter().filter(|c| keep(c)));
            if exhausted {
                break;
            }
        }
        out.truncate(most);
        Ok(out)
    }

    /// The referrals `filter` selects, page by page, at most `most`.
    pub(crate) async fn all_referrals(
        &self,
        filter: &ReferralFilter,
        most: usize,
    ) -> Result<Vec<Referral>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        while out.len() < most {
            let batch = self
                .store
                .list_referrals(filter, after.as_deref(), 500)
                .await?;
            let exhausted = batch.len() < 500;
            after = batch.last().map(|r| r.id.to_string());
            out.extend(batch);
            if exhausted {
                break;
            }
        }
        out.truncate(most);
        Ok(out)
    }

    /// The territory's priorities in force: the newest stored version, or the built-in
    /// defaults (version 0).
    pub(crate) async fn priorities(&self) -> Result<(i64, Priorities)> {
        match self.store.active_setting(Setting::Priorities).await? {
            None => Ok((0, Priorities::default())),
            Some((version, text)) => Priorities::parse(&text)
                .map(|p| (version.version, p))
                .map_err(|e| {
                    Error::Internal(format!(
                        "stored priorities version {} do not parse: {e}",
                        version.version
                    ))
                }),
        }
    }

    /// The items of `viewer`'s queue it may see, with what it may read of each person.
    async fn gather<'a>(
        &'a self,
        viewer: Viewer<'a>,
        filter: &QueueFilter,
        today: Day,
    ) -> Result<Gathered<'a>> {
        let partner = &viewer.partner.id;
        // Its open cases (not yet at an outcome).
        let cases = CaseFilter {
            owner: Some(partner.clone()),
            person: None,
            statuses: filter.statuses.clone(),
        };
        let mut work: Vec<Work> = self
            .all_cases(&cases, MOST, |c| {
                !c.status.is_outcome() && !c.status.is_terminal()
            })
            .await?
            .into_iter()
            .map(Work::Case)
            .collect();
        // The referrals awaiting its answer, when no case status is asked for.
        if filter.statuses.is_empty() && work.len() < MOST {
            let referrals = ReferralFilter {
                partner: partner.clone(),
                direction: Some(Direction::Inbound),
                person: None,
                states: vec![ReferralState::Sent, ReferralState::Acknowledged],
                overdue_on: None,
            };
            work.extend(
                self.all_referrals(&referrals, MOST - work.len())
                    .await?
                    .into_iter()
                    .map(Work::Referral),
            );
        }
        work.retain(|w| {
            let (procedure, item_theme) = match w {
                Work::Case(c) => (Some(c.procedure.as_str()), c.theme),
                Work::Referral(_) => (None, None),
            };
            filter
                .procedure
                .as_deref()
                .is_none_or(|p| procedure == Some(p))
                && (filter.theme.is_none() || item_theme == filter.theme)
                && filter
                    .due_before
                    .is_none_or(|d| w.due().is_some_and(|due| due < d))
        });

        // Each person once: what the caller may read of them, decided for all (like a peek);
        // recorded by the caller for the persons it answers about.
        let mut people: HashMap<PersonId, Seen<'_>> = HashMap::new();
        let mut elsewhere: HashSet<PersonId> = HashSet::new();
        let mut shown = Vec::new();
        for w in work {
            let person = w.person();
            if elsewhere.contains(&person) {
                continue;
            }
            if let Entry::Vacant(slot) = people.entry(person) {
                let facts = self.gate.facts(viewer.partner, person).await?;
                let mut access = Access::new(&self.gate, viewer, facts);
                // Where the person lives counts only as far as the caller may know it.
                if let Some(commune) = &filter.commune {
                    let lives_there = match self.store.residence(person).await? {
                        Some(r) => &r.commune == commune && access.residence(&r),
                        None => false,
                    };
                    if !lives_there {
                        elsewhere.insert(person);
                        continue;
                    }
                }
                let flags: Vec<Flag> = self
                    .store
                    .list_flags(person, false, None, 500)
                    .await?
                    .into_iter()
                    .filter(|f| f.current(today) && access.flag(f))
                    .collect();
                let known = strongest(&flags);
                slot.insert(Seen {
                    access,
                    known,
                    flags,
                });
            }
            let Some(seen) = people.get_mut(&person) else {
                continue;
            };
            // A referral received is shown while referrals may still reach it; the case is
            // the caller's own.
            let visible = match &w {
                Work::Case(c) => seen.access.case(c),
                Work::Referral(r) => seen.access.referral(r),
            };
            if visible {
                shown.push(w);
            }
        }
        Ok(Gathered { people, shown })
    }

    pub(crate) async fn work_queue(
        &self,
        call: &Call,
        req: pb::ListWorkQueueRequest,
    ) -> Result<pb::ListWorkQueueResponse> {
        let mut v = Violations::new();
        let page = convert::page(req.page_size, &req.page_token, &mut v);
        let size = if req.page_size == 0 {
            50
        } else {
            page.size.min(200)
        };
        let theme = if req.theme.is_empty() {
            None
        } else {
            v.field("theme", Theme::parse(&req.theme))
        };
        let procedure = if req.procedure.is_empty() {
            None
        } else {
            v.field("procedure", Procedure::parse(&req.procedure))
        };
        let commune = if req.commune.is_empty() {
            None
        } else {
            v.field("commune", Commune::parse(&req.commune))
        };
        let due_before = v.field("due_before", Day::parse_optional(&req.due_before));
        let statuses: Vec<CaseStatus> = convert::case_statuses(&req.statuses, &mut v);
        let offset: usize = match &page.after {
            None => 0,
            Some(after) => match after.parse::<usize>() {
                Ok(n) if n <= MOST => n,
                _ => {
                    v.push("page_token", "not a token this hub returned");
                    0
                }
            },
        };
        for (i, status) in statuses.iter().enumerate() {
            if status.is_outcome() || status.is_terminal() {
                v.push(
                    format!("statuses[{i}]"),
                    format!(
                        "`{}` is past the work: the queue holds open cases",
                        status.as_str()
                    ),
                );
            }
        }
        v.finish()?;
        let filter = QueueFilter {
            procedure: procedure.map(|p| p.as_str().to_string()),
            theme,
            statuses,
            due_before: due_before.flatten(),
            commune,
        };
        let today = call.at.day();
        let (_, priorities) = self.priorities().await?;
        let Gathered { mut people, shown } = self.gather(call.viewer(), &filter, today).await?;
        let ranked = rank(&priorities, &shown, &people, today);
        let total = ranked.len();
        let page_items: Vec<(usize, &Work, Scored)> = ranked
            .into_iter()
            .enumerate()
            .skip(offset)
            .take(size as usize)
            .map(|(i, (w, s))| (i, w, s))
            .collect();
        // The persons on the page: their read recorded (once each), and what the store
        // withholds at that moment (a consent ended meanwhile) left out.
        let mut on_page: Vec<PersonId> = page_items.iter().map(|(_, w, _)| w.person()).collect();
        on_page.sort();
        on_page.dedup();
        let mut recorded: HashMap<PersonId, (Withheld, Vec<String>)> = HashMap::new();
        let mut people_known: HashMap<PersonId, Vec<Known>> = HashMap::new();
        for person in on_page {
            let Some(seen) = people.remove(&person) else {
                continue;
            };
            let withheld = seen
                .access
                .record(
                    &self.store,
                    "read:ListWorkQueue".into(),
                    "work queue: the items and the difficulties behind their order".into(),
                )
                .await?;
            let local_ids = self
                .store
                .local_ids(call.id(), person)
                .await?
                .into_iter()
                .map(|l| l.to_string())
                .collect();
            let kept: Vec<Flag> = seen
                .flags
                .into_iter()
                .filter(|f| withheld.keeps(f))
                .collect();
            people_known.insert(person, strongest(&kept));
            recorded.insert(person, (withheld, local_ids));
        }
        let mut items = Vec::new();
        for (i, w, s) in page_items {
            let Some((withheld, local_ids)) = recorded.get(&w.person()) else {
                continue;
            };
            let kept = match w {
                Work::Case(c) => withheld.keeps(c),
                Work::Referral(r) => withheld.keeps(r),
            };
            if !kept {
                continue;
            }
            // A difficulty withheld at the record is said nowhere (the rank stays as decided).
            let s = people_known
                .get(&w.person())
                .map_or(s, |known| score(&priorities, w, known, today));
            items.push(pb::WorkItem {
                rank: i32::try_from(i + 1).unwrap_or(i32::MAX),
                score: i32::try_from(s.score).unwrap_or(i32::MAX),
                explanation: s.explanation(),
                reasons: s
                    .reasons
                    .iter()
                    .map(|r| pb::ScoreReason {
                        points: i32::try_from(r.points).unwrap_or(i32::MAX),
                        text: r.text.clone(),
                    })
                    .collect(),
                item: Some(match w {
                    Work::Case(c) => pb::work_item::Item::Case(convert::case(c)),
                    Work::Referral(r) => pb::work_item::Item::Referral(convert::referral(r, today)),
                }),
                local_ids: local_ids.clone(),
            });
        }
        let next = offset.saturating_add(size as usize);
        Ok(pb::ListWorkQueueResponse {
            items,
            next_page_token: if next < total {
                convert::page_token(&next.to_string())
            } else {
                String::new()
            },
        })
    }

    /// How `partner`'s queue would change under `candidate`: the items whose rank moves. The
    /// decisions are the partner's own (what it may read), nothing is disclosed to it, and
    /// the administrator sees ids and ranks only.
    pub(crate) async fn dry_run_priorities(
        &self,
        partner: &crate::domain::Partner,
        purpose: crate::domain::Purpose,
        candidate: &Priorities,
        today: Day,
        audit: crate::audit::AuditEntry,
    ) -> Result<(i64, usize, Vec<pb::RankChange>)> {
        let (version, current) = self.priorities().await?;
        let agent = crate::domain::AgentId::system();
        let viewer = Viewer {
            partner,
            agent: &agent,
            purpose,
        };
        let filter = QueueFilter {
            procedure: None,
            theme: None,
            statuses: vec![],
            due_before: None,
            commune: None,
        };
        let Gathered { mut people, shown } = self.gather(viewer, &filter, today).await?;
        // The administrator sees which items move: a special-category difficulty (health) is
        // left out of both orders, so that no move tells who has one. The dry run is exact for
        // every other weight.
        for seen in people.values_mut() {
            seen.known.retain(|k| !k.code.special());
        }
        let before: HashMap<String, usize> = rank(&current, &shown, &people, today)
            .into_iter()
            .enumerate()
            .map(|(i, (w, _))| (w.id(), i + 1))
            .collect();
        let mut changes = Vec::new();
        let mut moved: Vec<PersonId> = Vec::new();
        for (i, (w, _)) in rank(candidate, &shown, &people, today)
            .into_iter()
            .enumerate()
        {
            let rank_before = before.get(&w.id()).copied().unwrap_or(0);
            if rank_before != i + 1 {
                let (kind, procedure) = match w {
                    Work::Case(c) => ("case", c.procedure.as_str().to_string()),
                    Work::Referral(_) => ("referral", String::new()),
                };
                let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
                changes.push(pb::RankChange {
                    item_id: w.id(),
                    kind: kind.into(),
                    procedure,
                    rank_before: int(rank_before),
                    rank_after: int(i + 1),
                });
                moved.push(w.person());
            }
        }
        // A move may rest on a difficulty of the person: each person listed has it in their
        // audit, under the administrator, with the decisions it rests on.
        moved.sort();
        moved.dedup();
        let mut entries = Vec::new();
        for person in moved {
            if let Some(seen) = people.remove(&person) {
                let (mut e, _) = seen
                    .access
                    .finish(audit.action.clone(), audit.detail.clone());
                e.principal = audit.principal.clone();
                e.agent = audit.agent.clone();
                entries.push(e);
            }
        }
        for chunk in entries.chunks(500) {
            self.store.record_access(chunk.to_vec(), vec![]).await?;
        }
        Ok((version, shown.len(), changes))
    }
}

/// Each code once, at the strongest qualification the caller may read.
fn strongest(flags: &[Flag]) -> Vec<Known> {
    let mut known: Vec<Known> = Vec::new();
    for f in flags {
        let how = f.qualified().how;
        match known.iter_mut().find(|k| k.code == f.code) {
            Some(k) => k.how = k.how.max(how),
            None => known.push(Known { code: f.code, how }),
        }
    }
    known.sort_by_key(|k| (std::cmp::Reverse(k.how), k.code.code()));
    known
}
