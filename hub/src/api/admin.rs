//! AdminService: partners and their certificates. Only the administrator principal calls it.

use super::{AdminCall, Api, convert, request_id};
use crate::domain::ids::{PartnerId, free_text};
use crate::domain::partner::{Partner, PartnerStatus, parse_territory_code};
use crate::error::{Error, Result, Violations};
use relais_proto::v1::{self as pb, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

impl Api {
    async fn change_status(
        &self,
        call: AdminCall,
        id: &str,
        reason: &str,
        raw_request_id: &str,
        status: PartnerStatus,
    ) -> Result<pb::Partner> {
        let mut v = Violations::new();
        let id = v.field("id", PartnerId::parse(id));
        let reason = v.field("reason", free_text(reason, 500));
        let request_id = request_id(raw_request_id, &mut v);
        v.finish()?;
        let (Some(id), Some(reason), Some(request_id)) = (id, reason, request_id) else {
            return Err(Error::Internal("validated fields missing".into()));
        };
        let partner = self
            .store
            .set_partner_status(&id, status, reason, &call.meta(request_id))
            .await?;
        tracing::info!(partner = %partner.id, status = partner.status.as_str(), "partner status");
        Ok(convert::partner(&partner))
    }
}

#[tonic::async_trait]
impl AdminService for Api {
    async fn add_partner(
        &self,
        request: Request<pb::AddPartnerRequest>,
    ) -> Result<Response<pb::AddPartnerResponse>, Status> {
        self.admin_call("AddPartner", request, |call, req| async move {
            let mut v = Violations::new();
            let id = v.field("id", PartnerId::parse(&req.id));
            let kind = v.field("kind", convert::partner_kind_from_pb(req.kind));
            let name = v.field("name", free_text(&req.name, 200));
            if req.name.trim().is_empty() {
                v.push("name", "required: the partner's display name");
            }
            let mut territory = Vec::new();
            for (i, code) in req.territory.iter().enumerate() {
                if let Some(code) = v.field(&format!("territory[{i}]"), parse_territory_code(code))
                    && !territory.contains(&code)
                {
                    territory.push(code);
                }
            }
            if req.territory.is_empty() {
                v.push("territory", "required: at least one INSEE COG code");
            }
            if req.csr_pem.is_empty() {
                v.push(
                    "csr_pem",
                    "required: the connector's certificate signing request (PEM)",
                );
            }
            let request_id = request_id(&req.request_id, &mut v);
            v.finish()?;
            let (Some(id), Some(kind), Some(name), Some(request_id)) = (id, kind, name, request_id)
            else {
                return Err(Error::Internal("validated fields missing".into()));
            };
            let (_, record) = self.authority.sign_client_csr(
                &req.csr_pem,
                id.as_str(),
                self.settings.certificate_validity_days,
            )?;
            let partner = Partner {
                id,
                kind,
                name,
                territory,
                cog_vintage: if req.cog_vintage == 0 {
                    self.settings.cog_vintage
                } else {
                    req.cog_vintage
                },
                status: PartnerStatus::Active,
                status_reason: String::new(),
                certificates: vec![record],
                created_at: call.at(),
                updated_at: call.at(),
                version: 1,
            };
            // On a retry the store returns the partner of the first call, with the certificate
            // signed then; this call's signature is simply not used.
            let stored = self
                .store
                .add_partner(partner, &call.meta(request_id))
                .await?;
            tracing::info!(partner = %stored.id, kind = stored.kind.as_str(), "partner added");
            Ok(pb::AddPartnerResponse {
                certificate_pem: stored
                    .certificates
                    .first()
                    .map(|c| c.pem.clone())
                    .unwrap_or_default(),
                partner: Some(convert::partner(&stored)),
                ca_certificate_pem: self.authority.cert_pem().to_string(),
            })
        })
        .await
    }

    async fn get_partner(
        &self,
        request: Request<pb::GetPartnerRequest>,
    ) -> Result<Response<pb::GetPartnerResponse>, Status> {
        self.admin_call("GetPartner", request, |_call, req| async move {
            let id = PartnerId::parse(&req.id).map_err(|e| convert::invalid("id", e))?;
            let partner = self
                .store
                .get_partner(&id)
                .await?
                .ok_or_else(|| Error::not_found("partner", &id))?;
            Ok(pb::GetPartnerResponse {
                partner: Some(convert::partner(&partner)),
            })
        })
        .await
    }

    async fn list_partners(
        &self,
        request: Request<pb::ListPartnersRequest>,
    ) -> Result<Response<pb::ListPartnersResponse>, Status> {
        self.admin_call("ListPartners", request, |_call, req| async move {
            let mut v = Violations::new();
            let page = convert::page(req.page_size, &req.page_token, &mut v);
            v.finish()?;
            let mut partners = self
                .store
                .list_partners(page.after.as_deref(), page.size + 1)
                .await?;
            let next_page_token =
                convert::next_page(&mut partners, page.size, |p| p.id.to_string());
            Ok(pb::ListPartnersResponse {
                partners: partners.iter().map(convert::partner).collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn suspend_partner(
        &self,
        request: Request<pb::SuspendPartnerRequest>,
    ) -> Result<Response<pb::SuspendPartnerResponse>, Status> {
        self.admin_call("SuspendPartner", request, |call, req| async move {
            let partner = self
                .change_status(
                    call,
                    &req.id,
                    &req.reason,
                    &req.request_id,
                    PartnerStatus::Suspended,
                )
                .await?;
            Ok(pb::SuspendPartnerResponse {
                partner: Some(partner),
            })
        })
        .await
    }

    async fn resume_partner(
        &self,
        request: Request<pb::ResumePartnerRequest>,
    ) -> Result<Response<pb::ResumePartnerResponse>, Status> {
        self.admin_call("ResumePartner", request, |call, req| async move {
            let partner = self
                .change_status(call, &req.id, "", &req.request_id, PartnerStatus::Active)
                .await?;
            Ok(pb::ResumePartnerResponse {
                partner: Some(partner),
            })
        })
        .await
    }

    async fn issue_certificate(
        &self,
        request: Request<pb::IssueCertificateRequest>,
    ) -> Result<Response<pb::IssueCertificateResponse>, Status> {
        self.admin_call("IssueCertificate", request, |_call, req| async move {
            let id =
                PartnerId::parse(&req.partner_id).map_err(|e| convert::invalid("partner_id", e))?;
            if self.store.get_partner(&id).await?.is_none() {
                return Err(Error::not_found("partner", &id));
            }
            let (certificate_pem, record) = self.authority.sign_client_csr(
                &req.csr_pem,
                id.as_str(),
                self.settings.certificate_validity_days,
            )?;
            self.store.add_certificate(&id, record).await?;
            Ok(pb::IssueCertificateResponse {
                certificate_pem,
                ca_certificate_pem: self.authority.cert_pem().to_string(),
            })
        })
        .await
    }
}
