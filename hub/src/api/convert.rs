//! Mapping between the wire types (`relais.v1`) and the domain types, both ways. Parsing a
//! request into domain values happens here, collecting every field violation.

use crate::domain::case::{Case, CaseTransition};
use crate::domain::change::{ChangeKind, ChangeRecord, ChangeResource};
use crate::domain::flag::{Flag, Qualification, Qualified};
use crate::domain::ids::{LocalId, PartnerId};
use crate::domain::partner::{CertificateRecord, Partner, PartnerKind, PartnerStatus};
use crate::domain::referral::{Referral, ReferralState, ReferralTransition};
use crate::domain::{AgentId, CaseStatus, Day, FlagStatus, Purpose, RequestContext, Timestamp};
use crate::error::{Error, Invalid, Violations};
use base64::Engine;
use relais_proto::v1 as pb;

pub fn timestamp(t: Timestamp) -> Option<prost_types::Timestamp> {
    let (seconds, nanos) = t.seconds_and_nanos();
    Some(prost_types::Timestamp { seconds, nanos })
}

pub fn purpose_from_pb(p: i32) -> Result<Purpose, Invalid> {
    use pb::Purpose as P;
    match P::try_from(p) {
        Ok(P::Accompagnement) => Ok(Purpose::Accompagnement),
        Ok(P::Instruction) => Ok(Purpose::Instruction),
        Ok(P::Orientation) => Ok(Purpose::Orientation),
        Ok(P::AllerVers) => Ok(Purpose::AllerVers),
        Ok(P::PlanAlerte) => Ok(Purpose::PlanAlerte),
        Ok(P::Administration) => Ok(Purpose::Administration),
        Ok(P::Statistique) => Ok(Purpose::Statistique),
        Ok(P::Unspecified) => Err(Invalid::new(
            "required: why the data is touched (accompagnement, instruction, orientation, aller_vers, plan_alerte, administration, statistique)",
        )),
        Err(_) => Err(Invalid::new(format!("unknown purpose {p}"))),
    }
}

/// Parses the request context; violations are reported under `context.*`.
pub fn context(ctx: Option<&pb::RequestContext>, v: &mut Violations) -> Option<RequestContext> {
    let Some(ctx) = ctx else {
        v.push("context", "required: the purpose and the acting agent");
        return None;
    };
    let purpose = v.field("context.purpose", purpose_from_pb(ctx.purpose));
    let agent = v.field("context.agent", AgentId::parse(&ctx.agent));
    Some(RequestContext {
        purpose: purpose?,
        agent: agent?,
    })
}

/// A request's list of case statuses, each bad one named (`statuses[i]`).
pub fn case_statuses(statuses: &[i32], v: &mut Violations) -> Vec<CaseStatus> {
    statuses
        .iter()
        .enumerate()
        .filter_map(|(i, s)| v.field(&format!("statuses[{i}]"), case_status_from_pb(*s)))
        .collect()
}

pub fn case_status_from_pb(s: i32) -> Result<CaseStatus, Invalid> {
    use pb::CaseStatus as S;
    let status = match S::try_from(s) {
        Ok(S::Draft) => CaseStatus::Draft,
        Ok(S::Sent) => CaseStatus::Sent,
        Ok(S::Acknowledged) => CaseStatus::Acknowledged,
        Ok(S::InProgress) => CaseStatus::InProgress,
        Ok(S::WaitingPerson) => CaseStatus::WaitingPerson,
        Ok(S::WaitingDocuments) => CaseStatus::WaitingDocuments,
        Ok(S::WaitingThirdParty) => CaseStatus::WaitingThirdParty,
        Ok(S::WaitingAppointment) => CaseStatus::WaitingAppointment,
        Ok(S::Accepted) => CaseStatus::Accepted,
        Ok(S::Refused) => CaseStatus::Refused,
        Ok(S::Redirected) => CaseStatus::Redirected,
        Ok(S::Cancelled) => CaseStatus::Cancelled,
        Ok(S::Abandoned) => CaseStatus::Abandoned,
        Ok(S::Closed) => CaseStatus::Closed,
        Ok(S::Duplicate) => CaseStatus::Duplicate,
        Ok(S::Unspecified) => return Err(Invalid::new("required: a case status")),
        Err(_) => return Err(Invalid::new(format!("unknown case status {s}"))),
    };
    Ok(status)
}

