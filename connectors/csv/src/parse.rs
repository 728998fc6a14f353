//! From an export to outbox writes, row by row, as a stream (memory does not grow with the
//! file): a bad row is reported with its line number and a reason in French, and the others go
//! on; a file that cannot be read as the profile says (a mapped column missing, rows that do
//! not use the header's delimiter) is rejected whole, with that reason, and nothing of it is
//! sent.

use crate::config::CsvConfig;
use relais_connector_sdk::{Pivot, Write};
use sha2::{Digest, Sha256};
use std::io::Read;

/// A row that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// What the reader hands on, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The writes of a good row.
    Row {
        line: u64,
        writes: Vec<Write>,
    },
    Bad(BadRow),
}

/// A file rejected whole: nothing of it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
}

/// What a whole read found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Data rows read (the header excluded).
    pub rows: u64,
    /// Flag columns of the profile that the header does not have (their difficulties are not
    /// read from this file).
    pub missing_flag_columns: Vec<String>,
}

/// An export in memory, read whole (tests, small files).
#[derive(Debug, Default)]
pub struct Parsed {
    pub writes: Vec<Write>,
    /// The line each write came from.
    pub lines: Vec<u64>,
    pub rows: u64,
    pub bad: Vec<BadRow>,
    pub rejected: Option<Rejected>,
}

/// The text encoding of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Windows1252,
}

/// What a first pass over the file's bytes tells, before any row is read: its digest (the same
/// name with other content is another export), its lines (for a progress bar), whether it is
/// valid UTF-8, and its first line (to choose the delimiter).
#[derive(Debug, Clone)]
pub struct Scan {
    pub sha256: String,
    pub lines: u64,
    pub utf8: bool,
    /// Both valid UTF-8 accents and bytes that are not UTF-8: the line of the first of these.
    pub mixed: Option<u64>,
    pub header: Vec<u8>,
}

/// Scans `input` in blocks of 64 KiB.
pub fn scan(mut input: impl Read) -> std::io::Result<Scan> {
    let mut hash = Sha256::new();
    let mut block = vec![0u8; 64 * 1024];
    let (mut lines, mut header, mut header_done) = (0u64, Vec::new(), false);
    // Bytes of a UTF-8 sequence cut by the end of a block, and where the check stands.
    let mut carry: Vec<u8> = Vec::new();
    let (mut line, mut accents, mut first_invalid) = (1u64, false, None::<u64>);
    loop {
        let n = input.read(&mut block)?;
        if n == 0 {
            break;
        }
        let bytes = &block[..n];
        hash.update(bytes);
        lines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        if !header_done {
            match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    header.extend_from_slice(&bytes[..i]);
                    header_done = true;
                }
                None if header.len() < 1 << 20 => header.extend_from_slice(bytes),
                None => header_done = true,
            }
        }
        carry.extend_from_slice(bytes);
        loop {
            let (good, bad) = match std::str::from_utf8(&carry) {
                Ok(_) => (carry.len(), None),
                Err(e) => (e.valid_up_to(), Some(e.error_len())),
            };
            accents |= carry[..good].iter().any(|b| *b >= 0x80);
            line += carry[..good].iter().filter(|b| **b == b'\n').count() as u64;
            match bad {
                None => {
                    carry.clear();
                    break;
                }
                // A sequence cut by the end of the block: finished by the next one.
                Some(None) => {
                    carry.drain(..good);
                    break;
                }
                Some(Some(n)) => {
                    first_invalid.get_or_insert(line);
                    carry.drain(..good + n);
                }
            }
        }
    }
    if !carry.is_empty() {
        first_invalid.get_or_insert(line);
    }
    Ok(Scan {
        sha256: hex::encode(hash.finalize()),
        lines,
        utf8: first_invalid.is_none(),
        mixed: first_invalid.filter(|_| accents),
        header,
    })
}

