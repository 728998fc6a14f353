//! The cost of one access decision (Cedar evaluation of the default rules plus the consent
//! floor), without and with the decision cache. Run with `cargo bench -p relais-hub --bench
//! decision`. Machines here are shared and noisy: it reports medians over rounds and the ratio.

use relais_hub::domain::consent::{LegalBasis, RecordState};
use relais_hub::domain::partner::PartnerStatus;
use relais_hub::domain::{AgentId, FlagCode, Partner, PartnerId, PartnerKind, Purpose, Timestamp};
use relais_hub::policy::engine::DEFAULT_RULES;
use relais_hub::policy::{Action, Coverage, DecisionRequest, Engine, Subject};
use relais_hub::store::Relation;
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 9;
const DECISIONS_PER_ROUND: usize = 20_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let partner = Partner {
        id: PartnerId::parse("mairie-aspet").unwrap(),
        kind: PartnerKind::Mairie,
        name: "Mairie d'Aspet".into(),
        territory: vec!["31021".into()],
        cog_vintage: 2026,
        status: PartnerStatus::Active,
        status_reason: String::new(),
        certificates: vec![],
        created_at: Timestamp::from_micros(0),
        updated_at: Timestamp::from_micros(0),
        version: 1,
    };
    let agent = AgentId::parse("ccas-1").unwrap();
    let codes = [
        "ELOIGNEMENT",
        "SANS_INTERNET",
        "LANGUE",
        "ISOLEMENT",
        "SURENDETTEMENT",
        "LOGEMENT_INDIGNE",
        "PERTE_AUTONOMIE",
        "REGISTRE_VULNERABLES",
    ];
    let purposes = [
        Purpose::Accompagnement,
        Purpose::Instruction,
        Purpose::AllerVers,
        Purpose::Statistique,
    ];
    let coverages = [
        Coverage {
            state: Some(RecordState::Granted),
            basis: Some(LegalBasis::Consent),
            record: Some("consent:bench".into()),
        },
        Coverage::NONE,
    ];
    // 64 distinct questions, as a counter's summary and a feed ask them over and over.
    let mut requests = Vec::new();
    for code in codes {
        for purpose in purposes {
            for coverage in &coverages {
                requests.push(DecisionRequest {
                    partner: &partner,
                    agent: &agent,
                    action: Action::Read,
                    subject: Subject::flag(FlagCode::parse(code).unwrap()),
                    purpose,
                    relation: Relation {
                        linked: true,
                        ..Relation::default()
                    },
                    coverage: coverage.clone(),
                    alert_plan: false,
                    self_grant: false,
                });
            }
        }
    }
    let mut medians = Vec::new();
    for caching in [false, true] {
        let engine = Engine::new(1, DEFAULT_RULES, caching).unwrap();
        let mut per_decision = Vec::new();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for i in 0..DECISIONS_PER_ROUND {
                black_box(engine.decide(black_box(&requests[i % requests.len()])));
            }
            per_decision.push(start.elapsed().as_secs_f64() * 1e6 / DECISIONS_PER_ROUND as f64);
        }
        let m = median(per_decision.clone());
        println!(
            "decision {:<9} median {:>8.2} µs  (min {:.2}, max {:.2}; {ROUNDS} rounds of {DECISIONS_PER_ROUND})",
            if caching { "cached" } else { "uncached" },
            m,
            per_decision.iter().copied().fold(f64::INFINITY, f64::min),
            per_decision.iter().copied().fold(0.0, f64::max),
        );
        medians.push(m);
    }
    println!(
        "cache speed-up: {:.1}× (uncached / cached medians)",
        medians[0] / medians[1]
    );
}