pub fn case_status_to_pb(s: CaseStatus) -> pb::CaseStatus {
    use pb::CaseStatus as S;
    match s {
        CaseStatus::Draft => S::Draft,
        CaseStatus::Sent => S::Sent,
        CaseStatus::Acknowledged => S::Acknowledged,
        CaseStatus::InProgress => S::InProgress,
        CaseStatus::WaitingPerson => S::WaitingPerson,
        CaseStatus::WaitingDocuments => S::WaitingDocuments,
        CaseStatus::WaitingThirdParty => S::WaitingThirdParty,
        CaseStatus::WaitingAppointment => S::WaitingAppointment,
        CaseStatus::Accepted => S::Accepted,
        CaseStatus::Refused => S::Refused,
        CaseStatus::Redirected => S::Redirected,
        CaseStatus::Cancelled => S::Cancelled,
        CaseStatus::Abandoned => S::Abandoned,
        CaseStatus::Closed => S::Closed,
        CaseStatus::Duplicate => S::Duplicate,
    }
}

pub fn referral_state_from_pb(s: i32) -> Result<ReferralState, Invalid> {
    use pb::ReferralState as S;
    match S::try_from(s) {
        Ok(S::Sent) => Ok(ReferralState::Sent),
        Ok(S::Acknowledged) => Ok(ReferralState::Acknowledged),
        Ok(S::Answered) => Ok(ReferralState::Answered),
        Ok(S::Closed) => Ok(ReferralState::Closed),
        Ok(S::Expired) => Ok(ReferralState::Expired),
        Ok(S::Unspecified) => Err(Invalid::new("required: a referral state")),
        Err(_) => Err(Invalid::new(format!("unknown referral state {s}"))),
    }
}

pub fn referral_state_to_pb(s: ReferralState) -> pb::ReferralState {
    match s {
        ReferralState::Sent => pb::ReferralState::Sent,
        ReferralState::Acknowledged => pb::ReferralState::Acknowledged,
        ReferralState::Answered => pb::ReferralState::Answered,
        ReferralState::Closed => pb::ReferralState::Closed,
        ReferralState::Expired => pb::ReferralState::Expired,
    }
}

pub fn partner_kind_from_pb(k: i32) -> Result<PartnerKind, Invalid> {
    use pb::PartnerKind as K;
    match K::try_from(k) {
        Ok(K::CommunauteDeCommunes) => Ok(PartnerKind::CommunauteDeCommunes),
        Ok(K::Mairie) => Ok(PartnerKind::Mairie),
        Ok(K::Departement) => Ok(PartnerKind::Departement),
        Ok(K::SousPrefecture) => Ok(PartnerKind::SousPrefecture),
        Ok(K::Association) => Ok(PartnerKind::Association),
        Ok(K::Operateur) => Ok(PartnerKind::Operateur),
        Ok(K::Unspecified) => Err(Invalid::new(
            "required: communaute_de_communes, mairie, departement, sous_prefecture, association or operateur",
        )),
        Err(_) => Err(Invalid::new(format!("unknown partner kind {k}"))),
    }
}

pub fn partner_kind_to_pb(k: PartnerKind) -> pb::PartnerKind {
    match k {
        PartnerKind::CommunauteDeCommunes => pb::PartnerKind::CommunauteDeCommunes,
        PartnerKind::Mairie => pb::PartnerKind::Mairie,
        PartnerKind::Departement => pb::PartnerKind::Departement,
        PartnerKind::SousPrefecture => pb::PartnerKind::SousPrefecture,
        PartnerKind::Association => pb::PartnerKind::Association,
        PartnerKind::Operateur => pb::PartnerKind::Operateur,
    }
}

fn certificate(c: &CertificateRecord) -> pb::PartnerCertificate {
    pb::PartnerCertificate {
        fingerprint: c.fingerprint.clone(),
        serial: c.serial.clone(),
        not_after: timestamp(c.not_after),
        issued_at: timestamp(c.issued_at),
        revoked_at: c.revoked_at.and_then(timestamp),
        revocation_reason: c.revocation_reason.clone(),
        awaiting_approval: c.awaiting_approval,
    }
}

