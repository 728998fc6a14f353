//! The Cedar engine: the schema, the active rule set, validation with locations, evaluation,
//! and a decision cache. The cache holds pure evaluations of (rules version, principal,
//! resource, context): consent and relations are facts read at every decision and part of the
//! key, so a withdrawal applies to the very next decision; a new rules version changes every key.

use super::{Action, Decision, DecisionRequest, basis_str};
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use miette::Diagnostic;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};

/// The schema rules are checked against.
pub const SCHEMA: &str = include_str!("relais.cedarschema");
/// The rules a new hub starts with.
pub const DEFAULT_RULES: &str = include_str!("default.cedar");

/// Evaluations kept before the cache is emptied (a bound on memory, not a tuning knob).
const CACHE_LIMIT: usize = 50_000;

/// A problem in a rule set, with its place in the text when known.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleError {
    pub message: String,
    /// 1-based line and column of the offending text.
    pub line: u32,
    pub column: u32,
    /// The rule (its `@id`) the error is in, when known.
    pub policy: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if !self.policy.is_empty() {
            write!(f, "rule `{}`: ", self.policy)?;
        }
        f.write_str(&self.message)
    }
}

fn location(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u32 + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, column)
}

fn rule_error(text: &str, d: &dyn Diagnostic, policy: String) -> RuleError {
    let offset = d
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset());
    let (line, column) = offset.map_or((0, 0), |o| location(text, o));
    let mut message = d.to_string();
    if let Some(help) = d.help() {
        message.push_str(&format!(" ({help})"));
    }
    RuleError {
        message,
        line,
        column,
        policy,
    }
}

/// A rule set that parsed and validated.
pub struct Rules {
    pub version: i64,
    pub text: String,
    set: PolicySet,
}

/// One rule in force, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSummary {
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: &'static str,
    pub reason: String,
}

impl Rules {
    /// Each rule's `@id`, effect and `@reason`, in the order of the text.
    pub fn summaries(&self) -> Vec<RuleSummary> {
        let mut out: Vec<(usize, RuleSummary)> = self
            .set
            .policies()
            .map(|p| {
                let id = p.id().to_string();
                let at = self
                    .text
                    .find(&format!("@id(\"{id}\")"))
                    .unwrap_or(usize::MAX);
                (
                    at,
                    RuleSummary {
                        effect: match p.effect() {
                            cedar_policy::Effect::Permit => "permit",
                            cedar_policy::Effect::Forbid => "forbid",
                        },
                        reason: p.annotation("reason").unwrap_or_default().to_string(),
                        id,
                    },
                )
            })
            .collect();
        out.sort_by_key(|(at, _)| *at);
        out.into_iter().map(|(_, r)| r).collect()
    }
}

pub struct Engine {
    schema: Schema,
    active: RwLock<Arc<Rules>>,
    cache: Option<Mutex<HashMap<String, Arc<Evaluated>>>>,
    authorizer: Authorizer,
}

/// What Cedar said, before the consent floor.
#[derive(Debug)]
struct Evaluated {
    allowed: bool,
    policies: Vec<String>,
    reasons: Vec<String>,
    legal_basis: Option<String>,
}

impl Engine {
    /// An engine with `text` (version `version`) active. `caching` is off only to measure it.
    pub fn new(version: i64, text: &str, caching: bool) -> Result<Self, Vec<RuleError>> {
        let schema = schema();
        let set = compile(&schema, text)?;
        Ok(Self {
            schema,
            active: RwLock::new(Arc::new(Rules {
                version,
                text: text.to_string(),
                set,
            })),
            cache: caching.then(|| Mutex::new(HashMap::new())),
            authorizer: Authorizer::new(),
        })
    }

    /// Parses and validates `text` against the schema: every error, with its location.
    pub fn validate(&self, text: &str) -> Result<(), Vec<RuleError>> {
        compile(&self.schema, text).map(|_| ())
    }