impl Scan {
    /// A file that mixes UTF-8 and Windows-1252 (a row pasted from elsewhere) cannot be read
    /// right either way: names would reach the hub garbled, and nobody be recognised.
    pub fn check(&self, configured_encoding: &str) -> Result<(), Rejected> {
        match self.mixed {
            Some(line) if configured_encoding == "auto" => Err(Rejected {
                line,
                reason: format!(
                    "le fichier mélange deux encodages (UTF-8 et Windows-1252), à partir de la \
                     ligne {line} : enregistrez-le à nouveau depuis le tableur, en « CSV UTF-8 » \
                     ou en « CSV (séparateur : point-virgule) »"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The encoding to read with: the configured one, or UTF-8 when the whole file is valid
    /// UTF-8 and Windows-1252 otherwise.
    pub fn encoding(&self, configured: &str) -> Encoding {
        match configured {
            "windows-1252" => Encoding::Windows1252,
            "utf-8" => Encoding::Utf8,
            _ if self.utf8 => Encoding::Utf8,
            _ => Encoding::Windows1252,
        }
    }

    /// `;` or `,`: the configured one, or the one the header line uses most.
    pub fn delimiter(&self, configured: &str, encoding: Encoding) -> u8 {
        match configured {
            ";" => b';',
            "," => b',',
            _ => {
                let header = decode(&self.header, encoding);
                if header.matches(';').count() >= header.matches(',').count() {
                    b';'
                } else {
                    b','
                }
            }
        }
    }
}

fn decode(bytes: &[u8], encoding: Encoding) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match encoding {
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Windows1252 => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

/// A reader of Windows-1252 bytes giving UTF-8, block by block.
struct Decoding<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    start: usize,
    end: usize,
    output: Vec<u8>,
    out_start: usize,
    out_end: usize,
    eof: bool,
    flushed: bool,
}

impl<R: Read> Decoding<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            decoder: encoding_rs::WINDOWS_1252.new_decoder_without_bom_handling(),
            input: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            output: vec![0; 64 * 1024],
            out_start: 0,
            out_end: 0,
            eof: false,
            flushed: false,
        }
    }
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.out_start < self.out_end {
                let n = buf.len().min(self.out_end - self.out_start);
                buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            if self.start == self.end && !self.eof {
                self.end = self.inner.read(&mut self.input)?;
                self.start = 0;
                self.eof = self.end == 0;
            }
            if self.eof && self.flushed {
                return Ok(0);
            }
            let last = self.eof;
            let (_, read, written, _) = self.decoder.decode_to_utf8(
                &self.input[self.start..self.end],
                &mut self.output,
                last,
            );
            self.start += read;
            self.out_start = 0;
            self.out_end = written;
            self.flushed = last && self.start == self.end;
        }
    }
}

/// Where the rows of the file start, as a spreadsheet numbers them: a line break outside quotes
/// ends a row (`\r\n`, `\n` or `\r` alone; an empty line is a row), one inside quotes is part
/// of a cell. Shared between the reader the CSV parser reads through and the loop that asks
/// which row a record starts on; only the breaks the parser has not reached yet are kept.
#[derive(Default)]
struct Rows {
    /// Bytes seen so far.
    offset: u64,
    quoted: bool,
    after_cr: bool,
    /// Where the current row started.
    row_start: u64,
    /// The row breaks not yet counted: (the offset just past the break, whether the row it
    /// ends was empty).
    breaks: std::collections::VecDeque<(u64, bool)>,
    /// Row breaks before the last record asked about.
    counted: u64,
}

impl Rows {
    fn see(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.offset += 1;
            match b {
                b'"' => self.quoted = !self.quoted,
                b'\n' if !self.quoted && self.after_cr => {
                    // The `\n` of a `\r\n`: the break was counted at the `\r` (the parser may
                    // start the next record at this `\n`).
                    self.row_start = self.offset;
                }
                b'\n' | b'\r' if !self.quoted => {
                    let empty = self.offset - 1 == self.row_start;
                    self.breaks.push_back((self.offset, empty));
                    self.row_start = self.offset;
                }
                _ => {}
            }
            self.after_cr = b == b'\r' && !self.quoted;
        }
    }

    /// The 1-based row of a record starting at byte `start`.
    fn row_at(&mut self, start: u64) -> u64 {
        while self.breaks.front().is_some_and(|b| b.0 <= start) {
            self.breaks.pop_front();
            self.counted += 1;
        }
        // The parser may give a record the position of the empty rows it skipped before it.
        while self.breaks.front().is_some_and(|b| b.1) {
            self.breaks.pop_front();
            self.counted += 1;
        }
        self.counted + 1
    }
}

/// The bytes the CSV parser reads, counted into [`Rows`] on the way.
struct Counting<R> {
    inner: R,
    rows: std::rc::Rc<std::cell::RefCell<Rows>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.rows.borrow_mut().see(&buf[..n]);
        Ok(n)
    }
}

