//! Log-in, sessions and CSRF. The session cookie (`__Host-relais`) holds a random token; the
//! store keeps only its SHA-256, with the session's CSRF token. The log-in form carries a token
//! matched against a cookie of its own (`__Host-relais-login`), so a page elsewhere cannot log
//! a browser in under another account.

use super::Console;
use super::account::{self, Actor, Role};
use crate::audit::AuditEntry;
use crate::domain::Timestamp;
use crate::store::ConsoleSession;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub const COOKIE: &str = "__Host-relais";
pub const LOGIN_COOKIE: &str = "__Host-relais-login";

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source");
    hex::encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"
    ))
    .expect("a cookie header")
}

/// The result of a store call whose failure the console logs and goes on without (an
/// unreadable session is no session; a failed sweep waits for the next).
fn logged<T>(result: crate::error::Result<T>, what: &'static str) -> Option<T> {
    result
        .map_err(|e| tracing::error!(error = %e, what, "console: the store failed"))
        .ok()
}

fn now(console: &Console) -> Timestamp {
    console.api.clock.now()
}

/// The signed-in account of a request, with its session.
#[derive(Clone)]
pub struct Ctx {
    pub actor: Actor,
    pub full_name: String,
    pub csrf: String,
    pub token_hash: String,
}

impl Ctx {
    /// Refuses an act the role does not allow (the AdminService checks its own methods too).
    pub fn refusal(&self, act: &str) -> Option<Response> {
        (!self.actor.role.allows(act)).then(|| super::pages::forbidden(self, act))
    }
}

/// Why a request has no session: the browser is sent to the log-in page.
pub struct NoSession;

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        Redirect::to("/connexion").into_response()
    }
}

impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = NoSession;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, COOKIE).ok_or(NoSession)?;
        let hash = token_hash(&token);
        let store = &console.api.store;
        let session = logged(store.console_session(&hash).await, "reading a session")
            .flatten()
            .ok_or(NoSession)?;
        let at = now(console);
        let idle = console.config.session_idle_minutes as i64 * 60_000_000;
        let max = console.config.session_max_hours as i64 * 3_600_000_000;
        if at.micros() - session.seen_at.micros() > idle
            || at.micros() - session.created_at.micros() > max
        {
            logged(
                store.end_console_sessions(Some(&hash), at, at).await,
                "ending a session",
            );
            return Err(NoSession);
        }
        let account = logged(
            store.console_account(&session.account).await,
            "reading an account",
        )
        .flatten()
        .ok_or(NoSession)?;
        if account.disabled_at.is_some() {
            return Err(NoSession);
        }
        let role = Role::parse(&account.role).map_err(|_| NoSession)?;
        // One write a minute at most per session, not one per page.
        if at.micros() - session.seen_at.micros() > 60_000_000 {
            logged(
                store.touch_console_session(&hash, at).await,
                "touching a session",
            );
        }
        Ok(Ctx {
            actor: Actor {
                name: account.name,
                role,
            },
            full_name: account.full_name,
            csrf: session.csrf,
            token_hash: hash,
        })
    }
}

/// A form posted by a signed-in account, its CSRF token checked before anything else. Every
/// POST handler takes one: a form without the session's token is refused (403).
pub struct Posted<T> {
    pub ctx: Ctx,
    pub form: T,
}

pub enum PostRejection {
    NoSession,
    Csrf,
    Bad(String),
}

impl IntoResponse for PostRejection {
    fn into_response(self) -> Response {
        match self {
            PostRejection::NoSession => NoSession.into_response(),
            PostRejection::Csrf => (
                StatusCode::FORBIDDEN,
                "Formulaire refusé : jeton anti-falsification (CSRF) absent ou périmé. Rechargez la page et recommencez.",
            )
                .into_response(),
            PostRejection::Bad(why) => {
                tracing::info!(why, "console: an unreadable form");
                (
                    StatusCode::BAD_REQUEST,
                    "Formulaire illisible : rechargez la page et recommencez.",
                )
                    .into_response()
            }
        }
    }
}

/// Whether a form comes from the console's own pages: `Sec-Fetch-Site` (sent by browsers with
/// every request) says same-origin; without it, an `Origin`, when sent, names the host the
/// request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // `null` is what sandboxed frames, data: pages and cross-site redirects send: refused.
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => origin.strip_prefix("https://") == Some(host),
    }
}

/// Forms are small: 1 MiB covers the longest rule set.
const MAX_FORM: usize = 1 << 20;

impl<T: DeserializeOwned + Send> FromRequest<Arc<Console>> for Posted<T> {
    type Rejection = PostRejection;

