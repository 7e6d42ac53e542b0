//! What an evidence bundle holds, by name, and its two lists of files: `manifest.json` (every
//! other file with its size and SHA-256, and what the bundle is) and `SHA256SUMS` (the same
//! digests and the manifest's, in the format `sha256sum -c` reads). Written last by the bundle,
//! read first by `calltrail verify-bundle`.
use migration::chain::Chain;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The layout's version, in `manifest.json`'s `format`.
pub const FORMAT: &str = "calltrail-evidence-bundle/1";
pub const MANIFEST: &str = "manifest.json";
pub const SUMS: &str = "SHA256SUMS";
pub const CALLS_CSV: &str = "calls.csv";
pub const CALLS_JSON: &str = "calls.json";
pub const ACCESS_LOG_CSV: &str = "access-log.csv";
pub const DELIVERIES: &str = "deliveries/";
pub const RECORDINGS: &str = "recordings/";

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: String,
    pub calltrail_version: String,
    /// When the bundle was made (RFC 3339, UTC).
    pub made_at: String,
    pub made_by: MadeBy,
    /// The parameters that chose the calls, as given (`customerNumber`, `pickedBy`, `callId`,
    /// `endedAtFrom`, `endedAtTo`; a repeated one as a list).
    pub filter: Map<String, Value>,
    /// Calls in `calls.csv` and `calls.json`.
    pub calls: u64,
    /// Every chain's last place and link when the bundle was made: the log rows it carries are
    /// at or before them.
    pub chain_heads: Vec<ChainHead>,
    /// Every file of the bundle but this one and `SHA256SUMS`, in the order written.
    pub files: Vec<FileEntry>,
}

/// Who made the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MadeBy {
    /// `http` (`GET /export/evidence.zip`) or `cli` (`calltrail evidence`).
    pub via: String,
    pub key_id: Option<i64>,
    pub key_name: Option<String>,
    pub role: Option<String>,
    /// The key's scope (business numbers and agents; empty lists for every call).
    pub waba_numbers: Vec<String>,
    pub agents: Vec<String>,
    /// The access-log row that records the bundle (it is in `access-log.csv` too).
    pub access_log_id: Option<i64>,
}

/// A chain's head: its last place and link (none for an empty chain).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainHead {
    pub chain: String,
    pub seq: i64,
    pub link: Option<String>,
}

/// One file of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// `SHA256SUMS`: a line per file of the manifest, then the manifest's own, as `sha256sum`
/// writes them (`<hex>  <path>`).
pub fn sums(files: &[FileEntry], manifest_sha256: &str) -> String {
    let mut text = String::with_capacity((files.len() + 1) * 100);
    for file in files {
        text.push_str(&format!("{}  {}\n", file.sha256, file.path));
    }
    text.push_str(&format!("{manifest_sha256}  {MANIFEST}\n"));
    text
}

/// A chained column's name as the bundle writes it: `received_at` → `receivedAt`.
pub fn field_name(column: &str) -> String {
    let mut name = String::with_capacity(column.len());
    let mut upper = false;
    for c in column.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            name.extend(c.to_uppercase());
            upper = false;
        } else {
            name.push(c);
        }
    }
    name
}

/// The header of `access-log.csv`: the chained columns of the access log, then its place.
pub fn access_log_header(chain: Chain) -> Vec<String> {
    chain
        .columns
        .iter()
        .map(|(column, _, _)| field_name(column))
        .chain(["seq".into(), "link".into(), "previousLink".into()])
        .collect()
}

/// The file of a call's recording: its call id with every byte but `A-Z a-z 0-9 - _ .`
/// percent-encoded, a leading `.` too (so no id names a path outside `recordings/`, and no two
/// ids one file), and an extension from its content type.
pub fn recording_path(call_id: &str, content_type: &str) -> String {
    let mut name = String::with_capacity(call_id.len() + 16);
    for (i, b) in call_id.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if plain {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.is_empty() {
        // No call id encodes to a lone `%` (a `%` in an id is `%25`).
        name.push('%');
    }
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let extension = match essence.as_str() {
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/mp4" | "audio/x-m4a" | "audio/aac" => "m4a",
        "audio/webm" => "webm",
        "audio/amr" => "amr",
        _ => "bin",
    };
    format!("{RECORDINGS}{name}.{extension}")
}

/// The files of a logged delivery: its body exactly as received, and its log row.
pub fn delivery_paths(id: i64) -> (String, String) {
    (
        format!("{DELIVERIES}{id}.body"),
        format!("{DELIVERIES}{id}.json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_read_as_the_api_spells_them() {
        assert_eq!(field_name("received_at"), "receivedAt");
        assert_eq!(field_name("query_sha256"), "querySha256");
        assert_eq!(field_name("id"), "id");
    }

    #[test]
    fn a_recording_path_stays_inside_recordings() {
        assert_eq!(
            recording_path("call_9f2-A.1", "audio/mpeg"),
            "recordings/call_9f2-A.1.mp3"
        );
        assert_eq!(
            recording_path("../../etc/passwd", "audio/wav; x=1"),
            "recordings/%2E.%2F..%2Fetc%2Fpasswd.wav"
        );
        assert_eq!(recording_path("", "text/html"), "recordings/%.bin");
        assert_eq!(recording_path("%", "audio/mpeg"), "recordings/%25.mp3");
        assert_eq!(
            recording_path("a b\n", "AUDIO/MPEG"),
            "recordings/a%20b%0A.mp3"
        );
    }

    #[test]
    fn sums_read_as_sha256sum_writes_them() {
        let files = [FileEntry {
            path: "calls.csv".into(),
            bytes: 3,
            sha256: "ab".repeat(32),
        }];
        let text = sums(&files, &"cd".repeat(32));
        assert_eq!(
            text,
            format!(
                "{}  calls.csv\n{}  manifest.json\n",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
    }
}
