//! The `http` adapter: inbound endpoint, outbound signed webhooks.

use crate::config::HttpConfig;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use relais_connector_sdk::retry::Backoff;
use relais_connector_sdk::{Adapter, Received, State, Write};
use relais_proto::v1 as pb;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// `sha256=<hex>` of HMAC-SHA-256 over `<timestamp>.<body>`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("hmac accepts keys of any length")
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct HttpAdapter {
    config: HttpConfig,
    client: reqwest::Client,
    /// Where failed deliveries are recorded.
    state: State,
}

impl HttpAdapter {
    pub fn new(config: HttpConfig, state: State) -> anyhow::Result<Self> {
        config.validate()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Self {
            config,
            client,
            state,
        })
    }

    /// Delivers one JSON document to the webhook, with retries; after the last attempt the
    /// failure is recorded and the feed goes on.
    async fn deliver(&self, document: Value) -> anyhow::Result<()> {
        let Some(url) = &self.config.webhook_url else {
            return Ok(());
        };
        let body = serde_json::to_vec(&document)?;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut last_error = String::new();
        for attempt in 1..=self.config.max_attempts {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string();
            let sent = self
                .client
                .post(url)
                .header("content-type", "application/json")
                .header("x-relais-timestamp", &timestamp)
                .header(
                    "x-relais-signature",
                    sign(&self.config.webhook_secret, &timestamp, &body),
                )
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return Ok(()),
                // A 4xx other than 408/429 will not get better: stop retrying.
                Ok(r)
                    if r.status().is_client_error()
                        && ![408, 429].contains(&r.status().as_u16()) =>
                {
                    last_error = format!("webhook answered {}", r.status());
                    break;
                }
                Ok(r) => last_error = format!("webhook answered {}", r.status()),
                Err(e) => last_error = format!("webhook unreachable: {e}"),
            }
            tracing::info!(attempt, error = %last_error, "webhook delivery failed; retrying");
            if attempt < self.config.max_attempts {
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
        tracing::warn!(url = %url, error = %last_error, "webhook delivery dead-lettered");
        self.state
            .outbound_failed(
                url,
                &String::from_utf8_lossy(&body),
                &last_error,
                self.config.max_attempts,
            )
            .await
    }
}

fn item(event: &Received) -> Value {
    match event {
        Received::Flag(f) => {
            let q = f.qualification.clone().unwrap_or_default();
            let (how, _) = relais_connector_sdk::write::qualification_words(Some(&q));
            json!({
                "type": "flag", "id": f.id, "person_id": f.person_id, "code": f.code, "label": f.label,
                "category": f.category, "active": f.status == pb::FlagStatus::Active as i32,
                "source_partner": f.source_partner, "version": f.version,
                "qualification": how, "evidence": q.evidence, "qualified_by": q.partner,
                "review_on": f.review_on, "to_review": f.to_review,
            })
        }
        Received::Case(c) => json!({
            "type": "case", "id": c.id, "person_id": c.person_id, "procedure": c.procedure,
            "owner_partner": c.owner_partner,
            "status": pb::CaseStatus::try_from(c.status).map(|s| s.as_str_name().trim_start_matches("CASE_STATUS_").to_lowercase()).unwrap_or_default(),
            "missing_documents": c.missing_documents, "version": c.version,
        }),
        Received::Referral(r) => json!({
            "type": "referral", "id": r.id, "case_id": r.case_id, "person_id": r.person_id,
            "from_partner": r.from_partner, "to_partner": r.to_partner, "reason": r.reason,
            "requested_action": r.requested_action, "answer": r.answer,
            "due_date": r.due_date, "overdue": r.overdue, "expires_on": r.expires_on,
            "due_reminded": r.due_reminded_at.is_some(), "overdue_notified": r.overdue_notified_at.is_some(),
            "expiry_reason": r.expiry_reason,
            "state": pb::ReferralState::try_from(r.state).map(|s| s.as_str_name().trim_start_matches("REFERRAL_STATE_").to_lowercase()).unwrap_or_default(),
            "version": r.version,
        }),
    }
}

