//! The console's pages. Each act calls the AdminService in-process under the account's name
//! (the service checks the role and writes the audit); the console's own reads (dashboard,
//! person search, audit search) check the role here and are audited here.

use super::session::{self, Ctx, LoginForm, Posted};
use super::{Console, PendingBundle};
use crate::audit::AuditEntry;
use crate::domain::category::DataCategory;
use crate::domain::clock::paris;
use crate::domain::ids::{LocalId, PartnerId, PersonId};
use crate::domain::partner::PartnerKind;
use crate::domain::{Purpose, Timestamp};
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use relais_proto::v1::{self as pb, admin_service_server::AdminService};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Instant;

type S = State<Arc<Console>>;

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/connexion", get(login_page).post(login))
        .route("/deconnexion", post(logout))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .route("/partenaires", get(partners).post(add_partner))
        .route("/partenaires/paquet/{token}", get(download_bundle))
        .route("/partenaires/{id}", get(partner))
        .route("/partenaires/{id}/suspendre", post(suspend))
        .route("/partenaires/{id}/reprendre", post(resume))
        .route("/partenaires/{id}/certificats", post(issue_certificate))
        .route(
            "/partenaires/{id}/certificats/revoquer",
            post(revoke_certificate),
        )
        .route(
            "/partenaires/{id}/certificats/approuver",
            post(approve_certificate),
        )
        .route("/personnes", get(find_person))
        .route("/personnes/{id}", get(person))
        .route(
            "/personnes/{id}/consentements/{consent}/retirer",
            post(withdraw),
        )
        .route("/personnes/{id}/consentements/{consent}/recu", get(receipt))
        .route(
            "/personnes/{id}/mandats/{mandate}/document",
            get(mandate_document),
        )
        .route("/personnes/{id}/rapport", get(access_report))
        .route("/regles", get(rules))
        .route("/regles/editer", get(rules_editor))
        .route("/regles/valider", post(validate_rules))
        .route("/regles/essai", post(dry_run_rules))
        .route("/regles/activer", post(activate_rules))
        .route("/regles/retour", post(rollback_rules))
        .route("/regles/versions/{version}", get(rules_version))
        .route("/regles/expliquer", post(explain))
        .route("/journal", get(journal))
        .route("/journal/verifier", post(verify_journal))
        .route("/journal/export.csv", get(export_journal))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(bounded))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// A request (its body read included) that takes longer than `REQUEST_TIMEOUT` is answered 408:
/// a client that sends its body slowly holds nothing for long.
async fn bounded(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    // A HEAD would run a page's reads (and their audit) to send nothing: refused.
    if request.method() == axum::http::Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, POST")],
        )
            .into_response();
    }
    match tokio::time::timeout(super::REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "requête trop lente").into_response(),
    }
}

/// Every answer: no caching of personal data, no framing, scripts and styles from the console
/// only (printable documents keep their inline style).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("static/console.js"),
    )
        .into_response()
}

/// What the layout shows of the signed-in account.
pub struct Who {
    pub full_name: String,
    pub role: &'static str,
    pub csrf: String,
    pub partners: bool,
    pub persons: bool,
    pub rules: bool,
    pub audit: bool,
}

/// The frame of every page: title, account, messages.
pub struct Frame {
    pub title: String,
    pub section: &'static str,
    pub who: Option<Who>,
    pub csrf: String,
    pub notice: String,
    pub problem: String,
    pub problem_fields: Vec<String>,
}

impl Frame {
    fn new(ctx: &Ctx, title: impl Into<String>, section: &'static str) -> Self {
        let role = ctx.actor.role;
        Frame {
            title: title.into(),
            section,
            who: Some(Who {
                full_name: ctx.full_name.clone(),
                role: role.label_fr(),
                csrf: ctx.csrf.clone(),
                partners: role.allows("ListPartners"),
                persons: role.allows("FindPerson"),
                rules: role.allows("GetRules"),
                audit: role.allows("SearchAudit"),
            }),
            csrf: ctx.csrf.clone(),
            notice: String::new(),
            problem: String::new(),
            problem_fields: vec![],
        }
    }

    fn anonymous(title: &str) -> Self {
        Frame {
            title: title.into(),
            section: "",
            who: None,
            csrf: String::new(),
            notice: String::new(),
            problem: String::new(),
            problem_fields: vec![],
        }
    }

    fn notice(mut self, text: impl Into<String>) -> Self {
        self.notice = text.into();
        self
    }

    fn problem(mut self, p: Problem) -> Self {
        self.problem = p.message;
        self.problem_fields = p.fields;
        self
    }
}

/// What went wrong, in the hub's words, with each field's reason.
pub struct Problem {
    pub message: String,
    pub fields: Vec<String>,
    pub code: tonic::Code,
}

impl From<tonic::Status> for Problem {
    fn from(s: tonic::Status) -> Self {
        use tonic_types::StatusExt;
        let fields = s
            .get_error_details()
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| format!("{} : {}", v.field, v.description))
                    .collect()
            })
            .unwrap_or_default();
        let lead = match s.code() {
            tonic::Code::InvalidArgument => "Le formulaire n'est pas accepté",
            tonic::Code::NotFound => "Introuvable",
            tonic::Code::PermissionDenied => "Votre rôle ne le permet pas",
            tonic::Code::AlreadyExists => "Existe déjà",
            tonic::Code::FailedPrecondition => "Impossible pour l'instant",
            tonic::Code::Unavailable => "Le hub ne répond pas pour l'instant, réessayez",
            _ => "Le hub a refusé",
        };
        Problem {
            message: format!("{lead} : {}", s.message()),
            fields,
            code: s.code(),
        }
    }
}

fn render<T: Template>(page: T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: a page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "page indisponible").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    frame: Frame,
    paragraphs: Vec<String>,
    pre: String,
    link_href: String,
    link_text: String,
}

fn message(frame: Frame, paragraphs: Vec<String>, link: (&str, &str)) -> MessagePage {
    MessagePage {
        frame,
        paragraphs,
        pre: String::new(),
        link_href: link.0.into(),
        link_text: link.1.into(),
    }
}

/// The answer to an act the account's role does not allow: refused by the server.
pub fn forbidden(ctx: &Ctx, act: &str) -> Response {
    tracing::warn!(account = %ctx.actor.name, act, "console: refused by role");
    let page = message(
        Frame::new(ctx, "Accès refusé", ""),
        vec![format!(
            "Votre rôle ({}) ne permet pas cette action ({act}). Demandez-la à un administrateur.",
            ctx.actor.role.label_fr()
        )],
        ("/", "Revenir au tableau de bord"),
    );
    (StatusCode::FORBIDDEN, render(page)).into_response()
}

/// A page for a refusal of the hub: the status code follows the hub's.
fn refused(ctx: &Ctx, title: &str, problem: Problem, back: (&str, &str)) -> Response {
    let code = match problem.code {
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    (
        code,
        render(message(
            Frame::new(ctx, title, "").problem(problem),
            vec![],
            back,
        )),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        render(message(
            Frame::anonymous("Page introuvable"),
            vec!["Cette adresse ne correspond à aucune page de la console.".into()],
            ("/", "Revenir au tableau de bord"),
        )),
    )
        .into_response()
}

/// A request to the AdminService as the signed-in account.
fn as_account<T>(ctx: &Ctx, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(ctx.actor.clone());
    request
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An entry for a read the console makes itself.
fn entry(console: &Console, ctx: &Ctx, act: &str) -> AuditEntry {
    AuditEntry::new(
        console.api.clock.now(),
        "admin",
        &ctx.actor.name,
        format!("console:{act}"),
    )
}

fn when(t: Option<prost_types::Timestamp>) -> String {
    t.map_or_else(
        || "—".into(),
        |t| {
            paris(Timestamp::from_micros(
                t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000,
            ))
        },
    )
}

fn kind_label(kind: PartnerKind) -> &'static str {
    match kind {
        PartnerKind::CommunauteDeCommunes => "communauté de communes",
        PartnerKind::Mairie => "mairie ou CCAS",
        PartnerKind::Departement => "département",
        PartnerKind::SousPrefecture => "sous-préfecture",
        PartnerKind::Association => "association",
        PartnerKind::Operateur => "opérateur national",
    }
}

fn kind_of_pb(k: i32) -> &'static str {
    crate::api::convert::partner_kind_from_pb(k).map_or("—", kind_label)
}

