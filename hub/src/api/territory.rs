//! TerritoryService: the bus's tours (aller_vers), the médiateur's sheet, and the activity
//! figures for funders (statistique). The tour and the figures are aggregates: counts under 5
//! are shown as "< 5", and nothing names a person. Each is built only from what the caller may
//! read, so that a count never tells it of a difficulty it may not read.

use super::{Api, Call};
use crate::audit::AuditEntry;
use crate::documents::{escape, page_styled};
use crate::domain::case::Case;
use crate::domain::commune::Commune;
use crate::domain::referral::ReferralState;
use crate::domain::{Day, PartnerId, PersonId, Purpose};
use crate::error::{Error, Result, Violations};
use crate::policy::access::Access;
use crate::store::{CaseFilter, Direction, ReferralFilter};
use relais_proto::v1::{self as pb, territory_service_server::TerritoryService};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tonic::{Request, Response, Status};

/// Counts under this are suppressed.
const SMALL: usize = 5;

/// The difficulties that call for in-person help.
const IN_PERSON: [&str; 12] = [
    "ELOIGNEMENT",
    "SANS_TRANSPORT",
    "DEPENDANT_TC",
    "SANS_PERMIS",
    "SANS_INTERNET",
    "ZONE_BLANCHE",
    "ILLECTRONISME",
    "DEMARCHE_DIFFICILE",
    "LANGUE",
    "ISOLEMENT",
    "PERTE_AUTONOMIE",
    "HANDICAP",
];

/// What a tour's audit entry says to each person counted.
const COUNTED: &str =
    "counted in the per-commune totals of the bus's tour plan; nothing about the person was shown";

/// …and to a person whose commune the caller may not know.
const NOT_COUNTED: &str = "considered for the bus's tour plan but not counted: where the person lives is not the caller's to know";

/// How far ahead a case "falls due soon".
const DUE_SOON_DAYS: i64 = 14;

/// The most persons a tour is planned from.
const MOST_PERSONS: usize = 50_000;

/// A count as it may be shown.
pub(crate) fn count(n: usize) -> pb::Count {
    if n < SMALL {
        pb::Count {
            value: 0,
            suppressed: true,
            shown: "< 5".into(),
        }
    } else {
        let value = i32::try_from(n).unwrap_or(i32::MAX);
        pb::Count {
            value,
            suppressed: false,
            shown: value.to_string(),
        }
    }
}

/// What a shown count weighs in an order: a suppressed one as 2.
fn weight(c: &pb::Count) -> i32 {
    if c.suppressed { 2 } else { c.value }
}

fn open_case(c: &Case) -> bool {
    !c.status.is_outcome() && !c.status.is_terminal()
}

/// Within the partner's territory: one of its communes, or a commune of one of its
/// départements.
fn within(territory: &[String], commune: &Commune) -> bool {
    territory.iter().any(|t| {
        if t.len() == 5 {
            t == commune.as_str()
        } else {
            commune.as_str().starts_with(t.as_str())
        }
    })
}

fn purpose_required(call: &Call, purpose: Purpose, what: &str) -> Result<()> {
    if call.ctx.purpose == purpose {
        Ok(())
    } else {
        Err(Error::invalid(
            "context.purpose",
            format!("{what} is asked for the purpose `{}`", purpose.as_str()),
        ))
    }
}

/// The audit entry of an aggregate read: the call, its purpose and agent, no person.
fn aggregate_entry(call: &Call, action: &str, categories: &[&str], detail: String) -> AuditEntry {
    let mut e = AuditEntry::new(
        call.at,
        call.partner.id.as_str(),
        call.ctx.agent.as_str(),
        format!("read:{action}"),
    );
    e.categories = categories.iter().map(ToString::to_string).collect();
    e.purpose = Some(call.ctx.purpose.as_str().to_string());
    e.detail = detail;
    e
}

