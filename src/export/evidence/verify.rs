//! `calltrail verify-bundle`: an evidence bundle checked offline, from the zip alone, with no
//! database: every file against the manifest (missing, extra, size, SHA-256) and `SHA256SUMS`
//! against both; every delivery body against the SHA-256 its log row recorded; every recording
//! against the SHA-256 and size the archive recorded; every log row's chain link recomputed
//! from the row (`migration::chain`), and the places and links it carries against each other
//! and the manifest's heads. Each difference names the file and says why; a zip that cannot be
//! read is one too.
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use migration::chain::{ACCESS_LOG, Chain, DELIVERIES, GENESIS, Kind, encode, link, parse_link};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::manifest::{
    ACCESS_LOG_CSV, CALLS_CSV, CALLS_JSON, ChainHead, DELIVERIES as DELIVERIES_DIR, FORMAT,
    MANIFEST, Manifest, RECORDINGS, SUMS, access_log_header, delivery_paths, field_name, sums,
};

/// Largest small file read whole (the manifest, `SHA256SUMS`, a delivery's log row).
const SMALL_FILE: u64 = 256 * 1024 * 1024;
/// Longest line of `calls.json` parsed (a call with its events and revisions).
const LONGEST_CALL: usize = 64 * 1024 * 1024;

/// One thing that does not hold: the file, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub file: String,
    pub what: String,
}

/// What `verify-bundle` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// What held, a line per check.
    pub checked: Vec<String>,
    pub differences: Vec<Difference>,
    /// The manifest's chain heads, to compare with heads recorded outside calltrail.
    pub heads: Vec<ChainHead>,
    pub manifest: Option<Manifest>,
}

impl Report {
    pub fn holds(&self) -> bool {
        self.differences.is_empty()
    }

    fn differ(&mut self, file: impl Into<String>, what: impl Into<String>) {
        self.differences.push(Difference {
            file: file.into(),
            what: what.into(),
        });
    }
}

/// A reader that hashes and counts what it reads.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A log row the bundle carries, and where.
#[derive(Clone, Debug)]
struct Carried {
    chain: &'static str,
    seq: i64,
    link: String,
    previous: String,
    file: String,
}

/// A call's recording as `calls.json` states it.
#[derive(Clone, Debug)]
struct Stated {
    call_id: String,
    sha256: String,
    bytes: Option<u64>,
}

/// What reading every entry gathered for the checks after it.
#[derive(Default)]
struct Gathered {
    /// Every file but the manifest: its size and SHA-256 as read.
    hashed: HashMap<String, (u64, String)>,
    sums: Option<String>,
    /// Delivery log rows, by file, parsed.
    delivery_rows: BTreeMap<String, Value>,
    recordings: BTreeMap<String, Stated>,
    call_lines: u64,
    csv_rows: u64,
    carried: Vec<Carried>,
    access_rows: u64,
}

/// Checks the bundle at `path`.
pub fn verify(path: &Path) -> Report {
    let mut report = Report::default();
    let shown = path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) => {
            report.differ(shown, format!("cannot be opened: {e}"));
            return report;
        }
    };
    let mut archive = match zip::ZipArchive::new(BufReader::new(file)) {
        Ok(archive) => archive,
        Err(e) => {
            report.differ(shown, format!("is not a readable zip archive: {e}"));
            return report;
        }
    };
    report.checked.push(format!("zip: {} files", archive.len()));
    let Some((manifest, manifest_sha256)) = read_manifest(&mut archive, &mut report) else {
        return report;
    };
    report.heads = manifest.chain_heads.clone();
    let listed: HashMap<&str, (u64, &str)> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), (f.bytes, f.sha256.as_str())))
        .collect();
    let mut read = Gathered::default();
    for index in 0..archive.len() {
        read_entry(&mut archive, index, &listed, &mut read, &mut report);
    }
    check_files(&manifest, &read, &mut report);
    check_sums(&manifest, &manifest_sha256, &read, &mut report);
    check_deliveries(&mut read, &mut report);
    check_recordings(&read, &mut report);
    check_chains(&manifest, &read, &mut report);
    report.manifest = Some(manifest);
    report
}