/// `jj/mm/aaaa` or `aaaa-mm-jj` to `aaaa-mm-jj`.
fn date(cell: &str, format: &str) -> Result<String, String> {
    let cell = cell.trim();
    let parts: Vec<&str> = cell.split(['/', '-', '.']).collect();
    let (d, m, y) = match (format, parts.as_slice()) {
        ("aaaa-mm-jj", [y, m, d]) => (*d, *m, *y),
        (_, [d, m, y]) => (*d, *m, *y),
        _ => return Err(format!("« {cell} » n'est pas une date ({format})")),
    };
    let ok = d.len() <= 2
        && m.len() <= 2
        && y.len() == 4
        && [d, m, y]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let in_range = |v: &str, max: u32| v.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n));
    if !ok || !in_range(m, 12) || !in_range(d, 31) {
        return Err(format!("« {cell} » n'est pas une date ({format})"));
    }
    Ok(format!("{y}-{m:0>2}-{d:0>2}"))
}

/// Reads an export as the scan said (encoding, delimiter), calling `each` with every row's
/// writes or reason for refusal; `each` returning false stops the read. Returns what was read,
/// or why the whole file is rejected (its rows handed on before then must be dropped).
pub fn read(
    input: impl Read,
    encoding: Encoding,
    delimiter: u8,
    config: &CsvConfig,
    mut each: impl FnMut(Item) -> bool,
) -> Result<Summary, Rejected> {
    let mut input: Box<dyn Read> = match encoding {
        Encoding::Utf8 => Box::new(input),
        Encoding::Windows1252 => Box::new(Decoding::new(input)),
    };
    // A byte-order mark is not part of the first column's name.
    let mut first = [0u8; 3];
    let mut got = 0;
    while got < 3 {
        match input.read(&mut first[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                return Err(Rejected {
                    line: 1,
                    reason: format!("fichier illisible : {e}"),
                });
            }
        }
    }
    let head: Vec<u8> = if first[..got] == *b"\xEF\xBB\xBF" {
        vec![]
    } else {
        first[..got].to_vec()
    };
    let rows = std::rc::Rc::new(std::cell::RefCell::new(Rows::default()));
    let input = Counting {
        inner: std::io::Cursor::new(head).chain(input),
        rows: rows.clone(),
    };
    let row_at = |p: Option<&csv::Position>| p.map_or(0, |p| rows.borrow_mut().row_at(p.byte()));
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let shown = char::from(delimiter);
    let other = if delimiter == b';' { ',' } else { ';' };
    let headers = reader.headers().cloned().map_err(|e| Rejected {
        line: 1,
        reason: format!("ligne d'en-tête illisible : {e}"),
    })?;
    let index = |name: &str| headers.iter().position(|h| h == name);
    let Some(local_col) = index(&config.columns.local_id) else {
        let hint = if headers.len() == 1 && headers.get(0).is_some_and(|h| h.contains(other)) {
            format!(
                " ; l'en-tête est séparé par « {other} », le profil attend « {shown} » (delimiter)"
            )
        } else {
            String::new()
        };
        return Err(Rejected {
            line: 1,
            reason: format!(
                "pas de colonne « {} » (l'identifiant de la personne) dans l'en-tête{hint}",
                config.columns.local_id
            ),
        });
    };
    // The pivot columns the profile maps must all be there: without one, nobody would be
    // recognised and every row would make a new person.
    let mut pivot_cols = Vec::new();
    for name in config.columns.pivot() {
        match index(name) {
            Some(i) => pivot_cols.push(i),
            None => {
                return Err(Rejected {
                    line: 1,
                    reason: format!(
                        "pas de colonne « {name} » dans l'en-tête : sans elle, les personnes ne \
                         seraient pas reconnues"
                    ),
                });
            }
        }
    }
    let pattern = config.local_id_pattern();
    let mut summary = Summary {
        missing_flag_columns: config
            .flags
            .iter()
            .filter(|f| index(&f.column).is_none())
            .map(|f| f.column.clone())
            .collect(),
        ..Summary::default()
    };
    let mut record = csv::StringRecord::new();
    loop {
        let line = row_at(Some(reader.position()));
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                summary.rows += 1;
                let line = match e.position() {
                    Some(p) => row_at(Some(p)),
                    None => line,
                };
                if !each(Item::Bad(BadRow {
                    line,
                    reason: format!("ligne illisible : {e}"),
                })) {
                    break;
                }
                continue;
            }
        }
        let line = match record.position() {
            Some(p) => row_at(Some(p)),
            None => line,
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        summary.rows += 1;
        if headers.len() > 1 && record.len() < headers.len() {
            if record.get(0).is_some_and(|c| c.contains(other)) {
                return Err(Rejected {
                    line,
                    reason: format!(
                        "les lignes n'utilisent pas le séparateur de l'en-tête : l'en-tête est \
                         séparé par « {shown} », la ligne {line} par « {other} » ; enregistrez \
                         le fichier à nouveau avec un seul séparateur"
                    ),
                });
            }
            if record.len() == 1 {
                if !each(Item::Bad(BadRow {
                    line,
                    reason: format!(
                        "la ligne n'a qu'une colonne, l'en-tête en a {}",
                        headers.len()
                    ),
                })) {
                    break;
                }
                continue;
            }
        }
        let item = match row(
            &record,
            line,
            &index,
            local_col,
            &pivot_cols,
            pattern,
            config,
        ) {
            Ok(writes) => Item::Row { line, writes },
            Err(reason) => Item::Bad(BadRow { line, reason }),
        };
        if !each(item) {
            break;
        }
    }
    Ok(summary)
}