fn purpose_label(p: Purpose) -> &'static str {
    match p {
        Purpose::Accompagnement => "accompagnement",
        Purpose::Instruction => "instruction d'un dossier",
        Purpose::Orientation => "orientation",
        Purpose::AllerVers => "aller-vers",
        Purpose::PlanAlerte => "plan d'alerte",
        Purpose::Administration => "administration",
        Purpose::Statistique => "statistique",
    }
}

fn status_label(p: &pb::Partner) -> String {
    if p.status == pb::PartnerStatus::Suspended as i32 {
        if p.status_reason.is_empty() {
            "suspendu".into()
        } else {
            format!("suspendu : {}", p.status_reason)
        }
    } else {
        "actif".into()
    }
}

/// Each partner's id and name, for choices and labels (none when the role may not list them).
async fn partner_names(console: &Console, ctx: &Ctx) -> Vec<(String, String)> {
    all_partners(console, ctx)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect()
}

async fn all_partners(console: &Console, ctx: &Ctx) -> Result<Vec<pb::Partner>, Problem> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = console
            .api
            .list_partners(as_account(
                ctx,
                pb::ListPartnersRequest {
                    page_size: 500,
                    page_token: page_token.clone(),
                },
            ))
            .await?
            .into_inner();
        out.extend(r.partners);
        if r.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = r.next_page_token;
    }
}

// ---------------------------------------------------------------------------------------------
// Log-in.

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    frame: Frame,
    login_token: String,
    name: String,
}

fn login_form(problem: Option<String>, name: String) -> Response {
    let token = session::random_token();
    let mut frame = Frame::anonymous("Connexion");
    if let Some(p) = problem {
        frame.problem = p;
    }
    let mut response = render(LoginPage {
        frame,
        login_token: token.clone(),
        name,
    });
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::LOGIN_COOKIE, &token, Some(900)),
    );
    response
}

async fn login_page() -> Response {
    login_form(None, String::new())
}

async fn login(
    State(console): S,
    peer: Option<axum::Extension<super::Peer>>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if let Some(axum::Extension(super::Peer(addr))) = peer
        && !session::attempt_allowed(&console, addr.ip())
    {
        tracing::warn!(%addr, "console: too many log-in attempts from one address");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "300")],
            login_form(
                Some("Trop d'essais de connexion depuis cette adresse : réessayez dans cinq minutes.".into()),
                String::new(),
            ),
        )
            .into_response();
    }
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same(&expected, &form.login_token) {
        return (
            StatusCode::FORBIDDEN,
            login_form(
                Some("Le formulaire de connexion a expiré : recommencez.".into()),
                String::new(),
            ),
        )
            .into_response();
    }
    match session::log_in(&console, &form).await {
        session::Login::Ok(token) => {
            let mut r = Redirect::to("/").into_response();
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                session::set_cookie(session::COOKIE, &token, None),
            );
            h.append(
                header::SET_COOKIE,
                session::set_cookie(session::LOGIN_COOKIE, "", Some(0)),
            );
            r
        }
        session::Login::Refused(why) => (
            StatusCode::UNAUTHORIZED,
            login_form(Some(why), form.name.chars().take(63).collect()),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(State(console): S, posted: Posted<Empty>) -> Response {
    session::log_out(&console, &posted.ctx).await;
    let mut r = Redirect::to("/connexion").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::COOKIE, "", Some(0)),
    );
    r
}

// ---------------------------------------------------------------------------------------------
// Tableau de bord.

pub struct PartnerRow {
    id: String,
    name: String,
    kind: &'static str,
    state: String,
    last_contact: String,
    subscriptions: usize,
    lag: String,
    certificates: usize,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    frame: Frame,
    partners: Vec<PartnerRow>,
    can_open: bool,
    can_audit: bool,
    audit_status: String,
    pending: Vec<PendingRow>,
}

struct PendingRow {
    id: String,
    person: String,
    collector: String,
    categories: String,
    at: String,
}

/// A verification of the audit chain, as the console last made it.
#[derive(Clone)]
pub struct Verification {
    pub intact: bool,
    pub summary: String,
    pub head_seq: u64,
    pub head_hash: String,
    pub at: Timestamp,
}

/// Each partner's subscriptions on this replica and how far behind the head the slowest is.
async fn lags(console: &Console) -> (u64, std::collections::HashMap<String, (usize, u64)>) {
    let head = console.api.store.head_position().await.unwrap_or(0);
    let mut out: std::collections::HashMap<String, (usize, u64)> = Default::default();
    for (partner, cursor) in crate::telemetry::feed_cursors() {
        let e = out.entry(partner).or_default();
        e.0 += 1;
        e.1 = e.1.max(head.saturating_sub(cursor));
    }
    (head, out)
}

fn partner_row(
    console: &Console,
    p: &pb::Partner,
    lags: &std::collections::HashMap<String, (usize, u64)>,
) -> PartnerRow {
    let (subscriptions, behind) = lags.get(&p.id).copied().unwrap_or((0, 0));
    let last_contact = PartnerId::parse(&p.id)
        .ok()
        .and_then(|id| console.api.limits.last_seen(&id))
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(
            || "pas depuis le démarrage".into(),
            |d| paris(Timestamp::from_micros(d.as_micros() as i64)),
        );
    PartnerRow {
        id: p.id.clone(),
        name: p.name.clone(),
        kind: kind_of_pb(p.kind),
        state: status_label(p),
        last_contact,
        subscriptions,
        lag: if subscriptions == 0 {
            "aucun connecteur abonné".into()
        } else if behind == 0 {
            "à jour".into()
        } else {
            format!("{behind} changement(s) en attente")
        },
        certificates: p
            .certificates
            .iter()
            .filter(|c| c.revoked_at.is_none())
            .count(),
    }
}

async fn dashboard(State(console): S, ctx: Ctx) -> Response {
    let can_partners = ctx.actor.role.allows("ListPartners");
    let partners = if can_partners {
        match all_partners(&console, &ctx).await {
            Ok(p) => p,
            Err(p) => return refused(&ctx, "Tableau de bord", p, ("/", "Réessayer")),
        }
    } else {
        vec![]
    };
    let (_, lags) = lags(&console).await;
    let rows = partners
        .iter()
        .map(|p| partner_row(&console, p, &lags))
        .collect();
    let audit_status = if !ctx.actor.role.allows("VerifyAudit") {
        String::new()
    } else {
        match console
        .last_verification
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        Some(v) => format!("{} (vérifié le {}).", v.summary, paris(v.at)),
        None => "La chaîne du journal n'a pas encore été vérifiée depuis le démarrage de cette instance.".into(),
        }
    };
    let mut pending = Vec::new();
    if ctx.actor.role.allows("CountersignConsent") {
        let names: std::collections::HashMap<String, String> = partners
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        if let Ok(consents) = console.api.store.pending_countersignatures(100).await {
            // Each person whose consent is listed has it in their audit.
            let entries: Vec<AuditEntry> = consents
                .iter()
                .map(|c| {
                    let mut e = entry(&console, &ctx, "Dashboard");
                    e.person = Some(c.person);
                    e.records = vec![c.id.to_string()];
                    e.detail = "consent awaiting countersignature listed".into();
                    e
                })
                .collect();
            if console
                .api
                .store
                .record_access(entries, vec![])
                .await
                .is_err()
            {
                return unaudited();
            }
            pending = consents
                .iter()
                .map(|c| PendingRow {
                    id: c.id.to_string(),
                    person: c.person.to_string(),
                    collector: names
                        .get(c.collected_by.as_str())
                        .cloned()
                        .unwrap_or_else(|| c.collected_by.to_string()),
                    categories: c
                        .categories
                        .iter()
                        .map(|c| c.label_fr())
                        .collect::<Vec<_>>()
                        .join(", "),
                    at: paris(c.granted_at),
                })
                .collect();
        }
    }
    render(DashboardPage {
        frame: Frame::new(&ctx, "Tableau de bord", "tableau"),
        partners: rows,
        can_open: ctx.actor.role.allows("GetPartner"),
        can_audit: ctx.actor.role.allows("VerifyAudit"),
        audit_status,
        pending,
    })
}

// ---------------------------------------------------------------------------------------------
// Partenaires.

#[derive(Template)]
#[template(path = "console/partners.html")]
struct PartnersPage {
    frame: Frame,
    partners: Vec<PartnerRow>,
    can_add: bool,
    kinds: Vec<(&'static str, &'static str)>,
}

