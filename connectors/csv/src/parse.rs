//! From an export's bytes to outbox writes, row by row: a bad row is reported with its line
//! number and reason, and the others go on.

use crate::config::CsvConfig;
use relais_connector_sdk::{Pivot, Write};

/// A row that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub writes: Vec<Write>,
    pub rows: u64,
    pub bad: Vec<BadRow>,
}

/// UTF-8 (a BOM is dropped) when valid; Windows-1252 otherwise (or when configured).
pub fn decode(bytes: &[u8], encoding: &str) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match encoding {
        "windows-1252" => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
        _ => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) if encoding == "auto" => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

/// `;` or `,`: the configured one, or the one the header line uses most.
pub fn delimiter(text: &str, configured: &str) -> u8 {
    match configured {
        ";" => b';',
        "," => b',',
        _ => {
            let header = text.lines().next().unwrap_or_default();
            if header.matches(';').count() >= header.matches(',').count() {
                b';'
            } else {
                b','
            }
        }
    }
}

/// `jj/mm/aaaa` or `aaaa-mm-jj` to `aaaa-mm-jj`.
fn date(cell: &str, format: &str) -> Result<String, String> {
    let cell = cell.trim();
    let parts: Vec<&str> = cell.split(['/', '-', '.']).collect();
    let (d, m, y) = match (format, parts.as_slice()) {
        ("aaaa-mm-jj", [y, m, d]) => (*d, *m, *y),
        (_, [d, m, y]) => (*d, *m, *y),
        _ => return Err(format!("`{cell}` is not a date ({format})")),
    };
    let ok = d.len() <= 2
        && m.len() <= 2
        && y.len() == 4
        && [d, m, y]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let in_range = |v: &str, max: u32| v.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n));
    if !ok || !in_range(m, 12) || !in_range(d, 31) {
        return Err(format!("`{cell}` is not a date ({format})"));
    }
    Ok(format!("{y}-{m:0>2}-{d:0>2}"))
}

pub fn parse(bytes: &[u8], config: &CsvConfig) -> Parsed {
    parse_with(bytes, config, |_| {})
}