    /// Makes `text` (already stored as `version`) the rules in force, at once for every later
    /// decision.
    pub fn activate(&self, version: i64, text: &str) -> Result<(), Vec<RuleError>> {
        let set = compile(&self.schema, text)?;
        let rules = Arc::new(Rules {
            version,
            text: text.to_string(),
            set,
        });
        match self.active.write() {
            Ok(mut active) => *active = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
        Ok(())
    }

    pub fn active(&self) -> Arc<Rules> {
        match self.active.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Decides with the rules in force.
    pub fn decide(&self, req: &DecisionRequest<'_>) -> Decision {
        crate::telemetry::in_policy(|| {
            let rules = self.active();
            self.decide_with(&rules, req)
        })
    }

    /// Decides with a candidate rule set (dry run): nothing in force changes.
    pub fn dry_run(
        &self,
        text: &str,
        requests: &[DecisionRequest<'_>],
    ) -> Result<Vec<Decision>, Vec<RuleError>> {
        let rules = Rules {
            version: 0,
            text: text.to_string(),
            set: compile(&self.schema, text)?,
        };
        Ok(requests
            .iter()
            .map(|r| self.evaluate_uncached(&rules, r))
            .collect())
    }

    fn decide_with(&self, rules: &Rules, req: &DecisionRequest<'_>) -> Decision {
        let Some(cache) = &self.cache else {
            let decision = self.evaluate_uncached(rules, req);
            crate::telemetry::decision(decision.allowed, None);
            return decision;
        };
        let key = cache_key(rules.version, req);
        let cached = cache.lock().ok().and_then(|c| c.get(&key).cloned());
        let hit = cached.is_some();
        let evaluated = match cached {
            Some(e) => e,
            None => {
                let e = Arc::new(self.evaluate(rules, req));
                if let Ok(mut c) = cache.lock() {
                    if c.len() >= CACHE_LIMIT {
                        c.clear();
                    }
                    c.insert(key, e.clone());
                }
                e
            }
        };
        let decision = floor(rules.version, req, &evaluated);
        crate::telemetry::decision(decision.allowed, Some(hit));
        decision
    }

    fn evaluate_uncached(&self, rules: &Rules, req: &DecisionRequest<'_>) -> Decision {
        floor(rules.version, req, &self.evaluate(rules, req))
    }

    fn evaluate(&self, rules: &Rules, req: &DecisionRequest<'_>) -> Evaluated {
        match self.cedar(rules, req) {
            Ok(e) => e,
            Err(message) => {
                tracing::error!(error = %message, "access rule evaluation failed; denying");
                Evaluated {
                    allowed: false,
                    policies: vec![],
                    reasons: vec![format!("the rules could not be evaluated: {message}")],
                    legal_basis: None,
                }
            }
        }
    }

    fn cedar(&self, rules: &Rules, req: &DecisionRequest<'_>) -> Result<Evaluated, String> {
        let agent_type = EntityTypeName::from_str("Relais::Agent").map_err(|e| e.to_string())?;
        let data_type = EntityTypeName::from_str("Relais::Data").map_err(|e| e.to_string())?;
        let action_type = EntityTypeName::from_str("Relais::Action").map_err(|e| e.to_string())?;
        let principal = EntityUid::from_type_name_and_id(
            agent_type,
            EntityId::new(format!("{}/{}", req.partner.id, req.agent)),
        );
        let subject = &req.subject;
        let resource = EntityUid::from_type_name_and_id(
            data_type,
            EntityId::new(format!(
                "{}:{}:{}",
                subject.category,
                subject.code.map_or("", |c| c.code()),
                subject.theme.map_or("", |t| t.as_str())
            )),
        );
        let action =
            EntityUid::from_type_name_and_id(action_type, EntityId::new(req.action.as_str()));
        let s = |v: &str| RestrictedExpression::new_string(v.to_string());
        let principal_entity = Entity::new(
            principal.clone(),
            HashMap::from([
                ("partner".to_string(), s(req.partner.id.as_str())),
                ("kind".to_string(), s(req.partner.kind.as_str())),
                (
                    "territory".to_string(),
                    RestrictedExpression::new_set(req.partner.territory.iter().map(|t| s(t))),
                ),
            ]),
            HashSet::new(),
        )
        .map_err(|e| e.to_string())?;
        let resource_entity = Entity::new(
            resource.clone(),
            HashMap::from([
                ("category".to_string(), s(subject.category.as_str())),
                (
                    "special".to_string(),
                    RestrictedExpression::new_bool(subject.category.special()),
                ),
                ("code".to_string(), s(subject.code.map_or("", |c| c.code()))),
                (
                    "theme".to_string(),
                    s(subject.theme.map_or("", |t| t.as_str())),
                ),
            ]),
            HashSet::new(),
        )
        .map_err(|e| e.to_string())?;
        let entities =
            Entities::from_entities([principal_entity, resource_entity], Some(&self.schema))
                .map_err(|e| e.to_string())?;
        let context = Context::from_pairs([
            ("purpose".to_string(), s(req.purpose.as_str())),
            ("consent".to_string(), s(req.coverage.state_str())),
            ("basis".to_string(), s(basis_str(req.coverage.basis))),
            (
                "linked".to_string(),
                RestrictedExpression::new_bool(req.relation.linked),
            ),
            (
                "holder".to_string(),
                RestrictedExpression::new_bool(req.relation.owns_case),
            ),
            (
                "open_case".to_string(),
                RestrictedExpression::new_bool(req.relation.open_case),
            ),
            (
                "referral_party".to_string(),
                RestrictedExpression::new_bool(req.relation.referral_party),
            ),
            (
                "alert_plan".to_string(),
                RestrictedExpression::new_bool(req.alert_plan),
            ),
            (
                "self_grant".to_string(),
                RestrictedExpression::new_bool(req.self_grant),
            ),
        ])
        .map_err(|e| e.to_string())?;
        let request = Request::new(principal, action, resource, context, Some(&self.schema))
            .map_err(|e| e.to_string())?;
        let response = self
            .authorizer
            .is_authorized(&request, &rules.set, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            tracing::warn!(errors = ?errors, "access rules raised errors (those rules are skipped)");
        }
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policies.sort();
        let annotation = |id: &str, key: &str| {
            rules
                .set
                .annotation(&PolicyId::new(id), key)
                .map(str::to_string)
        };
        let reasons = policies
            .iter()
            .map(|id| annotation(id, "reason").unwrap_or_else(|| format!("rule `{id}`")))
            .collect();
        let legal_basis = policies.iter().find_map(|id| annotation(id, "legal_basis"));
        Ok(Evaluated {
            allowed: response.decision() == CedarDecision::Allow,
            policies,
            reasons,
            legal_basis,
        })
    }
}

/// Consent is the floor under the rules: a read that a rule permits is still refused unless a
/// record covers it or the permitting rule names its legal basis.
fn floor(version: i64, req: &DecisionRequest<'_>, e: &Evaluated) -> Decision {
    let mut decision = Decision {
        allowed: e.allowed,
        policies: e.policies.clone(),
        reasons: e.reasons.clone(),
        coverage: req.coverage.clone(),
        legal_basis: None,
        rules_version: version,
    };
    if !e.allowed {
        if e.policies.is_empty() {
            decision
                .reasons
                .push("no rule permits it (deny by default)".to_string());
        }
        return decision;
    }
    if req.action == Action::Read && !req.coverage.granted() {
        match &e.legal_basis {
            Some(basis) => decision.legal_basis = Some(basis.clone()),
            None => {
                decision.allowed = false;
                decision.reasons = vec![format!(
                    "no valid consent covers this partner, category and purpose ({}), and the permitting rule names no legal basis",
                    req.coverage.describe()
                )];
            }
        }
    }
    decision
}

fn cache_key(version: i64, r: &DecisionRequest<'_>) -> String {
    format!(
        "{version}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}{}{}{}{}{}",
        r.action.as_str(),
        r.partner.id,
        r.partner.kind.as_str(),
        r.partner.territory.join(","),
        r.agent,
        r.subject.category,
        r.subject.code.map_or("", |c| c.code()),
        r.subject.theme.map_or("", |t| t.as_str()),
        r.purpose,
        r.coverage.state_str(),
        basis_str(r.coverage.basis),
        u8::from(r.relation.linked),
        u8::from(r.relation.owns_case),
        u8::from(r.relation.open_case),
        u8::from(r.relation.referral_party),
        u8::from(r.alert_plan),
        u8::from(r.self_grant),
    )
}

fn schema() -> Schema {
    // The schema is part of the binary and tested; it cannot fail to parse at run time.
    match Schema::from_cedarschema_str(SCHEMA) {
        Ok((schema, _warnings)) => schema,
        Err(e) => panic!("the built-in Cedar schema does not parse: {e}"),
    }
}

/// Parses `text`, names each rule by its `@id`, and validates it strictly against the schema.
/// The longest rule set accepted: far above a territory's (a few dozen rules), low enough that
/// every tool over it (compilation, comparison of versions) stays cheap.
pub const MAX_RULES_BYTES: usize = 256 * 1024;
pub const MAX_RULES_LINES: usize = 5_000;

fn compile(schema: &Schema, text: &str) -> Result<PolicySet, Vec<RuleError>> {
    if text.len() > MAX_RULES_BYTES || text.lines().count() > MAX_RULES_LINES {
        return Err(vec![RuleError {
            message: format!(
                "the rule set is too long: at most {} KiB and {MAX_RULES_LINES} lines",
                MAX_RULES_BYTES / 1024
            ),
            line: 0,
            column: 0,
            policy: String::new(),
        }]);
    }
    let parsed = PolicySet::from_str(text).map_err(|errors| {
        errors
            .iter()
            .map(|e| rule_error(text, e, String::new()))
            .collect::<Vec<_>>()
    })?;
    if parsed.templates().next().is_some() {
        return Err(vec![RuleError {
            message: "templates are not supported: write plain permit and forbid rules".into(),
            line: 0,
            column: 0,
            policy: String::new(),
        }]);
    }
    let mut set = PolicySet::new();
    let mut errors = Vec::new();
    for policy in parsed.policies() {
        let Some(id) = policy.annotation("id") else {
            // The policy prints as its own source text: find it to say where it is.
            let offset = text.find(&policy.to_string());
            let (line, column) = offset.map_or((0, 0), |o| location(text, o));
            errors.push(RuleError {
                message: "every rule needs an @id(\"…\") annotation, so that decisions can name it"
                    .into(),
                line,
                column,
                policy: String::new(),
            });
            continue;
        };
        if let Err(e) = set.add(policy.new_id(PolicyId::new(id))) {
            errors.push(RuleError {
                message: e.to_string(),
                line: 0,
                column: 0,
                policy: id.to_string(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    let mut errors: Vec<RuleError> = Vec::new();
    for e in result.validation_errors() {
        let e = rule_error(text, e, e.policy_id().to_string());
        // One mistake is reported once per action it applies to: say it once.
        if !errors
            .iter()
            .any(|o| (o.line, o.column, &o.policy) == (e.line, e.column, &e.policy))
        {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_set_past_the_length_limit_is_refused_before_compiling() {
        let long = "// commentaire\n".repeat(MAX_RULES_LINES + 1);
        let errors = compile(&Schema::from_str(SCHEMA).unwrap(), &long).unwrap_err();
        assert!(errors[0].message.contains("too long"), "{errors:?}");
    }

    #[test]
    fn the_default_rules_validate() {
        Engine::new(1, DEFAULT_RULES, true).unwrap();
    }

    #[test]
    fn a_syntax_error_is_located() {
        let engine = Engine::new(1, DEFAULT_RULES, true).unwrap();
        let text =
            "@id(\"a\")\npermit (principal, action, resource)\nwhen { context.purpose == };\n";
        let errors = engine.validate(text).unwrap_err();
        assert_eq!(errors[0].line, 3, "{errors:?}");
    }

    #[test]
    fn a_schema_error_is_located_and_names_its_rule() {
        let engine = Engine::new(1, DEFAULT_RULES, true).unwrap();
        let text = "@id(\"ok\")\npermit (principal, action, resource);\n\n@id(\"typo\")\npermit (principal, action, resource)\nwhen { context.purpos == \"instruction\" };\n";
        let errors = engine.validate(text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].policy, "typo");
        assert_eq!(errors[0].line, 6, "{errors:?}");
        let missing_id = engine
            .validate("permit (principal, action, resource);")
            .unwrap_err();
        assert!(missing_id[0].message.contains("@id"));
    }

    #[test]
    fn the_cedar_schema_parses() {
        let (_, warnings) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        assert_eq!(warnings.count(), 0);
    }
}

#[cfg(test)]
mod decisions {
    use super::*;
    use crate::domain::consent::{LegalBasis, RecordState};
    use crate::domain::partner::PartnerStatus;
    use crate::domain::{AgentId, FlagCode, Partner, PartnerId, PartnerKind, Purpose, Timestamp};
    use crate::policy::{Coverage, Subject};
    use crate::store::Relation;

    fn partner(kind: PartnerKind) -> Partner {
        Partner {
            id: PartnerId::parse("mairie-aspet").unwrap(),
            kind,
            name: "Mairie".into(),
            territory: vec!["31021".into()],
            cog_vintage: 2026,
            status: PartnerStatus::Active,
            status_reason: String::new(),
            certificates: vec![],
            created_at: Timestamp::from_micros(0),
            updated_at: Timestamp::from_micros(0),
            version: 1,
        }
    }

    fn granted(basis: LegalBasis) -> Coverage {
        Coverage {
            state: Some(RecordState::Granted),
            basis: Some(basis),
            record: Some("consent:test".into()),
        }
    }

    fn decide(
        engine: &Engine,
        kind: PartnerKind,
        code: &str,
        purpose: Purpose,
        coverage: Coverage,
        alert: bool,
    ) -> Decision {
        let p = partner(kind);
        let agent = AgentId::parse("agent-1").unwrap();
        engine.decide(&DecisionRequest {
            partner: &p,
            agent: &agent,
            action: Action::Read,
            subject: Subject::flag(FlagCode::parse(code).unwrap()),
            purpose,
            relation: Relation::default(),
            coverage,
            alert_plan: alert,
            self_grant: false,
        })
    }

    #[test]
    fn the_default_rules_decide_as_documented() {
        for caching in [false, true] {
            let e = Engine::new(1, DEFAULT_RULES, caching).unwrap();
            let m = PartnerKind::Mairie;
            let d = decide(
                &e,
                m,
                "SANS_INTERNET",
                Purpose::Accompagnement,
                granted(LegalBasis::Consent),
                false,
            );
            assert!(d.allowed, "{d:?}");
            assert_eq!(d.policies, ["partage-avec-consentement"]);
            let d = decide(
                &e,
                m,
                "SANS_INTERNET",
                Purpose::Accompagnement,
                Coverage::NONE,
                false,
            );
            assert!(!d.allowed, "{d:?}");
            let d = decide(
                &e,
                m,
                "SANS_INTERNET",
                Purpose::Statistique,
                granted(LegalBasis::Consent),
                false,
            );
            assert!(!d.allowed);
            assert_eq!(d.policies, ["statistique-sans-donnees-personnelles"]);
            let d = decide(
                &e,
                m,
                "PERTE_AUTONOMIE",
                Purpose::Accompagnement,
                granted(LegalBasis::Consent),
                false,
            );
            assert!(d.allowed, "{d:?}");
            let d = decide(
                &e,
                m,
                "PERTE_AUTONOMIE",
                Purpose::Accompagnement,
                granted(LegalBasis::PublicTask),
                false,
            );
            assert!(!d.allowed, "health needs explicit consent: {d:?}");
            let dep = PartnerKind::Departement;
            let d = decide(
                &e,
                dep,
                "PERTE_AUTONOMIE",
                Purpose::Instruction,
                granted(LegalBasis::LegalObligation),
                false,
            );
            assert!(d.allowed, "{d:?}");
            let d = decide(
                &e,
                m,
                "REGISTRE_VULNERABLES",
                Purpose::Accompagnement,
                granted(LegalBasis::Consent),
                false,
            );
            assert!(!d.allowed, "the registre stays with its mairie: {d:?}");
            let sp = PartnerKind::SousPrefecture;
            let d = decide(
                &e,
                sp,
                "REGISTRE_VULNERABLES",
                Purpose::PlanAlerte,
                Coverage::NONE,
                false,
            );
            assert!(!d.allowed, "no alert plan: {d:?}");
            let d = decide(
                &e,
                sp,
                "REGISTRE_VULNERABLES",
                Purpose::PlanAlerte,
                Coverage::NONE,
                true,
            );
            assert!(
                d.allowed,
                "alert plan, legal basis named by the rule: {d:?}"
            );
            assert!(d.legal_basis.is_some());
        }
    }
}