async fn partners_page(console: &Console, ctx: &Ctx, frame: Frame) -> Response {
    if let Some(r) = ctx.refusal("ListPartners") {
        return r;
    }
    let partners = match all_partners(console, ctx).await {
        Ok(p) => p,
        Err(p) => return refused(ctx, "Partenaires", p, ("/", "Revenir")),
    };
    let (_, lags) = lags(console).await;
    render(PartnersPage {
        frame,
        partners: partners
            .iter()
            .map(|p| partner_row(console, p, &lags))
            .collect(),
        can_add: ctx.actor.role.allows("AddPartner"),
        kinds: PartnerKind::ALL
            .iter()
            .map(|k| (k.as_str(), kind_label(*k)))
            .collect(),
    })
}

async fn partners(State(console): S, ctx: Ctx) -> Response {
    let frame = Frame::new(&ctx, "Partenaires", "partenaires");
    partners_page(&console, &ctx, frame).await
}

#[derive(Deserialize)]
struct AddPartnerForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    territory: String,
}

#[derive(Template)]
#[template(path = "console/bundle.html")]
struct BundlePage {
    frame: Frame,
    awaiting: bool,
    partner: String,
    partner_id: String,
    token: String,
    file_name: String,
}

/// Keeps a new bundle for one download by this session, and shows its link.
fn offer_bundle(console: &Console, ctx: &Ctx, partner: &pb::Partner, pem: String) -> Response {
    let token = session::random_token();
    let file_name = format!("{}.bundle.pem", partner.id);
    console
        .bundles
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            token.clone(),
            PendingBundle {
                session: ctx.token_hash.clone(),
                file_name: file_name.clone(),
                pem,
                made: Instant::now(),
            },
        );
    render(BundlePage {
        frame: Frame::new(ctx, "Paquet du connecteur", "partenaires"),
        awaiting: ctx.actor.role == super::account::Role::Operateur,
        partner: partner.name.clone(),
        partner_id: partner.id.clone(),
        token,
        file_name,
    })
}

fn bundle_text(partner: &str, key_pem: &str, cert_pem: &str, ca_pem: &str) -> String {
    format!(
        "# Relais connector identity of partner `{partner}`: private key, certificate, hub CA.\n# Keep it readable by the connector only (chmod 600).\n{key_pem}{cert_pem}{ca_pem}"
    )
}

async fn add_partner(State(console): S, Posted { ctx, form }: Posted<AddPartnerForm>) -> Response {
    if let Some(r) = ctx.refusal("AddPartner") {
        return r;
    }
    let id = if form.id.trim().is_empty() {
        PartnerId::from_name(&form.name)
            .map(|id| id.to_string())
            .unwrap_or_default()
    } else {
        form.id.trim().to_string()
    };
    let kind = PartnerKind::parse(&form.kind)
        .map_or(0, |k| crate::api::convert::partner_kind_to_pb(k) as i32);
    let (key, csr_pem) = match crate::pki::new_key_and_csr(&id) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "console: making a key");
            return (StatusCode::INTERNAL_SERVER_ERROR, "clé impossible à créer").into_response();
        }
    };
    let answer = console
        .api
        .add_partner(as_account(
            &ctx,
            pb::AddPartnerRequest {
                id,
                kind,
                name: form.name.trim().to_string(),
                territory: form
                    .territory
                    .split([' ', ',', ';'])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                cog_vintage: 0,
                csr_pem,
                request_id: request_id(),
            },
        ))
        .await;
    match answer {
        Ok(r) => {
            let r = r.into_inner();
            let partner = r.partner.unwrap_or_default();
            let pem = bundle_text(
                &partner.id,
                &key.serialize_pem(),
                &r.certificate_pem,
                &r.ca_certificate_pem,
            );
            offer_bundle(&console, &ctx, &partner, pem)
        }
        Err(status) => {
            let frame = Frame::new(&ctx, "Partenaires", "partenaires").problem(status.into());
            let mut r = partners_page(&console, &ctx, frame).await;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    }
}

async fn download_bundle(State(console): S, ctx: Ctx, Path(token): Path<String>) -> Response {
    // (A HEAD — a link checker, a prefetch — is refused by `bounded`: it does not use it up.)
    let taken = {
        let mut bundles = console.bundles.lock().unwrap_or_else(|e| e.into_inner());
        match bundles.get(&token) {
            Some(b) if b.session == ctx.token_hash => bundles.remove(&token),
            _ => None,
        }
    };
    match taken {
        Some(b) if b.made.elapsed() < std::time::Duration::from_secs(600) => {
            let mut e = entry(&console, &ctx, "DownloadBundle");
            e.detail = format!("connector bundle {} downloaded", b.file_name);
            if console.api.store.record_access(vec![e], vec![]).await.is_err() {
                return unaudited();
            }
            (
                [
                    (header::CONTENT_TYPE, "application/x-pem-file".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}\"", b.file_name),
                    ),
                ],
                b.pem,
            )
                .into_response()
        }
        _ => (
            StatusCode::GONE,
            render(message(
                Frame::new(&ctx, "Paquet déjà téléchargé", "partenaires"),
                vec!["Ce paquet a déjà été téléchargé, ou il a expiré (dix minutes). Le hub n'en garde pas la clé : émettez un nouveau certificat depuis la fiche du partenaire.".into()],
                ("/partenaires", "Revenir aux partenaires"),
            )),
        )
            .into_response(),
    }
}

struct CertRow {
    fingerprint: String,
    short: String,
    issued: String,
    until: String,
    state: String,
    revocable: bool,
    awaiting: bool,
}

#[derive(Template)]
#[template(path = "console/partner.html")]
struct PartnerPage {
    frame: Frame,
    id: String,
    kind: &'static str,
    territory: String,
    state: String,
    last_contact: String,
    lag: String,
    suspended: bool,
    certificates: Vec<CertRow>,
    can_change: bool,
    can_approve: bool,
}

async fn partner_page(
    console: &Console,
    ctx: &Ctx,
    id: &str,
    notice: Option<String>,
    problem: Option<Problem>,
) -> Response {
    if let Some(r) = ctx.refusal("GetPartner") {
        return r;
    }
    let p = match console
        .api
        .get_partner(as_account(
            ctx,
            pb::GetPartnerRequest { id: id.to_string() },
        ))
        .await
    {
        Ok(r) => r.into_inner().partner.unwrap_or_default(),
        Err(s) => {
            return refused(
                ctx,
                "Partenaire",
                s.into(),
                ("/partenaires", "Revenir aux partenaires"),
            );
        }
    };
    let (_, lags) = lags(console).await;
    let row = partner_row(console, &p, &lags);
    let now = console.api.clock.now().micros() / 1_000_000;
    let mut frame = Frame::new(ctx, p.name.clone(), "partenaires");
    if let Some(n) = notice {
        frame = frame.notice(n);
    }
    if let Some(pr) = problem {
        frame = frame.problem(pr);
    }
    render(PartnerPage {
        frame,
        id: p.id.clone(),
        kind: kind_of_pb(p.kind),
        territory: p.territory.join(", "),
        state: status_label(&p),
        last_contact: row.last_contact,
        lag: if row.subscriptions == 0 {
            row.lag
        } else {
            format!("{} abonnement(s) : {}", row.subscriptions, row.lag)
        },
        suspended: p.status == pb::PartnerStatus::Suspended as i32,
        certificates: p
            .certificates
            .iter()
            .map(|c| {
                let expired = c.not_after.as_ref().is_some_and(|t| t.seconds <= now);
                CertRow {
                    fingerprint: c.fingerprint.clone(),
                    short: c.fingerprint.chars().take(16).collect(),
                    issued: when(c.issued_at),
                    until: when(c.not_after),
                    awaiting: c.awaiting_approval && c.revoked_at.is_none(),
                    state: if c.awaiting_approval && c.revoked_at.is_none() {
                        "en attente de l'approbation d'un administrateur (refusé d'ici là)".into()
                    } else if c.revoked_at.is_some() {
                        format!(
                            "révoqué le {} ({})",
                            when(c.revoked_at),
                            c.revocation_reason
                        )
                    } else if expired {
                        "expiré".into()
                    } else {
                        "en cours".into()
                    },
                    revocable: c.revoked_at.is_none() && !expired,
                }
            })
            .collect(),
        can_change: ctx.actor.role.allows("SuspendPartner"),
        can_approve: ctx.actor.role.allows("ApproveCertificate"),
    })
}

/// The partner's page after an act: its outcome above, as a notice or the hub's refusal.
async fn after_act(
    console: &Console,
    ctx: &Ctx,
    id: &str,
    done: Result<(), tonic::Status>,
    notice: &str,
) -> Response {
    match done {
        Ok(()) => partner_page(console, ctx, id, Some(notice.into()), None).await,
        Err(s) => partner_page(console, ctx, id, None, Some(s.into())).await,
    }
}

