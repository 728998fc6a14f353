//! Prioritised procedures: a transparent score for each open case and each referral awaiting
//! a partner, built from (a) the person's qualified difficulties the partner may read, (b)
//! deadlines — the case's due date, and for procedures of the territory's catalogue the day a
//! right is lost —, (c) the time waiting since the last move, (d) missing documents and overdue
//! referrals. Each point comes with its reason in plain French, so an agent sees why an item is
//! first ("habite loin (constaté), sans internet (déclaré), échéance dans 5 jours, en attente
//! depuis 21 jours").
//!
//! The weights and the procedure catalogue are the territory's setting, written in TOML
//! (`Priorities::parse`); a hidden difficulty is never an input: the caller passes only the
//! flags the partner may read, so it changes nothing in that partner's order.

use super::clock::Day;
use super::flag::Qualification;
use super::taxonomy::FlagCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The territory's weights and procedure catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Priorities {
    pub difficulties: Difficulties,
    pub deadlines: Deadlines,
    pub waiting: Waiting,
    pub documents: Documents,
    pub referrals: Referrals,
    /// Procedures whose deadline is the day a right is lost, by procedure code.
    pub procedures: Vec<Procedure>,
}

/// Points per difficulty, by how it is known, times the code's weight (1 when not listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Difficulties {
    pub declared: u32,
    pub observed: u32,
    pub attested: u32,
    pub codes: BTreeMap<String, u32>,
}

/// Points as a deadline nears: `(window_days - days left) × per_day` within the window,
/// `overdue` once it has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Deadlines {
    pub window_days: u32,
    pub per_day: u32,
    pub overdue: u32,
}

/// Points per day waiting since the last move, after `after_days`, up to `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Waiting {
    pub after_days: u32,
    pub per_day: u32,
    pub max: u32,
}

/// Points per missing document, up to `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Documents {
    pub per_missing: u32,
    pub max: u32,
}

/// Points for a referral past its reply deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Referrals {
    pub overdue: u32,
}

/// A procedure of the catalogue: its deadline is the day a right is lost (RSA quarterly
/// declaration, APA renewal, expulsion hearing); its deadline points are multiplied by
/// `weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    pub code: String,
    pub label: String,
    /// What is lost on the deadline, in a few words ("le droit à l'APA").
    pub right_lost: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl Default for Priorities {
    fn default() -> Self {
        let codes = [
            ("ELOIGNEMENT", 3),
            ("SANS_TRANSPORT", 3),
            ("SANS_INTERNET", 3),
            ("ZONE_BLANCHE", 2),
            ("ILLECTRONISME", 3),
            ("LANGUE", 2),
            ("DEMARCHE_DIFFICILE", 2),
            ("ISOLEMENT", 2),
            ("PERTE_AUTONOMIE", 3),
            ("HANDICAP", 2),
            ("REGISTRE_VULNERABLES", 3),
        ]
        .into_iter()
        .map(|(c, w)| (c.to_string(), w))
        .collect();
        Self {
            difficulties: Difficulties {
                declared: 2,
                observed: 3,
                attested: 4,
                codes,
            },
            deadlines: Deadlines {
                window_days: 30,
                per_day: 2,
                overdue: 80,
            },
            waiting: Waiting {
                after_days: 7,
                per_day: 1,
                max: 40,
            },
            documents: Documents {
                per_missing: 5,
                max: 15,
            },
            referrals: Referrals { overdue: 25 },
            procedures: [
                (
                    "local:apa-renouvellement",
                    "Renouvellement de l'APA",
                    "le droit à l'APA",
                    3,
                ),
                (
                    "local:rsa-declaration-trimestrielle",
                    "Déclaration trimestrielle de ressources (RSA)",
                    "le versement du RSA",
                    2,
                ),
                (
                    "local:expulsion-audience",
                    "Audience d'expulsion locative",
                    "le maintien dans le logement",
                    3,
                ),
            ]
            .into_iter()
            .map(|(code, label, right_lost, weight)| Procedure {
                code: code.into(),
                label: label.into(),
                right_lost: right_lost.into(),
                weight,
            })
            .collect(),
        }
    }
}

impl Default for Difficulties {
    fn default() -> Self {
        Priorities::default().difficulties
    }
}

