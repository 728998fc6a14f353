//! The change feed: resume from a cursor, exactly once after deduplication, live following,
//! and idempotent writes that append nothing on a retry.

use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_stream::StreamExt;

fn raise_request(local_id: &str, code: &str, request_id: &str) -> pb::RaiseFlagRequest {
    pb::RaiseFlagRequest {
        context: ctx(),
        person: Some(local(local_id)),
        code: code.into(),
        note: String::new(),
        valid_until: String::new(),
        request_id: request_id.into(),
        ..Default::default()
    }
}

const CODES: [&str; 6] = [
    "ELOIGNEMENT",
    "SANS_TRANSPORT",
    "SANS_INTERNET",
    "ZONE_BLANCHE",
    "ILLECTRONISME",
    "ISOLEMENT",
];

async fn a_subscriber_that_disconnects_and_resumes_sees_every_event_once(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    for i in 0..10 {
        let p = pivot("Habitant", &format!("Prénom{i}"), "1950-01-01", "31021");
        bus.link(&format!("B{i}"), p.clone()).await;
        ccas.link(&format!("M{i}"), p).await;
        bus.grant(
            &format!("B{i}"),
            kind(PartnerKind::Mairie),
            &FLAG_CATEGORIES,
            &[pb::Purpose::Accompagnement],
        )
        .await;
    }

    // A writer raises flags while the subscriber reads; the subscriber drops its connection
    // after a few events and resumes from the last position it applied.
    let writer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut written = Vec::new();
            for i in 0..10 {
                for code in CODES {
                    let flag = bus.raise(&format!("B{i}"), code).await;
                    written.push(flag.id);
                    if written.len() % 7 == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            written
        })
    };

    let mut applied: BTreeMap<u64, String> = BTreeMap::new();
    let mut deliveries = 0;
    let mut cursor = 0;
    let mut sessions = 0;
    while applied.len() < 60 {
        sessions += 1;
        assert!(
            sessions < 100,
            "feed did not converge: {} applied",
            applied.len()
        );
        let mut stream = ccas
            .sync
            .clone()
            .subscribe(pb::SubscribeRequest {
                context: ctx(),
                after_position: cursor,
            })
            .await
            .unwrap()
            .into_inner();
        let mut read_this_session = 0;
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(5), stream.next()).await
        {
            let message = message.expect("feed message");
            let Some(pb::subscribe_response::Payload::Event(event)) = message.payload else {
                continue;
            };
            deliveries += 1;
            assert!(
                event.position > cursor,
                "in position order, after the cursor"
            );
            assert_eq!(
                event.local_ids.len(),
                1,
                "the subscriber's own local id comes along"
            );
            assert!(event.local_ids[0].starts_with('M'));
            let Some(pb::change_event::Resource::Flag(flag)) = event.resource else {
                panic!("only flags were written");
            };
            // Apply (idempotent by position), then store the cursor.
            applied.insert(event.position, flag.id);
            cursor = event.position;
            read_this_session += 1;
            if read_this_session == 9 {
                break; // disconnect mid-stream
            }
        }
    }
    let written = writer.await.unwrap();
    assert_eq!(
        deliveries,
        applied.len(),
        "nothing delivered twice across resumptions"
    );
    let mut seen: Vec<_> = applied.values().cloned().collect();
    let mut expected = written.clone();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected, "every written flag arrives, exactly once");
    assert!(
        sessions > 3,
        "the subscriber really resumed ({sessions} sessions)"
    );

    // Resuming from any saved cursor gives exactly the suffix.
    let positions: Vec<u64> = applied.keys().copied().collect();
    let from = positions[20];
    let suffix: Vec<u64> = ccas
        .feed_until_caught_up(from)
        .await
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(suffix, positions[21..]);
}