async fn partner(State(console): S, ctx: Ctx, Path(id): Path<String>) -> Response {
    partner_page(&console, &ctx, &id, None, None).await
}

#[derive(Deserialize)]
struct ReasonForm {
    #[serde(default)]
    reason: String,
}

async fn suspend(
    State(console): S,
    Path(id): Path<String>,
    Posted { ctx, form }: Posted<ReasonForm>,
) -> Response {
    if let Some(r) = ctx.refusal("SuspendPartner") {
        return r;
    }
    let r = console
        .api
        .suspend_partner(as_account(
            &ctx,
            pb::SuspendPartnerRequest {
                id: id.clone(),
                reason: form.reason,
                request_id: request_id(),
            },
        ))
        .await;
    after_act(
        &console,
        &ctx,
        &id,
        r.map(|_| ()),
        "Partenaire suspendu : ses appels sont refusés et ses abonnements fermés.",
    )
    .await
}

async fn resume(
    State(console): S,
    Path(id): Path<String>,
    Posted { ctx, .. }: Posted<Empty>,
) -> Response {
    if let Some(r) = ctx.refusal("ResumePartner") {
        return r;
    }
    let r = console
        .api
        .resume_partner(as_account(
            &ctx,
            pb::ResumePartnerRequest {
                id: id.clone(),
                request_id: request_id(),
            },
        ))
        .await;
    after_act(
        &console,
        &ctx,
        &id,
        r.map(|_| ()),
        "Le partenaire peut de nouveau échanger avec le hub.",
    )
    .await
}

async fn issue_certificate(
    State(console): S,
    Path(id): Path<String>,
    Posted { ctx, .. }: Posted<Empty>,
) -> Response {
    if let Some(r) = ctx.refusal("IssueCertificate") {
        return r;
    }
    let (key, csr_pem) = match crate::pki::new_key_and_csr(&id) {
        Ok(k) => k,
        Err(_) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "clé impossible à créer").into_response();
        }
    };
    let r = console
        .api
        .issue_certificate(as_account(
            &ctx,
            pb::IssueCertificateRequest {
                partner_id: id.clone(),
                csr_pem,
                retire_previous_after_hours: 0,
            },
        ))
        .await;
    match r {
        Ok(r) => {
            let r = r.into_inner();
            let partner = match console
                .api
                .get_partner(as_account(&ctx, pb::GetPartnerRequest { id: id.clone() }))
                .await
            {
                Ok(p) => p.into_inner().partner.unwrap_or_default(),
                Err(s) => {
                    return refused(&ctx, "Partenaire", s.into(), ("/partenaires", "Revenir"));
                }
            };
            let pem = bundle_text(
                &id,
                &key.serialize_pem(),
                &r.certificate_pem,
                &r.ca_certificate_pem,
            );
            offer_bundle(&console, &ctx, &partner, pem)
        }
        Err(s) => partner_page(&console, &ctx, &id, None, Some(s.into())).await,
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    reason: String,
}

async fn approve_certificate(
    State(console): S,
    Path(id): Path<String>,
    Posted { ctx, form }: Posted<RevokeForm>,
) -> Response {
    if let Some(r) = ctx.refusal("ApproveCertificate") {
        return r;
    }
    let r = console
        .api
        .approve_certificate(as_account(
            &ctx,
            pb::ApproveCertificateRequest {
                fingerprint: form.fingerprint,
                request_id: request_id(),
            },
        ))
        .await;
    match r {
        Ok(r) if r.get_ref().partner_id == id => {
            partner_page(
                &console,
                &ctx,
                &id,
                Some("Certificat approuvé : il est accepté dès maintenant.".into()),
                None,
            )
            .await
        }
        Ok(_) => refused(
            &ctx,
            "Partenaire",
            Problem {
                message: "Ce certificat n'est pas un certificat de ce partenaire.".into(),
                fields: vec![],
                code: tonic::Code::NotFound,
            },
            ("/partenaires", "Revenir"),
        ),
        Err(s) => partner_page(&console, &ctx, &id, None, Some(s.into())).await,
    }
}

