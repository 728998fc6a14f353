//! `relais client`: what a partner's IT person uses to try the hub from a shell before wiring a
//! connector. Every call names the acting agent and the purpose.

use super::connect::{DEFAULT_HUB, channel};
use crate::api::convert::{case_status_to_pb, purpose_to_pb};
use crate::domain::{CaseStatus, Purpose};
use crate::pki::Bundle;
use anyhow::Context;
use clap::{Args, Subcommand};
use relais_proto::v1::{
    self as pb, case_service_client::CaseServiceClient,
    consent_service_client::ConsentServiceClient, flag_service_client::FlagServiceClient,
    person_service_client::PersonServiceClient, sync_service_client::SyncServiceClient,
    territory_service_client::TerritoryServiceClient,
};
use std::path::PathBuf;
use tonic::transport::Channel;

#[derive(Args)]
pub struct ClientArgs {
    /// The partner's identity bundle (written by `relais admin partner add`, or joined by
    /// `relais client bundle` from the partner's own key and the certificate it received).
    #[arg(long, env = "RELAIS_IDENTITY")]
    identity: Option<PathBuf>,
    /// Hub address (`https://host:port`).
    #[arg(long, env = "RELAIS_HUB", default_value = DEFAULT_HUB)]
    hub: String,
    /// The acting agent's pseudonymous id.
    #[arg(long, env = "RELAIS_AGENT", default_value = "cli")]
    agent: String,
    /// accompagnement, instruction, orientation, aller_vers, plan_alerte, administration, statistique
    #[arg(long, env = "RELAIS_PURPOSE", default_value = "accompagnement")]
    purpose: String,
    /// Idempotency key of the write (a new one by default); reuse it to retry safely.
    #[arg(long)]
    request_id: Option<String>,
    /// Print the hub's answers as JSON for scripts (RFC 3339 times, enum names).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ClientCommand,
}

/// A person, by the hub's id or the caller's local id.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
struct PersonArg {
    /// The person by their hub id (UUID).
    #[arg(long)]
    person_id: Option<String>,
    /// The person by your own id for them (the local id you linked).
    #[arg(long)]
    local_id: Option<String>,
}

impl PersonArg {
    fn to_pb(&self) -> pb::PersonRef {
        pb::PersonRef {
            r#ref: match (&self.person_id, &self.local_id) {
                (Some(id), _) => Some(pb::person_ref::Ref::PersonId(id.clone())),
                (None, Some(local)) => Some(pb::person_ref::Ref::LocalId(local.clone())),
                (None, None) => None,
            },
        }
    }
}

#[derive(Args, Clone)]
struct PivotArgs {
    /// Birth family name (nom de naissance).
    #[arg(long)]
    family_name: Option<String>,
    /// First given name, as on the identity document.
    #[arg(long)]
    given_name: Option<String>,
    /// YYYY-MM-DD
    #[arg(long)]
    birth_date: Option<String>,
    /// INSEE COG code of the birth commune
    #[arg(long)]
    birth_place: Option<String>,
}