fn read_manifest<R: Read + io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    report: &mut Report,
) -> Option<(Manifest, String)> {
    let mut entry = match archive.by_name(MANIFEST) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            report.differ(MANIFEST, "is missing: nothing can be checked");
            return None;
        }
        Err(e) => {
            report.differ(MANIFEST, format!("cannot be read from the zip: {e}"));
            return None;
        }
    };
    let mut text = Vec::new();
    if let Err(e) = (&mut entry).take(SMALL_FILE).read_to_end(&mut text) {
        report.differ(MANIFEST, format!("cannot be read from the zip: {e}"));
        return None;
    }
    let sha256 = hex::encode(Sha256::digest(&text));
    let manifest: Manifest = match serde_json::from_slice(&text) {
        Ok(manifest) => manifest,
        Err(e) => {
            report.differ(MANIFEST, format!("is not a bundle manifest: {e}"));
            return None;
        }
    };
    if manifest.format != FORMAT {
        report.differ(
            MANIFEST,
            format!("is of format `{}`, not {FORMAT}", manifest.format),
        );
        return None;
    }
    Some((manifest, sha256))
}

/// Reads entry `index` through: hashed, and parsed where another check needs its content.
fn read_entry<R: Read + io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    index: usize,
    listed: &HashMap<&str, (u64, &str)>,
    read: &mut Gathered,
    report: &mut Report,
) {
    let mut entry = match archive.by_index(index) {
        Ok(entry) => entry,
        Err(e) => {
            report.differ(
                format!("entry #{index}"),
                format!("cannot be read from the zip: {e}"),
            );
            return;
        }
    };
    let name = match entry.name() {
        Ok(name) => name.into_owned(),
        Err(e) => {
            report.differ(
                format!("entry #{index}"),
                format!("has no readable name: {e}"),
            );
            return;
        }
    };
    // A folder entry (a bundle unpacked and zipped again has them) holds nothing to check.
    if name == MANIFEST || (entry.is_dir() && entry.size() == 0) {
        return;
    }
    let listed_bytes = listed.get(name.as_str()).map(|(bytes, _)| *bytes);
    if name != SUMS && listed_bytes.is_none() {
        report.differ(&name, "is not listed in the manifest");
        return;
    }
    if read.hashed.contains_key(&name) {
        report.differ(&name, "is in the zip twice");
        return;
    }
    // Never more than the manifest says, and a byte to tell it was more: an entry that
    // inflates without end (a zip bomb) stops there.
    let limit = listed_bytes.map_or(SMALL_FILE, |b| b.saturating_add(1));
    let mut limited = (&mut entry).take(limit);
    let mut hashing = Hashing::new(&mut limited);
    let outcome = if name == SUMS {
        let mut text = String::new();
        (&mut hashing)
            .take(SMALL_FILE)
            .read_to_string(&mut text)
            .map(|_| read.sums = Some(text))
    } else if name == CALLS_JSON {
        read_calls_json(&mut hashing, read, report)
    } else if name == CALLS_CSV {
        read_calls_csv(&mut hashing, read, report)
    } else if name == ACCESS_LOG_CSV {
        read_access_log(&mut hashing, read, report)
    } else if name.starts_with(DELIVERIES_DIR) && name.ends_with(".json") {
        let mut text = Vec::new();
        (&mut hashing).take(SMALL_FILE).read_to_end(&mut text).map(
            |_| match serde_json::from_slice::<Value>(&text) {
                Ok(row) => {
                    read.delivery_rows.insert(name.clone(), row);
                }
                Err(e) => report.differ(&name, format!("is not a delivery's log row: {e}")),
            },
        )
    } else {
        io::copy(&mut hashing, &mut io::sink()).map(|_| ())
    };
    // Whatever a parser left unread is hashed too.
    let outcome = outcome.and_then(|()| io::copy(&mut hashing, &mut io::sink()).map(|_| ()));
    if let Err(e) = outcome {
        report.differ(&name, format!("cannot be read from the zip: {e}"));
        return;
    }
    let (bytes, sha256) = hashing.finish();
    if bytes == limit {
        report.differ(&name, format!("holds more than {} bytes", limit - 1));
    }
    read.hashed.insert(name, (bytes, sha256));
}

