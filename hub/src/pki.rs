//! Certificates. The hub's identity model is mTLS: a partner *is* its client certificate, issued
//! by the hub's certificate authority. On first start a development CA, a server certificate and
//! an administrator certificate are created under the data directory; in production the CA and
//! server files may be provided instead (`[tls]` in the configuration).
//!
//! A partner's key never leaves its machine: `relais admin partner add` makes the key and a
//! certificate signing request locally, and the hub signs the request with the subject and
//! usages *it* chooses, whatever the request asked for.

use crate::domain::Timestamp;
use crate::domain::partner::CertificateRecord;
use crate::error::Error;
use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// SHA-256 of a DER certificate, lowercase hex: how the store knows a certificate.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // A CSPRNG failure leaves zeros; the fingerprint, not the serial, identifies a certificate.
    let _ = getrandom::fill(&mut bytes);
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and of full length
    SerialNumber::from_slice(&bytes)
}

/// Writes a file readable by its owner only: private keys, bundles, and what the CLI writes
/// about persons (the access report). Mode 0600 whatever the umask — also when the file
/// already existed with a wider mode, since `mode` only applies to a file being created — and
/// the directories it creates are 0700.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // Before the new contents go in: a file left 0644 by an earlier write is tightened first.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {} to its owner", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()?;
    Ok(())
}

/// The hub's certificate authority.
pub struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Self> {
        let cert_pem = std::fs::read_to_string(cert_path)
            .with_context(|| format!("reading CA certificate {}", cert_path.display()))?;
        let key_pem = std::fs::read_to_string(key_path)
            .with_context(|| format!("reading CA key {}", key_path.display()))?;
        let key = KeyPair::from_pem(&key_pem).context("parsing CA key")?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).context("parsing CA certificate")?;
        Ok(Self { cert_pem, issuer })
    }

    /// Creates a new CA valid for ten years.
    pub fn create(name: &str) -> anyhow::Result<(Self, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Relais");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        let issuer = Issuer::new(params, key);
        Ok((
            Self {
                cert_pem: cert.pem(),
                issuer,
            },
            key_pem,
        ))
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn leaf_params(common_name: &str, days: i64) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "Relais");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(days);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        params
    }

    /// Signs a client certificate request for `common_name`. Only the request's public key is
    /// used; subject, usages and validity are the hub's.
    pub fn sign_client_csr(
        &self,
        csr_pem: &str,
        common_name: &str,
        days: i64,
    ) -> Result<(String, CertificateRecord), Error> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            Error::invalid(
                "csr_pem",
                format!("not a valid PEM certificate signing request: {e}"),
            )
        })?;
        let mut params = Self::leaf_params(common_name, days);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let serial = params.serial_number.clone();
        let not_after = params.not_after;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| Error::Internal(format!("signing certificate: {e}")))?;
        let record = CertificateRecord {
            fingerprint: fingerprint(cert.der()),
            serial: serial
                .map(|s| hex::encode(s.to_bytes()))
                .unwrap_or_default(),
            not_after: Timestamp::from_offset(not_after),
            issued_at: Timestamp::from_offset(OffsetDateTime::now_utc()),
            pem: cert.pem(),
            revoked_at: None,
            revocation_reason: String::new(),
            awaiting_approval: false,
        };
        Ok((cert.pem(), record))
    }

    /// A client certificate and its new key, made here (the administrator's own).
    pub fn issue_client(
        &self,
        common_name: &str,
        days: i64,
    ) -> anyhow::Result<(Bundle, CertificateRecord)> {
        let (key, csr) = new_key_and_csr(common_name)?;
        let (cert_pem, record) = self
            .sign_client_csr(&csr, common_name, days)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok((
            Bundle {
                cert_pem,
                key_pem: key.serialize_pem(),
                ca_pem: self.cert_pem.clone(),
            },
            record,
        ))
    }

    /// A server certificate for the given DNS names and IP addresses.
    pub fn issue_server(&self, names: &[String], days: i64) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params =
            Self::leaf_params(names.first().map_or("relais-hub", String::as_str), days);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Makes a new key pair and a certificate signing request for it.
pub fn new_key_and_csr(common_name: &str) -> anyhow::Result<(KeyPair, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?.pem()?;
    Ok((key, csr))
}