async fn revoke_certificate(
    State(console): S,
    Path(id): Path<String>,
    Posted { ctx, form }: Posted<RevokeForm>,
) -> Response {
    if let Some(r) = ctx.refusal("RevokeCertificate") {
        return r;
    }
    // Only a certificate of this partner: the form names the partner, the fingerprint must be
    // one of its own (never an administrator's).
    let own = console
        .api
        .get_partner(as_account(&ctx, pb::GetPartnerRequest { id: id.clone() }))
        .await
        .map(|p| {
            p.into_inner().partner.is_some_and(|p| {
                p.certificates
                    .iter()
                    .any(|c| c.fingerprint == form.fingerprint)
            })
        });
    match own {
        Ok(true) => {}
        Ok(false) => {
            let p = Problem {
                message: "Ce certificat n'est pas un certificat de ce partenaire.".into(),
                fields: vec![],
                code: tonic::Code::NotFound,
            };
            return partner_page(&console, &ctx, &id, None, Some(p)).await;
        }
        Err(s) => return refused(&ctx, "Partenaire", s.into(), ("/partenaires", "Revenir")),
    }
    let r = console
        .api
        .revoke_certificate(as_account(
            &ctx,
            pb::RevokeCertificateRequest {
                fingerprint: form.fingerprint,
                reason: form.reason,
                request_id: request_id(),
            },
        ))
        .await;
    after_act(
        &console,
        &ctx,
        &id,
        r.map(|_| ()),
        "Certificat révoqué : il est refusé dès maintenant.",
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Une personne.

#[derive(Deserialize, Default)]
struct FindQuery {
    #[serde(default)]
    id: String,
    #[serde(default)]
    partenaire: String,
    #[serde(default)]
    local: String,
}

#[derive(Template)]
#[template(path = "console/person_find.html")]
struct FindPage {
    frame: Frame,
    id: String,
    partner: String,
    local: String,
    partners: Vec<(String, String)>,
}

async fn find_person(State(console): S, ctx: Ctx, Query(q): Query<FindQuery>) -> Response {
    if let Some(r) = ctx.refusal("FindPerson") {
        return r;
    }
    let mut frame = Frame::new(&ctx, "Une personne", "personnes");
    if let Some(prefix) = crate::documents::reference_prefix(&q.id) {
        // The short reference the person's documents print.
        let found = console.api.store.persons_by_reference(&prefix, 2).await;
        let mut e = entry(&console, &ctx, "FindPerson");
        e.detail = format!("looked up the reference {prefix}");
        if let Ok([person]) = found.as_deref() {
            e.person = Some(*person);
        }
        if console
            .api
            .store
            .record_access(vec![e], vec![])
            .await
            .is_err()
        {
            return unaudited();
        }
        match found.as_deref() {
            Ok([person]) => {
                return Redirect::to(&format!("/personnes/{person}")).into_response();
            }
            Ok([]) => frame.problem = "Aucune personne n'a cette référence.".into(),
            Ok(_) => {
                frame.problem = "Plusieurs personnes ont cette référence : cherchez par \
                                 l'identifiant complet ou par l'identifiant d'un partenaire."
                    .into()
            }
            Err(e) => {
                tracing::warn!(error = %e, "looking up a reference failed");
                frame.problem = "La recherche n'a pas abouti ; réessayez.".into();
            }
        }
    } else if !q.id.trim().is_empty() {
        match PersonId::parse(q.id.trim()) {
            Ok(id) => return Redirect::to(&format!("/personnes/{id}")).into_response(),
            Err(e) => {
                frame.problem = format!("Identifiant du hub invalide : {e}");
            }
        }
    } else if !q.local.trim().is_empty() {
        let found = match (
            PartnerId::parse(&q.partenaire),
            LocalId::parse(q.local.trim()),
        ) {
            (Ok(partner), Ok(local)) => {
                let found = console.api.store.person_by_local_id(&partner, &local).await;
                let mut e = entry(&console, &ctx, "FindPerson");
                e.detail = format!("looked up a local id of {partner}");
                if let Ok(Some(person)) = &found {
                    e.person = Some(*person);
                }
                if console
                    .api
                    .store
                    .record_access(vec![e], vec![])
                    .await
                    .is_err()
                {
                    return unaudited();
                }
                found.ok().flatten()
            }
            (Err(e), _) => {
                frame.problem = format!("Partenaire invalide : {e}");
                None
            }
            (_, Err(e)) => {
                frame.problem = format!("Identifiant local invalide : {e}");
                None
            }
        };
        match found {
            Some(person) => return Redirect::to(&format!("/personnes/{person}")).into_response(),
            None if frame.problem.is_empty() => {
                frame.problem =
                    "Aucune personne n'est liée à cet identifiant chez ce partenaire.".into();
            }
            None => {}
        }
    }
    render(FindPage {
        frame,
        id: q.id,
        partner: q.partenaire,
        local: q.local,
        partners: partner_names(&console, &ctx).await,
    })
}

struct ConsentView {
    id: String,
    state: String,
    grantee: String,
    categories: String,
    purposes: String,
    collector: String,
    granted: String,
    expires: String,
    history: Vec<String>,
    withdrawable: bool,
}

struct MandateView {
    id: String,
    state: String,
    holder: String,
    themes: String,
    granted: String,
    expires: String,
    history: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/person.html")]
struct PersonPage {
    frame: Frame,
    person: String,
    consents: Vec<ConsentView>,
    mandates: Vec<MandateView>,
    can_withdraw: bool,
}

fn state_label(s: i32) -> &'static str {
    match pb::RecordState::try_from(s) {
        Ok(pb::RecordState::Granted) => "en vigueur",
        Ok(pb::RecordState::Expired) => "expiré",
        Ok(pb::RecordState::Withdrawn) => "retiré",
        Ok(pb::RecordState::Pending) => "en attente de contreseing",
        _ => "—",
    }
}

fn history(h: &[pb::StatusChange]) -> Vec<String> {
    h.iter()
        .map(|c| {
            let mut s = format!("{} — {}", when(c.at), state_label(c.state));
            if !c.by.is_empty() {
                s.push_str(&format!(", par {}", c.by));
                if !c.agent.is_empty() {
                    s.push_str(&format!(" ({})", c.agent));
                }
            }
            if !c.channel.is_empty() {
                s.push_str(&format!(", {}", c.channel));
            }
            s
        })
        .collect()
}

async fn person_page(console: &Console, ctx: &Ctx, id: &str, notice: Option<String>) -> Response {
    if let Some(r) = ctx.refusal("ListPersonConsents") {
        return r;
    }
    let r = match console
        .api
        .list_person_consents(as_account(
            ctx,
            pb::ListPersonConsentsRequest {
                person_id: id.to_string(),
            },
        ))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => {
            return refused(
                ctx,
                "Une personne",
                s.into(),
                ("/personnes", "Chercher une autre personne"),
            );
        }
    };
    let names: std::collections::HashMap<String, String> =
        partner_names(console, ctx).await.into_iter().collect();
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let consents = r
        .consents
        .iter()
        .map(|c| ConsentView {
            id: c.id.clone(),
            state: state_label(c.state).into(),
            grantee: match c.grantee.as_ref().and_then(|g| g.grantee.as_ref()) {
                Some(pb::grantee::Grantee::Partner(p)) => name(p),
                Some(pb::grantee::Grantee::Kind(k)) => {
                    format!("les partenaires de type {}", kind_of_pb(*k))
                }
                Some(pb::grantee::Grantee::Agent(a)) => {
                    format!("{} (agent {})", name(&a.partner), a.agent)
                }
                None => "—".into(),
            },
            categories: c
                .categories
                .iter()
                .map(|x| {
                    DataCategory::parse(x).map_or_else(|_| x.clone(), |c| c.label_fr().to_string())
                })
                .collect::<Vec<_>>()
                .join(", "),
            purposes: c
                .purposes
                .iter()
                .map(|p| crate::api::convert::purpose_from_pb(*p).map_or("—", purpose_label))
                .collect::<Vec<_>>()
                .join(", "),
            collector: name(&c.collected_by_partner),
            granted: when(c.granted_at),
            expires: if c.expires_at.is_some() {
                when(c.expires_at)
            } else {
                "jusqu'au retrait".into()
            },
            history: history(&c.history),
            withdrawable: c.state == pb::RecordState::Granted as i32
                || c.state == pb::RecordState::Pending as i32,
        })
        .collect();
    let mandates = r
        .mandates
        .iter()
        .map(|m| MandateView {
            id: m.id.clone(),
            state: state_label(m.state).into(),
            holder: format!("{} (agent {})", name(&m.partner), m.agent),
            themes: m.themes.join(", "),
            granted: when(m.granted_at),
            expires: if m.expires_at.is_some() {
                when(m.expires_at)
            } else {
                "—".into()
            },
            history: history(&m.history),
        })
        .collect();
    let mut frame = Frame::new(ctx, "Une personne", "personnes");
    if let Some(n) = notice {
        frame = frame.notice(n);
    }
    render(PersonPage {
        frame,
        person: id.to_string(),
        consents,
        mandates,
        can_withdraw: ctx.actor.role.allows("WithdrawPersonConsent"),
    })
}

async fn person(State(console): S, ctx: Ctx, Path(id): Path<String>) -> Response {
    person_page(&console, &ctx, &id, None).await
}

#[derive(Deserialize)]
struct WithdrawForm {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    note: String,
}

async fn withdraw(
    State(console): S,
    Path((id, consent)): Path<(String, String)>,
    Posted { ctx, form }: Posted<WithdrawForm>,
) -> Response {
    if let Some(r) = ctx.refusal("WithdrawPersonConsent") {
        return r;
    }
    // The consent must be this person's: a form cannot withdraw another person's record.
    let mine = console
        .api
        .list_person_consents(as_account(
            &ctx,
            pb::ListPersonConsentsRequest {
                person_id: id.clone(),
            },
        ))
        .await
        .map(|r| r.into_inner().consents.iter().any(|c| c.id == consent));
    match mine {
        Ok(true) => {}
        Ok(false) => {
            return refused(
                &ctx,
                "Retrait",
                Problem {
                    message: "Ce consentement n'est pas celui de cette personne.".into(),
                    fields: vec![],
                    code: tonic::Code::NotFound,
                },
                ("/personnes", "Revenir"),
            );
        }
        Err(s) => return refused(&ctx, "Retrait", s.into(), ("/personnes", "Revenir")),
    }
    let r = console
        .api
        .withdraw_person_consent(as_account(
            &ctx,
            pb::WithdrawPersonConsentRequest {
                consent_id: consent.clone(),
                channel: form.channel,
                note: form.note,
                request_id: request_id(),
            },
        ))
        .await;
    match r {
        Ok(r) => {
            let told = r.into_inner().redacted_partners;
            let notice = if told.is_empty() {
                "Consentement retiré. Aucun partenaire n'avait reçu de données à ce titre."
                    .to_string()
            } else {
                format!(
                    "Consentement retiré. Les partenaires qui avaient reçu des données à ce titre doivent les effacer ; le hub le leur a signifié : {}.",
                    told.join(", ")
                )
            };
            person_page(&console, &ctx, &id, Some(notice)).await
        }
        Err(s) => refused(&ctx, "Retrait", s.into(), ("/personnes", "Revenir")),
    }
}

/// The answer when the audit could not be written: nothing is shown.
fn unaudited() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "Le journal n'a pas pu être écrit : rien n'est montré. Réessayez dans un moment.",
    )
        .into_response()
}

/// A printable document, as the hub produced it (its own inline style).
fn document(html: String) -> Response {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        )],
        Html(html),
    )
        .into_response()
}

/// Audits a document printed for `person` (nothing is shown when the entry cannot be
/// written): `Some` answer when it could not.
async fn printed(
    console: &Console,
    ctx: &Ctx,
    act: &str,
    person: PersonId,
    record: String,
    detail: &str,
) -> Option<Response> {
    let mut e = entry(console, ctx, act);
    e.person = Some(person);
    e.records = vec![record];
    e.detail = detail.into();
    match console.api.store.record_access(vec![e], vec![]).await {
        Ok(_) => None,
        Err(_) => Some(unaudited()),
    }
}

/// The mandate as the person signs it, to print again (a lost copy, a second signature).
async fn mandate_document(
    State(console): S,
    ctx: Ctx,
    Path((id, mandate)): Path<(String, String)>,
) -> Response {
    if let Some(r) = ctx.refusal("GetMandateDocument") {
        return r;
    }
    let (Ok(person), Ok(mandate_id)) = (
        PersonId::parse(&id),
        crate::domain::consent::MandateId::parse(&mandate),
    ) else {
        return not_found().await;
    };
    let found = console
        .api
        .store
        .get_mandate(mandate_id)
        .await
        .ok()
        .flatten();
    let Some(m) = found.filter(|m| m.person == person) else {
        return not_found().await;
    };
    if let Some(refused) = printed(
        &console,
        &ctx,
        "GetMandateDocument",
        person,
        format!("mandate:{}", m.id),
        "mandate printed for the person",
    )
    .await
    {
        return refused;
    }
    let names = console.api.partner_names().await.unwrap_or_default();
    let (_, html) = crate::documents::mandate(
        &m,
        &names,
        &console.api.settings.territory,
        console.api.clock.now(),
    );
    document(html)
}

