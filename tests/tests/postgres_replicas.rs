//! The feed never skips, with many concurrent writers on two hub replicas sharing one
//! PostgreSQL database, when transactions commit in random order (random delays inside each
//! write transaction): a subscriber reading throughout, and then from several saved cursors,
//! receives every event once, in position order.

use relais_tests::proto::{self as pb, CaseStatus as S, PartnerKind};
use relais_tests::*;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_stream::StreamExt;

async fn read_until_caught_up(p: &Partner, after: u64) -> Vec<u64> {
    p.feed_until_caught_up(after)
        .await
        .iter()
        .map(|e| e.position)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writers_on_two_replicas_and_the_feed_never_skips() {
    let Some(Backend::Postgres(server)) = Backend::postgres("eight_writers_on_two_replicas") else {
        return;
    };
    let db = TestDatabase::create(&server).await;
    let url = db.url.clone();
    let configure = |dir: &tempfile::TempDir| {
        let mut config = config_for(dir.path());
        config.database_url = url.clone();
        config.store.pool_size = 4;
        // Every write transaction sleeps up to 20 ms before it commits.
        config.store.commit_jitter_ms = 20;
        config
    };
    let dir_a = tempfile::tempdir().unwrap();
    let a = TestHub::start_with(configure(&dir_a), dir_a, Some(db)).await;
    let dir_b = tempfile::tempdir().unwrap();
    share_identity(a.dir.path(), dir_b.path());
    let b = TestHub::start_with(configure(&dir_b), dir_b, None).await;

    let on_a = a
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let on_b = Partner::connect("cc-comminges", &b.url(), on_a.bundle.clone()).await;
    for w in 0..8 {
        on_a.link(
            &format!("W{w}"),
            pivot("Ecrivain", &format!("N{w}"), "1950-01-01", "31483"),
        )
        .await;
    }

    // The subscriber reads on replica A throughout.
    let mut live = on_a
        .sync
        .clone()
        .subscribe(pb::SubscribeRequest {
            context: ctx(),
            after_position: 0,
        })
        .await
        .unwrap()
        .into_inner();

    // Eight writers, four through each replica, move cases along their lifecycle.
    let mut writers = Vec::new();
    for w in 0..8 {
        let p = if w % 2 == 0 {
            on_a.clone()
        } else {
            on_b.clone()
        };
        writers.push(tokio::spawn(async move {
            let mut written = 0;
            for _ in 0..3 {
                let mut case = p.open_case(&format!("W{w}"), "F1342").await;
                written += 1;
                for to in [
                    S::Sent,
                    S::Acknowledged,
                    S::InProgress,
                    S::WaitingPerson,
                    S::InProgress,
                    S::Accepted,
                    S::Closed,
                ] {
                    case = p.move_case(&case, to).await;
                    written += 1;
                }
            }
            written
        }));
    }
    let mut total = 0;
    for w in writers {
        total += w.await.unwrap();
    }
    assert_eq!(total, 8 * 3 * 8);

    let mut seen = Vec::new();
    while seen.len() < total {
        let message = tokio::time::timeout(Duration::from_secs(20), live.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {total} events arrived", seen.len()))
            .expect("the stream is open")
            .expect("no error");
        if let Some(pb::subscribe_response::Payload::Event(e)) = message.payload {
            seen.push(e.position);
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in position order, each once: {seen:?}"
    );
    let committed: Vec<u64> = a
        .hub
        .store
        .changes_after(0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.position)
        .collect();
    assert_eq!(seen, committed, "nothing committed was missed");

    // From several saved cursors, on either replica, exactly the suffix.
    for (i, cursor) in [0, seen[10], seen[total / 2], seen[total - 5]]
        .into_iter()
        .enumerate()
    {
        let reader = if i % 2 == 0 { &on_a } else { &on_b };
        let suffix = read_until_caught_up(reader, cursor).await;
        let expected: Vec<u64> = seen.iter().copied().filter(|p| *p > cursor).collect();
        assert_eq!(suffix, expected, "from cursor {cursor}");
    }
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_activated_on_one_replica_are_in_force_on_the_other() {
    let Some(Backend::Postgres(server)) = Backend::postgres("rules_on_two_replicas") else {
        return;
    };
    let db = TestDatabase::create(&server).await;
    let url = db.url.clone();
    let dir_a = tempfile::tempdir().unwrap();
    let mut config = config_for(dir_a.path());
    config.database_url = url.clone();
    let a = TestHub::start_with(config, dir_a, Some(db)).await;
    let dir_b = tempfile::tempdir().unwrap();
    share_identity(a.dir.path(), dir_b.path());
    let mut config = config_for(dir_b.path());
    config.database_url = url;
    let b = TestHub::start_with(config, dir_b, None).await;

    let bus = a
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = a.partner("mairie-aspet", PartnerKind::Mairie).await;
    let mairie_on_b = Partner::connect("mairie-aspet", &b.url(), mairie.bundle.clone()).await;
    let rose = pivot("Castet", "Rose", "1943-02-17", "31021");
    bus.link("B1", rose.clone()).await;
    mairie.link("M1", rose).await;
    bus.grant(
        "B1",
        partner("mairie-aspet"),
        &["digital"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    bus.raise("B1", "SANS_INTERNET").await;
    let flags_on_b = || {
        let m = mairie_on_b.clone();
        async move {
            m.persons
                .clone()
                .get_person_summary(pb::GetPersonSummaryRequest {
                    context: ctx(),
                    person: Some(local("M1")),
                    include_history: false,
                })
                .await
                .unwrap()
                .into_inner()
                .flags
                .len()
        }
    };
    assert_eq!(flags_on_b().await, 1);
    let current = a
        .admin
        .clone()
        .get_rules(pb::GetRulesRequest {})
        .await
        .unwrap()
        .into_inner();
    let stricter = format!(
        "{}\n@id(\"pas-de-numerique\")\nforbid (principal, action == Relais::Action::\"read\", resource)\nwhen {{ resource.category == \"digital\" }};\n",
        current.text
    );
    a.admin
        .clone()
        .set_rules(pb::SetRulesRequest {
            text: stricter,
            author: "test".into(),
            comment: "on replica A".into(),
            request_id: new_request_id(),
        })
        .await
        .unwrap();
    assert_eq!(
        flags_on_b().await,
        0,
        "replica B enforces the version activated on A"
    );
}
