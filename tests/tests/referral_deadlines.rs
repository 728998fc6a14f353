//! Fiches navettes with deadlines: the territory's reply delay by default (a sender may only
//! shorten it); on the deadline the recipient is reminded on its feed, the day after the sender
//! is told it is overdue and may escalate; an unanswered referral expires. Reminders are kept in
//! the database: each fires once, in order, across a restart and across replicas. Days pass on
//! the hub's clock, not in the test's sleep.

use relais_hub::domain::Clock;
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use tonic::Code;

fn day_in(hub: &TestHub, days: i64) -> String {
    let today = hub.clock.now().day().to_string();
    let date = time::Date::parse(
        &today,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .unwrap()
        + time::Duration::days(days);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

fn kinds(events: &[pb::ChangeEvent], kind: pb::ChangeKind) -> usize {
    events.iter().filter(|e| e.kind == kind as i32).count()
}

/// The bus holds Mme Castet's case and may send her fiches navettes to the mairie.
async fn setup(hub: &TestHub) -> (Partner, Partner, pb::Case) {
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let aspet = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    let who = pivot("Castet", "Rose", "1943-02-17", "31021");
    bus.link("B1", who.clone()).await;
    aspet.link("R1", who).await;
    let case = bus.open_case("B1", "F1342").await;
    bus.grant(
        "B1",
        partner("mairie-aspet"),
        &["referrals", "case_status"],
        &[pb::Purpose::Orientation, pb::Purpose::Accompagnement],
    )
    .await;
    (bus, aspet, case)
}

async fn send(bus: &Partner, case: &pb::Case, due: &str) -> Result<pb::Referral, tonic::Status> {
    bus.cases
        .clone()
        .send_referral(pb::SendReferralRequest {
            context: ctx(),
            case_id: case.id.clone(),
            to_partner: "mairie-aspet".into(),
            reason: "aide au dossier APA".into(),
            requested_action: "rappeler Mme Castet".into(),
            due_date: due.into(),
            request_id: new_request_id(),
        })
        .await
        .map(|r| r.into_inner().referral.expect("referral"))
}

async fn remind(hub: &TestHub) -> u32 {
    hub.hub
        .store
        .apply_expiries(hub.clock.now(), 500)
        .await
        .unwrap()
        .referral_reminders
}

async fn overdue(p: &Partner) -> Vec<pb::Referral> {
    p.cases
        .clone()
        .list_referrals(pb::ListReferralsRequest {
            context: ctx(),
            overdue_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .referrals
}

#[tokio::test]
async fn a_deadline_is_the_territory_s_delay_or_shorter() {
    let hub = TestHub::start().await;
    let (bus, _, case) = setup(&hub).await;
    let by_default = send(&bus, &case, "").await.unwrap();
    assert_eq!(by_default.due_date, day_in(&hub, 10));
    assert_eq!(by_default.expires_on, day_in(&hub, 40));
    assert!(!by_default.overdue);
    let shorter = send(&bus, &case, &day_in(&hub, 5)).await.unwrap();
    assert_eq!(shorter.due_date, day_in(&hub, 5));
    for bad in [day_in(&hub, 11), day_in(&hub, 0)] {
        let refused = send(&bus, &case, &bad).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(violated_fields(&refused), ["due_date"]);
    }
}

#[tokio::test]
async fn reminders_fire_once_in_order_to_their_partner_and_survive_a_restart() {
    let hub = TestHub::start().await;
    let (bus, aspet, case) = setup(&hub).await;
    let referral = send(&bus, &case, "").await.unwrap();

    // Nine days: nothing yet.
    hub.clock.advance_days(9);
    assert_eq!(remind(&hub).await, 0);
    // The tenth: the mairie is reminded, on its feed only; once.
    hub.clock.advance_days(1);
    assert_eq!(remind(&hub).await, 1);
    assert_eq!(remind(&hub).await, 0, "once");
    let to_mairie = aspet.feed_until_caught_up(0).await;
    assert_eq!(kinds(&to_mairie, pb::ChangeKind::ReferralDue), 1);
    assert_eq!(kinds(&to_mairie, pb::ChangeKind::ReferralOverdue), 0);
    let to_bus = bus.feed_until_caught_up(0).await;
    assert_eq!(kinds(&to_bus, pb::ChangeKind::ReferralDue), 0);
    assert!(overdue(&bus).await.is_empty(), "due today is not late yet");

    // The day after, unanswered: the bus is told; both see it in their overdue lists.
    hub.clock.advance_days(1);
    assert_eq!(remind(&hub).await, 1);
    let to_bus = bus.feed_until_caught_up(0).await;
    assert_eq!(kinds(&to_bus, pb::ChangeKind::ReferralOverdue), 1);
    let to_mairie = aspet.feed_until_caught_up(0).await;
    assert_eq!(kinds(&to_mairie, pb::ChangeKind::ReferralOverdue), 0);
    let late = overdue(&bus).await;
    assert_eq!(late.len(), 1);
    assert!(late[0].overdue && late[0].overdue_notified_at.is_some());
    assert_eq!(overdue(&aspet).await.len(), 1);

    // The bus escalates: a new deadline, the reminders start over.
    let current = late[0].clone();
    let escalated = bus
        .cases
        .clone()
        .escalate_referral(pb::EscalateReferralRequest {
            context: ctx(),
            referral_id: referral.id.clone(),
            expected_version: current.version,
            due_date: day_in(&hub, 3),
            request_id: new_request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(escalated.escalations, 1);
    assert_eq!(escalated.due_date, day_in(&hub, 3));
    assert!(!escalated.overdue && escalated.due_reminded_at.is_none());
    assert!(overdue(&bus).await.is_empty());
    // Only its sender escalates.
    let refused = aspet
        .cases
        .clone()
        .escalate_referral(pb::EscalateReferralRequest {
            context: ctx(),
            referral_id: referral.id.clone(),
            expected_version: escalated.version,
            due_date: String::new(),
            request_id: new_request_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Through a restart, the schedule holds: three days on, the mairie is reminded again;
    // 31 days past the new deadline, the bus is told and the referral expires, in that order.
    let hub = hub.restart().await;
    let aspet = Partner::connect("mairie-aspet", &hub.url(), aspet.bundle.clone()).await;
    let bus = Partner::connect("cc-comminges", &hub.url(), bus.bundle.clone()).await;
    hub.clock.advance_days(3);
    assert_eq!(remind(&hub).await, 1);
    hub.clock.advance_days(31);
    assert_eq!(remind(&hub).await, 2, "overdue, then expired");
    assert_eq!(remind(&hub).await, 0);
    let ended = bus
        .cases
        .clone()
        .get_referral(pb::GetReferralRequest {
            context: ctx(),
            referral_id: referral.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(ended.state, pb::ReferralState::Expired as i32);
    assert!(ended.expiry_reason.contains("sans réponse"), "{ended:?}");
    let last_move = ended.history.last().unwrap();
    assert_eq!(
        (last_move.partner.as_str(), last_move.agent.as_str()),
        ("hub", "relais"),
        "the hub expired it, not the recipient"
    );
    assert!(!ended.overdue, "an expired referral awaits nothing");
    let to_mairie = aspet.feed_until_caught_up(0).await;
    assert_eq!(kinds(&to_mairie, pb::ChangeKind::ReferralDue), 2);
    let last = to_mairie
        .iter()
        .rev()
        .find_map(|e| match &e.resource {
            Some(pb::change_event::Resource::Referral(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.state, pb::ReferralState::Expired as i32);
    // An expired referral is no longer answered, nor escalated.
    let late_answer = aspet
        .cases
        .clone()
        .answer_referral(pb::AnswerReferralRequest {
            context: ctx(),
            referral_id: referral.id.clone(),
            expected_version: ended.version,
            answer: "rappelée".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(late_answer.code(), Code::FailedPrecondition);
    let audit = hub
        .admin
        .clone()
        .verify_audit(pb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(audit.intact);
}

/// Two replicas run the scheduler on the same database at the same moment: each reminder
/// fires once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_two_replicas_a_reminder_fires_once() {
    let Some((a, b)) = TestHub::two_replicas("on_two_replicas_a_reminder_fires_once").await else {
        return;
    };
    let (bus, aspet, case) = setup(&a).await;
    for _ in 0..5 {
        send(&bus, &case, "").await.unwrap();
    }
    a.clock.advance_days(10);
    b.clock.advance_days(10);
    let (on_a, on_b) = tokio::join!(remind(&a), remind(&b));
    assert_eq!(on_a + on_b, 5, "five reminders in all ({on_a} + {on_b})");
    let events = aspet.feed_until_caught_up(0).await;
    assert_eq!(kinds(&events, pb::ChangeKind::ReferralDue), 5);
}

/// A row whose next reminder went stale (the referral was answered by a replica of an older
/// version, which did not move it) leaves the schedule at the next run, and does not hold back
/// the reminders that are due.
#[tokio::test]
async fn review_a_stale_reminder_leaves_the_schedule_without_starving_the_others() {
    let hub = TestHub::start().await;
    let (bus, aspet, case) = setup(&hub).await;
    let answered = send(&bus, &case, "").await.unwrap();
    let waiting = send(&bus, &case, "").await.unwrap();
    aspet
        .cases
        .clone()
        .answer_referral(pb::AnswerReferralRequest {
            context: ctx(),
            referral_id: answered.id.clone(),
            expected_version: answered.version,
            answer: "rappelée le jour même".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    let db = sqlx::sqlite::SqlitePool::connect(&format!(
        "sqlite://{}",
        hub.dir.path().join("relais.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE referrals SET next_reminder = due_date WHERE id = ?")
        .bind(&answered.id)
        .execute(&db)
        .await
        .unwrap();
    hub.clock.advance_days(10);
    let mut sent = 0;
    for _ in 0..3 {
        sent += hub
            .hub
            .store
            .apply_expiries(hub.clock.now(), 1)
            .await
            .unwrap()
            .referral_reminders;
    }
    assert_eq!(sent, 1, "the waiting referral's reminder, once");
    let due: Vec<String> = aspet
        .feed_until_caught_up(0)
        .await
        .iter()
        .filter(|e| e.kind == pb::ChangeKind::ReferralDue as i32)
        .filter_map(|e| match &e.resource {
            Some(pb::change_event::Resource::Referral(r)) => Some(r.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(due, std::slice::from_ref(&waiting.id));
    let (stale,): (Option<String>,) =
        sqlx::query_as("SELECT next_reminder FROM referrals WHERE id = ?")
            .bind(&answered.id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(stale, None, "an answered referral has no reminder left");
}