/// The writes of one row, or why it is refused.
fn row(
    record: &csv::StringRecord,
    line: u64,
    index: &impl Fn(&str) -> Option<usize>,
    local_col: usize,
    pivot_cols: &[usize],
    pattern: Option<&regex_lite::Regex>,
    config: &CsvConfig,
) -> Result<Vec<Write>, String> {
    let _ = line;
    // A line break inside a cell is `\n`, whatever the spreadsheet wrote (`\r\n`, `\r`).
    let cell = |i: Option<usize>| {
        i.and_then(|i| record.get(i))
            .unwrap_or("")
            .trim()
            .replace("\r\n", "\n")
            .replace('\r', "\n")
    };
    let local_id = cell(Some(local_col));
    if local_id.is_empty() {
        return Err(format!(
            "« {} » vide : la personne n'a pas d'identifiant",
            config.columns.local_id
        ));
    }
    if local_id.contains([';', ',', '\n', '\r']) {
        return Err(format!(
            "« {} » contient un séparateur ou un retour à la ligne : ce n'est pas un identifiant",
            config.columns.local_id
        ));
    }
    if let Some(p) = pattern
        && !p.is_match(&local_id)
    {
        return Err(format!(
            "« {local_id} » n'a pas la forme d'un identifiant de « {} » (motif {})",
            config.columns.local_id,
            config
                .columns
                .local_id_pattern
                .as_deref()
                .unwrap_or_default()
        ));
    }
    let pivot = match pivot_cols {
        [f, g, b, p] => {
            let (family, given, born, place) = (
                cell(Some(*f)),
                cell(Some(*g)),
                cell(Some(*b)),
                cell(Some(*p)),
            );
            if family.is_empty() && given.is_empty() && born.is_empty() {
                None
            } else {
                let born_col = config.columns.birth_date.as_deref().unwrap_or_default();
                if born.is_empty() {
                    return Err(format!("« {born_col} » vide"));
                }
                let birth_date = date(&born, &config.columns.birth_date_format)
                    .map_err(|e| format!("{e} — colonne « {born_col} »"))?;
                Some(Pivot {
                    family_name: family,
                    first_given_name: given,
                    birth_date,
                    birth_place_cog: place,
                })
            }
        }
        _ => None,
    };
    let mut writes = vec![Write::Link {
        local_id: local_id.clone(),
        pivot,
    }];
    for f in &config.flags {
        if index(&f.column).is_none() {
            continue;
        }
        let read = |name: &str| cell(index(name));
        if let Some(write) = f.write(&local_id, read, |d| {
            date(d, &config.columns.birth_date_format)
        })? {
            writes.push(write);
        }
    }
    if let Some(case) = &config.case {
        let case_ref = cell(index(&case.case_ref));
        let procedure = cell(index(&case.procedure));
        if !case_ref.is_empty() {
            if procedure.is_empty() {
                return Err(format!(
                    "démarche « {case_ref} » sans « {} »",
                    case.procedure
                ));
            }
            let theme = case
                .theme
                .as_ref()
                .map(|t| cell(index(t)))
                .unwrap_or_default();
            if !theme.is_empty() && relais_hub::domain::Theme::parse(&theme.to_lowercase()).is_err()
            {
                return Err(format!(
                    "« {theme} » n'est pas un thème de démarche ({})",
                    relais_hub::domain::Theme::ALL
                        .map(|t| t.as_str())
                        .join(", ")
                ));
            }
            writes.push(Write::OpenCase {
                case_ref,
                local_id: local_id.clone(),
                procedure,
                theme: theme.to_lowercase(),
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
    Ok(writes)
}

/// Reads a whole export in memory.
pub fn parse(bytes: &[u8], config: &CsvConfig) -> Parsed {
    let mut parsed = Parsed::default();
    let scan = match scan(bytes) {
        Ok(s) => s,
        Err(e) => {
            parsed.rejected = Some(Rejected {
                line: 0,
                reason: e.to_string(),
            });
            return parsed;
        }
    };
    if let Err(r) = scan.check(&config.encoding) {
        parsed.rejected = Some(r);
        return parsed;
    }
    let encoding = scan.encoding(&config.encoding);
    let delimiter = scan.delimiter(&config.delimiter, encoding);
    let outcome = read(bytes, encoding, delimiter, config, |item| {
        match item {
            Item::Row { line, writes } => {
                parsed.lines.extend(writes.iter().map(|_| line));
                parsed.writes.extend(writes);
            }
            Item::Bad(b) => parsed.bad.push(b),
        }
        true
    });
    match outcome {
        Ok(summary) => parsed.rows = summary.rows,
        Err(r) => {
            parsed.writes.clear();
            parsed.lines.clear();
            parsed.rejected = Some(r);
        }
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
            local_id_pattern = "R-[0-9]+"
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
        assert_eq!(p.rejected, None);
        assert_eq!(p.rows, 4);
        let lines: Vec<u64> = p.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4], "{:?}", p.bad);
        assert!(p.bad[1].reason.contains("31/13/1950"));
        assert!(p.bad[1].reason.contains("n'est pas une date"));
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
        assert_eq!(p.lines, [2, 2, 2, 5, 5], "each write knows its line");
    }

    /// Lines as the spreadsheet numbers its rows, whatever the line ends: CRLF (Excel on
    /// Windows), CR alone, blank rows, cells over several lines.
    #[test]
    fn refused_rows_are_numbered_as_the_spreadsheet_numbers_them() {
        let rows = [
            "N° dossier;Nom;Prénom;Né(e) le;Commune de naissance;Sans internet;Isolée;Observation",
            "R-17;Castet;Rose;17/02/1943;31021;oui;;\"deux\nlignes\"",
            "",
            "R-18;Pérès;Élodie;31/13/1950;31483;;;",
            "R-19;Dupont;Jean;08/03/1951;31483;;;\"trois\r\nlignes\r\nici\"",
            "R-20;Dupont;Paul;08/03/1951;31483;peut-être;;",
        ];
        for end in ["\n", "\r\n", "\r"] {
            let export = rows.join(end) + end;
            let p = parse(export.as_bytes(), &config("auto", "auto"));
            let lines: Vec<u64> = p.bad.iter().map(|b| b.line).collect();
            assert_eq!(lines, [4, 6], "line ends {end:?}: {:?}", p.bad);
        }
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

    /// A Windows-1252 export larger than the decoder's blocks reads the same as its UTF-8 form,
    /// accents cut across blocks included.
    #[test]
    fn a_large_windows_1252_export_streams() {
        let mut text = String::from(
            "N° dossier;Nom;Prénom;Né(e) le;Commune de naissance;Sans internet;Isolée;Observation\n",
        );
        for i in 0..5_000 {
            text.push_str(&format!(
                "R-{i};Pérès-Éléonore;Hélène;17/02/1943;31021;oui;;àéèêëîïôöùûüç {i}\n"
            ));
        }
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
        let p = parse(&bytes, &config("auto", "auto"));
        assert!(p.bad.is_empty(), "{:?}", &p.bad[..p.bad.len().min(3)]);
        assert_eq!(p.rows, 5_000);
        assert_eq!(p.writes.len(), 10_000);
        match &p.writes[9_998] {
            Write::Link {
                pivot: Some(pv), ..
            } => assert_eq!(pv.family_name, "Pérès-Éléonore"),
            other => panic!("{other:?}"),
        }
    }

    /// A UTF-8 export with one row in Windows-1252 is refused whole, at that row.
    #[test]
    fn a_file_mixing_two_encodings_is_rejected() {
        let mut bytes = EXPORT.as_bytes().to_vec();
        let (latin, _, _) =
            encoding_rs::WINDOWS_1252.encode("R-20;Pérès;Zoé;01/01/1950;31483;;;\n");
        bytes.extend_from_slice(&latin);
        let p = parse(&bytes, &config("auto", "auto"));
        let r = p.rejected.expect("rejected whole");
        assert_eq!(r.line, 6);
        assert!(r.reason.contains("deux encodages"), "{}", r.reason);
    }

    /// A `,` row whose quoted note holds a `;` still does not use the header's delimiter.
    #[test]
    fn a_row_of_the_other_delimiter_with_a_quoted_one_rejects_the_file() {
        let export = "N° dossier;Nom;Prénom;Né(e) le;Commune de naissance;Sans internet;Isolée;Observation\n\
            R-17;Castet;Rose;17/02/1943;31021;oui;x;\n\
            R-2,DURAND,Paul,05/05/1950,31021,oui,,\"voisin; passe le jeudi\"\n";
        let p = parse(export.as_bytes(), &config("auto", "auto"));
        let r = p.rejected.expect("rejected whole");
        assert_eq!(r.line, 3);
        assert!(p.writes.is_empty());
    }

    /// A `;` header with `,` rows: the whole file is refused, nothing of it read into writes
    /// (each whole line would otherwise become a local id, names and birth dates included).
    #[test]
    fn rows_that_do_not_use_the_header_s_delimiter_reject_the_file() {
        let export = "N° dossier;Nom;Prénom;Né(e) le;Commune de naissance;Sans internet;Isolée;Observation\n\
            R-17,Castet,Rose,17/02/1943,31021,oui,x,\n";
        let p = parse(export.as_bytes(), &config("auto", "auto"));
        let r = p.rejected.expect("rejected whole");
        assert_eq!(r.line, 2);
        assert!(r.reason.contains("séparateur"), "{}", r.reason);
        assert!(p.writes.is_empty());
        // Configured `;` and a `,` file: the header itself tells.
        let p = parse(EXPORT.replace(';', ",").as_bytes(), &config(";", "auto"));
        let r = p.rejected.expect("rejected whole");
        assert!(r.reason.contains("séparé par « , »"), "{}", r.reason);
    }

    #[test]
    fn a_missing_pivot_column_rejects_the_file() {
        let export = "N° dossier;Nom;Prénom;Commune de naissance\nR-1;Castet;Rose;31021\n";
        let p = parse(export.as_bytes(), &config("auto", "auto"));
        let r = p.rejected.expect("rejected whole");
        assert!(r.reason.contains("« Né(e) le »"), "{}", r.reason);
    }

    #[test]
    fn local_ids_follow_the_profile_s_pattern() {
        let export = "N° dossier;Nom;Prénom;Né(e) le;Commune de naissance\n\
            R-17;Castet;Rose;17/02/1943;31021\n\
            Castet Rose 17/02/1943;;;;\n";
        let p = parse(export.as_bytes(), &config("auto", "auto"));
        assert_eq!(p.bad.len(), 1, "{:?}", p.bad);
        assert_eq!(p.bad[0].line, 3);
        assert!(p.bad[0].reason.contains("n'a pas la forme"), "{:?}", p.bad);
    }

    #[test]
    fn cells_that_are_neither_yes_nor_no_are_reported() {
        let export = "N° dossier;Nom;Prénom;Né(e) le;Commune de naissance;Sans internet\n\
            R-1;Castet;Rose;17/02/1943;31021;peut-être\n\
            R-2;Castet;Paul;17/02/1943;31021;NON\n\
            R-3;Castet;Jean;17/02/1943;31021;Oui\n";
        let p = parse(export.as_bytes(), &config("auto", "auto"));
        assert_eq!(p.bad.len(), 1, "{:?}", p.bad);
        assert_eq!(p.bad[0].line, 2);
        assert!(
            p.bad[0].reason.contains("peut-être") && p.bad[0].reason.contains("ni oui ni non"),
            "{:?}",
            p.bad
        );
        let flags = p
            .writes
            .iter()
            .filter(|w| matches!(w, Write::RaiseFlag { .. }))
            .count();
        assert_eq!(flags, 1, "R-3 only");
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
            local_id_only = true
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
        assert!(bad[1].1.contains("à revoir"), "{bad:?}");
    }
}