async fn a_live_subscriber_receives_new_events_without_polling_delay(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;
    let mut stream = bus
        .sync
        .clone()
        .subscribe(pb::SubscribeRequest {
            context: ctx(),
            after_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(
        first.payload,
        Some(pb::subscribe_response::Payload::CaughtUp(pb::CaughtUp {
            position: 0
        }))
    ));
    let flag = bus.raise("B1", "SANS_INTERNET").await;
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a live event arrives")
        .unwrap()
        .unwrap();
    match next.payload {
        Some(pb::subscribe_response::Payload::Event(e)) => {
            assert_eq!(e.kind, pb::ChangeKind::FlagRaised as i32);
            assert_eq!(e.partner, "cc-comminges");
            assert_eq!(e.agent, "agent-1");
            match e.resource {
                Some(pb::change_event::Resource::Flag(f)) => assert_eq!(f.id, flag.id),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
}

async fn a_slow_subscriber_does_not_hold_back_a_fast_one(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let ccas = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    for i in 0..40 {
        let p = pivot("Habitant", &format!("P{i}"), "1950-01-01", "31021");
        bus.link(&format!("B{i}"), p.clone()).await;
        ccas.link(&format!("M{i}"), p).await;
        bus.grant(
            &format!("B{i}"),
            kind(PartnerKind::Mairie),
            &FLAG_CATEGORIES,
            &[pb::Purpose::Accompagnement],
        )
        .await;
    }
    // The slow subscriber opens its stream and reads one event, then stops reading.
    let mut slow = bus
        .sync
        .clone()
        .subscribe(pb::SubscribeRequest {
            context: ctx(),
            after_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let _ = slow.next().await;
    for i in 0..40 {
        for code in CODES {
            bus.raise(&format!("B{i}"), code).await;
        }
    }
    // The fast one, another partner on its own connection, reads all 240 events (some 80 kB,
    // more than an HTTP/2 stream window) while the slow one is not reading.
    let events = tokio::time::timeout(Duration::from_secs(20), ccas.feed_until_caught_up(0))
        .await
        .expect("the fast subscriber is not held back");
    assert_eq!(events.len(), 240);
    // And the slow one still gets everything, in order, when it reads again.
    let mut positions = Vec::new();
    while positions.len() < 240 {
        match slow.next().await.unwrap().unwrap().payload {
            Some(pb::subscribe_response::Payload::Event(e)) => positions.push(e.position),
            _ => continue,
        }
    }
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
}

async fn a_retried_write_returns_the_first_result_and_changes_nothing(backend: Backend) {
    let hub = TestHub::start_on(backend).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    bus.link("B1", pivot("Castet", "Rose", "1943-02-17", "31021"))
        .await;

    let key = new_request_id();
    let first = bus
        .flags
        .clone()
        .raise_flag(raise_request("B1", "SANS_INTERNET", &key))
        .await
        .unwrap()
        .into_inner();
    let retry = bus
        .flags
        .clone()
        .raise_flag(raise_request("B1", "SANS_INTERNET", &key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, retry, "same answer");
    assert!(retry.created, "the retry answers as the first call did");

    let open = |key: String| {
        let bus = bus.clone();
        async move {
            bus.cases
                .clone()
                .open_case(pb::OpenCaseRequest {
                    context: ctx(),
                    person: Some(local("B1")),
                    procedure: "F1342".into(),
                    missing_documents: vec![],
                    due_date: String::new(),
                    initial_status: 0,
                    request_id: key,
                    theme: String::new(),
                })
                .await
        }
    };
    let key = new_request_id();
    let a = open(key.clone()).await.unwrap().into_inner();
    let b = open(key.clone()).await.unwrap().into_inner();
    assert_eq!(a, b);
    let cases = bus
        .cases
        .clone()
        .list_cases(pb::ListCasesRequest {
            context: ctx(),
            person: None,
            statuses: vec![],
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert_eq!(cases.len(), 1, "one case, not two");
    // A transition retried after it applied still answers with its first result.
    let case = a.r#case.unwrap();
    let mut request = transition(&case, pb::CaseStatus::Sent);
    let moved = bus
        .cases
        .clone()
        .transition_case(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = bus
        .cases
        .clone()
        .transition_case(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved, again);
    assert_eq!(
        bus.feed_until_caught_up(0).await.len(),
        3,
        "flag, case, one transition"
    );

    // The same key for a different request is refused, not silently answered.
    request.reason = "autre chose".into();
    let err = bus
        .cases
        .clone()
        .transition_case(request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["request_id"]);
}

on_both_backends!(
    a_subscriber_that_disconnects_and_resumes_sees_every_event_once,
    a_live_subscriber_receives_new_events_without_polling_delay,
    a_slow_subscriber_does_not_hold_back_a_fast_one,
    a_retried_write_returns_the_first_result_and_changes_nothing,
);