fn read_calls_json(
    input: &mut impl Read,
    read: &mut Gathered,
    report: &mut Report,
) -> io::Result<()> {
    let mut lines = BufReader::new(input);
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut parsing = true;
    loop {
        line.clear();
        let n = (&mut lines)
            .take(LONGEST_CALL as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        if !parsing {
            continue;
        }
        if line.len() >= LONGEST_CALL && !line.ends_with(b"\n") {
            report.differ(
                CALLS_JSON,
                format!("line {number} is longer than a call can be"),
            );
            parsing = false;
            continue;
        }
        let text = line.trim_ascii();
        let text = text.strip_suffix(b",").unwrap_or(text);
        if text == b"[" || text == b"]" {
            continue;
        }
        let call: Value = match serde_json::from_slice(text) {
            Ok(call) => call,
            Err(e) => {
                report.differ(CALLS_JSON, format!("line {number} is not a call: {e}"));
                parsing = false;
                continue;
            }
        };
        read.call_lines += 1;
        let recording = &call["recording"];
        if let Some(file) = recording["file"].as_str() {
            read.recordings.insert(
                file.to_owned(),
                Stated {
                    call_id: call["callId"].as_str().unwrap_or_default().to_owned(),
                    sha256: recording["sha256"].as_str().unwrap_or_default().to_owned(),
                    bytes: recording["bytes"].as_u64(),
                },
            );
        }
    }
}

fn read_calls_csv(
    input: &mut impl Read,
    read: &mut Gathered,
    report: &mut Report,
) -> io::Result<()> {
    let mut rows = csv::Reader::from_reader(input);
    let mut record = csv::ByteRecord::new();
    loop {
        match rows.read_byte_record(&mut record) {
            Ok(true) => read.csv_rows += 1,
            Ok(false) => return Ok(()),
            Err(e) => {
                report.differ(CALLS_CSV, format!("is not RFC 4180 CSV: {e}"));
                return Ok(());
            }
        }
    }
}

/// The texts an access-log cell may stand for: an empty cell of a nullable text column is
/// NULL or the empty text (the link tells which); of an integer or instant, only NULL.
fn cell_texts(cell: &str, kind: Kind, nullable: bool) -> Vec<Option<String>> {
    match (cell.is_empty(), kind, nullable) {
        (false, _, _) => vec![Some(cell.to_owned())],
        (true, Kind::Text, true) => vec![None, Some(String::new())],
        (true, Kind::Text, false) => vec![Some(String::new())],
        (true, Kind::Int | Kind::Instant, _) => vec![None],
    }
}

/// Whether any reading of the row's cells links to `stored` after `previous`.
fn links_to(
    chain: Chain,
    choices: &[Vec<Option<String>>],
    previous: &[u8; 32],
    stored: &str,
) -> bool {
    let mut picked: Vec<usize> = vec![0; choices.len()];
    loop {
        let texts: Vec<Option<String>> = choices
            .iter()
            .zip(&picked)
            .map(|(c, i)| c[*i].clone())
            .collect();
        if let Some(bytes) = encode(chain.table, &texts)
            && hex::encode(link(previous, &bytes)) == stored
        {
            return true;
        }
        // The next combination, as an odometer.
        let mut column = 0;
        loop {
            if column == choices.len() {
                return false;
            }
            picked[column] += 1;
            if picked[column] < choices[column].len() {
                break;
            }
            picked[column] = 0;
            column += 1;
        }
    }
}

fn read_access_log(
    input: &mut impl Read,
    read: &mut Gathered,
    report: &mut Report,
) -> io::Result<()> {
    let mut rows = csv::Reader::from_reader(input);
    let expected = access_log_header(ACCESS_LOG);
    match rows.headers() {
        Ok(header) if header.iter().eq(expected.iter().map(String::as_str)) => {}
        Ok(_) => {
            report.differ(
                ACCESS_LOG_CSV,
                format!("its header is not {}", expected.join(",")),
            );
            return Ok(());
        }
        Err(e) => {
            report.differ(ACCESS_LOG_CSV, format!("is not RFC 4180 CSV: {e}"));
            return Ok(());
        }
    }
    let columns = ACCESS_LOG.columns.len();
    for (number, record) in rows.records().enumerate() {
        let row = number + 2;
        let record = match record {
            Ok(record) if record.len() == columns + 3 => record,
            Ok(record) => {
                report.differ(
                    ACCESS_LOG_CSV,
                    format!("line {row} has {} cells, not {}", record.len(), columns + 3),
                );
                continue;
            }
            Err(e) => {
                report.differ(ACCESS_LOG_CSV, format!("is not RFC 4180 CSV: {e}"));
                return Ok(());
            }
        };
        read.access_rows += 1;
        let id = record.get(0).unwrap_or_default().to_owned();
        let (Ok(seq), Some(stored), Some(previous)) = (
            record.get(columns).unwrap_or_default().parse::<i64>(),
            record.get(columns + 1),
            record.get(columns + 2).and_then(parse_link),
        ) else {
            report.differ(
                ACCESS_LOG_CSV,
                format!("row {id}: its seq, link or previousLink is not one"),
            );
            continue;
        };
        let choices: Vec<Vec<Option<String>>> = ACCESS_LOG
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind, nullable))| {
                cell_texts(record.get(i).unwrap_or_default(), *kind, *nullable)
            })
            .collect();
        if !links_to(ACCESS_LOG, &choices, &previous, stored) {
            report.differ(
                ACCESS_LOG_CSV,
                format!("row {id}: its chain link does not match the row (changed, or replaced)"),
            );
        }
        read.carried.push(Carried {
            chain: ACCESS_LOG.table,
            seq,
            link: stored.to_owned(),
            previous: hex::encode(previous),
            file: format!("{ACCESS_LOG_CSV} (row {id})"),
        });
    }
    Ok(())
}