async fn receipt(
    State(console): S,
    ctx: Ctx,
    Path((id, consent)): Path<(String, String)>,
) -> Response {
    if let Some(r) = ctx.refusal("GetConsentReceipt") {
        return r;
    }
    let (Ok(person), Ok(consent_id)) = (
        PersonId::parse(&id),
        crate::domain::consent::ConsentId::parse(&consent),
    ) else {
        return not_found().await;
    };
    let found = console
        .api
        .store
        .get_consent(consent_id)
        .await
        .ok()
        .flatten();
    let Some(c) = found.filter(|c| c.person == person) else {
        return not_found().await;
    };
    if let Some(refused) = printed(
        &console,
        &ctx,
        "GetConsentReceipt",
        person,
        c.id.to_string(),
        "consent receipt printed for the person",
    )
    .await
    {
        return refused;
    }
    let names = console.api.partner_names().await.unwrap_or_default();
    let (_, html) = crate::documents::consent_receipt(
        &c,
        &names,
        &console.api.settings.territory,
        console.api.clock.now(),
    );
    document(html)
}

async fn access_report(State(console): S, ctx: Ctx, Path(id): Path<String>) -> Response {
    if let Some(r) = ctx.refusal("GetAccessReport") {
        return r;
    }
    match console
        .api
        .get_access_report(as_account(
            &ctx,
            pb::GetAccessReportRequest { person_id: id },
        ))
        .await
    {
        Ok(r) => document(r.into_inner().html),
        Err(s) => refused(&ctx, "Rapport d'accès", s.into(), ("/personnes", "Revenir")),
    }
}

// ---------------------------------------------------------------------------------------------
// Règles d'accès.

struct VersionRow {
    version: i64,
    at: String,
    author: String,
    comment: String,
}

#[derive(Template)]
#[template(path = "console/rules.html")]
struct RulesPage {
    frame: Frame,
    version: i64,
    version_note: String,
    rules: Vec<crate::policy::engine::RuleSummary>,
    versions: Vec<VersionRow>,
    can_edit: bool,
    partners: Vec<(String, String)>,
    categories: Vec<(&'static str, &'static str)>,
    purposes: Vec<(&'static str, &'static str)>,
    explanation: Vec<String>,
}

async fn rules_page(
    console: &Console,
    ctx: &Ctx,
    frame: Frame,
    explanation: Vec<String>,
) -> Response {
    if let Some(r) = ctx.refusal("GetRules") {
        return r;
    }
    let versions = match console
        .api
        .list_rules_versions(as_account(ctx, pb::ListRulesVersionsRequest {}))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(ctx, "Règles d'accès", s.into(), ("/", "Revenir")),
    };
    let active = console.api.gate.engine.active();
    let note = versions
        .versions
        .iter()
        .find(|v| v.version == versions.active)
        .map_or_else(
            || "les règles par défaut du hub".to_string(),
            |v| {
                format!(
                    "par {}, le {} : {}",
                    v.author,
                    when(v.created_at),
                    v.comment
                )
            },
        );
    render(RulesPage {
        frame,
        version: versions.active,
        version_note: note,
        rules: active.summaries(),
        versions: versions
            .versions
            .iter()
            .rev()
            .map(|v| VersionRow {
                version: v.version,
                at: when(v.created_at),
                author: v.author.clone(),
                comment: v.comment.clone(),
            })
            .collect(),
        can_edit: ctx.actor.role.allows("SetRules"),
        partners: partner_names(console, ctx).await,
        categories: DataCategory::ALL
            .iter()
            .map(|c| (c.as_str(), c.label_fr()))
            .collect(),
        purposes: Purpose::ALL
            .iter()
            .map(|p| (p.as_str(), purpose_label(*p)))
            .collect(),
        explanation,
    })
}

async fn rules(State(console): S, ctx: Ctx) -> Response {
    let frame = Frame::new(&ctx, "Règles d'accès", "regles");
    rules_page(&console, &ctx, frame, vec![]).await
}

struct DryRunView {
    summary: String,
    rows: Vec<DryRunRow>,
}

struct DryRunRow {
    partner: String,
    category: String,
    purpose: &'static str,
    gained: i32,
    lost: i32,
}

#[derive(Template)]
#[template(path = "console/rules_edit.html")]
struct EditorPage {
    frame: Frame,
    text: String,
    comment: String,
    checked: bool,
    errors: Vec<String>,
    dry_run: Option<DryRunView>,
}

fn rule_error_fr(e: &pb::RuleError) -> String {
    let place = if e.line > 0 {
        format!("ligne {}, colonne {}", e.line, e.column)
    } else if !e.rule.is_empty() {
        format!("règle {}", e.rule)
    } else {
        "texte".into()
    };
    format!("{place} : {}", e.message)
}

async fn rules_editor(State(console): S, ctx: Ctx) -> Response {
    // Refused by the server for a role that may not change the rules, whatever the menu shows.
    if let Some(r) = ctx.refusal("SetRules") {
        return r;
    }
    let text = console.api.gate.engine.active().text.clone();
    render(EditorPage {
        frame: Frame::new(&ctx, "Modifier les règles d'accès", "regles"),
        text,
        comment: String::new(),
        checked: false,
        errors: vec![],
        dry_run: None,
    })
}

#[derive(Deserialize)]
struct RulesForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    comment: String,
}

#[derive(serde::Serialize)]
struct Validation {
    valid: bool,
    errors: Vec<String>,
}

async fn validate_rules(State(console): S, Posted { ctx, form }: Posted<RulesForm>) -> Response {
    if let Some(r) = ctx.refusal("ValidateRules") {
        return r;
    }
    match console
        .api
        .validate_rules(as_account(
            &ctx,
            pb::ValidateRulesRequest { text: form.text },
        ))
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            axum::Json(Validation {
                valid: r.valid,
                errors: r.errors.iter().map(rule_error_fr).collect(),
            })
            .into_response()
        }
        Err(s) => (StatusCode::BAD_REQUEST, s.message().to_string()).into_response(),
    }
}