impl Default for Deadlines {
    fn default() -> Self {
        Priorities::default().deadlines
    }
}

impl Default for Waiting {
    fn default() -> Self {
        Priorities::default().waiting
    }
}

impl Default for Documents {
    fn default() -> Self {
        Priorities::default().documents
    }
}

impl Default for Referrals {
    fn default() -> Self {
        Priorities::default().referrals
    }
}

/// A difficulty of the person, as the partner may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub code: FlagCode,
    pub how: Qualification,
}

/// What the score of one item rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Situation<'a> {
    /// The procedure's code (a case's, or the referred case's).
    pub procedure: &'a str,
    /// The difficulties the partner may read, each once.
    pub difficulties: &'a [Known],
    pub due: Option<Day>,
    /// The day of the last move (the case's last transition, the referral's sending).
    pub since: Day,
    pub missing_documents: usize,
    /// A referral past its reply deadline (awaiting this partner, or sent by it).
    pub referral_overdue: bool,
}

/// One part of a score, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub points: u32,
    pub text: String,
}

/// A score and its reasons, largest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scored {
    pub score: u32,
    pub reasons: Vec<Reason>,
}

impl Scored {
    /// The reasons in one line of plain French.
    pub fn explanation(&self) -> String {
        self.reasons
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A difficulty in a few words, as an agent would say it.
pub fn short_label(code: FlagCode) -> &'static str {
    match code.code() {
        "ELOIGNEMENT" => "habite loin",
        "SANS_TRANSPORT" => "sans moyen de transport",
        "DEPENDANT_TC" => "dépend des transports à la demande",
        "SANS_PERMIS" => "sans permis",
        "SANS_INTERNET" => "sans internet",
        "ZONE_BLANCHE" => "sans réseau au domicile",
        "SANS_EMAIL" => "sans e-mail",
        "ILLECTRONISME" => "en difficulté avec le numérique",
        "LANGUE" => "maîtrise difficile du français",
        "DEMARCHE_DIFFICILE" => "démarches difficiles sans aide",
        "JUSTIFICATIF_ID" => "sans pièce d'identité",
        "ISOLEMENT" => "isolement",
        "AIDANT" => "aidant familial",
        "RESSOURCES_PRECAIRES" => "ressources précaires",
        "SURENDETTEMENT" => "surendettement",
        "LOGEMENT_INDIGNE" => "logement indigne",
        "PERTE_AUTONOMIE" => "perte d'autonomie",
        "HANDICAP" => "handicap reconnu",
        "SANTE_DECLAREE" => "problème de santé",
        "REGISTRE_VULNERABLES" => "registre des personnes vulnérables",
        _ => code.label(),
    }
}

/// The qualification as said after a difficulty: "(constaté)".
fn how_said(how: Qualification) -> &'static str {
    match how {
        Qualification::Declared => "déclaré",
        Qualification::Observed => "constaté",
        Qualification::Attested => "attesté",
    }
}

/// The built-in setting, commented: in force while no version was activated (version 0).
pub const DEFAULT_TEXT: &str = include_str!("priorities.toml");

/// What is wrong in a setting's text, and where (1-based; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub message: String,
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        } else {
            f.write_str(&self.message)
        }
    }
}

/// The 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