    async fn from_request(req: Request, console: &Arc<Console>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let ctx = Ctx::from_request_parts(&mut parts, console)
            .await
            .map_err(|_| PostRejection::NoSession)?;
        // Forms only, from the console's own pages: another origin is refused even with a token.
        let form_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_type {
            return Err(PostRejection::Bad(
                "un formulaire (application/x-www-form-urlencoded) est attendu".into(),
            ));
        }
        if !same_origin(&parts.headers) {
            tracing::warn!(account = %ctx.actor.name, origin = ?parts.headers.get(header::ORIGIN), host = ?parts.headers.get(header::HOST), site = ?parts.headers.get("sec-fetch-site"), "console: a form from another origin was refused");
            return Err(PostRejection::Csrf);
        }
        let bytes = axum::body::to_bytes(body, MAX_FORM)
            .await
            .map_err(|_| PostRejection::Bad("trop long".into()))?;
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).map_err(|e| PostRejection::Bad(e.to_string()))?;
        let token = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !same(token, &ctx.csrf) {
            tracing::warn!(account = %ctx.actor.name, "console: a form without its CSRF token was refused");
            return Err(PostRejection::Csrf);
        }
        let form =
            serde_urlencoded::from_bytes(&bytes).map_err(|e| PostRejection::Bad(e.to_string()))?;
        Ok(Posted { ctx, form })
    }
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub login_token: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub code: String,
}

pub enum Login {
    /// Signed in: the new session's cookie token.
    Ok(String),
    Refused(String),
}

fn audit(console: &Console, name: &str, action: &str, detail: String) -> AuditEntry {
    let mut entry = AuditEntry::new(now(console), "admin", name, format!("console:{action}"));
    entry.detail = detail;
    entry
}

/// Password checks at once: argon2 costs tens of milliseconds of CPU and memory each, so they
/// run on the blocking pool, two at a time, never on the threads that serve calls.
static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn verify(password: &str, hash: &str) -> bool {
    // A flood of log-ins waits at most 3 s for a turn, then is refused: no queue without end.
    let Ok(Ok(_permit)) =
        tokio::time::timeout(std::time::Duration::from_secs(3), VERIFYING.acquire()).await
    else {
        return false;
    };
    let (password, hash) = (password.to_string(), hash.to_string());
    tokio::task::spawn_blocking(move || account::verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Log-in attempts from one address in a window: past it, refused before any check.
pub const ATTEMPTS_PER_ADDRESS: u32 = 20;
pub const ATTEMPTS_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

/// Addresses (or IPv6 /64 prefixes) followed at once; past it, new ones are refused until the
/// window ends.
const MAX_ADDRESSES: usize = 10_000;

/// Where attempts are counted: an IPv4 address, or an IPv6 address's /64 (what one host
/// usually holds).
pub fn source(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Counts an attempt from `ip`; false when its source is over its attempts.
pub fn attempt_allowed(console: &Console, ip: std::net::IpAddr) -> bool {
    let ip = source(ip);
    let mut attempts = console
        .login_attempts
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let now = std::time::Instant::now();
    if attempts.len() >= MAX_ADDRESSES && !attempts.contains_key(&ip) {
        attempts.retain(|_, (_, since)| now.duration_since(*since) < ATTEMPTS_WINDOW);
        if attempts.len() >= MAX_ADDRESSES {
            return false;
        }
    }
    let entry = attempts.entry(ip).or_insert((0, now));
    if now.duration_since(entry.1) >= ATTEMPTS_WINDOW {
        *entry = (0, now);
    }
    entry.0 += 1;
    entry.0 <= ATTEMPTS_PER_ADDRESS
}

/// Checks a log-in: the password (argon2, the same cost for an unknown name or a locked
/// account), the TOTP code (once per step), the lockout. Every refusal gets the same answer, so
/// that it tells nobody whether the name exists or is locked; each is audited (while an account
/// is locked, only the lock is: a flood of attempts does not flood the audit).
pub async fn log_in(console: &Console, form: &LoginForm) -> Login {
    let store = &console.api.store;
    let at = now(console);
    let refused = format!(
        "Connexion refusée : identifiant, mot de passe ou code incorrect. Après {} essais manqués, le compte est verrouillé {} minutes ; un administrateur peut le débloquer.",
        console.config.max_failures, console.config.lockout_minutes
    );
    let name = form.name.trim().to_lowercase();
    if account::check_name(&name).is_err() {
        verify(&form.password, account::decoy_hash()).await;
        return Login::Refused(refused);
    }
    let found = match store.console_account(&name).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "console: reading an account");
            return Login::Refused(
                "Le hub ne peut pas lire les comptes pour l'instant : réessayez dans un moment."
                    .into(),
            );
        }
    };
    let Some(found) = found else {
        verify(&form.password, account::decoy_hash()).await;
        return Login::Refused(refused);
    };
    if found.locked_until > at {
        verify(&form.password, account::decoy_hash()).await;
        return Login::Refused(refused);
    }
    let password_ok = verify(&form.password, &found.password_hash).await;
    let step = account::totp_step(&found.totp_secret, &form.code, at);
    let accepted = match (password_ok, step, found.disabled_at) {
        // Refused too if a concurrent attempt locked the account meanwhile.
        (true, Some(step), None) => store
            .console_login_succeeded(&name, step, at)
            .await
            .unwrap_or(false),
        _ => false,
    };
    if !accepted {
        let lock_until = Timestamp::from_micros(
            at.micros() + console.config.lockout_minutes as i64 * 60_000_000,
        );
        let (failures, until) = logged(
            store
                .console_login_failed(&name, console.config.max_failures, lock_until, at)
                .await,
            "counting a failed log-in",
        )
        .unwrap_or((0, Timestamp::from_micros(0)));
        let why = if found.disabled_at.is_some() {
            "account disabled"
        } else if !password_ok {
            "wrong password"
        } else if step.is_none() {
            "wrong code"
        } else {
            "code already used, or account locked meanwhile"
        };
        let mut entry = audit(
            console,
            &name,
            "login",
            if until > at {
                format!("refused: {why}; account locked after {failures} failures in a row")
            } else {
                format!("refused: {why} ({failures} in a row)")
            },
        );
        entry.decision = "deny".into();
        logged(
            store.record_access(vec![entry], vec![]).await,
            "auditing a refused log-in",
        );
        return Login::Refused(refused);
    }
    let token = random_token();
    let session = ConsoleSession {
        account: name.clone(),
        csrf: random_token(),
        created_at: at,
        seen_at: at,
    };
    if let Err(e) = store
        .put_console_session(&token_hash(&token), &session)
        .await
    {
        tracing::error!(error = %e, "console: storing a session");
        return Login::Refused("La session n'a pas pu être ouverte : réessayez.".into());
    }
    // No session without its audit entry: the log-in is undone when the entry cannot be written.
    let audited = store
        .record_access(
            vec![audit(console, &name, "login", "signed in".into())],
            vec![],
        )
        .await;
    if let Err(e) = audited {
        tracing::error!(error = %e, "console: auditing a log-in; the session is not opened");
        logged(
            store
                .end_console_sessions(Some(&token_hash(&token)), at, at)
                .await,
            "ending an unaudited session",
        );
        return Login::Refused("La session n'a pas pu être ouverte : réessayez.".into());
    }
    Login::Ok(token)
}