/// As `parse`, calling `progress` with the number of rows read so far.
pub fn parse_with(bytes: &[u8], config: &CsvConfig, mut progress: impl FnMut(u64)) -> Parsed {
    let text = decode(bytes, &config.encoding);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter(&text, &config.delimiter))
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut parsed = Parsed::default();
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            parsed.bad.push(BadRow {
                line: 1,
                reason: format!("unreadable header line: {e}"),
            });
            return parsed;
        }
    };
    let index = |name: &str| headers.iter().position(|h| h == name);
    let Some(local_col) = index(&config.columns.local_id) else {
        parsed.bad.push(BadRow {
            line: 1,
            reason: format!(
                "no column `{}` (the person's id) in the header",
                config.columns.local_id
            ),
        });
        return parsed;
    };
    let optional = |name: &Option<String>| name.as_ref().and_then(|n| index(n));
    let pivot_cols = (
        optional(&config.columns.family_name),
        optional(&config.columns.given_name),
        optional(&config.columns.birth_date),
        optional(&config.columns.birth_place),
    );
    for record in reader.records() {
        parsed.rows += 1;
        progress(parsed.rows);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(parsed.rows + 1, |p| p.line());
                parsed.bad.push(BadRow {
                    line,
                    reason: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(parsed.rows + 1, |p| p.line());
        let cell = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let local_id = cell(Some(local_col));
        if local_id.is_empty() {
            parsed.bad.push(BadRow {
                line,
                reason: format!("empty `{}`", config.columns.local_id),
            });
            continue;
        }
        let pivot = match pivot_cols {
            (Some(f), Some(g), Some(b), Some(p)) => {
                let (family, given, born, place) =
                    (cell(Some(f)), cell(Some(g)), cell(Some(b)), cell(Some(p)));
                if family.is_empty() && given.is_empty() && born.is_empty() {
                    None
                } else {
                    match date(&born, &config.columns.birth_date_format) {
                        Ok(birth_date) => Some(Pivot {
                            family_name: family,
                            first_given_name: given,
                            birth_date,
                            birth_place_cog: place,
                        }),
                        Err(reason) => {
                            parsed.bad.push(BadRow { line, reason });
                            continue;
                        }
                    }
                }
            }
            _ => None,
        };
        let mut writes = vec![Write::Link {
            local_id: local_id.clone(),
            pivot,
        }];
        let mut refused = None;
        for f in &config.flags {
            if index(&f.column).is_none() {
                continue;
            }
            let read = |name: &str| cell(index(name));
            match f.write(&local_id, read, |d| {
                date(d, &config.columns.birth_date_format)
            }) {
                Ok(Some(write)) => writes.push(write),
                Ok(None) => {}
                Err(reason) => {
                    refused = Some(reason);
                    break;
                }
            }
        }
        if let Some(reason) = refused {
            parsed.bad.push(BadRow { line, reason });
            continue;
        }
        if let Some(case) = &config.case {
            let case_ref = cell(index(&case.case_ref));
            let procedure = cell(index(&case.procedure));
            if !case_ref.is_empty() {
                if procedure.is_empty() {
                    parsed.bad.push(BadRow {
                        line,
                        reason: format!("case `{case_ref}` without `{}`", case.procedure),
                    });
                    continue;
                }
                writes.push(Write::OpenCase {
                    case_ref,
                    local_id: local_id.clone(),
                    procedure,
                    theme: case
                        .theme
                        .as_ref()
                        .map(|t| cell(index(t)))
                        .unwrap_or_default(),
                    missing_documents: case
                        .missing_documents
                        .as_ref()
                        .map(|m| {
                            cell(index(m))
                                .split('|')
                                .map(str::trim)
                                .filter(|d| !d.is_empty())
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        parsed.writes.extend(writes);
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(delimiter: &str, encoding: &str) -> CsvConfig {
        toml::from_str(&format!(
            r#"
            drop_dir = "d"
            processed_dir = "p"
            status_dir = "s"
            delimiter = "{delimiter}"
            encoding = "{encoding}"
            [columns]
            local_id = "N° dossier"
            family_name = "Nom"
            given_name = "Prénom"
            birth_date = "Né(e) le"
            birth_place = "Commune de naissance"
            [[flags]]
            column = "Sans internet"
            code = "SANS_INTERNET"
            [[flags]]
            column = "Isolée"
            code = "ISOLEMENT"
            note_column = "Observation"
            "#
        ))
        .unwrap()
    }

    const EXPORT: &str = "N° dossier;Nom;Prénom;Né(e) le;Commune de naissance;Sans internet;Isolée;Observation\n\
        R-17;Castet;Rose;17/02/1943;31021;oui;x;vit seule au hameau\n\
        ;Inconnu;Sans;01/01/1950;31483;oui;;\n\
        R-18;Pérès;Élodie;31/13/1950;31483;non;;\n\
        R-19;Dupont-Lefèvre;Jean;08/03/1951;31483;;oui;\n";

    #[test]
    fn a_semicolon_utf8_export_maps_rows_and_reports_bad_lines() {
        let p = parse(EXPORT.as_bytes(), &config("auto", "auto"));
        assert_eq!(p.rows, 4);
        let lines: Vec<u64> = p.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4], "{:?}", p.bad);
        assert!(p.bad[1].reason.contains("31/13/1950"));
        assert_eq!(
            p.writes[0],
            Write::Link {
                local_id: "R-17".into(),
                pivot: Some(Pivot {
                    family_name: "Castet".into(),
                    first_given_name: "Rose".into(),
                    birth_date: "1943-02-17".into(),
                    birth_place_cog: "31021".into(),
                }),
            }
        );
        assert_eq!(
            p.writes[2],
            Write::RaiseFlag {
                local_id: "R-17".into(),
                code: "ISOLEMENT".into(),
                note: "vit seule au hameau".into(),
                qualification: String::new(),
                evidence: String::new(),
                review_on: String::new(),
            }
        );
        assert_eq!(p.writes.len(), 5, "two rows: link + 2 flags, link + 1 flag");
    }

    #[test]
    fn a_comma_windows_1252_export_reads_the_same() {
        let text = EXPORT.replace(';', ",");
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
        assert!(std::str::from_utf8(&bytes).is_err(), "really not UTF-8");
        let p = parse(&bytes, &config("auto", "auto"));
        assert_eq!(p.writes.len(), 5);
        match &p.writes[3] {
            Write::Link {
                pivot: Some(pv), ..
            } => assert_eq!(pv.family_name, "Dupont-Lefèvre"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn qualification_evidence_and_review_day_come_from_their_columns() {
        let config: CsvConfig = toml::from_str(
            r#"
            drop_dir = "d"
            processed_dir = "p"
            status_dir = "s"
            [columns]
            local_id = "N°"
            [[flags]]
            column = "Sans véhicule"
            code = "SANS_TRANSPORT"
            qualification = "constatée"
            [[flags]]
            column = "Handicap"
            code = "HANDICAP"
            qualification_column = "Comment le sait-on"
            evidence_column = "Justificatif"
            review_column = "À revoir le"
            "#,
        )
        .unwrap();
        let export = "N°;Sans véhicule;Handicap;Comment le sait-on;Justificatif;À revoir le\n\
            A1;oui;oui;attestée;notification RQTH;01/03/2027\n\
            A2;oui;oui;;;\n\
            A3;;oui;peut-être;;\n\
            A4;;oui;déclarée;;31/02/20x7\n";
        let p = parse(export.as_bytes(), &config);
        let flags: Vec<&Write> = p
            .writes
            .iter()
            .filter(|w| matches!(w, Write::RaiseFlag { .. }))
            .collect();
        assert_eq!(
            flags[1],
            &Write::RaiseFlag {
                local_id: "A1".into(),
                code: "HANDICAP".into(),
                note: String::new(),
                qualification: "attestée".into(),
                evidence: "notification RQTH".into(),
                review_on: "2027-03-01".into(),
            }
        );
        match flags[0] {
            Write::RaiseFlag { qualification, .. } => assert_eq!(qualification, "constatée"),
            other => panic!("{other:?}"),
        }
        match flags[3] {
            Write::RaiseFlag {
                qualification,
                review_on,
                ..
            } => {
                assert_eq!(
                    qualification, "",
                    "an empty cell: the column's default (declared)"
                );
                assert_eq!(review_on, "");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            flags.len(),
            4,
            "A1 and A2 raise two each; A3 and A4 are refused"
        );
        let bad: Vec<(u64, &str)> = p.bad.iter().map(|b| (b.line, b.reason.as_str())).collect();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[0].0, 4);
        assert!(bad[0].1.contains("peut-être"), "{bad:?}");
        assert_eq!(bad[1].0, 5);
        assert!(bad[1].1.contains("review day"), "{bad:?}");
    }
}