fn check_files(manifest: &Manifest, read: &Gathered, report: &mut Report) {
    let before = report.differences.len();
    for file in &manifest.files {
        match read.hashed.get(&file.path) {
            None => report.differ(&file.path, "is listed in the manifest but not in the zip"),
            Some((bytes, _)) if *bytes != file.bytes => report.differ(
                &file.path,
                format!("is {bytes} bytes; the manifest says {}", file.bytes),
            ),
            Some((_, sha256)) if *sha256 != file.sha256 => report.differ(
                &file.path,
                format!("hashes to {sha256}; the manifest says {}", file.sha256),
            ),
            Some(_) => {}
        }
    }
    if read.call_lines != manifest.calls {
        report.differ(
            CALLS_JSON,
            format!(
                "holds {} calls; the manifest says {}",
                read.call_lines, manifest.calls
            ),
        );
    }
    if read.csv_rows != manifest.calls {
        report.differ(
            CALLS_CSV,
            format!(
                "holds {} calls; the manifest says {}",
                read.csv_rows, manifest.calls
            ),
        );
    }
    if report.differences.len() == before {
        report.checked.push(format!(
            "{MANIFEST}: {} files, each of its size and SHA-256; {} calls",
            manifest.files.len(),
            manifest.calls
        ));
    }
}

