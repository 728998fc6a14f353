//! Bad input gets INVALID_ARGUMENT with the fields at fault (google.rpc.BadRequest), and
//! writes nothing.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use tonic::Code;

fn fields(r: Result<impl std::fmt::Debug, tonic::Status>) -> Vec<String> {
    let status = r.expect_err("the request is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    violated_fields(&status)
}

#[tokio::test]
async fn each_kind_of_bad_input_names_its_fields() {
    let hub = TestHub::start().await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    let mut flags = bus.flags.clone();
    let mut persons = bus.persons.clone();
    let mut cases = bus.cases.clone();

    let raise =
        |code: &str, context: Option<pb::RequestContext>, request_id: &str| pb::RaiseFlagRequest {
            context,
            person: Some(local("B1")),
            code: code.into(),
            note: String::new(),
            valid_until: String::new(),
            request_id: request_id.into(),
            ..Default::default()
        };
    assert_eq!(
        fields(flags.raise_flag(raise("SANS_WIFI", ctx(), "k1")).await),
        ["code"]
    );
    assert_eq!(
        fields(flags.raise_flag(raise("SANS_INTERNET", None, "k2")).await),
        ["context"]
    );
    let no_purpose = Some(pb::RequestContext {
        purpose: 0,
        agent: String::new(),
    });
    assert_eq!(
        fields(
            flags
                .raise_flag(raise("SANS_INTERNET", no_purpose, "k3"))
                .await
        ),
        ["context.purpose", "context.agent"]
    );
    let bad_agent = Some(pb::RequestContext {
        purpose: pb::Purpose::Accompagnement as i32,
        agent: "Jean Dupont".into(),
    });
    assert_eq!(
        fields(
            flags
                .raise_flag(raise("SANS_INTERNET", bad_agent, "k4"))
                .await
        ),
        ["context.agent"]
    );
    assert_eq!(
        fields(flags.raise_flag(raise("SANS_INTERNET", ctx(), "")).await),
        ["request_id"]
    );
    let mut r = raise("SANS_INTERNET", ctx(), "k5");
    r.valid_until = "31/12/2026".into();
    r.person = None;
    assert_eq!(fields(flags.raise_flag(r).await), ["valid_until"]);
    let mut r = raise("SANS_INTERNET", ctx(), "k6");
    r.person = None;
    assert_eq!(fields(flags.raise_flag(r).await), ["person"]);

    let link = pb::LinkPersonRequest {
        context: ctx(),
        local_id: String::new(),
        pivot: Some(pivot("", "Rose", "1943-02-30", "Aspet")),
        person_id: String::new(),
        request_id: new_request_id(),
    };
    assert_eq!(
        fields(persons.link_person(link).await),
        [
            "local_id",
            "pivot.family_name",
            "pivot.birth_date",
            "pivot.birth_place_cog"
        ]
    );

    let open = pb::OpenCaseRequest {
        context: ctx(),
        person: Some(local("B1")),
        procedure: "carte d'identité".into(),
        missing_documents: vec![String::new()],
        due_date: "demain".into(),
        initial_status: pb::CaseStatus::Closed as i32,
        request_id: new_request_id(),
        theme: String::new(),
    };
    assert_eq!(
        fields(cases.open_case(open).await),
        [
            "procedure",
            "missing_documents",
            "due_date",
            "initial_status"
        ]
    );
    let transition = pb::TransitionCaseRequest {
        context: ctx(),
        case_id: "not-a-uuid".into(),
        expected_version: 0,
        to_status: 99,
        reason: String::new(),
        missing_documents: None,
        duplicate_of: String::new(),
        redirect_to_partner: String::new(),
        redirect_procedure: String::new(),
        request_id: new_request_id(),
    };
    assert_eq!(
        fields(cases.transition_case(transition).await),
        ["case_id", "to_status", "expected_version"]
    );
    let list = pb::ListCasesRequest {
        context: ctx(),
        person: None,
        statuses: vec![],
        page_size: -1,
        page_token: "forged".into(),
    };
    assert_eq!(
        fields(cases.list_cases(list).await),
        ["page_size", "page_token"]
    );

    let (_, csr_pem) = relais_hub::pki::new_key_and_csr("x").unwrap();
    let add = pb::AddPartnerRequest {
        id: "Mairie d'Aspet".into(),
        kind: 0,
        name: String::new(),
        territory: vec!["Aspet".into()],
        cog_vintage: 0,
        csr_pem,
        request_id: new_request_id(),
    };
    assert_eq!(
        fields(hub.admin.clone().add_partner(add).await),
        ["id", "kind", "name", "territory[0]"]
    );
    let add = pb::AddPartnerRequest {
        id: "mairie-aspet".into(),
        kind: pb::PartnerKind::Mairie as i32,
        name: "Mairie d'Aspet".into(),
        territory: vec!["31021".into()],
        cog_vintage: 0,
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            .into(),
        request_id: new_request_id(),
    };
    assert_eq!(
        fields(hub.admin.clone().add_partner(add).await),
        ["csr_pem"]
    );

    // Nothing of the above was written.
    assert!(bus.feed_until_caught_up(0).await.is_empty());
    let partners = hub
        .admin
        .clone()
        .list_partners(pb::ListPartnersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .partners;
    assert_eq!(partners.len(), 1);
}