impl Priorities {
    /// Reads a setting; every error names where it is.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::check(text).map_err(|e| e.to_string())
    }

    /// Reads a setting; an error carries its line and column.
    pub fn check(text: &str) -> Result<Self, SettingError> {
        const MOST: usize = 64 * 1024;
        if text.len() > MOST {
            return Err(SettingError {
                message: format!("the text is {} bytes; at most {MOST}", text.len()),
                line: 0,
                column: 0,
            });
        }
        let p: Priorities = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| line_column(text, s.start));
            SettingError {
                message: e.message().to_string(),
                line,
                column,
            }
        })?;
        // Where a key stands in the text, for the checks below.
        let at = |needle: &str, message: String| {
            let (line, column) = text
                .find(needle)
                .map_or((0, 0), |offset| line_column(text, offset));
            SettingError {
                message,
                line,
                column,
            }
        };
        for code in p.difficulties.codes.keys() {
            FlagCode::parse(code)
                .map_err(|e| at(code, format!("difficulties.codes.{code}: {e}")))?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, proc) in p.procedures.iter().enumerate() {
            let here = |message: String| at(&format!("\"{}\"", proc.code), message);
            if proc.label.trim().is_empty() || proc.right_lost.trim().is_empty() {
                return Err(here(format!(
                    "procedures[{i}]: a label and the right lost on the deadline are required"
                )));
            }
            super::case::Procedure::parse(&proc.code)
                .map_err(|e| here(format!("procedures[{i}].code: {e}")))?;
            if !seen.insert(proc.code.as_str()) {
                return Err(here(format!(
                    "procedures[{i}]: `{}` is listed twice",
                    proc.code
                )));
            }
            if !(1..=10).contains(&proc.weight) {
                return Err(here(format!("procedures[{i}].weight: 1 to 10")));
            }
        }
        if p.deadlines.window_days == 0 || p.deadlines.window_days > 365 {
            return Err(at("window_days", "deadlines.window_days: 1 to 365".into()));
        }
        let big = [
            ("declared", p.difficulties.declared),
            ("observed", p.difficulties.observed),
            ("attested", p.difficulties.attested),
            ("per_day", p.deadlines.per_day),
            ("overdue", p.deadlines.overdue),
            ("per_day", p.waiting.per_day),
            ("max", p.waiting.max),
            ("per_missing", p.documents.per_missing),
            ("max", p.documents.max),
            ("overdue", p.referrals.overdue),
        ]
        .into_iter()
        .chain(p.difficulties.codes.iter().map(|(c, w)| (c.as_str(), *w)))
        .find(|(_, v)| *v > 1000);
        if let Some((key, _)) = big {
            return Err(at(key, format!("{key}: at most 1000 points")));
        }
        Ok(p)
    }

    /// A procedure of the catalogue by its code.
    pub fn procedure(&self, code: &str) -> Option<&Procedure> {
        self.procedures.iter().find(|p| p.code == code)
    }

    /// The score of one item on `today`, with its reasons.
    pub fn score(&self, s: &Situation<'_>, today: Day) -> Scored {
        let mut reasons = Vec::new();
        for known in s.difficulties {
            let base = match known.how {
                Qualification::Declared => self.difficulties.declared,
                Qualification::Observed => self.difficulties.observed,
                Qualification::Attested => self.difficulties.attested,
            };
            let weight = self
                .difficulties
                .codes
                .get(known.code.code())
                .copied()
                .unwrap_or(1);
            reasons.push(Reason {
                points: base * weight,
                text: format!("{} ({})", short_label(known.code), how_said(known.how)),
            });
        }
        if let Some(due) = s.due {
            let procedure = self.procedure(s.procedure);
            let weight = procedure.map_or(1, |p| p.weight);
            let left = today.days_until(due);
            let lost = procedure
                .map(|p| format!(" ({} perdu après)", p.right_lost))
                .unwrap_or_default();
            let (points, text) = if left < 0 {
                (
                    self.deadlines.overdue,
                    format!("échéance dépassée de {} jour{}{lost}", -left, plural(-left)),
                )
            } else if left < i64::from(self.deadlines.window_days) {
                let points = (i64::from(self.deadlines.window_days) - left)
                    * i64::from(self.deadlines.per_day);
                let when = match left {
                    0 => "échéance aujourd'hui".to_string(),
                    1 => "échéance demain".to_string(),
                    n => format!("échéance dans {n} jours"),
                };
                (
                    u32::try_from(points).unwrap_or(u32::MAX),
                    format!("{when}{lost}"),
                )
            } else {
                (0, String::new())
            };
            if points > 0 {
                reasons.push(Reason {
                    points: points.saturating_mul(weight),
                    text,
                });
            }
        }
        let waited = s.since.days_until(today);
        if waited > i64::from(self.waiting.after_days) {
            let points = (waited - i64::from(self.waiting.after_days))
                .saturating_mul(i64::from(self.waiting.per_day))
                .min(i64::from(self.waiting.max));
            reasons.push(Reason {
                points: u32::try_from(points).unwrap_or(0),
                text: format!("en attente depuis {waited} jours"),
            });
        }
        if s.missing_documents > 0 {
            let n = u32::try_from(s.missing_documents).unwrap_or(u32::MAX);
            reasons.push(Reason {
                points: n
                    .saturating_mul(self.documents.per_missing)
                    .min(self.documents.max),
                text: format!(
                    "{n} pièce{} manquante{}",
                    plural(i64::from(n)),
                    plural(i64::from(n))
                ),
            });
        }
        if s.referral_overdue {
            reasons.push(Reason {
                points: self.referrals.overdue,
                text: "fiche navette en retard".into(),
            });
        }
        reasons.retain(|r| r.points > 0);
        // Stable: equal points keep the order above (difficulties, deadline, waiting…).
        reasons.sort_by_key(|r| std::cmp::Reverse(r.points));
        Scored {
            score: reasons.iter().map(|r| r.points).sum(),
            reasons,
        }
    }
}