async fn dry_run_rules(State(console): S, Posted { ctx, form }: Posted<RulesForm>) -> Response {
    if let Some(r) = ctx.refusal("DryRunRules") {
        return r;
    }
    let r = console
        .api
        .dry_run_rules(as_account(
            &ctx,
            pb::DryRunRulesRequest {
                text: form.text.clone(),
                max_persons_per_partner: 0,
            },
        ))
        .await;
    let mut page = EditorPage {
        frame: Frame::new(&ctx, "Modifier les règles d'accès", "regles"),
        text: form.text,
        comment: form.comment,
        checked: true,
        errors: vec![],
        dry_run: None,
    };
    match r {
        Ok(r) => {
            let r = r.into_inner();
            page.errors = r.errors.iter().map(rule_error_fr).collect();
            if r.valid {
                let names: std::collections::HashMap<String, String> =
                    partner_names(&console, &ctx).await.into_iter().collect();
                page.dry_run = Some(DryRunView {
                    summary: if r.changes.is_empty() {
                        format!(
                            "Sur {} personnes liées aux partenaires, ces règles ne changent aucun accès.",
                            r.persons_considered
                        )
                    } else {
                        format!(
                            "Sur {} personnes liées aux partenaires{}, ces règles changent les accès suivants.",
                            r.persons_considered,
                            if r.truncated {
                                " (les 1 000 premières de chaque partenaire)"
                            } else {
                                ""
                            }
                        )
                    },
                    rows: r
                        .changes
                        .iter()
                        .map(|c| DryRunRow {
                            partner: names
                                .get(&c.partner)
                                .cloned()
                                .unwrap_or_else(|| c.partner.clone()),
                            category: DataCategory::parse(&c.category)
                                .map_or_else(|_| c.category.clone(), |x| x.label_fr().to_string()),
                            purpose: crate::api::convert::purpose_from_pb(c.purpose)
                                .map_or("—", purpose_label),
                            gained: c.gained,
                            lost: c.lost,
                        })
                        .collect(),
                });
            }
            let status = if r.valid {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (status, render(page)).into_response()
        }
        Err(s) => {
            page.frame = page.frame.problem(s.into());
            (StatusCode::UNPROCESSABLE_ENTITY, render(page)).into_response()
        }
    }
}

async fn activate_rules(State(console): S, Posted { ctx, form }: Posted<RulesForm>) -> Response {
    if let Some(r) = ctx.refusal("SetRules") {
        return r;
    }
    let r = console
        .api
        .set_rules(as_account(
            &ctx,
            pb::SetRulesRequest {
                text: form.text.clone(),
                author: ctx.full_name.clone(),
                comment: form.comment.clone(),
                request_id: request_id(),
            },
        ))
        .await;
    match r {
        Ok(r) => {
            let v = r.into_inner().version.unwrap_or_default();
            let frame = Frame::new(&ctx, "Règles d'accès", "regles")
                .notice(format!("Version {} en vigueur dès maintenant.", v.version));
            rules_page(&console, &ctx, frame, vec![]).await
        }
        Err(s) => {
            let problem: Problem = s.into();
            let page = EditorPage {
                frame: Frame::new(&ctx, "Modifier les règles d'accès", "regles").problem(problem),
                text: form.text,
                comment: form.comment,
                checked: false,
                errors: vec![],
                dry_run: None,
            };
            (StatusCode::UNPROCESSABLE_ENTITY, render(page)).into_response()
        }
    }
}

#[derive(Deserialize)]
struct RollbackForm {
    #[serde(default)]
    version: i64,
    #[serde(default)]
    comment: String,
}

async fn rollback_rules(State(console): S, Posted { ctx, form }: Posted<RollbackForm>) -> Response {
    if let Some(r) = ctx.refusal("RollbackRules") {
        return r;
    }
    let r = console
        .api
        .rollback_rules(as_account(
            &ctx,
            pb::RollbackRulesRequest {
                to_version: form.version,
                author: ctx.full_name.clone(),
                comment: form.comment,
                request_id: request_id(),
            },
        ))
        .await;
    let frame = Frame::new(&ctx, "Règles d'accès", "regles");
    let frame = match r {
        Ok(r) => frame.notice(format!(
            "Le texte de la version {} est de nouveau en vigueur, comme version {}.",
            form.version,
            r.into_inner().version.unwrap_or_default().version
        )),
        Err(s) => frame.problem(s.into()),
    };
    rules_page(&console, &ctx, frame, vec![]).await
}

struct DiffLine {
    class: &'static str,
    mark: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "console/rules_version.html")]
struct VersionPage {
    frame: Frame,
    summary: String,
    lines: Vec<DiffLine>,
}

/// The lines removed and added between two texts (longest common subsequence), with a few
/// unchanged lines around each change.
fn diff(before: &str, after: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let (n, m) = (a.len(), b.len());
    // The table below takes n × m cells: past a bound (texts stored before the length limit),
    // the lines each text has that the other has not, in linear time.
    if n.saturating_mul(m) > 4_000_000 {
        let mut left: std::collections::HashMap<&str, usize> = Default::default();
        for l in &a {
            *left.entry(l).or_default() += 1;
        }
        let mut added = Vec::new();
        for l in &b {
            match left.get_mut(l) {
                Some(k) if *k > 0 => *k -= 1,
                _ => added.push(*l),
            }
        }
        let mut removed: Vec<&str> = Vec::new();
        for l in &a {
            if let Some(k) = left.get_mut(l)
                && *k > 0
            {
                *k -= 1;
                removed.push(l);
            }
        }
        return removed
            .into_iter()
            .map(|t| DiffLine {
                class: "retire",
                mark: "− retirée",
                text: t.to_string(),
            })
            .chain(added.into_iter().map(|t| DiffLine {
                class: "ajoute",
                mark: "+ ajoutée",
                text: t.to_string(),
            }))
            .collect();
    }
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut all = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            all.push(DiffLine {
                class: "",
                mark: "",
                text: a[i].to_string(),
            });
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            all.push(DiffLine {
                class: "ajoute",
                mark: "+ ajoutée",
                text: b[j].to_string(),
            });
            j += 1;
        } else {
            all.push(DiffLine {
                class: "retire",
                mark: "− retirée",
                text: a[i].to_string(),
            });
            i += 1;
        }
    }
    // Unchanged lines more than two away from any change are left out.
    let changed: Vec<bool> = all.iter().map(|l| !l.class.is_empty()).collect();
    all.into_iter()
        .enumerate()
        .filter(|(k, _)| {
            let lo = k.saturating_sub(2);
            let hi = (k + 3).min(changed.len());
            changed[lo..hi].iter().any(|c| *c)
        })
        .map(|(_, l)| l)
        .collect()
}

async fn rules_version(State(console): S, ctx: Ctx, Path(version): Path<i64>) -> Response {
    if let Some(r) = ctx.refusal("ListRulesVersions") {
        return r;
    }
    let store = &console.api.store;
    let Ok(Some(text)) = store
        .setting_text(crate::store::Setting::Rules, version)
        .await
    else {
        return not_found().await;
    };
    let versions = store
        .setting_versions(crate::store::Setting::Rules)
        .await
        .unwrap_or_default();
    let previous = versions
        .iter()
        .rev()
        .find(|v| v.version < version)
        .map(|v| v.version);
    let before = match previous {
        Some(p) => store
            .setting_text(crate::store::Setting::Rules, p)
            .await
            .ok()
            .flatten()
            .unwrap_or_default(),
        None => crate::policy::engine::DEFAULT_RULES.to_string(),
    };
    let lines = diff(&before, &text);
    render(VersionPage {
        frame: Frame::new(&ctx, format!("Règles, version {version}"), "regles"),
        summary: match previous {
            Some(p) => format!("Différences entre la version {p} et la version {version}."),
            None => {
                format!("Différences entre les règles par défaut du hub et la version {version}.")
            }
        },
        lines,
    })
}

#[derive(Deserialize)]
struct ExplainForm {
    #[serde(default)]
    partner: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    person: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    purpose: String,
}

