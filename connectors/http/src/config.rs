//! The `[http]` section of a connector profile.

use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the inbound endpoint listens (keep it on the partner's own network).
    pub listen: SocketAddr,
    /// The bearer token the partner's software presents (at least 32 characters).
    pub token: String,
    /// The partner's webhook for what the hub shares; none when the partner only pushes.
    pub webhook_url: Option<String>,
    /// The secret webhooks are signed with (at least 32 characters).
    #[serde(default)]
    pub webhook_secret: String,
    /// Attempts per webhook delivery before it is dead-lettered.
    #[serde(default = "attempts")]
    pub max_attempts: u32,
}

fn attempts() -> u32 {
    8
}

impl HttpConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.token.len() >= 32,
            "http.token must have at least 32 characters"
        );
        if self.webhook_url.is_some() {
            anyhow::ensure!(
                self.webhook_secret.len() >= 32,
                "http.webhook_secret must have at least 32 characters"
            );
        }
        anyhow::ensure!(
            self.max_attempts >= 1,
            "http.max_attempts must be at least 1"
        );
        Ok(())
    }
}
