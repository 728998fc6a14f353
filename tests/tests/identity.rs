//! mTLS identity: the certificate is the partner. Unknown, foreign and suspended identities are
//! refused; the administrator and the partners each keep to their own services.

use relais_hub::pki::{Authority, Bundle};
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Code;

async fn summary(p: &Partner) -> Result<pb::GetPersonSummaryResponse, tonic::Status> {
    p.persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: ctx(),
            person: Some(local("B1")),
            include_history: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_certificate_of_this_ca_that_was_never_registered_is_unauthenticated() {
    let hub = TestHub::start().await;
    let ca = Authority::load(&hub.hub.tls.ca_cert, &hub.hub.tls.ca_key).unwrap();
    let (bundle, _) = ca.issue_client("mairie-aspet", 30).unwrap();
    let intruder = Partner::connect("mairie-aspet", &hub.url(), bundle).await;
    let err = summary(&intruder).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("not registered"));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let hub = TestHub::start().await;
    let (foreign, _) = Authority::create("someone else's CA").unwrap();
    let (mut bundle, _) = foreign.issue_client("cc-comminges", 30).unwrap();
    // The client trusts the hub, but its certificate does not chain to the hub's CA.
    bundle.ca_pem = std::fs::read_to_string(&hub.hub.tls.ca_cert).unwrap();
    let outcome: Result<_, String> = async {
        let channel = relais_hub::cli::connect::channel(&hub.url(), &bundle)
            .await
            .map_err(|e| format!("{e:#}"))?;
        pb::person_service_client::PersonServiceClient::new(channel)
            .get_person_summary(pb::GetPersonSummaryRequest {
                context: ctx(),
                person: Some(local("B1")),
                include_history: false,
            })
            .await
            .map_err(|s| format!("{s:?}"))
    }
    .await;
    let err = outcome.expect_err("a foreign certificate never reaches the services");
    // Refused by TLS, before any service could answer: no gRPC status of the hub's own.
    assert!(err.contains("UnknownCA"), "{err}");
}

#[tokio::test]
async fn a_suspended_partner_is_refused_and_its_subscription_ends_until_resumed() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    let mut feed = bus
        .sync
        .clone()
        .subscribe(pb::SubscribeRequest {
            context: ctx(),
            after_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(feed.next().await.unwrap().is_ok(), "caught up");

    let suspended = hub
        .admin
        .clone()
        .suspend_partner(pb::SuspendPartnerRequest {
            id: "cc-comminges".into(),
            reason: "certificat compromis".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .partner
        .unwrap();
    assert_eq!(suspended.status, pb::PartnerStatus::Suspended as i32);
    let err = summary(&bus).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("certificat compromis"),
        "{}",
        err.message()
    );

    // Another partner's write wakes the subscription, which then ends with the refusal.
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    ccas.link("M1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    ccas.grant(
        "M1",
        partner("cc-comminges"),
        &["digital"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    ccas.raise("M1", "SANS_INTERNET").await;
    let end = tokio::time::timeout(Duration::from_secs(20), feed.next())
        .await
        .expect("the subscription ends")
        .expect("with a status");
    assert_eq!(end.unwrap_err().code(), Code::PermissionDenied);

    hub.admin
        .clone()
        .resume_partner(pb::ResumePartnerRequest {
            id: "cc-comminges".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let summary = summary(&bus).await.unwrap();
    assert_eq!(summary.flags.len(), 1);
}

#[tokio::test]
async fn partners_cannot_administer_and_the_administrator_is_not_a_partner() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let channel = relais_hub::cli::connect::channel(&hub.url(), &bus.bundle)
        .await
        .unwrap();
    let err = pb::admin_service_client::AdminServiceClient::new(channel)
        .list_partners(pb::ListPartnersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let admin_bundle = Bundle::read(&hub.hub.tls.admin_bundle).unwrap();
    let admin_as_partner = Partner::connect("admin", &hub.url(), admin_bundle).await;
    let err = summary(&admin_as_partner).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_partner_added_twice_is_refused_and_a_retried_add_returns_the_same_certificate() {
    let hub = TestHub::start().await;
    let (_, csr_pem) = relais_hub::pki::new_key_and_csr("mairie-aspet").unwrap();
    let request = pb::AddPartnerRequest {
        id: "mairie-aspet".into(),
        kind: pb::PartnerKind::Mairie as i32,
        name: "Mairie d'Aspet".into(),
        territory: vec!["31021".into()],
        cog_vintage: 0,
        csr_pem,
        request_id: new_request_id(),
    };
    let first = hub
        .admin
        .clone()
        .add_partner(request.clone())
        .await
        .unwrap()
        .into_inner();
    let retry = hub
        .admin
        .clone()
        .add_partner(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.certificate_pem, retry.certificate_pem);
    assert_eq!(first.partner, retry.partner);
    let mut again = request;
    again.request_id = new_request_id();
    let err = hub.admin.clone().add_partner(again).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn health_checking_and_reflection_are_served() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let channel = relais_hub::cli::connect::channel(&hub.url(), &bus.bundle)
        .await
        .unwrap();
    for service in ["", "relais.v1.FlagService", "relais.v1.SyncService"] {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::once(ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "relais.v1.PersonService",
        "relais.v1.FlagService",
        "relais.v1.CaseService",
        "relais.v1.SyncService",
        "relais.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
}
