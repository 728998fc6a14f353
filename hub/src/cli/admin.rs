//! `relais admin`: partners, over gRPC with the administrator's certificate.

use super::connect::{DEFAULT_HUB, channel};
use crate::domain::PartnerKind;
use crate::domain::ids::PartnerId;
use crate::pki::{Bundle, new_key_and_csr};
use anyhow::Context;
use clap::{Args, Subcommand};
use relais_proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct AdminArgs {
    /// Hub address.
    #[arg(long, env = "RELAIS_HUB", default_value = DEFAULT_HUB)]
    hub: String,
    /// Administrator identity bundle (created by the hub's first start).
    #[arg(
        long,
        env = "RELAIS_ADMIN_IDENTITY",
        default_value = "relais-data/admin/admin.bundle.pem"
    )]
    identity: PathBuf,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Partners: add, list, show, suspend, resume, issue a certificate.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// A person's consent records and mandates; withdrawal on the person's request.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Access rules (Cedar): get, set, validate, test, explain, history, rollback.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// The work queue's weights and procedure catalogue (TOML): get, dry-run, set, history,
    /// rollback.
    #[command(subcommand)]
    Priorities(PrioritiesCommand),
    /// The audit log: verify its chain, produce a person's access report.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Persons: merge two records of one person, undo a wrong link.
    #[command(subcommand)]
    Person(PersonCommand),
    /// Flags: retract one whoever raised it.
    #[command(subcommand)]
    Flag(FlagCommand),
    /// Named administrator identities: each administrator acts, and is audited, under their
    /// own name.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Accounts of the administrators' console: a named person, a role (administrateur, dpo,
    /// operateur), a password and a TOTP second factor.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Trigger or end the préfet's alert plan.
    AlertPlan {
        /// Trigger the alert plan: `plan_alerte` calls get what the rules give during an alert.
        #[arg(long, conflicts_with = "end")]
        start: bool,
        /// End the alert plan.
        #[arg(long)]
        end: bool,
        /// Which alert and who triggered it (canicule, grand froid…): required with --start;
        /// kept in the audit.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Is the hub serving? Asks its health service (SERVING, NOT_SERVING while its database is
    /// unreachable or while it stops); exits 0 only when SERVING.
    Health,
    /// Backs up a running hub's data directory on this machine: a consistent snapshot of the
    /// SQLite database taken while it writes, the matching key, the TLS files and the
    /// administrator bundle, with a manifest of their SHA-256 (on PostgreSQL, the keys and TLS
    /// files, and how to run pg_dump). Needs no connection to the hub.
    Backup {
        /// The hub's configuration file, for its data directory, database and TLS paths.
        #[arg(long, env = "RELAIS_CONFIG", conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        /// The hub's data directory, when it runs with the default paths.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A new directory for the backup (it must not exist or be empty).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restores a backup into a new data directory, after checking every file against the
    /// backup's manifest and the database's integrity; start the hub on it afterwards.
    Restore {
        /// The backup (made by `relais admin backup`).
        #[arg(long)]
        from: PathBuf,
        /// The new data directory (it must not exist or be empty).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PersonCommand {
    /// Merge `--merge` into `--keep`: two records of one person the hub wrongly kept apart.
    Merge {
        /// The hub id (UUID) of the person record to keep.
        #[arg(long)]
        keep: String,
        /// The hub id (UUID) of the record merged into it: its partners' links move to --keep.
        #[arg(long)]
        merge: String,
        /// Why they are one person (kept in the audit).
        #[arg(long)]
        reason: String,
    },
    /// Undo a partner's wrong link of a local id (the person's history is kept).
    Unlink {
        /// The partner id that made the wrong link (e.g. mairie-aspet).
        #[arg(long)]
        partner: String,
        /// That partner's local id for the person, as it linked it.
        #[arg(long)]
        local_id: String,
        /// Why the link is wrong (kept in the audit).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Make a console account. The password is read from --password-file, or else from the
    /// first line of standard input; the TOTP secret is printed once, to put in an
    /// authenticator application.
    Add {
        /// The account's login: lowercase letters, digits, `.`, `_`, `-` (e.g. m.dupont).
        #[arg(long)]
        name: String,
        /// The person's name, as the console and the audit show it.
        #[arg(long)]
        full_name: String,
        /// administrateur (everything), dpo (consents, audit, reports, withdrawals on request)
        /// or operateur (partners and certificates).
        #[arg(long)]
        role: String,
        /// A file holding the password (at least 12 characters) on its first line.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// The console accounts, with their role and state.
    List,
    /// Disable an account: its sessions end at once.
    Disable {
        /// The account's login (e.g. m.dupont), as `account list` shows it.
        #[arg(long)]
        name: String,
    },
    /// Enable an account again (and clear its lockout after failed log-ins).
    Enable {
        /// The account's login (e.g. m.dupont), as `account list` shows it.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Make a named administrator's identity bundle (the key is made here).
    Add {
        /// The administrator's name (e.g. m.dupont@cc-comminges.fr).
        #[arg(long)]
        name: String,
        /// Where to write the identity bundle (created 0600): for that administrator only.
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke every certificate of a named administrator.
    Revoke {
        /// The administrator's name, as `identity list` shows it.
        #[arg(long)]
        name: String,
        /// Why the identity is revoked (kept in the audit).
        #[arg(long)]
        reason: String,
    },
    /// The named administrators, with each certificate's fingerprint, expiry and revocation.
    List,
}

#[derive(Subcommand)]
enum FlagCommand {
    /// Retract a flag raised in error that its partner cannot retract.
    Retract {
        /// The flag's hub id (UUID), as a partner's `flag list` or summary shows it.
        #[arg(long)]
        flag: String,
        /// Why it is retracted (kept in the audit and in the flag's retraction).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum ConsentCommand {
    /// A person's consent records and mandates, with their hub ids and states.
    List {
        /// The person's hub id (UUID).
        #[arg(long)]
        person: String,
    },
    /// Countersign a consent the rules made wait (health data a partner recorded for itself).
    Countersign {
        /// The consent's hub id (UUID), as `consent list` shows it.
        #[arg(long)]
        consent: String,
    },
    /// Withdraw a consent on the person's request (letter, call, counter): the partners that
    /// received its data are told to delete it.
    Withdraw {
        /// The consent's hub id (UUID), as `consent list` shows it.
        #[arg(long)]
        consent: String,
        /// How the person asked: courrier, telephone, guichet…
        #[arg(long)]
        channel: String,
        /// A note kept in the audit (the letter's reference, who took the call).
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// One access question, as the command line asks it.
#[derive(Args, Clone)]
struct QuestionArgs {
    /// The partner asking (its id, e.g. mairie-aspet).
    #[arg(long)]
    partner: String,
    /// The acting agent's pseudonymous id.
    #[arg(long, default_value = "admin-check")]
    agent: String,
    /// The person's hub id (UUID).
    #[arg(long)]
    person: String,
    /// The data category: mobility, digital, language, administrative, social, financial,
    /// housing, health, case_status, referrals, identity or accessibility.
    #[arg(long)]
    category: String,
    /// The purpose of the call: accompagnement, instruction, orientation, aller_vers,
    /// plan_alerte, administration or statistique.
    #[arg(long)]
    purpose: String,
    /// A flag code of the taxonomy, within --category (ELOIGNEMENT, SANS_INTERNET, ISOLEMENT…).
    #[arg(long, default_value = "")]
    code: String,
    /// The procedure theme of the case asked about: argent, famille, justice, logement,
    /// loisirs, papiers, social, transports, travail or etranger.
    #[arg(long, default_value = "")]
    theme: String,
    /// Ask about writing the data instead of reading it.
    #[arg(long)]
    write: bool,
}

impl QuestionArgs {
    fn to_pb(&self) -> anyhow::Result<pb::AccessQuestion> {
        let purpose = crate::domain::Purpose::parse(&self.purpose)
            .with_context(|| format!("unknown purpose `{}`", self.purpose))?;
        Ok(pb::AccessQuestion {
            partner: self.partner.clone(),
            agent: self.agent.clone(),
            person_id: self.person.clone(),
            category: self.category.clone(),
            purpose: crate::api::convert::purpose_to_pb(purpose) as i32,
            code: self.code.clone(),
            theme: self.theme.clone(),
            write: self.write,
        })
    }
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Print the rules in force.
    Get {
        /// Print the Cedar schema instead.
        #[arg(long)]
        schema: bool,
    },
    /// Validate a rules file against the schema.
    Validate {
        /// The rules file (Cedar) to check.
        file: PathBuf,
    },
    /// Activate a rules file as a new version.
    Set {
        /// The rules file (Cedar) to put in force.
        file: PathBuf,
        /// Who makes the change, recorded with the version.
        #[arg(long)]
        author: String,
        /// Why the rules change, recorded with the version.
        #[arg(long)]
        comment: String,
    },
    /// Dry-run: how a rules file would decide a question, beside the rules in force.
    Test {
        /// The rules file (Cedar) to try; the rules in force do not change.
        file: PathBuf,
        #[command(flatten)]
        question: QuestionArgs,
    },
    /// Why a partner may or may not see a category of a person's data.
    Explain {
        #[command(flatten)]
        question: QuestionArgs,
    },
    /// Every version, with author, time and comment.
    History,
    /// Activate an earlier version again (the previous one by default).
    Rollback {
        /// The version to put back in force, as `rules history` lists it (0: the one before
        /// the version in force).
        #[arg(long, default_value_t = 0)]
        to: i64,
        /// Who makes the change, recorded with the new version.
        #[arg(long)]
        author: String,
        /// Why, recorded with the new version (by default "rollback to version N").
        #[arg(long, default_value = "")]
        comment: String,
    },
}

#[derive(Subcommand)]
enum PrioritiesCommand {
    /// Print the priorities in force (the commented defaults while none was activated).
    Get,
    /// Check a file and show how a partner's queue would change: the items whose rank moves.
    DryRun {
        /// The priorities file (TOML) to check; the priorities in force do not change.
        file: PathBuf,
        /// Whose queue.
        #[arg(long)]
        partner: String,
        /// The purpose of that partner's calls (its connector's).
        #[arg(long, default_value = "accompagnement")]
        purpose: String,
    },
    /// Activate a file as a new version.
    Set {
        /// The priorities file (TOML) to put in force.
        file: PathBuf,
        /// Who makes the change, recorded with the version.
        #[arg(long)]
        author: String,
        /// Why the priorities change, recorded with the version.
        #[arg(long)]
        comment: String,
    },
    /// Every version, with author, time and comment.
    History,
    /// Activate an earlier version again (the previous one by default).
    Rollback {
        /// The version to put back in force, as `priorities history` lists it (0: the one
        /// before the version in force, or the built-in defaults before the first).
        #[arg(long, default_value_t = 0)]
        to: i64,
        /// Who makes the change, recorded with the new version.
        #[arg(long)]
        author: String,
        /// Why, recorded with the new version (by default "rollback to version N").
        #[arg(long, default_value = "")]
        comment: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; names the first entry changed, removed or moved.
    Verify,
    /// What was exchanged about a person, for the person (GDPR art. 15): the document in
    /// French (a summary, then the detail by service and by day), or its data with --json.
    Report {
        /// The person's hub id.
        #[arg(long)]
        person: String,
        /// Write the printable page (HTML, French, A4) here instead of printing the text.
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PartnerCommand {
    /// Register a partner and write its connector's identity bundle.
    Add {
        /// communaute_de_communes, mairie, departement, sous_prefecture, association, operateur
        #[arg(long)]
        kind: String,
        /// The partner's display name, e.g. "Mairie d'Aspet" (the id is made from it without
        /// --id).
        #[arg(long)]
        name: String,
        /// INSEE COG codes of the communes or départements covered (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', required = true)]
        territory: Vec<String>,
        /// Partner id (slug); made from the name when omitted.
        #[arg(long)]
        id: Option<String>,
        /// Where to write the bundle (default: <id>.bundle.pem).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The partner's own certificate signing request (`relais client csr`): its key stays
        /// on its machine, and `--out` receives the certificate only.
        #[arg(long)]
        csr: Option<PathBuf>,
    },
    /// Every partner, with its id, kind, status, territory and name.
    List,
    /// One partner, with its certificates: fingerprint, serial, validity or revocation.
    Show {
        /// The partner id (e.g. mairie-aspet).
        id: String,
    },
    /// Suspend a partner: every call with its certificates is refused until `partner resume`.
    Suspend {
        /// The partner id (e.g. mairie-aspet).
        id: String,
        /// Why it is suspended: its refused calls say so.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resume a suspended partner: its certificates are accepted again.
    Resume {
        /// The partner id (e.g. mairie-aspet).
        id: String,
    },
    /// Certificates: issue a further one (renewal, a second connector), revoke one.
    #[command(subcommand)]
    Certificate(CertificateCommand),
}

#[derive(Subcommand)]
enum CertificateCommand {
    /// Issue a further certificate and write its bundle (or, with `--csr`, the certificate).
    Issue {
        /// The partner id (e.g. mairie-aspet).
        id: String,
        /// Where to write the identity bundle (created 0600), or, with --csr, the certificate.
        #[arg(long)]
        out: PathBuf,
        /// The partner's own certificate signing request (`relais client csr`).
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Retire the partner's other certificates this many hours later (0: keep them).
        #[arg(long, default_value_t = 0)]
        retire_previous_after_hours: i32,
    },
    /// Approve a certificate an opérateur of the console had issued (refused until then).
    Approve {
        /// SHA-256 fingerprint, as `partner show` lists it.
        #[arg(long)]
        fingerprint: String,
    },
    /// Revoke one certificate: refused at once and for ever; its subscriptions end.
    Revoke {
        /// SHA-256 fingerprint, as `partner show` lists it.
        #[arg(long)]
        fingerprint: String,
        /// Why it is revoked (kept in the audit).
        #[arg(long)]
        reason: String,
    },
}

/// A partner's kind and status as the CLI writes them (`mairie`, `suspended`).
fn kind_and_status(p: &pb::Partner) -> (String, String) {
    let status = pb::PartnerStatus::try_from(p.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("PARTNER_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let kind = pb::PartnerKind::try_from(p.kind)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("PARTNER_KIND_")
                .to_lowercase()
        })
        .unwrap_or_default();
    (kind, status)
}

fn partner_header() -> String {
    format!(
        "{:<28} {:<24} {:<10} {:<16} {}",
        "ID", "KIND", "STATUS", "TERRITORY", "NAME"
    )
}

/// A time in JSON: RFC 3339, or null.
fn when_json(t: &Option<prost_types::Timestamp>) -> serde_json::Value {
    if t.is_some() {
        timestamp(t).into()
    } else {
        serde_json::Value::Null
    }
}

fn partner_json(p: &pb::Partner) -> serde_json::Value {
    let (kind, status) = kind_and_status(p);
    serde_json::json!({
        "id": p.id,
        "name": p.name,
        "kind": kind,
        "status": status,
        "status_reason": p.status_reason,
        "territory": p.territory,
        "cog_vintage": p.cog_vintage,
        "created_at": when_json(&p.created_at),
        "updated_at": when_json(&p.updated_at),
        "certificates": p.certificates.iter().map(|c| serde_json::json!({
            "fingerprint": c.fingerprint,
            "serial": c.serial,
            "issued_at": when_json(&c.issued_at),
            "not_after": when_json(&c.not_after),
            "revoked_at": when_json(&c.revoked_at),
            "revocation_reason": c.revocation_reason,
            "awaiting_approval": c.awaiting_approval,
        })).collect::<Vec<_>>(),
    })
}

fn print_partner(p: &pb::Partner) {
    let (kind, status) = kind_and_status(p);
    println!(
        "{:<28} {:<24} {:<10} {:<16} {}",
        p.id,
        kind,
        status,
        p.territory.join(","),
        p.name
    );
}

/// The request to sign: the partner's own (its key stays on its machine), or one made here
/// with a new key that goes into the bundle.
fn own_or_new_csr(
    id: &str,
    csr: Option<&std::path::Path>,
) -> anyhow::Result<(Option<rcgen::KeyPair>, String)> {
    match csr {
        Some(path) => Ok((
            None,
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the request {}", path.display()))?,
        )),
        None => {
            let (key, csr) = new_key_and_csr(id)?;
            Ok((Some(key), csr))
        }
    }
}

/// Writes what was issued: a whole bundle when the key was made here, otherwise the
/// certificate and the hub's CA for the partner to join with its own key
/// (`relais client bundle`).
fn write_issued(
    out: &std::path::Path,
    key: Option<rcgen::KeyPair>,
    cert_pem: String,
    ca_pem: String,
    comment: &str,
) -> anyhow::Result<()> {
    match key {
        Some(key) => {
            Bundle {
                cert_pem,
                key_pem: key.serialize_pem(),
                ca_pem,
            }
            .write(out, comment)?;
            say(format!("identity bundle written to {}", out.display()));
        }
        None => {
            std::fs::write(out, format!("{cert_pem}{ca_pem}"))
                .with_context(|| format!("writing {}", out.display()))?;
            say(format!(
                "certificate written to {}: send it to the partner, who joins it with its key (relais client bundle)",
                out.display()
            ));
        }
    }
    Ok(())
}

/// A message for the person at the terminal: on stdout, or on stderr when stdout carries JSON.
fn say(message: String) {
    if super::json() {
        eprintln!("{message}");
    } else {
        println!("{message}");
    }
}

/// What to do when the administrator's bundle is not where it was looked for.
const ADMIN_IDENTITY_HINT: &str = "run the command where the hub's data directory is, or give \
     --identity (or RELAIS_ADMIN_IDENTITY) — the administrator's bundle, admin/admin.bundle.pem \
     in the hub's data directory";

fn request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn timestamp(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .map(|t| {
            crate::domain::Timestamp::from_micros(t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
                .to_string()
        })
        .unwrap_or_default()
}

fn decision_json(d: &pb::AccessDecision) -> serde_json::Value {
    serde_json::json!({
        "allowed": d.allowed,
        "rules": d.rules,
        "reasons": d.reasons,
        "consent_state": d.consent_state,
        "consent_record": d.consent_record,
        "consent_basis": d.consent_basis,
        "legal_basis": d.legal_basis,
        "rules_version": d.rules_version,
    })
}

fn print_decision(d: &pb::AccessDecision) {
    println!(
        "{} (rules version {})",
        if d.allowed { "ALLOWED" } else { "DENIED" },
        d.rules_version
    );
    if !d.rules.is_empty() {
        println!("  deciding rules: {}", d.rules.join(", "));
    }
    for r in &d.reasons {
        println!("  because: {r}");
    }
    println!(
        "  consent: {}{}",
        d.consent_state,
        if d.consent_record.is_empty() {
            String::new()
        } else {
            format!(" ({} on {})", d.consent_record, d.consent_basis)
        }
    );
    if !d.legal_basis.is_empty() {
        println!("  legal basis named by the rule: {}", d.legal_basis);
    }
}

fn print_rule_errors(errors: &[pb::RuleError]) {
    for e in errors {
        let at = if e.line > 0 {
            format!("line {}, column {}: ", e.line, e.column)
        } else {
            String::new()
        };
        let rule = if e.rule.is_empty() {
            String::new()
        } else {
            format!("rule `{}`: ", e.rule)
        };
        println!("  {at}{rule}{}", e.message);
    }
}

fn version_json(v: &pb::RulesVersion) -> serde_json::Value {
    serde_json::json!({
        "version": v.version,
        "author": v.author,
        "comment": v.comment,
        "created_at": timestamp(&v.created_at),
        "restores": v.restores,
    })
}

async fn other(
    client: &mut AdminServiceClient<tonic::transport::Channel>,
    json: bool,
    command: AdminCommand,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::Partner(_)
        | AdminCommand::Health
        | AdminCommand::Backup { .. }
        | AdminCommand::Restore { .. } => unreachable!("handled by `run`"),
        AdminCommand::Consent(ConsentCommand::List { person }) => {
            let r = client
                .list_person_consents(pb::ListPersonConsentsRequest { person_id: person })
                .await?
                .into_inner();
            if json {
                let consents: Vec<_> = r
                    .consents
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "id": c.id, "categories": c.categories, "state": c.state,
                            "collected_by": c.collected_by_partner, "granted_at": timestamp(&c.granted_at),
                            "withdrawn_at": timestamp(&c.withdrawn_at),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"consents": consents, "mandates": r.mandates.len()})
                );
            } else {
                for c in &r.consents {
                    let state = pb::RecordState::try_from(c.state)
                        .map(|s| {
                            s.as_str_name()
                                .trim_start_matches("RECORD_STATE_")
                                .to_lowercase()
                        })
                        .unwrap_or_default();
                    println!(
                        "consent {} {:<9} {:<40} by {} on {}",
                        c.id,
                        state,
                        c.categories.join(","),
                        c.collected_by_partner,
                        timestamp(&c.granted_at)
                    );
                }
                for m in &r.mandates {
                    println!(
                        "mandate {} to {}/{} on {}",
                        m.id,
                        m.partner,
                        m.agent,
                        m.themes.join(",")
                    );
                }
            }
        }
        AdminCommand::Consent(ConsentCommand::Countersign { consent }) => {
            let r = client
                .countersign_consent(pb::CountersignConsentRequest {
                    consent_id: consent,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            let state = r
                .consent
                .as_ref()
                .and_then(|c| pb::RecordState::try_from(c.state).ok())
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("RECORD_STATE_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            if json {
                println!("{}", serde_json::json!({ "state": state }));
            } else {
                println!("countersigned; the consent is now {state}");
            }
        }
        AdminCommand::Person(PersonCommand::Merge {
            keep,
            merge,
            reason,
        }) => {
            let r = client
                .merge_persons(pb::MergePersonsRequest {
                    kept_person_id: keep,
                    merged_person_id: merge,
                    reason,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"person_id": r.person_id, "links_moved": r.links_moved})
                );
            } else {
                println!(
                    "merged into {} ({} partner links moved)",
                    r.person_id, r.links_moved
                );
            }
        }
        AdminCommand::Person(PersonCommand::Unlink {
            partner,
            local_id,
            reason,
        }) => {
            let r = client
                .unlink_local_id(pb::UnlinkLocalIdRequest {
                    partner_id: partner,
                    local_id,
                    reason,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            println!("unlinked from person {}", r.person_id);
        }
        AdminCommand::Identity(IdentityCommand::Add { name, out }) => {
            let (key, csr_pem) = new_key_and_csr(&format!("admin-{name}"))?;
            let r = client
                .add_administrator(pb::AddAdministratorRequest {
                    name: name.clone(),
                    csr_pem,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            Bundle {
                cert_pem: r.certificate_pem,
                key_pem: key.serialize_pem(),
                ca_pem: r.ca_certificate_pem,
            }
            .write(
                &out,
                &format!("Relais administrator identity of `{name}`. Personal: do not share it."),
            )?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": name, "written": out.display().to_string()})
                );
            } else {
                println!(
                    "identity bundle of administrator `{name}` written to {}",
                    out.display()
                );
            }
        }
        AdminCommand::Identity(IdentityCommand::Revoke { name, reason }) => {
            let r = client
                .revoke_administrator(pb::RevokeAdministratorRequest {
                    name: name.clone(),
                    reason,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            println!(
                "administrator `{name}`: {} certificate(s) revoked",
                r.revoked
            );
        }
        AdminCommand::Account(cmd) => account(client, json, cmd).await?,
        AdminCommand::Identity(IdentityCommand::List) => {
            let r = client
                .list_administrators(pb::ListAdministratorsRequest {})
                .await?
                .into_inner();
            if json {
                let list: Vec<_> = r
                    .administrators
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "name": a.name, "fingerprint": a.fingerprint,
                            "not_after": timestamp(&a.not_after), "revoked_at": timestamp(&a.revoked_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for a in &r.administrators {
                    println!(
                        "{:<32} {}  until {}{}",
                        a.name,
                        a.fingerprint,
                        timestamp(&a.not_after),
                        if a.revoked_at.is_some() {
                            format!("  revoked {}", timestamp(&a.revoked_at))
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
        AdminCommand::Flag(FlagCommand::Retract { flag, reason }) => {
            let r = client
                .retract_flag(pb::AdminServiceRetractFlagRequest {
                    flag_id: flag,
                    reason,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            println!("flag retracted");
        }
        AdminCommand::Consent(ConsentCommand::Withdraw {
            consent,
            channel,
            note,
        }) => {
            let r = client
                .withdraw_person_consent(pb::WithdrawPersonConsentRequest {
                    consent_id: consent,
                    channel,
                    note,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"redacted_partners": r.redacted_partners})
                );
            } else {
                println!(
                    "withdrawn; told to delete what they received: {}",
                    r.redacted_partners.join(", ")
                );
            }
        }
        AdminCommand::Rules(cmd) => rules(client, json, cmd).await?,
        AdminCommand::Priorities(cmd) => priorities(client, json, cmd).await?,
        AdminCommand::Audit(AuditCommand::Verify) => {
            let r = client
                .verify_audit(pb::VerifyAuditRequest {})
                .await?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "intact": r.intact, "entries_checked": r.entries_checked,
                        "first_bad_seq": r.first_bad_seq, "problem": r.problem,
                        "head_seq": r.head_seq, "head_hash": r.head_hash,
                    })
                );
            } else if r.intact {
                println!(
                    "audit log intact: {} entries checked; head #{} {}",
                    r.entries_checked, r.head_seq, r.head_hash
                );
            } else {
                println!(
                    "AUDIT LOG BROKEN at entry #{}: {}",
                    r.first_bad_seq, r.problem
                );
            }
            if !r.intact {
                anyhow::bail!("the audit log does not verify");
            }
        }
        AdminCommand::Audit(AuditCommand::Report { person, html }) => {
            let r = client
                .get_access_report(pb::GetAccessReportRequest { person_id: person })
                .await?
                .into_inner();
            match html {
                Some(path) => {
                    // The report lists what was exchanged about a person: readable by the
                    // administrator's account only (0600), like the identity bundles.
                    crate::pki::write_private(&path, &r.html)?;
                    println!("printable report written to {}", path.display());
                }
                None if json => println!("{}", r.json),
                None => print!("{}", r.text),
            }
        }
        AdminCommand::AlertPlan { start, end, reason } => {
            anyhow::ensure!(start != end, "say --start or --end");
            let r = client
                .set_alert_plan(pb::SetAlertPlanRequest {
                    active: start,
                    reason,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            println!(
                "alert plan {} since {}{}",
                if r.active { "ACTIVE" } else { "ended" },
                timestamp(&r.since),
                if r.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.reason)
                }
            );
        }
    }
    Ok(())
}

async fn rules(
    client: &mut AdminServiceClient<tonic::transport::Channel>,
    json: bool,
    cmd: RulesCommand,
) -> anyhow::Result<()> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    match cmd {
        RulesCommand::Get { schema } => {
            let r = client.get_rules(pb::GetRulesRequest {}).await?.into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"version": r.version.as_ref().map(version_json), "text": r.text, "schema": r.schema})
                );
            } else if schema {
                print!("{}", r.schema);
            } else {
                if let Some(v) = &r.version {
                    println!(
                        "// version {} by {} at {}: {}",
                        v.version,
                        v.author,
                        timestamp(&v.created_at),
                        v.comment
                    );
                }
                print!("{}", r.text);
            }
        }
        RulesCommand::Validate { file } => {
            let r = client
                .validate_rules(pb::ValidateRulesRequest { text: read(&file)? })
                .await?
                .into_inner();
            if json {
                let errors: Vec<_> = r
                    .errors
                    .iter()
                    .map(|e| serde_json::json!({"message": e.message, "line": e.line, "column": e.column, "rule": e.rule}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"valid": r.valid, "errors": errors})
                );
            } else if r.valid {
                println!("{}: valid", file.display());
            } else {
                println!("{}: INVALID", file.display());
                print_rule_errors(&r.errors);
            }
            if !r.valid {
                anyhow::bail!("the rules do not validate");
            }
        }
        RulesCommand::Set {
            file,
            author,
            comment,
        } => {
            let r = client
                .set_rules(pb::SetRulesRequest {
                    text: read(&file)?,
                    author,
                    comment,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            let v = r.version.context("no version in the answer")?;
            if json {
                println!("{}", version_json(&v));
            } else {
                println!("rules version {} in force", v.version);
            }
        }
        RulesCommand::Test { file, question } => {
            let r = client
                .test_rules(pb::TestRulesRequest {
                    text: read(&file)?,
                    questions: vec![question.to_pb()?],
                })
                .await?
                .into_inner();
            if !r.valid {
                println!("{}: INVALID", file.display());
                print_rule_errors(&r.errors);
                anyhow::bail!("the rules do not validate");
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "candidate": r.candidate.iter().map(decision_json).collect::<Vec<_>>(),
                        "current": r.current.iter().map(decision_json).collect::<Vec<_>>(),
                    })
                );
            } else {
                for (c, now) in r.candidate.iter().zip(&r.current) {
                    print!("with {}: ", file.display());
                    print_decision(c);
                    print!("in force now: ");
                    print_decision(now);
                }
            }
        }
        RulesCommand::Explain { question } => {
            let r = client
                .explain(pb::ExplainRequest {
                    question: Some(question.to_pb()?),
                })
                .await?
                .into_inner();
            let d = r.decision.context("no decision in the answer")?;
            if json {
                println!("{}", decision_json(&d));
            } else {
                print_decision(&d);
            }
        }
        RulesCommand::History => {
            let r = client
                .list_rules_versions(pb::ListRulesVersionsRequest {})
                .await?
                .into_inner();
            print_versions(json, &r.versions, r.active);
        }
        RulesCommand::Rollback {
            to,
            author,
            comment,
        } => {
            let r = client
                .rollback_rules(pb::RollbackRulesRequest {
                    to_version: to,
                    author,
                    comment,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            let v = r.version.context("no version in the answer")?;
            if json {
                println!("{}", version_json(&v));
            } else {
                println!(
                    "rules version {} in force (restores v{})",
                    v.version, v.restores
                );
            }
        }
    }
    Ok(())
}

/// A setting's versions, the one in force starred.
fn print_versions(json: bool, versions: &[pb::RulesVersion], active: i64) {
    if json {
        println!(
            "{}",
            serde_json::json!({"active": active, "versions": versions.iter().map(version_json).collect::<Vec<_>>()})
        );
        return;
    }
    if versions.is_empty() {
        println!("* v0    the built-in defaults");
    }
    for v in versions {
        println!(
            "{} v{:<4} {:<28} {:<24} {}{}",
            if v.version == active { "*" } else { " " },
            v.version,
            timestamp(&v.created_at),
            v.author,
            v.comment,
            if v.restores > 0 {
                format!(" (restores v{})", v.restores)
            } else {
                String::new()
            }
        );
    }
}

async fn priorities(
    client: &mut AdminServiceClient<tonic::transport::Channel>,
    json: bool,
    cmd: PrioritiesCommand,
) -> anyhow::Result<()> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let activated = |v: Option<pb::RulesVersion>| -> anyhow::Result<()> {
        let v = v.context("no version in the answer")?;
        if json {
            println!("{}", version_json(&v));
        } else if v.restores > 0 {
            println!(
                "priorities version {} in force (restores v{})",
                v.version, v.restores
            );
        } else {
            println!("priorities version {} in force", v.version);
        }
        Ok(())
    };
    match cmd {
        PrioritiesCommand::Get => {
            let r = client
                .get_priorities(pb::GetPrioritiesRequest {})
                .await?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"version": r.version.as_ref().map(version_json), "text": r.text})
                );
            } else {
                if let Some(v) = &r.version {
                    println!(
                        "# version {} by {}{}: {}",
                        v.version,
                        v.author,
                        if v.created_at.is_some() {
                            format!(" at {}", timestamp(&v.created_at))
                        } else {
                            String::new()
                        },
                        v.comment
                    );
                }
                print!("{}", r.text);
            }
        }
        PrioritiesCommand::DryRun {
            file,
            partner,
            purpose,
        } => {
            let purpose = crate::domain::Purpose::parse(&purpose)
                .with_context(|| format!("unknown purpose `{purpose}`"))?;
            let r = client
                .dry_run_priorities(pb::DryRunPrioritiesRequest {
                    text: read(&file)?,
                    partner: partner.clone(),
                    purpose: crate::api::convert::purpose_to_pb(purpose) as i32,
                })
                .await?
                .into_inner();
            if !r.valid {
                println!("{}: INVALID", file.display());
                print_rule_errors(&r.errors);
                anyhow::bail!("the priorities do not validate");
            }
            if json {
                let changes: Vec<_> = r
                    .changes
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "item_id": c.item_id, "kind": c.kind, "procedure": c.procedure,
                            "rank_before": c.rank_before, "rank_after": c.rank_after,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"items": r.items, "current_version": r.current_version, "changes": changes})
                );
            } else {
                println!(
                    "{}: valid; the queue of {partner} holds {} item(s); {} change rank (compared with version {})",
                    file.display(),
                    r.items,
                    r.changes.len(),
                    r.current_version
                );
                for c in &r.changes {
                    println!(
                        "  {:>4} → {:<4} {} {} {}",
                        c.rank_before, c.rank_after, c.kind, c.item_id, c.procedure
                    );
                }
            }
        }
        PrioritiesCommand::Set {
            file,
            author,
            comment,
        } => {
            let r = client
                .set_priorities(pb::SetPrioritiesRequest {
                    text: read(&file)?,
                    author,
                    comment,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            activated(r.version)?;
        }
        PrioritiesCommand::History => {
            let r = client
                .list_priorities_versions(pb::ListPrioritiesVersionsRequest {})
                .await?
                .into_inner();
            print_versions(json, &r.versions, r.active);
        }
        PrioritiesCommand::Rollback {
            to,
            author,
            comment,
        } => {
            let r = client
                .rollback_priorities(pb::RollbackPrioritiesRequest {
                    to_version: to,
                    author,
                    comment,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            activated(r.version)?;
        }
    }
    Ok(())
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    match args.command {
        AdminCommand::Backup {
            config,
            data_dir,
            to,
        } => {
            let mut hub = crate::Config::load(config.as_deref())?;
            if let Some(dir) = data_dir {
                hub.data_dir = dir;
            }
            let manifest = crate::backup::backup(&hub, &to).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&manifest)?);
                return Ok(());
            }
            println!(
                "backup of {} in {}: {} files, database {}{}",
                hub.data_dir.display(),
                to.display(),
                manifest.files.len(),
                manifest.database,
                if manifest.schema_version > 0 {
                    format!(" (schema version {})", manifest.schema_version)
                } else {
                    String::new()
                }
            );
            if !manifest.postgresql.is_empty() {
                println!("{}", manifest.postgresql);
            }
            println!(
                "keep it where the hub's own data is protected: it holds the CA key and the matching key"
            );
            return Ok(());
        }
        AdminCommand::Restore { from, data_dir } => {
            let manifest = crate::backup::restore(&from, &data_dir).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&manifest)?);
                return Ok(());
            }
            println!(
                "restored the backup of {} ({} files) into {}: start the hub with data_dir = \"{}\"",
                manifest.created_at,
                manifest.files.len(),
                data_dir.display(),
                data_dir.display()
            );
            if !manifest.postgresql.is_empty() {
                println!("{}", manifest.postgresql);
            }
            return Ok(());
        }
        AdminCommand::Health => {
            // `--hub http://…` asks the plaintext health port (`health_listen`), which needs no
            // identity; `https://…` the hub itself, with the administrator's.
            let connection = if args.hub.starts_with("http://") {
                tonic::transport::Endpoint::from_shared(args.hub.clone())?
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .connect()
                    .await
                    .with_context(|| format!("is the hub's health port at {}?", args.hub))?
            } else {
                let bundle = super::read_identity(&args.identity, ADMIN_IDENTITY_HINT)?;
                channel(&args.hub, &bundle).await?
            };
            let mut health = tonic_health::pb::health_client::HealthClient::new(connection);
            let status = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await?
                .into_inner()
                .status();
            let name = status.as_str_name();
            if args.json {
                println!("{}", serde_json::json!({ "status": name }));
            } else {
                println!("{name}");
            }
            anyhow::ensure!(
                status == tonic_health::pb::health_check_response::ServingStatus::Serving,
                "the hub at {} is not serving ({name})",
                args.hub
            );
            return Ok(());
        }
        _ => {}
    }
    let bundle = super::read_identity(&args.identity, ADMIN_IDENTITY_HINT)?;
    let mut client = AdminServiceClient::new(channel(&args.hub, &bundle).await?);
    let json = args.json;
    super::set_json(json);
    let cmd = match args.command {
        AdminCommand::Partner(cmd) => cmd,
        other_command => return other(&mut client, json, other_command).await,
    };
    match cmd {
        PartnerCommand::Add {
            kind,
            name,
            territory,
            id,
            out,
            csr,
        } => {
            let kind = PartnerKind::parse(&kind).with_context(|| {
                    format!("unknown kind `{kind}`: communaute_de_communes, mairie, departement, sous_prefecture, association, operateur")
                })?;
            let id = match id {
                Some(id) => id,
                None => PartnerId::from_name(&name)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot make an id from the name: {e}; pass --id")
                    })?
                    .to_string(),
            };
            let (key, csr_pem) = own_or_new_csr(&id, csr.as_deref())?;
            let response = client
                .add_partner(pb::AddPartnerRequest {
                    id: id.clone(),
                    kind: crate::api::convert::partner_kind_to_pb(kind) as i32,
                    name: name.clone(),
                    territory,
                    cog_vintage: 0,
                    csr_pem,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{id}.bundle.pem")));
            write_issued(
                &out,
                key,
                response.certificate_pem,
                response.ca_certificate_pem,
                &format!(
                    "Relais identity of partner `{id}` ({name}).\nGive it to the partner's connector only."
                ),
            )?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "partner": response.partner.as_ref().map(partner_json),
                        "written": out.display().to_string(),
                    }))?
                );
            } else if let Some(p) = &response.partner {
                print_partner(p);
            }
        }
        PartnerCommand::List => {
            let mut token = String::new();
            let mut all = Vec::new();
            if !json {
                println!("{}", partner_header());
            }
            loop {
                let page = client
                    .list_partners(pb::ListPartnersRequest {
                        page_size: 100,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                if json {
                    all.extend(page.partners.iter().map(partner_json));
                } else {
                    page.partners.iter().for_each(print_partner);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if json {
                println!("{}", serde_json::Value::Array(all));
            }
        }
        PartnerCommand::Show { id } => {
            let p = client
                .get_partner(pb::GetPartnerRequest { id })
                .await?
                .into_inner()
                .partner
                .context("no partner in the answer")?;
            if json {
                println!("{}", partner_json(&p));
            } else {
                println!("{}", partner_header());
                print_partner(&p);
                for c in &p.certificates {
                    let state = if c.revoked_at.is_some() {
                        format!("revoked {}", timestamp(&c.revoked_at))
                    } else if c.awaiting_approval {
                        "awaiting an administrator's approval".into()
                    } else {
                        format!("valid until {}", timestamp(&c.not_after))
                    };
                    println!(
                        "  certificate {} serial {} — {state}",
                        c.fingerprint, c.serial
                    );
                }
            }
        }
        PartnerCommand::Suspend { id, reason } => {
            let r = client
                .suspend_partner(pb::SuspendPartnerRequest {
                    id,
                    reason,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.partner.iter().for_each(print_partner);
        }
        PartnerCommand::Resume { id } => {
            let r = client
                .resume_partner(pb::ResumePartnerRequest {
                    id,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            r.partner.iter().for_each(print_partner);
        }
        PartnerCommand::Certificate(CertificateCommand::Issue {
            id,
            out,
            csr,
            retire_previous_after_hours,
        }) => {
            let (key, csr_pem) = own_or_new_csr(&id, csr.as_deref())?;
            let r = client
                .issue_certificate(pb::IssueCertificateRequest {
                    partner_id: id.clone(),
                    csr_pem,
                    retire_previous_after_hours,
                })
                .await?
                .into_inner();
            write_issued(
                &out,
                key,
                r.certificate_pem,
                r.ca_certificate_pem,
                &format!("Relais identity of partner `{id}`."),
            )?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "partner_id": id,
                        "written": out.display().to_string(),
                    })
                );
            }
        }
        PartnerCommand::Certificate(CertificateCommand::Approve { fingerprint }) => {
            let r = client
                .approve_certificate(pb::ApproveCertificateRequest {
                    fingerprint,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if json {
                println!("{}", serde_json::json!({"partner_id": r.partner_id}));
            } else {
                println!("certificate approved (partner {})", r.partner_id);
            }
        }
        PartnerCommand::Certificate(CertificateCommand::Revoke {
            fingerprint,
            reason,
        }) => {
            let r = client
                .revoke_certificate(pb::RevokeCertificateRequest {
                    fingerprint,
                    reason,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if super::json_shown(&r) {
                return Ok(());
            }
            println!(
                "certificate revoked{}",
                if r.partner_id.is_empty() {
                    String::new()
                } else {
                    format!(" (partner {})", r.partner_id)
                }
            );
        }
    }
    Ok(())
}

fn read_password(file: Option<&Path>) -> anyhow::Result<String> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the password from {}", path.display()))?,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line
        }
    };
    let password = text.lines().next().unwrap_or("").to_string();
    anyhow::ensure!(
        !password.is_empty(),
        "no password given: put it in --password-file, or on the first line of standard input"
    );
    Ok(password)
}

fn account_line(a: &pb::ConsoleAccount) -> String {
    let role = pb::ConsoleRole::try_from(a.role)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("CONSOLE_ROLE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let state = if a.disabled_at.is_some() {
        format!("disabled {}", timestamp(&a.disabled_at))
    } else if a.locked_until.is_some() {
        format!("locked until {}", timestamp(&a.locked_until))
    } else {
        "active".into()
    };
    format!("{:<24} {:<15} {:<32} {state}", a.name, role, a.full_name)
}

fn account_json(a: &pb::ConsoleAccount) -> serde_json::Value {
    serde_json::json!({
        "name": a.name,
        "full_name": a.full_name,
        "role": pb::ConsoleRole::try_from(a.role)
            .map(|r| r.as_str_name().trim_start_matches("CONSOLE_ROLE_").to_lowercase())
            .unwrap_or_default(),
        "created_at": timestamp(&a.created_at),
        "disabled_at": timestamp(&a.disabled_at),
        "locked_until": timestamp(&a.locked_until),
        "last_login_at": timestamp(&a.last_login_at),
    })
}

async fn account(
    client: &mut AdminServiceClient<tonic::transport::Channel>,
    json: bool,
    cmd: AccountCommand,
) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::Add {
            name,
            full_name,
            role,
            password_file,
        } => {
            let role = crate::console::account::Role::parse(&role).map_err(anyhow::Error::msg)?;
            let password = read_password(password_file.as_deref())?;
            let r = client
                .add_console_account(pb::AddConsoleAccountRequest {
                    name: name.clone(),
                    full_name,
                    role: role.to_pb() as i32,
                    password,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            if json {
                let mut v = r.account.as_ref().map(account_json).unwrap_or_default();
                v["totp_secret"] = r.totp_secret.clone().into();
                v["totp_uri"] = r.totp_uri.clone().into();
                println!("{v}");
            } else {
                println!("console account `{name}` made ({}).", role.as_str());
                println!(
                    "TOTP secret (shown once; put it in an authenticator application): {}",
                    r.totp_secret
                );
                println!("or as a URI (for a QR code): {}", r.totp_uri);
            }
        }
        AccountCommand::List => {
            let r = client
                .list_console_accounts(pb::ListConsoleAccountsRequest {})
                .await?
                .into_inner();
            if json {
                let list: Vec<_> = r.accounts.iter().map(account_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!("{:<24} {:<15} {:<32} STATE", "NAME", "ROLE", "FULL NAME");
                for a in &r.accounts {
                    println!("{}", account_line(a));
                }
            }
        }
        AccountCommand::Disable { name } => set_disabled(client, json, name, true).await?,
        AccountCommand::Enable { name } => set_disabled(client, json, name, false).await?,
    }
    Ok(())
}

async fn set_disabled(
    client: &mut AdminServiceClient<tonic::transport::Channel>,
    json: bool,
    name: String,
    disabled: bool,
) -> anyhow::Result<()> {
    let r = client
        .set_console_account_disabled(pb::SetConsoleAccountDisabledRequest {
            name,
            disabled,
            request_id: request_id(),
        })
        .await?
        .into_inner();
    if let Some(a) = r.account {
        if json {
            println!("{}", account_json(&a));
        } else {
            println!("{}", account_line(&a));
        }
    }
    Ok(())
}
