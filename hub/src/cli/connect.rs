//! Connecting to a hub with an identity bundle (mTLS).

use crate::pki::Bundle;
use anyhow::Context;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The default hub address of a local `relais serve`.
pub const DEFAULT_HUB: &str = "https://127.0.0.1:7443";

/// Opens an mTLS channel to `hub` as the holder of `bundle`.
pub async fn channel(hub: &str, bundle: &Bundle) -> anyhow::Result<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&bundle.ca_pem))
        .identity(Identity::from_pem(&bundle.cert_pem, &bundle.key_pem));
    Endpoint::from_shared(hub.to_string())
        .with_context(|| format!("hub address `{hub}`"))?
        .tls_config(tls)
        .context("client TLS")?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connecting to {hub}"))
}