pub async fn log_out(console: &Console, ctx: &Ctx) {
    let at = now(console);
    let store = &console.api.store;
    logged(
        store
            .end_console_sessions(Some(&ctx.token_hash), at, at)
            .await,
        "ending a session",
    );
    logged(
        store
            .record_access(
                vec![audit(
                    console,
                    &ctx.actor.name,
                    "logout",
                    "signed out".into(),
                )],
                vec![],
            )
            .await,
        "auditing a log-out",
    );
}

/// Ends the sessions past their idle or absolute time.
pub async fn sweep(console: &Console) {
    let at = now(console).micros();
    let idle = Timestamp::from_micros(at - console.config.session_idle_minutes as i64 * 60_000_000);
    let opened =
        Timestamp::from_micros(at - console.config.session_max_hours as i64 * 3_600_000_000);
    logged(
        console
            .api
            .store
            .end_console_sessions(None, idle, opened)
            .await,
        "ending sessions past their time",
    );
    // Bundles not downloaded within ten minutes are forgotten.
    console
        .bundles
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|_, b| b.made.elapsed() < std::time::Duration::from_secs(600));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forms_from_another_site_are_refused_even_with_a_token() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&headers(&[
            ("host", "hub.cc-comminges.fr:8443"),
            ("origin", "https://hub.cc-comminges.fr:8443")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "hub.cc-comminges.fr:8443"),
            ("origin", "https://evil.example")
        ])));
        assert!(
            same_origin(&headers(&[("host", "h:1")])),
            "a script without Origin"
        );
    }

    #[test]
    fn log_in_attempts_are_counted_per_host_not_per_ipv6_address() {
        let a: std::net::IpAddr = "2a01:cb00:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2a01:cb00:1:2:bbbb::9".parse().unwrap();
        assert_eq!(source(a), source(b), "one /64");
        let v4: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(source(v4), v4);
        let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source(mapped), v4);
    }

    #[test]
    fn cookies_are_read_by_name_only() {
        let h = headers(&[("cookie", "a=1; __Host-relais=abc; __Host-relais-login=zz")]);
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, LOGIN_COOKIE).as_deref(), Some("zz"));
        assert_eq!(cookie(&h, "b"), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