pub fn partner(p: &Partner) -> pb::Partner {
    pb::Partner {
        id: p.id.to_string(),
        kind: partner_kind_to_pb(p.kind) as i32,
        name: p.name.clone(),
        territory: p.territory.clone(),
        cog_vintage: p.cog_vintage,
        status: match p.status {
            PartnerStatus::Active => pb::PartnerStatus::Active,
            PartnerStatus::Suspended => pb::PartnerStatus::Suspended,
        } as i32,
        status_reason: p.status_reason.clone(),
        certificates: p.certificates.iter().map(certificate).collect(),
        created_at: timestamp(p.created_at),
        updated_at: timestamp(p.updated_at),
        version: p.version,
    }
}

fn qualification(q: &Qualified) -> pb::FlagQualification {
    pb::FlagQualification {
        qualification: qualification_to_pb(q.how) as i32,
        partner: q.partner.to_string(),
        agent: q.agent.to_string(),
        at: timestamp(q.at),
        evidence: q.evidence.clone(),
    }
}

/// Unset reads as declared (clients older than qualified flags).
pub fn qualification_from_pb(q: i32) -> Result<Qualification, Invalid> {
    match pb::Qualification::try_from(q) {
        Ok(pb::Qualification::Unspecified | pb::Qualification::Declared) => {
            Ok(Qualification::Declared)
        }
        Ok(pb::Qualification::Observed) => Ok(Qualification::Observed),
        Ok(pb::Qualification::Attested) => Ok(Qualification::Attested),
        Err(_) => Err(Invalid::new(format!("unknown qualification {q}"))),
    }
}

pub fn qualification_to_pb(how: Qualification) -> pb::Qualification {
    match how {
        Qualification::Declared => pb::Qualification::Declared,
        Qualification::Observed => pb::Qualification::Observed,
        Qualification::Attested => pb::Qualification::Attested,
    }
}

/// A flag as of `today` (whether it is due for review), as `viewer` reads it: what attests it
/// (`evidence`, free text that may say more than the flag's category) only for its source and
/// the administrator (`None`).
pub fn flag(f: &Flag, today: Day, viewer: Option<&PartnerId>) -> pb::Flag {
    let retraction = f.retraction.as_ref();
    let own = viewer.is_none_or(|v| v == &f.source_partner);
    let shown = |q: &Qualified| {
        let mut q = qualification(q);
        if !own {
            q.evidence.clear();
        }
        q
    };
    pb::Flag {
        id: f.id.to_string(),
        person_id: f.person.to_string(),
        code: f.code.code().to_string(),
        label: f.code.label().to_string(),
        category: f.code.category().as_str().to_string(),
        special: f.code.special(),
        source_partner: f.source_partner.to_string(),
        source_agent: f.source_agent.to_string(),
        raised_at: timestamp(f.raised_at),
        note: f.note.clone(),
        valid_until: f.valid_until.map(|d| d.to_string()).unwrap_or_default(),
        status: match f.status() {
            FlagStatus::Active => pb::FlagStatus::Active,
            FlagStatus::Retracted => pb::FlagStatus::Retracted,
        } as i32,
        retracted_at: retraction.and_then(|r| timestamp(r.at)),
        retracted_by_partner: retraction
            .map(|r| r.partner.to_string())
            .unwrap_or_default(),
        retracted_by_agent: retraction.map(|r| r.agent.to_string()).unwrap_or_default(),
        retraction_reason: retraction.map(|r| r.reason.clone()).unwrap_or_default(),
        version: f.version,
        qualification: Some(shown(&f.qualified())),
        review_on: f.review_on.map(|d| d.to_string()).unwrap_or_default(),
        to_review: f.retraction.is_none() && f.to_review(today),
        qualification_history: f.qualification_history.iter().map(shown).collect(),
    }
}

fn case_transition(t: &CaseTransition) -> pb::CaseTransition {
    pb::CaseTransition {
        from_status: case_status_to_pb(t.from) as i32,
        to_status: case_status_to_pb(t.to) as i32,
        partner: t.partner.to_string(),
        agent: t.agent.to_string(),
        at: timestamp(t.at),
        reason: t.reason.clone(),
    }
}

pub fn case(c: &Case) -> pb::Case {
    pb::Case {
        id: c.id.to_string(),
        person_id: c.person.to_string(),
        procedure: c.procedure.as_str().to_string(),
        owner_partner: c.owner.to_string(),
        status: case_status_to_pb(c.status) as i32,
        missing_documents: c.missing_documents.clone(),
        due_date: c.due_date.map(|d| d.to_string()).unwrap_or_default(),
        opened_at: timestamp(c.opened_at),
        updated_at: timestamp(c.updated_at),
        parent_case_id: c.parent.map(|p| p.to_string()).unwrap_or_default(),
        duplicate_of: c.duplicate_of.map(|p| p.to_string()).unwrap_or_default(),
        outcome_reason: c.outcome_reason.clone(),
        history: c.history.iter().map(case_transition).collect(),
        version: c.version,
        theme: c.theme.map(|t| t.as_str().to_string()).unwrap_or_default(),
    }
}