/// What a client needs to connect: its certificate and key, and the hub's CA. Kept as one PEM
/// file (key, certificate, CA certificate), readable by its owner only.
#[derive(Clone)]
pub struct Bundle {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl Bundle {
    pub fn write(&self, path: &Path, comment: &str) -> anyhow::Result<()> {
        let header: String = comment.lines().map(|l| format!("# {l}\n")).collect();
        write_private(
            path,
            &format!("{header}{}{}{}", self.key_pem, self.cert_pem, self.ca_pem),
        )
    }

    /// Reads a bundle: the private key, then the client certificate, then the CA certificate.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading identity bundle {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in identity bundle {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut key_pem = None;
        let mut certs = Vec::new();
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(label) = line
                .strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
            {
                current = Some((label.to_string(), format!("{line}\n")));
            } else if let Some((label, mut block)) = current.take() {
                block.push_str(line);
                block.push('\n');
                if line.starts_with("-----END ") {
                    if label.ends_with("PRIVATE KEY") {
                        key_pem = Some(block);
                    } else if label == "CERTIFICATE" {
                        certs.push(block);
                    }
                } else {
                    current = Some((label, block));
                }
            }
        }
        let key_pem = key_pem.context("no private key")?;
        anyhow::ensure!(
            certs.len() == 2,
            "expected the client certificate then the CA certificate, found {} certificate(s)",
            certs.len()
        );
        let ca_pem = certs.pop().unwrap_or_default();
        let cert_pem = certs.pop().unwrap_or_default();
        Ok(Self {
            cert_pem,
            key_pem,
            ca_pem,
        })
    }

    /// The name the bundle's certificate was issued to (the partner id).
    pub fn common_name(&self) -> anyhow::Result<String> {
        let der = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .next()
            .context("no certificate")??;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
        let name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .context("the certificate names no one")?;
        Ok(name.to_string())
    }

    /// The fingerprint of the bundle's client certificate.
    pub fn fingerprint(&self) -> anyhow::Result<String> {
        let der = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .next()
            .context("no certificate")??;
        Ok(fingerprint(&der))
    }
}

/// Where the TLS files of a hub are.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub admin_bundle: PathBuf,
}

impl TlsPaths {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        let tls = data_dir.join("tls");
        Self {
            ca_cert: tls.join("ca.pem"),
            ca_key: tls.join("ca.key"),
            server_cert: tls.join("server.pem"),
            server_key: tls.join("server.key"),
            admin_bundle: data_dir.join("admin").join("admin.bundle.pem"),
        }
    }
}

/// The hub's TLS material, ready to serve.
pub struct TlsMaterial {
    pub authority: Authority,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// Set when the administrator certificate was created by this start.
    pub new_admin: Option<CertificateRecord>,
}

/// The names a certificate is issued for (its subject alternative names), as written in
/// `server_names`.
fn certificate_names(pem: &str) -> anyhow::Result<std::collections::BTreeSet<String>> {
    use x509_parser::extensions::GeneralName;
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .context("no certificate")??;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
    let mut names = std::collections::BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    names.insert(d.to_string());
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    };
                    names.extend(ip);
                }
                _ => {}
            }
        }
    }
    Ok(names)
}

/// The names of `server_names`, normalised as certificates carry them.
fn wanted_names(server_names: &[String]) -> std::collections::BTreeSet<String> {
    server_names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => n.to_ascii_lowercase(),
        })
        .collect()
}