async fn explain(State(console): S, Posted { ctx, form }: Posted<ExplainForm>) -> Response {
    if let Some(r) = ctx.refusal("Explain") {
        return r;
    }
    let purpose =
        Purpose::parse(&form.purpose).map_or(0, |p| crate::api::convert::purpose_to_pb(p) as i32);
    let r = console
        .api
        .explain(as_account(
            &ctx,
            pb::ExplainRequest {
                question: Some(pb::AccessQuestion {
                    partner: form.partner.clone(),
                    agent: form.agent,
                    person_id: form.person.trim().to_string(),
                    category: form.category.clone(),
                    purpose,
                    code: String::new(),
                    theme: String::new(),
                    write: false,
                }),
            },
        ))
        .await;
    let frame = Frame::new(&ctx, "Règles d'accès", "regles");
    match r {
        Ok(r) => {
            let d = r.into_inner().decision.unwrap_or_default();
            let mut lines = vec![format!(
                "{} : {} {} cette personne ({}, pour {}).",
                if d.allowed { "Autorisé" } else { "Refusé" },
                form.partner,
                if d.allowed {
                    "peut lire ces données de"
                } else {
                    "ne peut pas lire ces données de"
                },
                DataCategory::parse(&form.category).map_or("—", |c| c.label_fr()),
                Purpose::parse(&form.purpose).map_or("—", purpose_label),
            )];
            for (id, reason) in d
                .rules
                .iter()
                .zip(d.reasons.iter().chain(std::iter::repeat(&String::new())))
            {
                lines.push(format!("Règle {id} : {reason}"));
            }
            if d.rules.is_empty() {
                lines.extend(d.reasons.iter().cloned());
            }
            rules_page(&console, &ctx, frame, lines).await
        }
        Err(s) => rules_page(&console, &ctx, frame.problem(s.into()), vec![]).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Journal.

#[derive(Deserialize, Default, Clone)]
struct JournalQuery {
    #[serde(default)]
    partenaire: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    personne: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    certificat: String,
    #[serde(default)]
    du: String,
    #[serde(default)]
    au: String,
}

struct JournalRow {
    seq: u64,
    at: String,
    principal: String,
    agent: String,
    action: String,
    person: String,
    decision: String,
    detail: String,
    certificate: String,
}

#[derive(Template)]
#[template(path = "console/journal.html")]
struct JournalPage {
    frame: Frame,
    verification: Option<Verification>,
    q: JournalQuery,
    searched: bool,
    entries: Vec<JournalRow>,
    results_note: String,
}

/// Shown at most on a page; the CSV export goes to `EXPORT_MOST`.
const PAGE_MOST: usize = 200;
const EXPORT_MOST: usize = 100_000;

fn day_start(s: &str, field: &str) -> Result<Option<Timestamp>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    crate::domain::Day::parse(s.trim())
        .map(|d| Some(d.start_paris()))
        .map_err(|e| format!("{field} : {e}"))
}

/// Entries matching the query, newest first, at most `most` (and how many were read).
async fn search(
    console: &Console,
    q: &JournalQuery,
    most: usize,
) -> Result<Vec<(u64, AuditEntry)>, String> {
    let from = day_start(&q.du, "du")?;
    let to = day_start(&q.au, "au")?.map(|t| Timestamp::from_micros(t.micros() + 86_400_000_000));
    let person = if q.personne.trim().is_empty() {
        None
    } else {
        Some(PersonId::parse(q.personne.trim()).map_err(|e| format!("personne : {e}"))?)
    };
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = console
            .api
            .store
            .audit_search(&crate::store::AuditQuery {
                from,
                to,
                person,
                before_seq: before,
                limit: 1000,
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "console: searching the audit");
                "le journal ne répond pas pour l'instant : réessayez dans un moment".to_string()
            })?;
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        let full = page.len() == 1000;
        for stored in page {
            let Ok(e) = serde_json::from_str::<AuditEntry>(&stored.doc) else {
                continue;
            };
            let keep = (q.partenaire.trim().is_empty() || e.principal == q.partenaire.trim())
                && (q.agent.trim().is_empty() || e.agent == q.agent.trim())
                && (q.action.trim().is_empty() || e.action.contains(q.action.trim()))
                && (q.certificat.trim().is_empty()
                    || (!e.certificate.is_empty()
                        && e.certificate
                            .starts_with(&q.certificat.trim().to_lowercase())));
            if keep {
                out.push((stored.seq, e));
                if out.len() >= most {
                    return Ok(out);
                }
            }
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

fn searched(q: &JournalQuery) -> bool {
    [
        &q.partenaire,
        &q.agent,
        &q.personne,
        &q.action,
        &q.certificat,
        &q.du,
        &q.au,
    ]
    .iter()
    .any(|s| !s.trim().is_empty())
}

async fn journal_page(console: &Console, ctx: &Ctx, q: JournalQuery, frame: Frame) -> Response {
    if let Some(r) = ctx.refusal("SearchAudit") {
        return r;
    }
    let mut frame = frame;
    let mut entries = vec![];
    let mut note = String::new();
    let asked = searched(&q);
    if asked {
        match search(console, &q, PAGE_MOST + 1).await {
            Ok(found) => {
                let mut e = entry(console, ctx, "SearchAudit");
                e.detail = format!(
                    "audit searched: {} entries shown",
                    found.len().min(PAGE_MOST)
                );
                if let Ok(p) = PersonId::parse(q.personne.trim()) {
                    e.person = Some(p);
                }
                if console
                    .api
                    .store
                    .record_access(vec![e], vec![])
                    .await
                    .is_err()
                {
                    return unaudited();
                }
                note = if found.len() > PAGE_MOST {
                    format!(
                        "Plus de {PAGE_MOST} entrées : les {PAGE_MOST} plus récentes sont montrées ; l'export CSV les donne toutes."
                    )
                } else {
                    format!("{} entrée(s).", found.len())
                };
                entries = found
                    .into_iter()
                    .take(PAGE_MOST)
                    .map(|(seq, e)| JournalRow {
                        seq,
                        at: paris(e.at),
                        principal: e.principal,
                        agent: e.agent,
                        action: e.action,
                        person: e.person.map(|p| p.to_string()).unwrap_or_default(),
                        decision: e.decision,
                        detail: e.detail,
                        certificate: e.certificate.chars().take(16).collect(),
                    })
                    .collect();
            }
            Err(why) => frame.problem = why,
        }
    }
    let verification = console
        .last_verification
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    render(JournalPage {
        frame,
        verification,
        q,
        searched: asked,
        entries,
        results_note: note,
    })
}

async fn journal(State(console): S, ctx: Ctx, Query(q): Query<JournalQuery>) -> Response {
    let frame = Frame::new(&ctx, "Journal", "journal");
    journal_page(&console, &ctx, q, frame).await
}

async fn verify_journal(State(console): S, Posted { ctx, .. }: Posted<Empty>) -> Response {
    if let Some(r) = ctx.refusal("VerifyAudit") {
        return r;
    }
    let r = console
        .api
        .verify_audit(as_account(&ctx, pb::VerifyAuditRequest {}))
        .await;
    let frame = Frame::new(&ctx, "Journal", "journal");
    match r {
        Ok(r) => {
            let r = r.into_inner();
            let summary = if r.intact {
                format!("Chaîne intacte : {} entrées vérifiées.", r.entries_checked)
            } else {
                format!(
                    "Chaîne rompue à l'entrée n° {} : {}. {} entrées vérifiées avant elle. Prévenez le délégué à la protection des données.",
                    r.first_bad_seq, r.problem, r.entries_checked
                )
            };
            *console
                .last_verification
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Verification {
                intact: r.intact,
                summary,
                head_seq: r.head_seq,
                head_hash: r.head_hash,
                at: console.api.clock.now(),
            });
            journal_page(&console, &ctx, JournalQuery::default(), frame).await
        }
        Err(s) => {
            journal_page(
                &console,
                &ctx,
                JournalQuery::default(),
                frame.problem(s.into()),
            )
            .await
        }
    }
}

fn csv_field(s: &str) -> String {
    // A cell a spreadsheet would run as a formula is quoted as text.
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Exports built at once (each holds up to `EXPORT_MOST` entries in memory).
static EXPORTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn export_journal(State(console): S, ctx: Ctx, Query(q): Query<JournalQuery>) -> Response {
    if let Some(r) = ctx.refusal("SearchAudit") {
        return r;
    }
    let Ok(_turn) = EXPORTING.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "10")],
            "Deux exports sont déjà en cours : réessayez dans un moment.",
        )
            .into_response();
    };
    let found = match search(&console, &q, EXPORT_MOST).await {
        Ok(f) => f,
        Err(why) => {
            let frame = Frame::new(&ctx, "Journal", "journal");
            let mut frame = frame;
            frame.problem = why;
            return journal_page(&console, &ctx, q, frame).await;
        }
    };
    let mut e = entry(&console, &ctx, "ExportAudit");
    e.detail = format!("audit exported as CSV: {} entries", found.len());
    if let Ok(p) = PersonId::parse(q.personne.trim()) {
        e.person = Some(p);
    }
    if console
        .api
        .store
        .record_access(vec![e], vec![])
        .await
        .is_err()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "le journal n'a pas pu être écrit : rien n'est exporté",
        )
            .into_response();
    }
    let mut out = String::from(
        "\u{feff}numero,date,partenaire,agent,action,personne,finalite,decision,categories,refusees,regles,detail,certificat\r\n",
    );
    for (seq, e) in found {
        let cells = [
            seq.to_string(),
            paris(e.at),
            e.principal,
            e.agent,
            e.action,
            e.person.map(|p| p.to_string()).unwrap_or_default(),
            e.purpose.unwrap_or_default(),
            e.decision,
            e.categories.join(" "),
            e.denied.join(" "),
            e.policies.join(" "),
            e.detail,
            e.certificate,
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"journal-relais.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_shows_removed_and_added_lines_with_context() {
        let d = diff("a\nb\nc\nd\ne\nf\ng", "a\nb\nc\nX\ne\nf\ng");
        let marks: Vec<_> = d.iter().map(|l| (l.mark, l.text.as_str())).collect();
        assert!(marks.contains(&("− retirée", "d")));
        assert!(marks.contains(&("+ ajoutée", "X")));
        assert!(
            !marks.iter().any(|(_, t)| *t == "a"),
            "far context left out: {marks:?}"
        );
    }

    #[test]
    fn a_diff_of_long_texts_stays_linear() {
        // 5,000 × 5,000 lines would be 25 million cells: the line counts are compared instead.
        let before: String = (0..5_000).map(|i| format!("// ligne {i}\n")).collect();
        let after = before.replace("// ligne 42\n", "// ligne changée\n");
        let d = diff(&before, &after);
        let marks: Vec<_> = d.iter().map(|l| (l.mark, l.text.as_str())).collect();
        assert_eq!(
            marks,
            [
                ("− retirée", "// ligne 42"),
                ("+ ajoutée", "// ligne changée")
            ]
        );
    }

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