fn plural(n: i64) -> &'static str {
    if n > 1 { "s" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    fn code(c: &str) -> FlagCode {
        FlagCode::parse(c).unwrap()
    }

    #[test]
    fn the_explanation_says_each_reason_in_plain_french_largest_first() {
        let p = Priorities::default();
        let difficulties = [
            Known {
                code: code("ELOIGNEMENT"),
                how: Qualification::Observed,
            },
            Known {
                code: code("SANS_INTERNET"),
                how: Qualification::Declared,
            },
        ];
        let s = Situation {
            procedure: "F1342",
            difficulties: &difficulties,
            due: Some(day("2026-12-08")),
            since: day("2026-11-12"),
            missing_documents: 0,
            referral_overdue: false,
        };
        let scored = p.score(&s, day("2026-12-03"));
        assert_eq!(
            scored.explanation(),
            "échéance dans 5 jours, en attente depuis 21 jours, habite loin (constaté), sans internet (déclaré)"
        );
        assert_eq!(scored.score, 50 + 14 + 9 + 6);
    }

    #[test]
    fn a_right_lost_weighs_more_and_says_so() {
        let p = Priorities::parse(
            r#"
            [[procedures]]
            code = "local:apa-renouvellement"
            label = "Renouvellement de l'APA"
            right_lost = "le droit à l'APA"
            weight = 2
            "#,
        )
        .unwrap();
        let base = Situation {
            procedure: "local:apa-renouvellement",
            difficulties: &[],
            due: Some(day("2026-12-13")),
            since: day("2026-12-01"),
            missing_documents: 2,
            referral_overdue: false,
        };
        let apa = p.score(&base, day("2026-12-03"));
        assert_eq!(
            apa.explanation(),
            "échéance dans 10 jours (le droit à l'APA perdu après), 2 pièces manquantes"
        );
        let other = p.score(
            &Situation {
                procedure: "F1342",
                ..base
            },
            day("2026-12-03"),
        );
        assert!(apa.score > other.score);
        let late = p.score(&base, day("2026-12-15"));
        assert_eq!(late.reasons[0].points, 160);
        assert!(
            late.reasons[0]
                .text
                .starts_with("échéance dépassée de 2 jours")
        );
    }

    #[test]
    fn a_setting_with_an_error_says_where() {
        assert!(
            Priorities::parse("[difficulties.codes]\nSANS_WIFI = 3\n")
                .unwrap_err()
                .contains("difficulties.codes.SANS_WIFI")
        );
        assert!(Priorities::parse("[waiting]\nper_jour = 1\n").is_err());
        let twice = "[[procedures]]\ncode = \"local:a\"\nlabel = \"a\"\nright_lost = \"x\"\n\
                     [[procedures]]\ncode = \"local:a\"\nlabel = \"b\"\nright_lost = \"y\"\n";
        let e = Priorities::check(twice).unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        assert_eq!((e.line, e.column), (2, 8));
        let e = Priorities::check("[waiting]\nafter_days = 7\nper_jour = 1\n").unwrap_err();
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        let e = Priorities::check(
            "[[procedures]]\ncode = \"A12\"\nlabel = \"a\"\nright_lost = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("procedures[0].code"), "{e}");
        let e = Priorities::check("[referrals]\noverdue = 100000\n").unwrap_err();
        assert!(e.message.contains("at most 1000"), "{e}");
    }

    #[test]
    fn the_commented_default_text_is_the_built_in_default() {
        assert_eq!(Priorities::parse(DEFAULT_TEXT), Ok(Priorities::default()));
    }
}