/// Loads the CA and server certificate, creating a development CA, a server certificate and an
/// administrator bundle on first start. A server certificate the hub made itself (`generated`)
/// is made again when `server_names` no longer matches it (the hub's name added after a
/// package's first start).
pub fn ensure_tls(
    paths: &TlsPaths,
    server_names: &[String],
    generated: bool,
) -> anyhow::Result<TlsMaterial> {
    let authority = if paths.ca_cert.exists() {
        Authority::load(&paths.ca_cert, &paths.ca_key)?
    } else {
        let (authority, key_pem) = Authority::create("Relais development CA")?;
        write_private(&paths.ca_key, &key_pem)?;
        write_private(&paths.ca_cert, authority.cert_pem())?;
        tracing::info!(path = %paths.ca_cert.display(), "created a development certificate authority");
        authority
    };
    let stale = generated
        && paths.server_cert.exists()
        && std::fs::read_to_string(&paths.server_cert)
            .ok()
            .and_then(|pem| certificate_names(&pem).ok())
            .is_some_and(|names| names != wanted_names(server_names));
    if stale {
        tracing::info!(
            names = ?server_names,
            "server_names changed: issuing the hub a new server certificate"
        );
    }
    if !paths.server_cert.exists() || stale {
        let (cert, key) = authority.issue_server(server_names, 825)?;
        write_private(&paths.server_key, &key)?;
        write_private(&paths.server_cert, &cert)?;
    }
    let server_cert_pem = std::fs::read_to_string(&paths.server_cert)
        .with_context(|| format!("reading {}", paths.server_cert.display()))?;
    let server_key_pem = std::fs::read_to_string(&paths.server_key)
        .with_context(|| format!("reading {}", paths.server_key.display()))?;
    let new_admin = if paths.admin_bundle.exists() {
        None
    } else {
        let (bundle, record) = authority.issue_client("relais-admin", 365)?;
        bundle.write(
            &paths.admin_bundle,
            "Relais administrator identity: key, certificate, hub CA.\nKeep it private; whoever holds it administers the hub.",
        )?;
        Some(record)
    };
    Ok(TlsMaterial {
        authority,
        server_cert_pem,
        server_key_pem,
        new_admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_server_certificate_follows_server_names() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::in_data_dir(dir.path());
        let first = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        ensure_tls(&paths, &first, true).unwrap();
        let before = std::fs::read_to_string(&paths.server_cert).unwrap();
        assert_eq!(certificate_names(&before).unwrap(), wanted_names(&first));
        ensure_tls(&paths, &first, true).unwrap();
        assert_eq!(std::fs::read_to_string(&paths.server_cert).unwrap(), before);
        let second = vec![
            "hub.relais.cc-comminges.fr".to_string(),
            "127.0.0.1".to_string(),
        ];
        ensure_tls(&paths, &second, true).unwrap();
        let after = std::fs::read_to_string(&paths.server_cert).unwrap();
        assert_eq!(certificate_names(&after).unwrap(), wanted_names(&second));
        // A certificate the territory provided is never replaced.
        ensure_tls(&paths, &first, false).unwrap();
        assert_eq!(std::fs::read_to_string(&paths.server_cert).unwrap(), after);
    }

    #[test]
    fn signed_csr_gets_the_hub_chosen_subject_and_round_trips_as_a_bundle() {
        let (ca, _) = Authority::create("test CA").unwrap();
        let (key, csr) = new_key_and_csr("whatever-the-requester-wants").unwrap();
        let (cert_pem, record) = ca.sign_client_csr(&csr, "mairie-aspet", 30).unwrap();
        let bundle = Bundle {
            cert_pem,
            key_pem: key.serialize_pem(),
            ca_pem: ca.cert_pem().to_string(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.pem");
        bundle.write(&path, "test").unwrap();
        let read = Bundle::read(&path).unwrap();
        assert_eq!(read.fingerprint().unwrap(), record.fingerprint);
        assert_eq!(read.ca_pem, ca.cert_pem());
        let der = rustls_pemfile::certs(&mut read.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn = parsed
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(cn, "mairie-aspet");
    }

    #[test]
    fn private_files_are_0600_and_their_new_directories_0700() {
        use std::os::unix::fs::PermissionsExt;
        fn mode(p: &Path) -> u32 {
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        }
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("rapports").join("acces.html");
        write_private(&path, "<html>Castet</html>").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("rapports")), 0o700);

        // A file an earlier write left world-readable is tightened, not just rewritten.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, "<html>Pérès</html>").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "<html>Pérès</html>"
        );
    }

    #[test]
    fn garbage_csr_is_a_field_violation() {
        let (ca, _) = Authority::create("test CA").unwrap();
        assert!(matches!(
            ca.sign_client_csr("not a csr", "x", 1),
            Err(Error::Invalid(v)) if v[0].field == "csr_pem"
        ));
    }
}