fn referral_transition(t: &ReferralTransition) -> pb::ReferralTransition {
    pb::ReferralTransition {
        from_state: referral_state_to_pb(t.from) as i32,
        to_state: referral_state_to_pb(t.to) as i32,
        partner: t.partner.to_string(),
        agent: t.agent.to_string(),
        at: timestamp(t.at),
    }
}

/// A referral as of `today` (whether it is overdue).
pub fn referral(r: &Referral, today: Day) -> pb::Referral {
    pb::Referral {
        id: r.id.to_string(),
        case_id: r.case.to_string(),
        person_id: r.person.to_string(),
        from_partner: r.from.to_string(),
        to_partner: r.to.to_string(),
        reason: r.reason.clone(),
        requested_action: r.requested_action.clone(),
        due_date: r.due_date.map(|d| d.to_string()).unwrap_or_default(),
        state: referral_state_to_pb(r.state) as i32,
        answer: r.answer.clone(),
        sent_at: timestamp(r.sent_at),
        updated_at: timestamp(r.updated_at),
        history: r.history.iter().map(referral_transition).collect(),
        version: r.version,
        expires_on: r.expires_on.map(|d| d.to_string()).unwrap_or_default(),
        overdue: r.overdue(today),
        due_reminded_at: r.due_reminded_at.and_then(timestamp),
        overdue_notified_at: r.overdue_notified_at.and_then(timestamp),
        expiry_reason: r.expiry_reason.clone(),
        escalations: i32::try_from(r.escalations).unwrap_or(i32::MAX),
    }
}

/// A change as `viewer` (the subscriber) receives it.
pub fn change(
    c: &ChangeRecord,
    local_ids: &[LocalId],
    today: Day,
    viewer: &PartnerId,
) -> pb::ChangeEvent {
    let kind = match c.kind {
        ChangeKind::FlagRaised => pb::ChangeKind::FlagRaised,
        ChangeKind::FlagRetracted => pb::ChangeKind::FlagRetracted,
        ChangeKind::CaseOpened => pb::ChangeKind::CaseOpened,
        ChangeKind::CaseTransitioned => pb::ChangeKind::CaseTransitioned,
        ChangeKind::ReferralSent => pb::ChangeKind::ReferralSent,
        ChangeKind::ReferralUpdated => pb::ChangeKind::ReferralUpdated,
        ChangeKind::Redacted => pb::ChangeKind::Redacted,
        ChangeKind::ConsentRecorded => pb::ChangeKind::ConsentRecorded,
        ChangeKind::ReferralDue => pb::ChangeKind::ReferralDue,
        ChangeKind::ReferralOverdue => pb::ChangeKind::ReferralOverdue,
    };
    let resource = match &c.resource {
        ChangeResource::Flag(f) => pb::change_event::Resource::Flag(flag(f, today, Some(viewer))),
        ChangeResource::Case(x) => pb::change_event::Resource::Case(case(x)),
        ChangeResource::Referral(r) => pb::change_event::Resource::Referral(referral(r, today)),
        ChangeResource::Redaction(r) => pb::change_event::Resource::Redaction(redaction(r)),
        ChangeResource::ConsentNotice(n) => {
            pb::change_event::Resource::ConsentNotice(pb::ConsentNotice {
                consent_id: n.consent.clone(),
                collected_by_partner: n.collected_by.to_string(),
                collected_by_agent: n.collected_by_agent.to_string(),
                categories: n
                    .categories
                    .iter()
                    .map(|c| c.as_str().to_string())
                    .collect(),
                evidence_ref: n.evidence_ref.clone(),
                method: n.method.clone(),
                countersignature_required: n.countersignature_required,
            })
        }
    };
    pb::ChangeEvent {
        position: c.position,
        committed_at: timestamp(c.committed_at),
        kind: kind as i32,
        person_id: c.resource.person().to_string(),
        local_ids: local_ids.iter().map(ToString::to_string).collect(),
        partner: c.principal.clone(),
        agent: c.agent.to_string(),
        resource: Some(resource),
    }
}