impl PivotArgs {
    fn to_pb(&self) -> Option<pb::PivotIdentity> {
        let any = self.family_name.is_some()
            || self.given_name.is_some()
            || self.birth_date.is_some()
            || self.birth_place.is_some();
        any.then(|| pb::PivotIdentity {
            family_name: self.family_name.clone().unwrap_or_default(),
            first_given_name: self.given_name.clone().unwrap_or_default(),
            birth_date: self.birth_date.clone().unwrap_or_default(),
            birth_place_cog: self.birth_place.clone().unwrap_or_default(),
        })
    }
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Make the partner's key and a certificate signing request on this machine: the key never
    /// leaves it; the administrator signs the request (`relais admin partner add --csr` or
    /// `partner certificate issue --csr`) and sends back the certificate.
    Csr {
        /// The partner id the certificate is for.
        #[arg(long)]
        id: String,
        /// Where to write the private key (created 0600).
        #[arg(long)]
        key_out: PathBuf,
        /// Where to write the request, for the administrator.
        #[arg(long)]
        csr_out: PathBuf,
    },
    /// Join the partner's own key and the certificate the administrator sent into the identity
    /// bundle the connector and this client use.
    Bundle {
        /// The partner's private key (written by `relais client csr --key-out`).
        #[arg(long)]
        key: PathBuf,
        /// The certificate file from the administrator (certificate and hub CA).
        #[arg(long)]
        cert: PathBuf,
        /// Where to write the identity bundle (created 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Link a local id to a person (by pivot identity, by hub id, or a new person).
    Link {
        /// Your own id for the person (file number, row id): 1 to 128 characters.
        #[arg(long)]
        local_id: String,
        /// Link to this hub id (UUID) instead of by pivot identity; with neither, a new person.
        #[arg(long)]
        person_id: Option<String>,
        #[command(flatten)]
        pivot: PivotArgs,
    },
    /// Find a person's hub id by local id or pivot identity.
    Resolve {
        /// Your own id for the person (the local id you linked).
        #[arg(long)]
        local_id: Option<String>,
        #[command(flatten)]
        pivot: PivotArgs,
    },
    /// What the counter sees when the person sits down.
    Summary {
        #[command(flatten)]
        person: PersonArg,
        /// Include retracted flags and closed cases (active ones only by default).
        #[arg(long)]
        history: bool,
    },
    /// Record the commune where the person lives (COG code, e.g. 31020 for Aspet).
    Residence {
        #[command(flatten)]
        person: PersonArg,
        /// The commune's COG code (INSEE), e.g. 31020 for Aspet.
        #[arg(long)]
        commune: String,
    },
    /// How to reach the person: the channels and accommodations they state.
    #[command(subcommand)]
    Reach(ReachCommand),
    /// The bus's next tour (purpose aller_vers): per commune, the need in aggregates, and a
    /// suggested order of stops.
    Tour {
        /// How many days the tour lasts (1 to 20).
        #[arg(long, default_value_t = 5)]
        days: i32,
        /// At most this many stops a day (1 to 6).
        #[arg(long, default_value_t = 2)]
        stops_per_day: i32,
        /// The first day (`YYYY-MM-DD`); the next working day by default.
        #[arg(long, default_value = "")]
        start_on: String,
        /// Write the stops as CSV (`;`, UTF-8) here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Write the printable sheet (HTML, French, A4) here.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// The médiateur's sheet: the persons you follow under mandate, with what is pending
    /// (the agent is `--agent`).
    VisitSheet {
        /// Write the printable sheet (HTML, large type, A4) here.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Your activity per month for funders (purpose statistique), small counts suppressed.
    Figures {
        /// First month (`YYYY-MM`).
        #[arg(long, default_value = "")]
        from: String,
        /// Last month (`YYYY-MM`).
        #[arg(long, default_value = "")]
        to: String,
        /// Write the figures as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Your work in priority order, each item with why it comes there.
    Queue {
        /// Only this procedure.
        #[arg(long, default_value = "")]
        procedure: String,
        /// Only this theme.
        #[arg(long, default_value = "")]
        theme: String,
        /// Only items due before this day (`YYYY-MM-DD`).
        #[arg(long, default_value = "")]
        due_before: String,
        /// Only persons living in this commune (its COG code, e.g. 31020 for Aspet).
        #[arg(long, default_value = "")]
        commune: String,
        /// How many items.
        #[arg(long, default_value_t = 50)]
        limit: i32,
    },
    /// Difficulty flags (codes of the taxonomy): raise, retract, list.
    #[command(subcommand)]
    Flag(FlagCommand),
    /// Cases (démarches): open, move to another status, get, list.
    #[command(subcommand)]
    Case(CaseCommand),
    /// Referrals (fiches navettes) between partners: send, ack, answer, close, escalate, list.
    #[command(subcommand)]
    Referral(ReferralCommand),
    /// Consent records: what the person agreed to share, with whom, for what.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Mandates: an agent may act for the person on listed themes.
    #[command(subcommand)]
    Mandate(MandateCommand),
    /// Print the change feed from a position; with --follow, keep following live.
    Feed {
        /// Print the events after this position (0: from the beginning).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep following live once caught up, instead of stopping.
        #[arg(long)]
        follow: bool,
    },
}

/// How a difficulty is known.
#[derive(Clone, Copy, clap::ValueEnum)]
enum QualificationArg {
    /// The person says so (déclarée).
    Declared,
    /// An agent saw it (constatée).
    Observed,
    /// A document or another service's decision (attestée).
    Attested,
}

#[derive(Subcommand)]
enum ReachCommand {
    /// Record what the person states (replaces what was recorded).
    Set {
        #[command(flatten)]
        person: PersonArg,
        /// In the person's order of preference: `KIND[:PARTNER[:NOTE]]`, KIND one of
        /// telephone, courrier, sms, bus, mairie, domicile, mediateur, proche; PARTNER the one
        /// holding the contact details (required for telephone, courrier, sms, domicile,
        /// proche), e.g. `telephone:mairie-d-aspet:le matin`.
        #[arg(long = "channel")]
        channels: Vec<String>,
        /// The language an interpreter should speak.
        #[arg(long, default_value = "")]
        interpreter: String,
        /// Letters in large print.
        #[arg(long)]
        large_print: bool,
        /// Facile à lire et à comprendre.
        #[arg(long)]
        easy_read: bool,
        /// When to reach them ("le matin, pas le mercredi").
        #[arg(long, default_value = "")]
        best_times: String,
    },
    /// How to reach the person, with the advice from the difficulties you may read.
    Get {
        #[command(flatten)]
        person: PersonArg,
    },
}

/// Writes a document the hub produced, when asked.
fn write_out(path: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("written to {}", path.display());
    }
    Ok(())
}

/// `KIND[:PARTNER[:NOTE]]` as a channel.
fn parse_channel(s: &str) -> anyhow::Result<pb::ContactChannel> {
    let mut parts = s.splitn(3, ':');
    let kind = parts.next().unwrap_or_default();
    let channel = crate::domain::accessibility::ChannelKind::parse(kind)
        .map_err(|e| anyhow::anyhow!("--channel {s}: {e}"))?;
    let channel =
        pb::Channel::from_str_name(&format!("CHANNEL_{}", channel.as_str().to_uppercase()))
            .context("channel")?;
    Ok(pb::ContactChannel {
        channel: channel.into(),
        via: parts.next().unwrap_or_default().to_string(),
        note: parts.next().unwrap_or_default().to_string(),
        label: String::new(),
    })
}

fn print_profile(p: &pb::AccessibilityProfile) {
    let at = p.recorded_at.as_ref().map_or_else(String::new, |t| {
        crate::domain::Timestamp::from_micros(t.seconds * 1_000_000).to_string()
    });
    println!(
        "how to reach them (recorded by {}, {at}, version {}):",
        p.recorded_by, p.version
    );
    for (i, c) in p.channels.iter().enumerate() {
        println!("  {}. {}", i + 1, c.label);
    }
    if !p.interpreter.is_empty() {
        println!("  interprète : {}", p.interpreter);
    }
    if p.large_print {
        println!("  courriers en gros caractères");
    }
    if p.easy_read {
        println!("  documents en facile à lire et à comprendre");
    }
    if !p.best_times.is_empty() {
        println!("  quand : {}", p.best_times);
    }
}

#[derive(Subcommand)]
enum FlagCommand {
    /// Raise a difficulty flag on a person; raising your active flag of that code again confirms
    /// or requalifies it.
    Raise {
        #[command(flatten)]
        person: PersonArg,
        /// A code of the difficulty taxonomy (ELOIGNEMENT, SANS_INTERNET, ISOLEMENT…).
        #[arg(long)]
        code: String,
        /// A short note for the partners who may read the flag (at most 280 characters).
        #[arg(long, default_value = "")]
        note: String,
        /// The last day the flag holds (`YYYY-MM-DD`); open-ended by default.
        #[arg(long, default_value = "")]
        valid_until: String,
        /// How the difficulty is known: declared (the person says so), observed (an agent saw
        /// it), attested (a document or another service's decision; give --evidence).
        #[arg(long, value_enum, default_value_t = QualificationArg::Declared)]
        qualification: QualificationArg,
        /// What attests it, for an attested difficulty ("notification APA du département").
        #[arg(long, default_value = "")]
        evidence: String,
        /// When to check it again with the person (`YYYY-MM-DD`); by default the territory's
        /// delay for the qualification.
        #[arg(long, default_value = "")]
        review_on: String,
    },
    /// Retract a flag you raised.
    Retract {
        /// The flag's hub id (UUID), as `flag list` shows it.
        #[arg(long)]
        flag_id: String,
        /// The flag's version you read (`v` in `flag list`), so no change is lost.
        #[arg(long)]
        version: i64,
        /// Why it is retracted (at most 280 characters).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// A person's flags that you may read (active ones; --all for retracted ones too).
    List {
        #[command(flatten)]
        person: PersonArg,
        /// Include retracted flags.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum CaseCommand {
    /// Open a case (démarche) for a person, as `draft` (or `sent` with --sent).
    Open {
        #[command(flatten)]
        person: PersonArg,
        /// service-public.fr fiche id (F1342) or local code (local:…)
        #[arg(long)]
        procedure: String,
        /// A document the case waits for (repeat for each).
        #[arg(long = "missing")]
        missing: Vec<String>,
        /// When the procedure is due (`YYYY-MM-DD`).
        #[arg(long, default_value = "")]
        due: String,
        /// Open directly as `sent`.
        #[arg(long)]
        sent: bool,
        /// Procedure theme (papiers, social, argent, logement…): what a mandate covers.
        #[arg(long, default_value = "")]
        theme: String,
    },
    /// Move a case to another status.
    Move {
        /// The case's hub id (UUID), as `case list` shows it.
        #[arg(long)]
        case_id: String,
        /// The case's version you read (`v` in `case list`), so no change is lost.
        #[arg(long)]
        version: i64,
        /// The new status: draft, sent, acknowledged, in_progress, waiting_person,
        /// waiting_documents, waiting_third_party, waiting_appointment, accepted, refused,
        /// redirected, cancelled, abandoned, closed or duplicate.
        #[arg(long)]
        to: String,
        /// Why (required for `refused`; kept in the case's history).
        #[arg(long, default_value = "")]
        reason: String,
        /// Replace the missing documents (repeat).
        #[arg(long = "missing")]
        missing: Vec<String>,
        /// For `duplicate`: the hub id (UUID) of the case this one repeats.
        #[arg(long, default_value = "")]
        duplicate_of: String,
        /// For `redirected`: the partner id that receives the new case (e.g. mairie-aspet).
        #[arg(long, default_value = "")]
        redirect_to: String,
    },
    /// One case, with its history of status changes.
    Get {
        /// The case's hub id (UUID), as `case list` shows it.
        #[arg(long)]
        case_id: String,
    },
    /// The caller's cases, or one person's.
    List {
        /// Only this person's cases, by their hub id (UUID).
        #[arg(long)]
        person_id: Option<String>,
        /// Only this person's cases, by your own id for them (the local id you linked).
        #[arg(long)]
        local_id: Option<String>,
    },
}

#[derive(Subcommand)]
enum ReferralCommand {
    /// Send a referral (fiche navette) about a case you hold to another partner.
    Send {
        /// The case's hub id (UUID), as `case list` shows it…
        #[arg(
            long,
            required_unless_present = "local_id",
            conflicts_with = "local_id"
        )]
        case_id: Option<String>,
        /// …or the person, by your local id, whose case of `--procedure` it is about (the most
        /// recently opened one you may read).
        #[arg(long, requires = "procedure")]
        local_id: Option<String>,
        /// With `--local-id`: the case's procedure (F1342, local:apa-renouvellement…).
        #[arg(long, requires = "local_id")]
        procedure: Option<String>,
        /// The partner id that receives it (e.g. mairie-aspet).
        #[arg(long)]
        to: String,
        /// Why the person is referred.
        #[arg(long)]
        reason: String,
        /// What you ask the receiving partner to do.
        #[arg(long, default_value = "")]
        action: String,
        /// The reply deadline (`YYYY-MM-DD`): the territory's delay by default, which you may
        /// shorten, not lengthen.
        #[arg(long, default_value = "")]
        due: String,
    },
    /// Acknowledge a referral you received.
    Ack {
        /// The referral's hub id (UUID), as `referral list` shows it.
        #[arg(long)]
        referral_id: String,
        /// The referral's version you read (`v` in `referral list`), so no change is lost.
        #[arg(long)]
        version: i64,
    },
    /// Answer a referral you received.
    Answer {
        /// The referral's hub id (UUID), as `referral list` shows it.
        #[arg(long)]
        referral_id: String,
        /// The referral's version you read (`v` in `referral list`), so no change is lost.
        #[arg(long)]
        version: i64,
        /// The answer, for the sender (at most 2000 characters).
        #[arg(long)]
        answer: String,
    },
    /// Close a referral you sent.
    Close {
        /// The referral's hub id (UUID), as `referral list` shows it.
        #[arg(long)]
        referral_id: String,
        /// The referral's version you read (`v` in `referral list`), so no change is lost.
        #[arg(long)]
        version: i64,
    },
    /// Ask again, with a new reply deadline (the territory's delay by default).
    Escalate {
        /// The referral's hub id (UUID), as `referral list` shows it.
        #[arg(long)]
        referral_id: String,
        /// The referral's version you read (`v` in `referral list`), so no change is lost.
        #[arg(long)]
        version: i64,
        /// The new deadline, `YYYY-MM-DD`.
        #[arg(long, default_value = "")]
        due: String,
    },
    /// The referrals you sent and received, with their state and deadline.
    List {
        /// Only those past their deadline, still awaiting their answer.
        #[arg(long)]
        overdue: bool,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per command line")]
enum ConsentCommand {
    /// Record a consent given at the counter.
    Grant {
        #[command(flatten)]
        person: PersonArg,
        /// Grantee: a partner id…
        #[arg(long, group = "grantee")]
        to_partner: Option<String>,
        /// …or every partner of a kind (mairie, association…)…
        #[arg(long, group = "grantee")]
        to_kind: Option<String>,
        /// …or one agent, as partner/agent.
        #[arg(long, group = "grantee")]
        to_agent: Option<String>,
        /// Data categories (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', required = true)]
        categories: Vec<String>,
        /// Purposes (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', required = true)]
        purposes: Vec<String>,
        /// consent, legal_obligation, public_task, vital_interest
        #[arg(long, default_value = "consent")]
        basis: String,
        /// oral_with_witness, signed_paper, digital
        #[arg(long, default_value = "signed_paper")]
        method: String,
        /// Who witnessed an oral consent (required with --method oral_with_witness).
        #[arg(long, default_value = "")]
        witness: String,
        /// The version of the information notice the person was given (e.g. 2026-01).
        #[arg(long)]
        notice: String,
        /// Where the signed paper or the witness statement is kept (required for health).
        #[arg(long, default_value = "")]
        evidence: String,
        /// Print the receipt to hand to the person, once the consent is recorded.
        #[arg(long)]
        receipt: bool,
        /// Where you met the person: guichet, bus, domicile, telephone, via_mediateur
        #[arg(long = "met-at", default_value = "guichet")]
        met_at: String,
    },
    /// Record the person's withdrawal of a consent: the partners that received its data are
    /// told to delete it.
    Withdraw {
        /// The consent's hub id (UUID), as `consent list` shows it.
        #[arg(long)]
        consent_id: String,
        /// How the person asked: guichet, telephone, courrier, bus…
        #[arg(long)]
        channel: String,
    },
    /// A person's consent records, with their hub ids and states.
    List {
        #[command(flatten)]
        person: PersonArg,
    },
    /// Print the receipt for the person (text; --html for the printable page).
    Receipt {
        /// The consent's hub id (UUID), as `consent list` shows it.
        #[arg(long)]
        consent_id: String,
        /// Print the receipt as a printable HTML page instead of text.
        #[arg(long)]
        html: bool,
    },
}

#[derive(Subcommand)]
enum MandateCommand {
    /// Record a mandate and print it in French, to sign.
    Grant {
        #[command(flatten)]
        person: PersonArg,
        /// The mandated agent, as partner/agent (or just agent, of the caller).
        #[arg(long)]
        to_agent: String,
        /// Procedure themes covered (repeat or comma-separate): argent, famille, justice,
        /// logement, loisirs, papiers, social, transports, travail, etranger.
        #[arg(long, value_delimiter = ',', required = true)]
        themes: Vec<String>,
        /// one_day, one_month, six_months, one_year
        #[arg(long)]
        duration: String,
        /// How the person agreed: oral_with_witness, signed_paper, digital.
        #[arg(long, default_value = "signed_paper")]
        method: String,
    },
    /// Revoke a mandate on the person's request.
    Revoke {
        /// The mandate's hub id (UUID), as `mandate list` shows it.
        #[arg(long)]
        mandate_id: String,
        /// How the person asked: guichet, telephone, courrier, bus…
        #[arg(long)]
        channel: String,
    },
    /// A person's mandates, with their hub ids, agents and themes.
    List {
        #[command(flatten)]
        person: PersonArg,
    },
}

/// Parses a closed-list value by its protobuf name (`PREFIX_VALUE`).
fn enum_value(
    prefix: &str,
    value: &str,
    from: impl Fn(&str) -> Option<i32>,
) -> anyhow::Result<i32> {
    from(&format!("{prefix}_{}", value.to_ascii_uppercase()))
        .with_context(|| format!("unknown value `{value}`"))
}

fn agent_ref(s: &str) -> pb::AgentRef {
    match s.split_once('/') {
        Some((partner, agent)) => pb::AgentRef {
            partner: partner.into(),
            agent: agent.into(),
        },
        None => pb::AgentRef {
            partner: String::new(),
            agent: s.into(),
        },
    }
}

fn print_consent(c: &pb::Consent) {
    let state = pb::RecordState::try_from(c.state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("RECORD_STATE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let grantee = match c.grantee.as_ref().and_then(|g| g.grantee.as_ref()) {
        Some(pb::grantee::Grantee::Partner(p)) => p.clone(),
        Some(pb::grantee::Grantee::Kind(k)) => pb::PartnerKind::try_from(*k)
            .map(|k| {
                format!(
                    "kind {}",
                    k.as_str_name()
                        .trim_start_matches("PARTNER_KIND_")
                        .to_lowercase()
                )
            })
            .unwrap_or_default(),
        Some(pb::grantee::Grantee::Agent(a)) => format!("{}/{}", a.partner, a.agent),
        None => String::new(),
    };
    println!(
        "consent {} {:<9} to {grantee}: {} — collected by {}/{}",
        c.id,
        state,
        c.categories.join(","),
        c.collected_by_partner,
        c.collected_by_agent
    );
}

fn print_mandate(m: &pb::Mandate) {
    let state = pb::RecordState::try_from(m.state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("RECORD_STATE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    println!(
        "mandate {} {:<9} to {}/{} on {}",
        m.id,
        state,
        m.partner,
        m.agent,
        m.themes.join(",")
    );
}

async fn consent(channel: Channel, ctx: &Ctx, cmd: ConsentCommand) -> anyhow::Result<()> {
    let mut client = ConsentServiceClient::new(channel);
    match cmd {
        ConsentCommand::Grant {
            person,
            to_partner,
            to_kind,
            to_agent,
            categories,
            purposes,
            basis,
            method,
            witness,
            notice,
            evidence,
            met_at,
            receipt,
        } => {
            use pb::grantee::Grantee as G;
            let grantee = match (to_partner, to_kind, to_agent) {
                (Some(p), _, _) => G::Partner(p),
                (_, Some(k), _) => G::Kind(enum_value("PARTNER_KIND", &k, |n| {
                    pb::PartnerKind::from_str_name(n).map(|v| v as i32)
                })?),
                (_, _, Some(a)) => G::Agent(agent_ref(&a)),
                _ => anyhow::bail!("give --to-partner, --to-kind or --to-agent"),
            };
            let purposes = purposes
                .iter()
                .map(|p| {
                    Purpose::parse(p)
                        .map(|p| purpose_to_pb(p) as i32)
                        .with_context(|| format!("unknown purpose `{p}`"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let r = client
                .grant_consent(pb::GrantConsentRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                    grantee: Some(pb::Grantee {
                        grantee: Some(grantee),
                    }),
                    categories,
                    purposes,
                    legal_basis: enum_value("LEGAL_BASIS", &basis, |n| {
                        pb::LegalBasis::from_str_name(n).map(|v| v as i32)
                    })?,
                    method: enum_value("COLLECTION_METHOD", &method, |n| {
                        pb::CollectionMethod::from_str_name(n).map(|v| v as i32)
                    })?,
                    witness,
                    notice_version: notice,
                    notice_language: String::new(),
                    evidence_ref: evidence,
                    expires_at: None,
                    request_id: ctx.request_id(),
                    channel: enum_value("COLLECTION_CHANNEL", &met_at, |n| {
                        pb::CollectionChannel::from_str_name(n).map(|v| v as i32)
                    })?,
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.consent.iter().for_each(print_consent);
            if let Some(c) = r.consent.as_ref().filter(|_| receipt) {
                let doc = client
                    .get_consent_receipt(pb::GetConsentReceiptRequest {
                        context: ctx.context(),
                        consent_id: c.id.clone(),
                    })
                    .await?
                    .into_inner();
                println!("\n{}", doc.text);
            }
        }
        ConsentCommand::Withdraw {
            consent_id,
            channel,
        } => {
            let r = client
                .withdraw_consent(pb::WithdrawConsentRequest {
                    context: ctx.context(),
                    consent_id,
                    channel,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.consent.iter().for_each(print_consent);
            if !r.redacted_partners.is_empty() {
                println!(
                    "told to delete what they received: {}",
                    r.redacted_partners.join(", ")
                );
            }
        }
        ConsentCommand::List { person } => {
            let r = client
                .list_consents(pb::ListConsentsRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.consents.iter().for_each(print_consent);
        }
        ConsentCommand::Receipt { consent_id, html } => {
            let r = client
                .get_consent_receipt(pb::GetConsentReceiptRequest {
                    context: ctx.context(),
                    consent_id,
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            print!("{}", if html { r.html } else { r.text });
        }
    }
    Ok(())
}

async fn mandate(channel: Channel, ctx: &Ctx, cmd: MandateCommand) -> anyhow::Result<()> {
    let mut client = ConsentServiceClient::new(channel);
    match cmd {
        MandateCommand::Grant {
            person,
            to_agent,
            themes,
            duration,
            method,
        } => {
            let r = client
                .grant_mandate(pb::GrantMandateRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                    mandatary: Some(agent_ref(&to_agent)),
                    themes,
                    duration: enum_value("MANDATE_DURATION", &duration, |n| {
                        pb::MandateDuration::from_str_name(n).map(|v| v as i32)
                    })?,
                    method: enum_value("COLLECTION_METHOD", &method, |n| {
                        pb::CollectionMethod::from_str_name(n).map(|v| v as i32)
                    })?,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.mandate.iter().for_each(print_mandate);
            println!("\n{}", r.printable_text);
        }
        MandateCommand::Revoke {
            mandate_id,
            channel,
        } => {
            let r = client
                .revoke_mandate(pb::RevokeMandateRequest {
                    context: ctx.context(),
                    mandate_id,
                    channel,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.mandate.iter().for_each(print_mandate);
        }
        MandateCommand::List { person } => {
            let r = client
                .list_mandates(pb::ListMandatesRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.mandates.iter().for_each(print_mandate);
        }
    }
    Ok(())
}

fn status_name(s: i32) -> String {
    pb::CaseStatus::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("CASE_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| s.to_string())
}

fn state_name(s: i32) -> String {
    pb::ReferralState::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("REFERRAL_STATE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| s.to_string())
}

fn print_flag(f: &pb::Flag) {
    let status = if f.status == pb::FlagStatus::Retracted as i32 {
        " (retracted)"
    } else {
        ""
    };
    println!(
        "flag {} v{} {:<20} {} — from {}/{}{status}",
        f.id, f.version, f.code, f.label, f.source_partner, f.source_agent
    );
    if let Some(q) = &f.qualification {
        let how = crate::api::convert::qualification_from_pb(q.qualification)
            .map_or("déclarée", |h| h.label());
        let evidence = if q.evidence.is_empty() {
            String::new()
        } else {
            format!(" ({})", q.evidence)
        };
        let review = match (f.to_review, f.review_on.is_empty()) {
            (true, _) => format!(" — à revoir depuis le {}", f.review_on),
            (false, false) => format!(" — à revoir le {}", f.review_on),
            (false, true) => String::new(),
        };
        println!("    {how}{evidence} par {}/{}{review}", q.partner, q.agent);
    }
}

fn print_case(c: &pb::Case) {
    let missing = if c.missing_documents.is_empty() {
        String::new()
    } else {
        format!(" missing: {}", c.missing_documents.join(", "))
    };
    println!(
        "case {} v{} {:<10} {:<20} held by {}{missing}",
        c.id,
        c.version,
        c.procedure,
        status_name(c.status),
        c.owner_partner
    );
}

fn print_referral(r: &pb::Referral) {
    let deadline = match (r.overdue, r.due_date.is_empty()) {
        (true, _) => format!(" — en retard, échéance {}", r.due_date),
        (false, false) => format!(" — réponse attendue le {}", r.due_date),
        (false, true) => String::new(),
    };
    println!(
        "referral {} v{} {} → {} {:<12} case {}: {}{}{deadline}",
        r.id,
        r.version,
        r.from_partner,
        r.to_partner,
        state_name(r.state),
        r.case_id,
        r.reason,
        if r.answer.is_empty() {
            String::new()
        } else {
            format!(" — answer: {}", r.answer)
        }
    );
    if !r.expiry_reason.is_empty() {
        println!("    expirée : {}", r.expiry_reason);
    }
}

struct Ctx {
    context: pb::RequestContext,
    request_id: Option<String>,
}

impl Ctx {
    fn context(&self) -> Option<pb::RequestContext> {
        Some(self.context.clone())
    }

    /// The context of a command that has one purpose (a tour is for aller_vers).
    fn for_purpose(&self, purpose: Purpose) -> Option<pb::RequestContext> {
        Some(pb::RequestContext {
            purpose: purpose_to_pb(purpose) as i32,
            agent: self.context.agent.clone(),
        })
    }

    fn request_id(&self) -> String {
        self.request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
    }
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    super::set_json(args.json);
    let purpose = Purpose::parse(&args.purpose)
        .with_context(|| format!("unknown purpose `{}`", args.purpose))?;
    let ctx = Ctx {
        context: pb::RequestContext {
            purpose: purpose_to_pb(purpose) as i32,
            agent: args.agent.clone(),
        },
        request_id: args.request_id.clone(),
    };
    match &args.command {
        ClientCommand::Csr {
            id,
            key_out,
            csr_out,
        } => {
            let (key, csr_pem) = crate::pki::new_key_and_csr(id)?;
            crate::pki::write_private(key_out, &key.serialize_pem())?;
            std::fs::write(csr_out, csr_pem)
                .with_context(|| format!("writing {}", csr_out.display()))?;
            println!(
                "key written to {} (keep it on this machine); request written to {}: send it to the hub's administrator",
                key_out.display(),
                csr_out.display()
            );
            return Ok(());
        }
        ClientCommand::Bundle { key, cert, out } => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let joined = format!("{}{}", read(key)?, read(cert)?);
            let bundle = Bundle::parse(&joined)
                .context("the key and the certificate do not make a bundle")?;
            bundle.write(
                out,
                "Relais identity of this partner.\nGive it to the partner's connector only.",
            )?;
            println!("identity bundle written to {}", out.display());
            return Ok(());
        }
        _ => {}
    }
    let identity = args
        .identity
        .as_ref()
        .context("--identity (or RELAIS_IDENTITY) names the partner's identity bundle")?;
    let bundle = super::read_identity(
        identity,
        "give --identity (or RELAIS_IDENTITY) the partner's bundle, as `relais admin partner \
         add` or `partner certificate issue` wrote it",
    )?;
    let channel = channel(&args.hub, &bundle).await?;
    match args.command {
        ClientCommand::Csr { .. } | ClientCommand::Bundle { .. } => {
            unreachable!("handled before connecting")
        }
        ClientCommand::Link {
            local_id,
            person_id,
            pivot,
        } => {
            let r = PersonServiceClient::new(channel)
                .link_person(pb::LinkPersonRequest {
                    context: ctx.context(),
                    local_id,
                    pivot: pivot.to_pb(),
                    person_id: person_id.unwrap_or_default(),
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            let outcome = pb::LinkOutcome::try_from(r.outcome)
                .map(|o| {
                    o.as_str_name()
                        .trim_start_matches("LINK_OUTCOME_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            println!("person {} ({outcome})", r.person_id);
        }
        ClientCommand::Resolve { local_id, pivot } => {
            let by = match (local_id, pivot.to_pb()) {
                (Some(l), _) => pb::resolve_person_request::By::LocalId(l),
                (None, Some(p)) => pb::resolve_person_request::By::Pivot(p),
                (None, None) => anyhow::bail!("give --local-id or the pivot identity"),
            };
            let r = PersonServiceClient::new(channel)
                .resolve_person(pb::ResolvePersonRequest {
                    context: ctx.context(),
                    by: Some(by),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            println!(
                "person {} local ids: {}",
                r.person_id,
                r.local_ids.join(", ")
            );
        }
        ClientCommand::Queue {
            procedure,
            theme,
            due_before,
            commune,
            limit,
        } => {
            let r = CaseServiceClient::new(channel)
                .list_work_queue(pb::ListWorkQueueRequest {
                    context: ctx.context(),
                    procedure,
                    theme,
                    statuses: vec![],
                    due_before,
                    page_size: limit,
                    page_token: String::new(),
                    commune,
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            for item in &r.items {
                let what = match &item.item {
                    Some(pb::work_item::Item::Case(c)) => {
                        format!("démarche {} ({})", c.procedure, status_name(c.status))
                    }
                    Some(pb::work_item::Item::Referral(x)) => {
                        format!("fiche navette de {}", x.from_partner)
                    }
                    None => String::new(),
                };
                let who = if item.local_ids.is_empty() {
                    match &item.item {
                        Some(pb::work_item::Item::Referral(x)) => {
                            format!("(personne {}, pas encore liée chez vous)", x.person_id)
                        }
                        _ => String::new(),
                    }
                } else {
                    item.local_ids.join(", ")
                };
                let why = if item.explanation.is_empty() {
                    "rien de particulier"
                } else {
                    item.explanation.as_str()
                };
                println!(
                    "{:>3}. [{:>3}] {who} — {what} : {why}",
                    item.rank, item.score
                );
            }
        }
        ClientCommand::Summary { person, history } => {
            let r = PersonServiceClient::new(channel)
                .get_person_summary(pb::GetPersonSummaryRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                    include_history: history,
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            println!(
                "person {} (your local ids: {})",
                r.person_id,
                r.local_ids.join(", ")
            );
            r.flags.iter().for_each(print_flag);
            r.cases.iter().for_each(print_case);
            r.referrals.iter().for_each(print_referral);
        }
        ClientCommand::Residence { person, commune } => {
            let r = PersonServiceClient::new(channel)
                .set_residence(pb::SetResidenceRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                    commune,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            if r.commune_name.is_empty() {
                println!("lives in {}", r.commune);
            } else {
                println!("lives in {} ({})", r.commune_name, r.commune);
            }
        }
        ClientCommand::Reach(ReachCommand::Set {
            person,
            channels,
            interpreter,
            large_print,
            easy_read,
            best_times,
        }) => {
            let channels = channels
                .iter()
                .map(|c| parse_channel(c))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let r = PersonServiceClient::new(channel)
                .set_accessibility(pb::SetAccessibilityRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                    profile: Some(pb::AccessibilityProfile {
                        channels,
                        interpreter,
                        large_print,
                        easy_read,
                        best_times,
                        ..Default::default()
                    }),
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            if let Some(p) = &r.profile {
                print_profile(p);
            }
        }
        ClientCommand::Reach(ReachCommand::Get { person }) => {
            let r = PersonServiceClient::new(channel)
                .get_accessibility(pb::GetAccessibilityRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            match &r.profile {
                Some(p) => print_profile(p),
                None => println!("no channel recorded that you may read"),
            }
            for st in &r.statements {
                println!("  - {}", st.text);
            }
        }
        ClientCommand::Tour {
            days,
            stops_per_day,
            start_on,
            csv,
            html,
        } => {
            let r = TerritoryServiceClient::new(channel)
                .plan_tour(pb::PlanTourRequest {
                    context: ctx.for_purpose(Purpose::AllerVers),
                    days,
                    stops_per_day,
                    start_on: start_on.clone(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            if r.stops.is_empty() {
                println!("no commune of your territory has a known need: no stop suggested");
            }
            let shown =
                |c: &Option<pb::Count>| c.as_ref().map_or_else(String::new, |c| c.shown.clone());
            for s in &r.stops {
                let Some(c) = &s.commune else { continue };
                println!(
                    "jour {} ({}) arrêt {} : {} ({}) — {} personne(s) à aider en personne, {} démarche(s) à échéance sous 14 jours, {} fiche(s) navette(s) en attente",
                    s.day,
                    s.date,
                    s.order,
                    if c.name.is_empty() {
                        &c.commune
                    } else {
                        &c.name
                    },
                    c.commune,
                    shown(&c.persons_needing_help),
                    shown(&c.cases_due_soon),
                    shown(&c.referrals_waiting)
                );
            }
            write_out(csv.as_ref(), &r.csv)?;
            write_out(html.as_ref(), &r.html)?;
        }
        ClientCommand::VisitSheet { html } => {
            let r = TerritoryServiceClient::new(channel)
                .get_mediator_sheet(pb::GetMediatorSheetRequest {
                    context: ctx.for_purpose(Purpose::Accompagnement),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            if r.persons.is_empty() {
                println!("no person followed under a mandate in force");
            }
            for p in &r.persons {
                println!(
                    "{} (mandat : {}, jusqu'au {})",
                    p.local_ids.join(", "),
                    p.themes.join(", "),
                    p.mandate_until
                );
                for line in &p.pending {
                    println!("  - {line}");
                }
            }
            write_out(html.as_ref(), &r.html)?;
        }
        ClientCommand::Figures { from, to, csv } => {
            let r = TerritoryServiceClient::new(channel)
                .get_activity_figures(pb::GetActivityFiguresRequest {
                    context: ctx.for_purpose(Purpose::Statistique),
                    from: from.clone(),
                    to: to.clone(),
                })
                .await?
                .into_inner();
            write_out(csv.as_ref(), &r.csv)?;
            if super::json_shown(&r) {
                return Ok(());
            }
            print!("{}", r.csv);
        }
        ClientCommand::Flag(cmd) => flag(FlagServiceClient::new(channel), &ctx, cmd).await?,
        ClientCommand::Case(cmd) => case(CaseServiceClient::new(channel), &ctx, cmd).await?,
        ClientCommand::Referral(cmd) => {
            referral(CaseServiceClient::new(channel), &ctx, cmd).await?
        }
        ClientCommand::Consent(cmd) => consent(channel, &ctx, cmd).await?,
        ClientCommand::Mandate(cmd) => mandate(channel, &ctx, cmd).await?,
        ClientCommand::Feed { after, follow } => {
            let mut stream = SyncServiceClient::new(channel)
                .subscribe(pb::SubscribeRequest {
                    context: ctx.context(),
                    after_position: after,
                })
                .await?
                .into_inner();
            while let Some(message) = stream.message().await? {
                // With --json, one JSON object per line (each event, then `caught_up`).
                if super::json() {
                    println!(
                        "{}",
                        serde_json::to_string(&relais_proto::json::to_json(&message))?
                    );
                    if matches!(
                        message.payload,
                        Some(pb::subscribe_response::Payload::CaughtUp(_))
                    ) && !follow
                    {
                        break;
                    }
                    continue;
                }
                match message.payload {
                    Some(pb::subscribe_response::Payload::Event(e)) => {
                        let kind = pb::ChangeKind::try_from(e.kind)
                            .map(|k| {
                                k.as_str_name()
                                    .trim_start_matches("CHANGE_KIND_")
                                    .to_lowercase()
                            })
                            .unwrap_or_default();
                        print!(
                            "#{} {kind} by {}/{} person {} ",
                            e.position, e.partner, e.agent, e.person_id
                        );
                        match e.resource {
                            Some(pb::change_event::Resource::Flag(f)) => print_flag(&f),
                            Some(pb::change_event::Resource::Case(c)) => print_case(&c),
                            Some(pb::change_event::Resource::Referral(r)) => print_referral(&r),
                            Some(pb::change_event::Resource::Redaction(r)) => println!(
                                "delete: flags [{}] cases [{}] referrals [{}] ({})",
                                r.flag_ids.join(", "),
                                r.case_ids.join(", "),
                                r.referral_ids.join(", "),
                                r.reason
                            ),
                            Some(pb::change_event::Resource::ConsentNotice(n)) => println!(
                                "consent {} recorded by {}/{} opens [{}] to it (evidence: {}{})",
                                n.consent_id,
                                n.collected_by_partner,
                                n.collected_by_agent,
                                n.categories.join(", "),
                                n.evidence_ref,
                                if n.countersignature_required {
                                    "; awaiting countersignature"
                                } else {
                                    ""
                                }
                            ),
                            None => println!(),
                        }
                    }
                    Some(pb::subscribe_response::Payload::CaughtUp(c)) => {
                        println!("caught up at #{}", c.position);
                        if !follow {
                            break;
                        }
                    }
                    None => {}
                }
            }
        }
    }
    Ok(())
}

async fn flag(
    mut client: FlagServiceClient<Channel>,
    ctx: &Ctx,
    cmd: FlagCommand,
) -> anyhow::Result<()> {
    match cmd {
        FlagCommand::Raise {
            person,
            code,
            note,
            valid_until,
            qualification,
            evidence,
            review_on,
        } => {
            let how = match qualification {
                QualificationArg::Declared => pb::Qualification::Declared,
                QualificationArg::Observed => pb::Qualification::Observed,
                QualificationArg::Attested => pb::Qualification::Attested,
            };
            let r = client
                .raise_flag(pb::RaiseFlagRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                    code,
                    note,
                    valid_until,
                    request_id: ctx.request_id(),
                    qualification: how as i32,
                    evidence,
                    review_on,
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            if r.requalified {
                println!("already active, qualification updated:");
            } else if !r.created {
                println!("already active:");
            }
            r.flag.iter().for_each(print_flag);
        }
        FlagCommand::Retract {
            flag_id,
            version,
            reason,
        } => {
            let r = client
                .retract_flag(pb::RetractFlagRequest {
                    context: ctx.context(),
                    flag_id,
                    expected_version: version,
                    reason,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.flag.iter().for_each(print_flag);
        }
        FlagCommand::List { person, all } => {
            // Every page; with --json, gathered into one answer.
            let mut gathered = pb::ListFlagsResponse::default();
            let mut token = String::new();
            loop {
                let r = client
                    .list_flags(pb::ListFlagsRequest {
                        context: ctx.context(),
                        person: Some(person.to_pb()),
                        include_retracted: all,
                        page_size: 100,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                if super::json() {
                    gathered.flags.extend(r.flags);
                } else {
                    r.flags.iter().for_each(print_flag);
                }
                if r.next_page_token.is_empty() {
                    break;
                }
                token = r.next_page_token;
            }
            super::json_shown(&gathered);
        }
    }
    Ok(())
}

fn parse_status(s: &str) -> anyhow::Result<i32> {
    let status = CaseStatus::parse(s).with_context(|| {
        format!(
            "unknown status `{s}`: {}",
            CaseStatus::ALL.map(|s| s.as_str()).join(", ")
        )
    })?;
    Ok(case_status_to_pb(status) as i32)
}

async fn case(
    mut client: CaseServiceClient<Channel>,
    ctx: &Ctx,
    cmd: CaseCommand,
) -> anyhow::Result<()> {
    match cmd {
        CaseCommand::Open {
            person,
            procedure,
            missing,
            due,
            sent,
            theme,
        } => {
            let r = client
                .open_case(pb::OpenCaseRequest {
                    context: ctx.context(),
                    person: Some(person.to_pb()),
                    procedure,
                    missing_documents: missing,
                    due_date: due,
                    initial_status: if sent { pb::CaseStatus::Sent as i32 } else { 0 },
                    request_id: ctx.request_id(),
                    theme,
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.r#case.iter().for_each(print_case);
        }
        CaseCommand::Move {
            case_id,
            version,
            to,
            reason,
            missing,
            duplicate_of,
            redirect_to,
        } => {
            let r = client
                .transition_case(pb::TransitionCaseRequest {
                    context: ctx.context(),
                    case_id,
                    expected_version: version,
                    to_status: parse_status(&to)?,
                    reason,
                    missing_documents: (!missing.is_empty())
                        .then_some(pb::DocumentList { items: missing }),
                    duplicate_of,
                    redirect_to_partner: redirect_to,
                    redirect_procedure: String::new(),
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.r#case.iter().for_each(print_case);
            if let Some(child) = &r.child_case {
                print!("opened: ");
                print_case(child);
            }
        }
        CaseCommand::Get { case_id } => {
            let r = client
                .get_case(pb::GetCaseRequest {
                    context: ctx.context(),
                    case_id,
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            if let Some(c) = &r.r#case {
                print_case(c);
                for t in &c.history {
                    println!(
                        "  {} → {} by {}/{} {}",
                        status_name(t.from_status),
                        status_name(t.to_status),
                        t.partner,
                        t.agent,
                        t.reason
                    );
                }
            }
        }
        CaseCommand::List {
            person_id,
            local_id,
        } => {
            let person = match (person_id, local_id) {
                (Some(id), _) => Some(pb::PersonRef {
                    r#ref: Some(pb::person_ref::Ref::PersonId(id)),
                }),
                (None, Some(l)) => Some(pb::PersonRef {
                    r#ref: Some(pb::person_ref::Ref::LocalId(l)),
                }),
                (None, None) => None,
            };
            // Every page; with --json, gathered into one answer.
            let mut all = pb::ListCasesResponse::default();
            let mut token = String::new();
            loop {
                let r = client
                    .list_cases(pb::ListCasesRequest {
                        context: ctx.context(),
                        person: person.clone(),
                        statuses: vec![],
                        page_size: 100,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                if super::json() {
                    all.cases.extend(r.cases);
                } else {
                    r.cases.iter().for_each(print_case);
                }
                if r.next_page_token.is_empty() {
                    break;
                }
                token = r.next_page_token;
            }
            super::json_shown(&all);
        }
    }
    Ok(())
}

async fn referral(
    mut client: CaseServiceClient<Channel>,
    ctx: &Ctx,
    cmd: ReferralCommand,
) -> anyhow::Result<()> {
    let referral = match cmd {
        ReferralCommand::Send {
            case_id,
            local_id,
            procedure,
            to,
            reason,
            action,
            due,
        } => {
            let case_id = match (case_id, local_id, procedure) {
                (Some(id), _, _) => id,
                (None, Some(local), Some(procedure)) => {
                    // The person's cases as the caller may list them; the latest of the procedure.
                    let cases = client
                        .list_cases(pb::ListCasesRequest {
                            context: ctx.context(),
                            person: Some(pb::PersonRef {
                                r#ref: Some(pb::person_ref::Ref::LocalId(local.clone())),
                            }),
                            statuses: vec![],
                            page_size: 100,
                            page_token: String::new(),
                        })
                        .await?
                        .into_inner()
                        .cases;
                    cases
                        .into_iter()
                        .filter(|c| c.procedure == procedure)
                        .max_by_key(|c| c.opened_at.as_ref().map(|t| (t.seconds, t.nanos)))
                        .map(|c| c.id)
                        .with_context(|| {
                            format!("no case of {procedure} for {local} that you may read")
                        })?
                }
                _ => anyhow::bail!("give --case-id, or --local-id with --procedure"),
            };
            client
                .send_referral(pb::SendReferralRequest {
                    context: ctx.context(),
                    case_id,
                    to_partner: to,
                    reason,
                    requested_action: action,
                    due_date: due,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner()
                .referral
        }
        ReferralCommand::Ack {
            referral_id,
            version,
        } => {
            client
                .acknowledge_referral(pb::AcknowledgeReferralRequest {
                    context: ctx.context(),
                    referral_id,
                    expected_version: version,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner()
                .referral
        }
        ReferralCommand::Answer {
            referral_id,
            version,
            answer,
        } => {
            client
                .answer_referral(pb::AnswerReferralRequest {
                    context: ctx.context(),
                    referral_id,
                    expected_version: version,
                    answer,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner()
                .referral
        }
        ReferralCommand::Close {
            referral_id,
            version,
        } => {
            client
                .close_referral(pb::CloseReferralRequest {
                    context: ctx.context(),
                    referral_id,
                    expected_version: version,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner()
                .referral
        }
        ReferralCommand::Escalate {
            referral_id,
            version,
            due,
        } => {
            client
                .escalate_referral(pb::EscalateReferralRequest {
                    context: ctx.context(),
                    referral_id,
                    expected_version: version,
                    due_date: due,
                    request_id: ctx.request_id(),
                })
                .await?
                .into_inner()
                .referral
        }
        ReferralCommand::List { overdue } => {
            // Every page; with --json, gathered into one answer.
            let mut all = pb::ListReferralsResponse::default();
            let mut token = String::new();
            loop {
                let r = client
                    .list_referrals(pb::ListReferralsRequest {
                        context: ctx.context(),
                        direction: 0,
                        states: vec![],
                        page_size: 100,
                        page_token: token,
                        overdue_only: overdue,
                    })
                    .await?
                    .into_inner();
                if super::json() {
                    all.referrals.extend(r.referrals);
                } else {
                    r.referrals.iter().for_each(print_referral);
                }
                if r.next_page_token.is_empty() {
                    break;
                }
                token = r.next_page_token;
            }
            super::json_shown(&all);
            None
        }
    };
    if let Some(r) = &referral
        && super::json_shown(r)
    {
        return Ok(());
    }
    referral.iter().for_each(print_referral);
    Ok(())
}
