//! `relais admin`: partners, over gRPC with the administrator's certificate.

use super::connect::{DEFAULT_HUB, channel};
use crate::domain::PartnerKind;
use crate::domain::ids::PartnerId;
use crate::pki::{Bundle, new_key_and_csr};
use anyhow::Context;
use clap::{Args, Subcommand};
use relais_proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use std::path::PathBuf;

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
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Partners: add, list, show, suspend, resume, issue a certificate.
    #[command(subcommand)]
    Partner(PartnerCommand),
}

#[derive(Subcommand)]
enum PartnerCommand {
    /// Register a partner and write its connector's identity bundle.
    Add {
        /// communaute_de_communes, mairie, departement, sous_prefecture, association, operateur
        #[arg(long)]
        kind: String,
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
    },
    List,
    Show {
        id: String,
    },
    Suspend {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    Resume {
        id: String,
    },
    /// Issue a further certificate (renewal, a second connector) and write its bundle.
    Certificate {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
}

fn print_partner(p: &pb::Partner) {
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
    println!(
        "{:<28} {:<24} {:<10} {:<16} {}",
        p.id,
        kind,
        status,
        p.territory.join(","),
        p.name
    );
}

fn request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let bundle = Bundle::read(&args.identity)?;
    let mut client = AdminServiceClient::new(channel(&args.hub, &bundle).await?);
    match args.command {
        AdminCommand::Partner(cmd) => match cmd {
            PartnerCommand::Add {
                kind,
                name,
                territory,
                id,
                out,
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
                let (key, csr_pem) = new_key_and_csr(&id)?;
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
                Bundle {
                    cert_pem: response.certificate_pem,
                    key_pem: key.serialize_pem(),
                    ca_pem: response.ca_certificate_pem,
                }
                .write(&out, &format!("Relais identity of partner `{id}` ({name}).\nGive it to the partner's connector only."))?;
                if let Some(p) = &response.partner {
                    print_partner(p);
                }
                println!("identity bundle written to {}", out.display());
            }
            PartnerCommand::List => {
                let mut token = String::new();
                loop {
                    let page = client
                        .list_partners(pb::ListPartnersRequest {
                            page_size: 100,
                            page_token: token,
                        })
                        .await?
                        .into_inner();
                    page.partners.iter().for_each(print_partner);
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    token = page.next_page_token;
                }
            }
            PartnerCommand::Show { id } => {
                let p = client
                    .get_partner(pb::GetPartnerRequest { id })
                    .await?
                    .into_inner()
                    .partner
                    .context("no partner in the answer")?;
                print_partner(&p);
                for c in &p.certificates {
                    println!("  certificate {} serial {}", c.fingerprint, c.serial);
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
                r.partner.iter().for_each(print_partner);
            }
            PartnerCommand::Certificate { id, out } => {
                let (key, csr_pem) = new_key_and_csr(&id)?;
                let r = client
                    .issue_certificate(pb::IssueCertificateRequest {
                        partner_id: id.clone(),
                        csr_pem,
                    })
                    .await?
                    .into_inner();
                Bundle {
                    cert_pem: r.certificate_pem,
                    key_pem: key.serialize_pem(),
                    ca_pem: r.ca_certificate_pem,
                }
                .write(&out, &format!("Relais identity of partner `{id}`."))?;
                println!("identity bundle written to {}", out.display());
            }
        },
    }
    Ok(())
}