/// A CSV field (`;`-separated).
fn field(s: &str) -> String {
    if s.contains([';', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A4, printable.
const PRINT: &str = "@page{size:A4;margin:14mm}body{max-width:none;margin:0 auto}";

#[derive(Default)]
struct Tally {
    persons: usize,
    due: usize,
    referrals: usize,
}

impl Api {
    async fn plan_tour_for(
        &self,
        call: &Call,
        req: pb::PlanTourRequest,
    ) -> Result<pb::PlanTourResponse> {
        purpose_required(call, Purpose::AllerVers, "a tour")?;
        let mut v = Violations::new();
        let days = if req.days == 0 { 5 } else { req.days };
        let per_day = if req.stops_per_day == 0 {
            2
        } else {
            req.stops_per_day
        };
        if !(1..=20).contains(&days) {
            v.push("days", "1 to 20");
        }
        if !(1..=6).contains(&per_day) {
            v.push("stops_per_day", "1 to 6");
        }
        let start = v.field("start_on", Day::parse_optional(&req.start_on));
        let today = call.at.day();
        if let Some(Some(start)) = start
            && (start < today || start > today.plus_days(366))
        {
            v.push("start_on", "from today to a year ahead");
        }
        v.finish()?;
        let mut first = match start.flatten() {
            Some(d) => d,
            None => today.plus_days(1),
        };
        while first.weekend() {
            first = first.plus_days(1);
        }
        let territory = &call.partner.territory;

        // Each person living in the territory, decided as the caller would read them.
        let mut tallies: BTreeMap<Commune, Tally> = BTreeMap::new();
        let mut audit: Vec<AuditEntry> = Vec::new();
        let mut after: Option<PersonId> = None;
        let mut seen = 0usize;
        let mut partial = false;
        'pages: loop {
            let page = self.store.residences(after, 1000).await?;
            let exhausted = page.len() < 1000;
            for (person, residence) in page {
                after = Some(person);
                if !within(territory, &residence.commune) {
                    continue;
                }
                seen += 1;
                if seen > MOST_PERSONS {
                    partial = true;
                    break 'pages;
                }
                let cases: Vec<Case> = self
                    .store
                    .list_cases(
                        &CaseFilter {
                            person: Some(person),
                            ..CaseFilter::default()
                        },
                        None,
                        500,
                    )
                    .await?
                    .into_iter()
                    .filter(open_case)
                    .collect();
                let referrals: Vec<_> = self
                    .store
                    .referrals_of_person(person, 500)
                    .await?
                    .into_iter()
                    .filter(|r| r.state.awaiting_answer())
                    .collect();
                if cases.is_empty() && referrals.is_empty() {
                    continue;
                }
                let facts = self.gate.facts(&call.partner, person).await?;
                let mut access = Access::new(&self.gate, call.viewer(), facts);
                if !access.residence(&residence) {
                    audit.push(access.finish("read:PlanTour".into(), NOT_COUNTED.into()).0);
                    continue;
                }
                let cases: Vec<&Case> = cases.iter().filter(|c| access.case(c)).collect();
                let waiting = referrals.iter().filter(|r| access.referral(r)).count();
                let needs_help = !cases.is_empty()
                    && self
                        .store
                        .list_flags(person, false, None, 500)
                        .await?
                        .iter()
                        .filter(|f| f.current(today) && IN_PERSON.contains(&f.code.code()))
                        .any(|f| access.flag(f));
                let due = cases
                    .iter()
                    .filter(|c| {
                        c.due_date
                            .is_some_and(|d| (0..=DUE_SOON_DAYS).contains(&today.days_until(d)))
                    })
                    .count();
                // Decided for the person, so in their audit (the person's access report says
                // the bus counted them); nothing about them leaves but the commune's totals.
                audit.push(access.finish("read:PlanTour".into(), COUNTED.into()).0);
                let t = tallies.entry(residence.commune.clone()).or_default();
                t.persons += usize::from(needs_help);
                t.due += due;
                t.referrals += waiting;
            }
            if exhausted {
                break;
            }
        }
        let mut communes: Vec<pb::CommuneNeed> = tallies
            .into_iter()
            .filter(|(_, t)| t.persons + t.due + t.referrals > 0)
            .map(|(commune, t)| {
                let persons = count(t.persons);
                let due = count(t.due);
                let referrals = count(t.referrals);
                let score = 3 * weight(&persons) + 2 * weight(&due) + weight(&referrals);
                pb::CommuneNeed {
                    name: commune.name().unwrap_or_default().to_string(),
                    commune: commune.to_string(),
                    persons_needing_help: Some(persons),
                    cases_due_soon: Some(due),
                    referrals_waiting: Some(referrals),
                    score,
                }
            })
            .collect();
        // By need as shown; then by code (deterministic, and nothing finer than shown).
        communes.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then_with(|| a.commune.cmp(&b.commune))
        });
        let mut stops = Vec::new();
        let mut day = first;
        let per_day = usize::try_from(per_day).unwrap_or(1);
        for (d, chunk) in communes
            .chunks(per_day)
            .take(usize::try_from(days).unwrap_or(1))
            .enumerate()
        {
            if d > 0 {
                day = day.plus_days(1);
                while day.weekend() {
                    day = day.plus_days(1);
                }
            }
            for (i, c) in chunk.iter().enumerate() {
                stops.push(pb::TourStop {
                    day: i32::try_from(d + 1).unwrap_or(i32::MAX),
                    date: day.to_string(),
                    order: i32::try_from(i + 1).unwrap_or(i32::MAX),
                    commune: Some(c.clone()),
                });
            }
        }
        // The plan's own entry first, then each person's.
        audit.insert(
            0,
            aggregate_entry(
                call,
                "PlanTour",
                &[
                    "identity",
                    "case_status",
                    "referrals",
                    "mobility",
                    "digital",
                    "language",
                    "administrative",
                    "social",
                    "health",
                ],
                format!(
                    "tour planned from {} persons decided, {} communes with a need; counts under 5 suppressed; no person-level data{}",
                    audit.len(),
                    communes.len(),
                    if partial { "; partial: the first 50,000 residents only" } else { "" }
                ),
            ),
        );
        for chunk in audit.chunks(500) {
            self.store.record_access(chunk.to_vec(), vec![]).await?;
        }
        let csv = tour_csv(&stops);
        let html = tour_html(&call.partner.name, &stops, &communes, today, partial);
        Ok(pb::PlanTourResponse {
            stops,
            communes,
            csv,
            html,
            partial,
        })
    }

    async fn mediator_sheet(&self, call: &Call) -> Result<pb::GetMediatorSheetResponse> {
        purpose_required(call, Purpose::Accompagnement, "the médiateur's sheet")?;
        let now = call.at;
        let today = now.day();
        let mandates: Vec<_> = self
            .store
            .mandates_held(call.id(), &call.ctx.agent)
            .await?
            .into_iter()
            .filter(|m| m.state_at(now) == crate::domain::consent::RecordState::Granted)
            .collect();
        let mut by_person: BTreeMap<PersonId, Vec<&crate::domain::consent::Mandate>> =
            BTreeMap::new();
        for m in &mandates {
            by_person.entry(m.person).or_default().push(m);
        }
        let (_, priorities) = self.priorities().await?;
        let mut names: HashMap<PartnerId, String> = HashMap::new();
        let mut persons = Vec::new();
        for (person, held) in by_person {
            let cases = self
                .store
                .list_cases(
                    &CaseFilter {
                        person: Some(person),
                        ..CaseFilter::default()
                    },
                    None,
                    500,
                )
                .await?;
            let referrals = self.store.referrals_of_person(person, 500).await?;
            let facts = self.gate.facts(&call.partner, person).await?;
            let mut access = self.access(call, facts);
            let cases: Vec<&Case> = cases
                .iter()
                .filter(|c| open_case(c) && access.case(c))
                .collect();
            let answered: Vec<_> = referrals
                .iter()
                .filter(|r| r.state == ReferralState::Answered && access.referral(r))
                .collect();
            let withheld = access
                .record(
                    &self.store,
                    "read:GetMediatorSheet".into(),
                    "the médiateur's sheet: what is pending for a person followed under mandate"
                        .into(),
                )
                .await?;
            let mut pending = Vec::new();
            for c in cases.into_iter().filter(|c| withheld.keeps(*c)) {
                let owner = self.partner_name(&mut names, &c.owner).await?;
                let label = priorities.procedure(c.procedure.as_str()).map_or_else(
                    || format!("démarche {}", c.procedure.as_str()),
                    |p| p.label.clone(),
                );
                let mut line = format!("{label} chez {owner} : {}", c.status.label_fr());
                if !c.missing_documents.is_empty() {
                    line.push_str(&format!(
                        " — pièces à réunir : {}",
                        c.missing_documents.join(", ")
                    ));
                }
                if let Some(due) = c.due_date {
                    let left = today.days_until(due);
                    line.push_str(&match left {
                        l if l < 0 => format!(" — échéance dépassée (le {})", due.french()),
                        0 => " — échéance aujourd'hui".to_string(),
                        l => format!(
                            " — échéance le {} (dans {l} jour{})",
                            due.french(),
                            if l > 1 { "s" } else { "" }
                        ),
                    });
                }
                pending.push(line);
            }
            for r in answered.into_iter().filter(|r| withheld.keeps(*r)) {
                let to = self.partner_name(&mut names, &r.to).await?;
                pending.push(format!(
                    "réponse reçue de {to} le {} à la fiche navette",
                    r.updated_at.day().french()
                ));
            }
            let mut themes: BTreeSet<&str> = BTreeSet::new();
            let mut until = held[0].expires_at;
            for m in &held {
                themes.extend(m.themes.iter().map(|t| t.label_fr()));
                until = until.max(m.expires_at);
            }
            persons.push(pb::FollowedPerson {
                local_ids: self
                    .store
                    .local_ids(call.id(), person)
                    .await?
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                themes: themes.into_iter().map(String::from).collect(),
                mandate_until: until.day().to_string(),
                pending,
            });
        }
        let html = mediator_html(call.ctx.agent.as_str(), &call.partner.name, &persons, today);
        Ok(pb::GetMediatorSheetResponse { persons, html })
    }

    /// A partner's name, looked up once per call.
    pub(crate) async fn partner_name(
        &self,
        names: &mut HashMap<PartnerId, String>,
        id: &PartnerId,
    ) -> Result<String> {
        if let Some(n) = names.get(id) {
            return Ok(n.clone());
        }
        let name = self
            .store
            .get_partner(id)
            .await?
            .map_or_else(|| id.to_string(), |p| p.name);
        names.insert(id.clone(), name.clone());
        Ok(name)
    }

    async fn activity_figures(
        &self,
        call: &Call,
        req: pb::GetActivityFiguresRequest,
    ) -> Result<pb::GetActivityFiguresResponse> {
        purpose_required(call, Purpose::Statistique, "activity figures")?;
        let mut v = Violations::new();
        let month = |field: &str, s: &str, v: &mut Violations| -> Option<String> {
            if s.is_empty() {
                return None;
            }
            match Day::parse(&format!("{s}-01")) {
                Ok(d) if s.len() == 7 => Some(d.month()),
                _ => {
                    v.push(
                        field,
                        format!(
                            "`{}` is not a month `YYYY-MM`",
                            crate::domain::ids::truncate(s)
                        ),
                    );
                    None
                }
            }
        };
        let today = call.at.day();
        let to = month("to", &req.to, &mut v).unwrap_or_else(|| today.month());
        let from =
            month("from", &req.from, &mut v).unwrap_or_else(|| today.plus_days(-335).month());
        if from > to {
            v.push("from", "after `to`");
        }
        v.finish()?;
        let months_between = |m: &str| m >= from.as_str() && m <= to.as_str();

        #[derive(Default)]
        struct Month {
            persons: BTreeSet<PersonId>,
            opened: usize,
            closed: usize,
            days_to_close: Vec<i64>,
            received: usize,
            answered_in_time: usize,
            procedures: BTreeMap<String, usize>,
            themes: BTreeMap<String, usize>,
            outcomes: BTreeMap<String, usize>,
        }
        let mut months: BTreeMap<String, Month> = BTreeMap::new();
        // Its own cases: always its own to count.
        let cases = self
            .all_cases(
                &CaseFilter {
                    owner: Some(call.id().clone()),
                    person: None,
                    statuses: vec![],
                },
                usize::MAX,
                |_| true,
            )
            .await?;
        for c in &cases {
            let opened = c.opened_at.day().month();
            if months_between(&opened) {
                let m = months.entry(opened).or_default();
                m.opened += 1;
                m.persons.insert(c.person);
                *m.procedures
                    .entry(c.procedure.as_str().to_string())
                    .or_default() += 1;
                if let Some(t) = c.theme {
                    *m.themes.entry(t.as_str().to_string()).or_default() += 1;
                }
            }
            for t in &c.history {
                let at = t.at.day().month();
                if !months_between(&at) {
                    continue;
                }
                let m = months.entry(at).or_default();
                m.persons.insert(c.person);
                if t.to.is_outcome() && !t.from.is_outcome() {
                    m.closed += 1;
                    m.days_to_close
                        .push(c.opened_at.day().days_until(t.at.day()));
                    *m.outcomes.entry(t.to.as_str().to_string()).or_default() += 1;
                }
            }
        }
        // The referrals it received, and whether it answered them in time.
        let received = self
            .all_referrals(
                &ReferralFilter {
                    partner: call.id().clone(),
                    direction: Some(Direction::Inbound),
                    person: None,
                    states: vec![],
                    overdue_on: None,
                },
                usize::MAX,
            )
            .await?;
        for r in &received {
            let sent = r.sent_at.day().month();
            if !months_between(&sent) {
                continue;
            }
            let m = months.entry(sent).or_default();
            m.received += 1;
            let answered = r
                .history
                .iter()
                .find(|t| t.to == ReferralState::Answered)
                .map(|t| t.at.day());
            if let Some(answered) = answered
                && r.due_date.is_none_or(|due| answered <= due)
            {
                m.answered_in_time += 1;
            }
        }
        let (_, priorities) = self.priorities().await?;
        // Only the keys with 5 cases or more are named; the others are one "autres" row, so
        // that no suppressed cell can be read back from the month's total minus the others.
        let breakdown = |map: &BTreeMap<String, usize>, label: &dyn Fn(&str) -> String| {
            let mut rows: Vec<pb::Breakdown> = map
                .iter()
                .filter(|(_, n)| **n >= SMALL)
                .map(|(k, n)| pb::Breakdown {
                    key: k.clone(),
                    label: label(k),
                    cases: Some(count(*n)),
                })
                .collect();
            let others: usize = map.values().filter(|n| **n < SMALL).sum();
            if others > 0 {
                rows.push(pb::Breakdown {
                    key: String::new(),
                    label: "autres".into(),
                    cases: Some(count(others)),
                });
            }
            rows
        };
        let procedure_label = |k: &str| {
            priorities
                .procedure(k)
                .map_or_else(|| k.to_string(), |p| p.label.clone())
        };
        let theme_label = |k: &str| {
            crate::domain::Theme::parse(k)
                .map_or_else(|_| k.to_string(), |t| t.label_fr().to_string())
        };
        let outcome_label = |k: &str| {
            crate::domain::CaseStatus::parse(k)
                .map_or_else(|| k.to_string(), |s| s.label_fr().to_string())
        };
        let months: Vec<pb::MonthFigures> = months
            .into_iter()
            .map(|(month, mut m)| {
                m.days_to_close.sort_unstable();
                let median = if m.days_to_close.len() >= SMALL {
                    i32::try_from(m.days_to_close[m.days_to_close.len() / 2]).unwrap_or(i32::MAX)
                } else {
                    0
                };
                pb::MonthFigures {
                    month,
                    persons_helped: Some(count(m.persons.len())),
                    cases_opened: Some(count(m.opened)),
                    cases_closed: Some(count(m.closed)),
                    median_days_to_close: median,
                    referrals_received: Some(count(m.received)),
                    referrals_answered_in_time: Some(count(m.answered_in_time)),
                    by_procedure: breakdown(&m.procedures, &procedure_label),
                    by_theme: breakdown(&m.themes, &theme_label),
                    by_outcome: breakdown(&m.outcomes, &outcome_label),
                }
            })
            .collect();
        self.store
            .record_access(
                vec![aggregate_entry(
                    call,
                    "GetActivityFigures",
                    &["case_status", "referrals"],
                    format!("activity figures {from} to {to}: its own cases and the referrals it received; counts under 5 suppressed"),
                )],
                vec![],
            )
            .await?;
        Ok(pb::GetActivityFiguresResponse {
            partner: call.id().to_string(),
            csv: figures_csv(&months),
            months,
        })
    }
}