fn check_sums(manifest: &Manifest, manifest_sha256: &str, read: &Gathered, report: &mut Report) {
    let Some(found) = &read.sums else {
        report.differ(SUMS, "is missing");
        return;
    };
    let expected = sums(&manifest.files, manifest_sha256);
    if *found == expected {
        report.checked.push(format!(
            "{SUMS}: {} lines, as the manifest (and the manifest's own)",
            expected.lines().count()
        ));
        return;
    }
    let before = report.differences.len();
    let own = |line: &&str| line.ends_with(&format!("  {MANIFEST}"));
    let expected_own = format!("{manifest_sha256}  {MANIFEST}");
    match found.lines().find(own) {
        Some(line) if line == expected_own => {}
        Some(line) => report.differ(
            MANIFEST,
            format!(
                "hashes to {manifest_sha256}, but {SUMS} has `{line}` for it: one of the two was changed"
            ),
        ),
        None => report.differ(SUMS, format!("has no line for {MANIFEST}")),
    }
    let mut found_lines = found.lines().filter(|l| !own(l));
    for (number, line) in expected.lines().filter(|l| !own(l)).enumerate() {
        match found_lines.next() {
            Some(other) if other == line => {}
            Some(other) => {
                report.differ(
                    SUMS,
                    format!(
                        "line {} is `{other}`; the manifest makes it `{line}`",
                        number + 1
                    ),
                );
                return;
            }
            None => {
                report.differ(
                    SUMS,
                    format!("ends after {number} files; the manifest lists more"),
                );
                return;
            }
        }
    }
    if report.differences.len() == before {
        report.differ(
            SUMS,
            "has lines (or bytes, or an order) that the manifest does not make",
        );
    }
}

/// A delivery log row's chained texts, from its JSON.
fn delivery_texts(row: &Value) -> Result<Vec<Option<String>>, String> {
    DELIVERIES
        .columns
        .iter()
        .map(|(column, kind, _)| {
            let name = field_name(column);
            match (&row[name.as_str()], kind) {
                (Value::Null, _) => Ok(None),
                (Value::Number(n), Kind::Int) => n
                    .as_i64()
                    .map(|n| Some(n.to_string()))
                    .ok_or_else(|| format!("{name} is not an integer")),
                (Value::String(s), Kind::Text | Kind::Instant) => Ok(Some(s.clone())),
                _ => Err(format!("{name} is not of its kind")),
            }
        })
        .collect()
}

fn check_deliveries(read: &mut Gathered, report: &mut Report) {
    let before = report.differences.len();
    let rows = std::mem::take(&mut read.delivery_rows);
    let mut bodies = 0;
    for (file, row) in &rows {
        let texts = match delivery_texts(row) {
            Ok(texts) => texts,
            Err(why) => {
                report.differ(file, format!("is not a delivery's log row: {why}"));
                continue;
            }
        };
        let id = row["id"].as_i64().unwrap_or_default();
        let (body, json) = delivery_paths(id);
        if *file != json || row["body"].as_str() != Some(body.as_str()) {
            report.differ(file, format!("is not the log row of delivery {id}'s body"));
            continue;
        }
        let logged = DELIVERIES
            .columns
            .iter()
            .position(|(column, _, _)| *column == "sha256")
            .and_then(|i| texts.get(i).cloned().flatten())
            .unwrap_or_default();
        match read.hashed.get(&body) {
            None => report.differ(&body, "is missing: its log row is in the bundle"),
            Some((_, sha256)) if *sha256 != logged => report.differ(
                &body,
                format!("hashes to {sha256}, not to the SHA-256 its log row recorded ({logged})"),
            ),
            Some(_) => bodies += 1,
        }
        let chain = &row["chain"];
        let (Some(seq), Some(stored), Some(previous)) = (
            chain["seq"].as_i64(),
            chain["link"].as_str(),
            chain["previousLink"].as_str().and_then(parse_link),
        ) else {
            report.differ(file, "its chain place (seq, link, previousLink) is not one");
            continue;
        };
        let recomputed = encode(DELIVERIES.table, &texts).map(|b| hex::encode(link(&previous, &b)));
        if recomputed.as_deref() != Some(stored) || chain["chain"] != DELIVERIES.table {
            report.differ(
                file,
                "its chain link does not match the row (changed, or replaced)",
            );
        }
        read.carried.push(Carried {
            chain: DELIVERIES.table,
            seq,
            link: stored.to_owned(),
            previous: hex::encode(previous),
            file: file.clone(),
        });
    }
    for name in read.hashed.keys() {
        if let Some(id) = name
            .strip_prefix(DELIVERIES_DIR)
            .and_then(|n| n.strip_suffix(".body"))
            && !rows.contains_key(&format!("{DELIVERIES_DIR}{id}.json"))
        {
            report.differ(name, "has no log row in the bundle");
        }
    }
    if report.differences.len() == before {
        report.checked.push(format!(
            "deliveries: {bodies} bodies against the SHA-256 their log rows recorded; {} chain links recomputed",
            rows.len()
        ));
    }
}

