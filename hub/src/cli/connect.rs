//! Connecting to a hub with an identity bundle (mTLS).

use crate::pki::Bundle;
use anyhow::Context;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The default hub address of a local `relais serve`.
pub const DEFAULT_HUB: &str = "https://127.0.0.1:7443";

/// Opens an mTLS channel to `hub` as the holder of `bundle`. A failure says what to do: use
/// `https://`, start the hub or fix its address, or use a bundle of this hub.
pub async fn channel(hub: &str, bundle: &Bundle) -> anyhow::Result<Channel> {
    if let Some(rest) = hub.strip_prefix("http://") {
        anyhow::bail!(
            "the hub speaks only HTTPS with client certificates: use https://{rest} instead of {hub}"
        );
    }
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&bundle.ca_pem))
        .identity(Identity::from_pem(&bundle.cert_pem, &bundle.key_pem));
    Endpoint::from_shared(hub.to_string())
        .with_context(|| format!("hub address `{hub}`: expected https://host:port"))?
        .tls_config(tls)
        .context("client TLS")?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| explain(hub, e))
}

/// What a connection failure means for the person who typed the command.
fn explain(hub: &str, e: tonic::transport::Error) -> anyhow::Error {
    let chain = format!("{e:?}");
    let hint = if chain.contains("ConnectionRefused") || chain.contains("Connection refused") {
        format!(
            "nothing answers at {hub}: is the hub running there (`relais serve`), and are the address and port right?"
        )
    } else if chain.contains("UnknownIssuer")
        || chain.contains("unknown issuer")
        || chain.contains("BadSignature")
    {
        format!(
            "the hub at {hub} is not the one that made this identity bundle (its certificate is signed by another authority): use a bundle issued by this hub"
        )
    } else if chain.contains("NotValidForName") || chain.contains("not valid for name") {
        format!(
            "the hub's certificate does not name the host in {hub}: use the name or address it was issued for (its server_names)"
        )
    } else if chain.contains("timed out") || chain.contains("Elapsed") {
        format!("no answer from {hub} within 10 s: is the address right, and the network open?")
    } else if chain.contains("CertificateExpired") || chain.contains("Expired") {
        format!("a certificate has expired talking to {hub}: ask for a new bundle")
    } else {
        format!("connecting to {hub}")
    };
    anyhow::Error::new(e).context(hint)
}