#[derive(Clone)]
struct Inbound {
    token: Arc<String>,
    state: State,
    wake: Arc<Notify>,
}

#[derive(Deserialize)]
struct Writes {
    writes: Vec<Write>,
    /// Where they come from, for the dead-letter list.
    #[serde(default)]
    source: String,
}

fn authorised(headers: &HeaderMap, token: &str) -> bool {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant time: the comparison does not tell how much of the token was right.
    presented.len() == token.len()
        && presented
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn post_writes(
    AxumState(inbound): AxumState<Inbound>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers, &inbound.token) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong bearer token"})),
        );
    }
    let writes: Writes = match serde_json::from_slice(&body) {
        Ok(w) => w,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("not a list of writes: {e}")})),
            );
        }
    };
    let source = if writes.source.is_empty() {
        "http".to_string()
    } else {
        format!("http: {}", writes.source)
    };
    match inbound.state.enqueue(&writes.writes, &source, false).await {
        Ok(_) => {
            inbound.wake.notify_one();
            (
                StatusCode::ACCEPTED,
                Json(json!({"queued": writes.writes.len()})),
            )
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "could not store writes");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "the connector could not store the writes; retry"})),
            )
        }
    }
}

async fn get_status(
    AxumState(inbound): AxumState<Inbound>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers, &inbound.token) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong bearer token"})),
        );
    }
    match inbound.state.counts().await {
        Ok((outbox, dead)) => (
            StatusCode::OK,
            Json(json!({"outbox": outbox, "dead_letters": dead})),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        ),
    }
}

#[async_trait::async_trait]
impl Adapter for HttpAdapter {
    fn name(&self) -> &'static str {
        "http"
    }

    /// The partner's software pushes; nothing to read.
    async fn poll(&self, _state: &State) -> anyhow::Result<u64> {
        Ok(0)
    }

    async fn apply(&self, event: &Received, local_ids: &[String]) -> anyhow::Result<()> {
        self.deliver(json!({"event": "shared", "local_ids": local_ids, "item": item(event)}))
            .await
    }

    async fn redact(&self, r: &pb::Redaction, local_ids: &[String]) -> anyhow::Result<()> {
        self.deliver(json!({
            "event": "redacted", "local_ids": local_ids, "flag_ids": r.flag_ids,
            "case_ids": r.case_ids, "referral_ids": r.referral_ids, "categories": r.categories,
            "reason": r.reason,
        }))
        .await
    }

    async fn serve(&self, state: State, wake: Arc<Notify>) -> anyhow::Result<()> {
        let inbound = Inbound {
            token: Arc::new(self.config.token.clone()),
            state,
            wake,
        };
        let app = Router::new()
            .route("/v1/writes", post(post_writes))
            .route("/v1/status", get(get_status))
            .with_state(inbound);
        let listener = tokio::net::TcpListener::bind(self.config.listen).await?;
        tracing::info!(addr = %listener.local_addr()?, "http adapter listening");
        axum::serve(listener, app).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_stable_and_keyed() {
        let a = sign("s3cret", "1700000000", b"{}");
        assert_eq!(a, sign("s3cret", "1700000000", b"{}"));
        assert_ne!(a, sign("other", "1700000000", b"{}"));
        assert_ne!(a, sign("s3cret", "1700000001", b"{}"));
        assert!(a.starts_with("sha256="));
    }

    #[test]
    fn the_profile_s_example_request_is_a_list_of_writes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../profiles/sous-prefecture/exemple-requete.json"
        );
        let w: Writes = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(w.writes.len(), 4);
        assert!(matches!(
            &w.writes[1],
            Write::RaiseFlag { qualification, .. } if qualification == "observed"
        ));
    }

    #[test]
    fn only_the_exact_token_is_accepted() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert!(authorised(&h, "abc"));
        assert!(!authorised(&h, "abd"));
        assert!(!authorised(&HeaderMap::new(), "abc"));
    }
}