fn check_recordings(read: &Gathered, report: &mut Report) {
    let before = report.differences.len();
    for (file, stated) in &read.recordings {
        match read.hashed.get(file) {
            None => report.differ(
                file,
                format!("is missing: calls.json names it for call {}", stated.call_id),
            ),
            Some((bytes, sha256)) if *sha256 != stated.sha256 || Some(*bytes) != stated.bytes => {
                report.differ(
                    file,
                    format!(
                        "hashes to {sha256} ({bytes} bytes), not to what the archive recorded for call {} ({}, {} bytes)",
                        stated.call_id,
                        stated.sha256,
                        stated.bytes.map_or("?".to_owned(), |b| b.to_string())
                    ),
                )
            }
            Some(_) => {}
        }
    }
    for name in read.hashed.keys() {
        if name.starts_with(RECORDINGS) && !read.recordings.contains_key(name) {
            report.differ(name, "is not the recording of any call in calls.json");
        }
    }
    if report.differences.len() == before {
        report.checked.push(format!(
            "recordings: {} against the SHA-256 and size the archive recorded",
            read.recordings.len()
        ));
    }
}

fn check_chains(manifest: &Manifest, read: &Gathered, report: &mut Report) {
    let before = report.differences.len();
    let genesis = hex::encode(GENESIS);
    for chain in [DELIVERIES, ACCESS_LOG] {
        let head = manifest.chain_heads.iter().find(|h| h.chain == chain.table);
        let mut carried: Vec<&Carried> = read
            .carried
            .iter()
            .filter(|c| c.chain == chain.table)
            .collect();
        carried.sort_by_key(|c| c.seq);
        let Some(head) = head else {
            if !carried.is_empty() {
                report.differ(
                    MANIFEST,
                    format!("has no head for the chain {}", chain.table),
                );
            }
            continue;
        };
        for (i, row) in carried.iter().enumerate() {
            if row.seq < 1 || row.seq > head.seq {
                report.differ(
                    &row.file,
                    format!(
                        "is at place {} of {}, outside 1..={} (the head when the bundle was made)",
                        row.seq, chain.table, head.seq
                    ),
                );
            }
            if row.seq == head.seq && head.link.as_deref() != Some(row.link.as_str()) {
                report.differ(&row.file, "is at the head's place but not its link");
            }
            if row.seq == 1 && row.previous != genesis {
                report.differ(
                    &row.file,
                    "is first on its chain but does not follow the genesis",
                );
            }
            if let Some(next) = carried.get(i + 1) {
                if next.seq == row.seq {
                    report.differ(&next.file, format!("is at place {} twice", row.seq));
                } else if next.seq == row.seq + 1 && next.previous != row.link {
                    report.differ(
                        &next.file,
                        format!(
                            "does not follow the row before it on the chain ({})",
                            row.file
                        ),
                    );
                }
            }
        }
    }
    if report.differences.len() == before {
        report.checked.push(format!(
            "chains: {} rows' places consistent with each other and the heads ({} access-log rows)",
            read.carried.len(),
            read.access_rows
        ));
    }
}