/// AIP-158 pages: `page_size` 0 means 100, at most 500; the token is the last key of the
/// previous page, opaque to the caller.
pub struct Page {
    pub after: Option<String>,
    pub size: u32,
}

const PAGE_TOKEN_PREFIX: &str = "relais.v1:";

pub fn page(page_size: i32, page_token: &str, v: &mut Violations) -> Page {
    let size = match page_size {
        0 => 100,
        s if s < 0 => {
            v.push("page_size", "cannot be negative");
            100
        }
        s => s.min(500) as u32,
    };
    let after = if page_token.is_empty() {
        None
    } else {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(page_token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix(PAGE_TOKEN_PREFIX).map(str::to_string));
        if decoded.is_none() {
            v.push("page_token", "not a token this hub returned");
        }
        decoded
    };
    Page { after, size }
}

/// Trims a page fetched with one extra row, and returns the token for the next page.
pub fn next_page<T>(items: &mut Vec<T>, size: u32, key: impl Fn(&T) -> String) -> String {
    if items.len() > size as usize {
        items.truncate(size as usize);
        items
            .last()
            .map_or(String::new(), |last| page_token(&key(last)))
    } else {
        String::new()
    }
}

/// The opaque token of a page that ends at `key`.
pub fn page_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{PAGE_TOKEN_PREFIX}{key}"))
}

/// Any error turned into one field violation, for values parsed outside `Violations`.
pub fn invalid(field: &str, e: Invalid) -> Error {
    Error::invalid(field, e.0)
}

use crate::domain::consent::{
    CollectionMethod, Consent, Grantee, LegalBasis, Mandate, MandateDuration, RecordState,
    StatusChange,
};

pub fn purpose_to_pb(p: Purpose) -> pb::Purpose {
    match p {
        Purpose::Accompagnement => pb::Purpose::Accompagnement,
        Purpose::Instruction => pb::Purpose::Instruction,
        Purpose::Orientation => pb::Purpose::Orientation,
        Purpose::AllerVers => pb::Purpose::AllerVers,
        Purpose::PlanAlerte => pb::Purpose::PlanAlerte,
        Purpose::Administration => pb::Purpose::Administration,
        Purpose::Statistique => pb::Purpose::Statistique,
    }
}

pub fn legal_basis_from_pb(b: i32) -> Result<LegalBasis, Invalid> {
    match pb::LegalBasis::try_from(b) {
        Ok(pb::LegalBasis::Consent) => Ok(LegalBasis::Consent),
        Ok(pb::LegalBasis::LegalObligation) => Ok(LegalBasis::LegalObligation),
        Ok(pb::LegalBasis::PublicTask) => Ok(LegalBasis::PublicTask),
        Ok(pb::LegalBasis::VitalInterest) => Ok(LegalBasis::VitalInterest),
        Ok(pb::LegalBasis::Unspecified) => Err(Invalid::new(
            "required: consent, legal_obligation, public_task or vital_interest",
        )),
        Err(_) => Err(Invalid::new(format!("unknown legal basis {b}"))),
    }
}

fn legal_basis_to_pb(b: LegalBasis) -> pb::LegalBasis {
    match b {
        LegalBasis::Consent => pb::LegalBasis::Consent,
        LegalBasis::LegalObligation => pb::LegalBasis::LegalObligation,
        LegalBasis::PublicTask => pb::LegalBasis::PublicTask,
        LegalBasis::VitalInterest => pb::LegalBasis::VitalInterest,
    }
}

pub fn method_from_pb(m: i32) -> Result<CollectionMethod, Invalid> {
    match pb::CollectionMethod::try_from(m) {
        Ok(pb::CollectionMethod::OralWithWitness) => Ok(CollectionMethod::OralWithWitness),
        Ok(pb::CollectionMethod::SignedPaper) => Ok(CollectionMethod::SignedPaper),
        Ok(pb::CollectionMethod::Digital) => Ok(CollectionMethod::Digital),
        Ok(pb::CollectionMethod::Unspecified) => Err(Invalid::new(
            "required: oral_with_witness, signed_paper or digital",
        )),
        Err(_) => Err(Invalid::new(format!("unknown collection method {m}"))),
    }
}