fn shown(c: &Option<pb::Count>) -> String {
    c.as_ref().map_or_else(String::new, |c| c.shown.clone())
}

fn tour_csv(stops: &[pb::TourStop]) -> String {
    let mut out = String::from(
        "jour;date;ordre;commune;code commune;personnes à aider en personne;démarches à échéance sous 14 jours;fiches navettes en attente\n",
    );
    for s in stops {
        let Some(c) = &s.commune else { continue };
        out.push_str(&format!(
            "{};{};{};{};{};{};{};{}\n",
            s.day,
            s.date,
            s.order,
            field(&c.name),
            c.commune,
            shown(&c.persons_needing_help),
            shown(&c.cases_due_soon),
            shown(&c.referrals_waiting)
        ));
    }
    out
}

fn tour_html(
    partner: &str,
    stops: &[pb::TourStop],
    communes: &[pb::CommuneNeed],
    today: Day,
    partial: bool,
) -> String {
    let mut body = String::new();
    let (first, last) = (
        stops.first().and_then(|s| Day::parse(&s.date).ok()),
        stops.last().and_then(|s| Day::parse(&s.date).ok()),
    );
    body.push_str(&format!(
        "<h1>Tournée du bus France Services</h1>\n<p>{}",
        escape(partner)
    ));
    if let (Some(a), Some(b)) = (first, last) {
        body.push_str(&format!(" — du {} au {}", a.french(), b.french()));
    }
    body.push_str(&format!(". Préparée le {}.</p>\n", today.french()));
    if stops.is_empty() {
        body.push_str(
            "<p>Aucune commune du territoire n'a de besoin connu : pas d'arrêt proposé.</p>\n",
        );
    }
    let mut day = 0;
    for s in stops {
        let Some(c) = &s.commune else { continue };
        if s.day != day {
            if day != 0 {
                body.push_str("</tbody></table>\n");
            }
            day = s.day;
            let date = Day::parse(&s.date).map_or_else(|_| s.date.clone(), Day::french);
            body.push_str(&format!(
                "<h2>Jour {} — {}</h2>\n<table><thead><tr><th scope=\"col\">Arrêt</th><th scope=\"col\">Commune</th><th scope=\"col\">Personnes à aider en personne</th><th scope=\"col\">Démarches à échéance sous 14 jours</th><th scope=\"col\">Fiches navettes en attente</th></tr></thead><tbody>\n",
                s.day,
                escape(&date)
            ));
        }
        let name = if c.name.is_empty() {
            c.commune.clone()
        } else {
            format!("{} ({})", c.name, c.commune)
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            s.order,
            escape(&name),
            escape(&shown(&c.persons_needing_help)),
            escape(&shown(&c.cases_due_soon)),
            escape(&shown(&c.referrals_waiting))
        ));
    }
    if day != 0 {
        body.push_str("</tbody></table>\n");
    }
    let left: Vec<&pb::CommuneNeed> = communes
        .iter()
        .filter(|c| {
            !stops
                .iter()
                .any(|s| s.commune.as_ref().is_some_and(|x| x.commune == c.commune))
        })
        .collect();
    if !left.is_empty() {
        body.push_str("<h2>Autres communes ayant un besoin (tournée suivante)</h2>\n<p>");
        body.push_str(
            &left
                .iter()
                .map(|c| {
                    escape(if c.name.is_empty() {
                        &c.commune
                    } else {
                        &c.name
                    })
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        body.push_str("</p>\n");
    }
    if partial {
        body.push_str("<p><strong>Attention :</strong> le territoire compte plus de 50 000 habitants connus ; seuls les 50 000 premiers sont comptés.</p>\n");
    }
    body.push_str("<p class=\"note\">Chiffres agrégés par commune, établis à partir des seules informations que la communauté de communes peut consulter pour aller vers les habitants. Les effectifs inférieurs à 5 sont affichés « &lt; 5 ». Aucune donnée nominative.</p>\n");
    page_styled("Tournée du bus France Services", &body, PRINT)
}

fn mediator_html(agent: &str, partner: &str, persons: &[pb::FollowedPerson], today: Day) -> String {
    let mut body = format!(
        "<h1>Fiche de visite</h1>\n<p>{} — médiateur {} — le {}</p>\n",
        escape(partner),
        escape(agent),
        today.french()
    );
    if persons.is_empty() {
        body.push_str("<p>Aucune personne suivie sous mandat en cours.</p>\n");
    }
    for p in persons {
        body.push_str(&format!(
            "<section><h2>Dossier {}</h2>\n<p>Mandat : {} — jusqu'au {}</p>\n",
            escape(&p.local_ids.join(", ")),
            escape(&p.themes.join(", ")),
            escape(
                &Day::parse(&p.mandate_until).map_or_else(|_| p.mandate_until.clone(), Day::french)
            )
        ));
        if p.pending.is_empty() {
            body.push_str("<p>Rien en attente.</p>\n");
        } else {
            body.push_str("<ul>\n");
            for line in &p.pending {
                body.push_str(&format!("<li>{}</li>\n", escape(line)));
            }
            body.push_str("</ul>\n");
        }
        body.push_str(
            "<p class=\"note\">Notes de la visite :</p><div class=\"notes\"></div></section>\n",
        );
    }
    page_styled(
        "Fiche de visite du médiateur",
        &body,
        "@page{size:A4;margin:14mm}body{font-size:18pt;max-width:none}h1{font-size:26pt}h2{font-size:21pt}li{margin:.4em 0}.notes{border-bottom:1px solid #444;height:3em}section{break-inside:avoid}",
    )
}

fn figures_csv(months: &[pb::MonthFigures]) -> String {
    let mut out = String::from(
        "mois;personnes accompagnées;démarches ouvertes;démarches closes;délai médian de clôture (jours);fiches navettes reçues;fiches navettes répondues dans le délai\n",
    );
    for m in months {
        out.push_str(&format!(
            "{};{};{};{};{};{};{}\n",
            m.month,
            shown(&m.persons_helped),
            shown(&m.cases_opened),
            shown(&m.cases_closed),
            if m.median_days_to_close > 0 {
                m.median_days_to_close.to_string()
            } else {
                String::new()
            },
            shown(&m.referrals_received),
            shown(&m.referrals_answered_in_time)
        ));
    }
    out
}

#[tonic::async_trait]
impl TerritoryService for Api {
    async fn plan_tour(
        &self,
        request: Request<pb::PlanTourRequest>,
    ) -> Result<Response<pb::PlanTourResponse>, Status> {
        self.partner_call("PlanTour", request, |call, req| async move {
            self.plan_tour_for(&call, req).await
        })
        .await
    }

    async fn get_mediator_sheet(
        &self,
        request: Request<pb::GetMediatorSheetRequest>,
    ) -> Result<Response<pb::GetMediatorSheetResponse>, Status> {
        self.partner_call("GetMediatorSheet", request, |call, _req| async move {
            self.mediator_sheet(&call).await
        })
        .await
    }

    async fn get_activity_figures(
        &self,
        request: Request<pb::GetActivityFiguresRequest>,
    ) -> Result<Response<pb::GetActivityFiguresResponse>, Status> {
        self.partner_call("GetActivityFigures", request, |call, req| async move {
            self.activity_figures(&call, req).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_suppressed() {
        assert_eq!(count(0).shown, "< 5");
        assert_eq!(count(4).shown, "< 5");
        assert!(count(4).suppressed && count(4).value == 0);
        assert_eq!(count(5).shown, "5");
        assert_eq!(weight(&count(3)), 2);
        assert_eq!(weight(&count(12)), 12);
    }

    #[test]
    fn the_territory_is_communes_or_departements() {
        let aspet = Commune::parse("31020").unwrap();
        assert!(within(&["31020".into()], &aspet));
        assert!(within(&["31".into()], &aspet));
        assert!(!within(&["31483".into(), "09".into()], &aspet));
    }
}