fn method_to_pb(m: CollectionMethod) -> pb::CollectionMethod {
    match m {
        CollectionMethod::OralWithWitness => pb::CollectionMethod::OralWithWitness,
        CollectionMethod::SignedPaper => pb::CollectionMethod::SignedPaper,
        CollectionMethod::Digital => pb::CollectionMethod::Digital,
    }
}

pub fn duration_from_pb(d: i32) -> Result<MandateDuration, Invalid> {
    match pb::MandateDuration::try_from(d) {
        Ok(pb::MandateDuration::OneDay) => Ok(MandateDuration::OneDay),
        Ok(pb::MandateDuration::OneMonth) => Ok(MandateDuration::OneMonth),
        Ok(pb::MandateDuration::SixMonths) => Ok(MandateDuration::SixMonths),
        Ok(pb::MandateDuration::OneYear) => Ok(MandateDuration::OneYear),
        Ok(pb::MandateDuration::Unspecified) => Err(Invalid::new(
            "required: one_day, one_month, six_months or one_year",
        )),
        Err(_) => Err(Invalid::new(format!("unknown mandate duration {d}"))),
    }
}

fn duration_to_pb(d: MandateDuration) -> pb::MandateDuration {
    match d {
        MandateDuration::OneDay => pb::MandateDuration::OneDay,
        MandateDuration::OneMonth => pb::MandateDuration::OneMonth,
        MandateDuration::SixMonths => pb::MandateDuration::SixMonths,
        MandateDuration::OneYear => pb::MandateDuration::OneYear,
    }
}

fn state_to_pb(s: RecordState) -> pb::RecordState {
    match s {
        RecordState::Granted => pb::RecordState::Granted,
        RecordState::Expired => pb::RecordState::Expired,
        RecordState::Withdrawn => pb::RecordState::Withdrawn,
        RecordState::Pending => pb::RecordState::Pending,
    }
}

fn status_change(c: &StatusChange) -> pb::StatusChange {
    pb::StatusChange {
        at: timestamp(c.at),
        state: state_to_pb(c.status) as i32,
        by: c.by.clone(),
        agent: c.agent.clone(),
        channel: c.channel.clone(),
    }
}

fn grantee_to_pb(g: &Grantee) -> pb::Grantee {
    use pb::grantee::Grantee as G;
    pb::Grantee {
        grantee: Some(match g {
            Grantee::Partner { partner } => G::Partner(partner.to_string()),
            Grantee::Kind { kind } => G::Kind(partner_kind_to_pb(*kind) as i32),
            Grantee::Agent { partner, agent } => G::Agent(pb::AgentRef {
                partner: partner.to_string(),
                agent: agent.to_string(),
            }),
        }),
    }
}

pub fn consent(c: &Consent, now: Timestamp) -> pb::Consent {
    pb::Consent {
        id: c.id.to_string(),
        person_id: c.person.to_string(),
        grantee: Some(grantee_to_pb(&c.grantee)),
        categories: c
            .categories
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        purposes: c
            .purposes
            .iter()
            .map(|p| purpose_to_pb(*p) as i32)
            .collect(),
        legal_basis: legal_basis_to_pb(c.legal_basis) as i32,
        collected_by_partner: c.collected_by.to_string(),
        collected_by_agent: c.collected_by_agent.to_string(),
        method: method_to_pb(c.method) as i32,
        witness: c.witness.clone(),
        notice_version: c.notice_version.clone(),
        notice_language: c.notice_language.clone(),
        evidence_ref: c.evidence_ref.clone(),
        granted_at: timestamp(c.granted_at),
        expires_at: c.expires_at.and_then(timestamp),
        withdrawn_at: c.withdrawal.as_ref().and_then(|w| timestamp(w.at)),
        withdrawal_channel: c
            .withdrawal
            .as_ref()
            .map(|w| w.channel.clone())
            .unwrap_or_default(),
        state: state_to_pb(c.state_at(now)) as i32,
        history: c.history.iter().map(status_change).collect(),
        version: c.version,
        channel: c
            .channel
            .map_or(pb::CollectionChannel::Unspecified, channel_to_pb) as i32,
        countersignature_required: c.countersignature.is_some(),
        countersigned_at: c
            .countersignature
            .as_ref()
            .and_then(|s| s.at)
            .and_then(timestamp),
        countersigned_by: c
            .countersignature
            .as_ref()
            .map(|s| s.by.clone())
            .unwrap_or_default(),
    }
}

pub fn channel_to_pb(c: crate::domain::consent::CollectionChannel) -> pb::CollectionChannel {
    use crate::domain::consent::CollectionChannel as C;
    match c {
        C::Guichet => pb::CollectionChannel::Guichet,
        C::Bus => pb::CollectionChannel::Bus,
        C::Domicile => pb::CollectionChannel::Domicile,
        C::Telephone => pb::CollectionChannel::Telephone,
        C::ViaMediateur => pb::CollectionChannel::ViaMediateur,
    }
}

pub fn channel_from_pb(
    raw: i32,
) -> Result<crate::domain::consent::CollectionChannel, crate::error::Invalid> {
    use crate::domain::consent::CollectionChannel as C;
    match pb::CollectionChannel::try_from(raw) {
        Ok(pb::CollectionChannel::Guichet) => Ok(C::Guichet),
        Ok(pb::CollectionChannel::Bus) => Ok(C::Bus),
        Ok(pb::CollectionChannel::Domicile) => Ok(C::Domicile),
        Ok(pb::CollectionChannel::Telephone) => Ok(C::Telephone),
        Ok(pb::CollectionChannel::ViaMediateur) => Ok(C::ViaMediateur),
        Ok(pb::CollectionChannel::Unspecified) => Err(crate::error::Invalid::new(
            "required: where you met the person (guichet, bus, domicile, telephone, via_mediateur)",
        )),
        Err(_) => Err(crate::error::Invalid::new(format!(
            "unknown collection channel {raw}"
        ))),
    }
}

pub fn mandate(m: &Mandate, now: Timestamp) -> pb::Mandate {
    pb::Mandate {
        id: m.id.to_string(),
        person_id: m.person.to_string(),
        partner: m.partner.to_string(),
        agent: m.agent.to_string(),
        themes: m.themes.iter().map(|t| t.as_str().to_string()).collect(),
        duration: duration_to_pb(m.duration) as i32,
        granted_at: timestamp(m.granted_at),
        expires_at: timestamp(m.expires_at),
        revoked_at: m.revocation.as_ref().and_then(|r| timestamp(r.at)),
        state: state_to_pb(m.state_at(now)) as i32,
        collected_by_partner: m.collected_by.to_string(),
        collected_by_agent: m.collected_by_agent.to_string(),
        method: method_to_pb(m.method) as i32,
        history: m.history.iter().map(status_change).collect(),
        version: m.version,
    }
}

/// A timestamp from a request: between 1900 and 2200, nanoseconds in range.
pub fn timestamp_from_pb(t: &prost_types::Timestamp) -> Result<Timestamp, Invalid> {
    use crate::domain::clock::{MAX_YEAR, MIN_YEAR};
    // 1900-01-01T00:00:00Z and 2201-01-01T00:00:00Z in seconds since the Unix epoch.
    const MIN: i64 = -2_208_988_800;
    const END: i64 = 7_289_654_400;
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Invalid::new("nanos must be between 0 and 999,999,999"));
    }
    if !(MIN..END).contains(&t.seconds) {
        return Err(Invalid::new(format!(
            "outside the years {MIN_YEAR}–{MAX_YEAR}"
        )));
    }
    Ok(Timestamp::from_micros(
        t.seconds * 1_000_000 + i64::from(t.nanos) / 1000,
    ))
}

pub fn decision(d: &crate::policy::Decision) -> pb::AccessDecision {
    pb::AccessDecision {
        allowed: d.allowed,
        rules: d.policies.clone(),
        reasons: d.reasons.clone(),
        consent_state: d.coverage.state_str().to_string(),
        consent_record: d.coverage.record.clone().unwrap_or_default(),
        consent_basis: crate::policy::basis_str(d.coverage.basis).to_string(),
        legal_basis: d.legal_basis.clone().unwrap_or_default(),
        rules_version: d.rules_version,
    }
}

pub fn redaction(r: &crate::domain::change::Redaction) -> pb::Redaction {
    use crate::domain::change::Item;
    let mut out = pb::Redaction {
        flag_ids: vec![],
        case_ids: vec![],
        referral_ids: vec![],
        categories: r
            .categories
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        reason: r.reason.clone(),
        record: r.record.clone(),
    };
    for item in &r.items {
        match item {
            Item::Flag(id) => out.flag_ids.push(id.to_string()),
            Item::Case(id) => out.case_ids.push(id.to_string()),
            Item::Referral(id) => out.referral_ids.push(id.to_string()),
        }
    }
    out
}
