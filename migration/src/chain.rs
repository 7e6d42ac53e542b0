//! The hash chains over the logs (`deliveries`, `access_log`): which columns of a row are
//! chained, their canonical bytes, and the link. Shared by the migration that chains the rows
//! already stored and the service that chains each batch, so the two cannot drift apart.
//!
//! A row's canonical bytes (version 1), what an outsider recomputes (docs/reliability.md):
//!
//! - the ASCII text `calltrail-chain-v1`, a 0x00 byte, the table's name, a 0x00 byte;
//! - then each chained column in the order of [`Chain::columns`]: a NULL as the one byte 0x00;
//!   any other value as 0x01, the length of its text as 4 bytes big-endian, and its text in
//!   UTF-8. The text of an integer is its decimal form (`-` for a negative); of an instant,
//!   RFC 3339 in UTC with a `Z`, and 0, 3, 6 or 9 fractional digits, the fewest that hold it
//!   exactly (`2026-12-01T10:00:00Z`, `2026-12-01T10:00:00.120Z`); of text, itself.
//!
//! The link of a row is `SHA-256(previous link ‖ canonical bytes)` over the 32 bytes of the
//! previous link; the first row's previous link is [`GENESIS`] (32 zero bytes). Links are
//! stored in `chain_links` as lowercase hex, numbered from 1 in chain order (`seq`).
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm_migration::sea_orm::{DbErr, QueryResult};
use sha2::{Digest, Sha256};

/// The link before a chain's first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// How a chained column's value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Instant,
}

/// One chain: a log table and the columns of its rows that are chained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The table, also the chain's name in `chain_links.chain`.
    pub table: &'static str,
    /// The chained columns, in canonical order; the first is the row's id.
    pub columns: &'static [(&'static str, Kind, bool)],
}

/// The delivery log. The body is chained through its SHA-256 (`sha256`), which `calltrail
/// verify` recomputes from the body: a chain read needs no body.
pub const DELIVERIES: Chain = Chain {
    table: "deliveries",
    columns: &[
        ("id", Kind::Int, false),
        ("received_at", Kind::Instant, false),
        ("content_type", Kind::Text, false),
        ("sha256", Kind::Text, false),
        ("event", Kind::Text, true),
        ("call_id", Kind::Text, true),
        ("outcome", Kind::Text, false),
        ("reason", Kind::Text, true),
        ("replay_of", Kind::Int, true),
    ],
};

/// The access log (`access_log_calls` repeats its `call_ids` and is checked against them).
pub const ACCESS_LOG: Chain = Chain {
    table: "access_log",
    columns: &[
        ("id", Kind::Int, false),
        ("at", Kind::Instant, false),
        ("key_id", Kind::Int, true),
        ("key_name", Kind::Text, false),
        ("role", Kind::Text, false),
        ("surface", Kind::Text, false),
        ("operation_name", Kind::Text, true),
        ("query_sha256", Kind::Text, true),
        ("client_address", Kind::Text, true),
        ("call_ids", Kind::Text, false),
        ("byte_range", Kind::Text, true),
    ],
};

/// Every chain, in the order a transaction extends them (PostgreSQL locks their heads so).
pub const CHAINS: [Chain; 2] = [DELIVERIES, ACCESS_LOG];

impl Chain {
    /// The chained columns as a SQL select list.
    pub fn select_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The row's id and canonical bytes, from a row selected with [`Chain::select_list`].
    pub fn canonical(&self, row: &QueryResult) -> Result<(i64, Vec<u8>), DbErr> {
        let (id, texts) = self.texts(row)?;
        let bytes = encode(self.table, &texts)
            .ok_or_else(|| DbErr::Custom(format!("a {} value is too long", self.table)))?;
        Ok((id, bytes))
    }

    /// The row's id and the texts of its chained columns (`None` for NULL), in the order of
    /// [`Chain::columns`]: what [`encode`] makes the canonical bytes of, and what an evidence
    /// bundle carries so that a recipient can recompute the link.
    pub fn texts(&self, row: &QueryResult) -> Result<(i64, Vec<Option<String>>), DbErr> {
        let mut texts = Vec::with_capacity(self.columns.len());
        let mut id = None;
        for (name, kind, nullable) in self.columns {
            let text = match kind {
                Kind::Int => row.try_get::<Option<i64>>("", name)?.map(|v| {
                    id.get_or_insert(v);
                    v.to_string()
                }),
                Kind::Text => row.try_get::<Option<String>>("", name)?,
                Kind::Instant => row
                    .try_get::<Option<DateTime<Utc>>>("", name)?
                    .map(|v| instant_text(&v)),
            };
            if text.is_none() && !nullable {
                return Err(DbErr::Custom(format!(
                    "{}.{name} is NULL, which the schema forbids",
                    self.table
                )));
            }
            texts.push(text);
        }
        let id = id.ok_or_else(|| DbErr::Custom(format!("{} row without id", self.table)))?;
        Ok((id, texts))
    }
}

/// The canonical bytes of a row of `table` whose chained columns have the texts `values`
/// (`None` for NULL), in the order of [`Chain::columns`]. `None` if a value is 4 GiB or more.
pub fn encode(table: &str, values: &[Option<String>]) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(b"calltrail-chain-v1\0");
    bytes.extend_from_slice(table.as_bytes());
    bytes.push(0);
    for value in values {
        match value {
            None => bytes.push(0),
            Some(text) => {
                let len = u32::try_from(text.len()).ok()?;
                bytes.push(1);
                bytes.extend_from_slice(&len.to_be_bytes());
                bytes.extend_from_slice(text.as_bytes());
            }
        }
    }
    Some(bytes)
}

/// The canonical text of an instant.
pub fn instant_text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The link after `previous` for a row of canonical bytes `row`.
pub fn link(previous: &[u8; 32], row: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(row);
    hasher.finalize().into()
}

/// A stored link (lowercase hex) as bytes.
pub fn parse_link(hex_link: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_link, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_keep_the_fewest_fractional_digits_that_hold_them() {
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("an instant")
                .with_timezone(&Utc)
        };
        assert_eq!(
            instant_text(&at("2026-12-01T10:00:00+00:00")),
            "2026-12-01T10:00:00Z"
        );
        assert_eq!(
            instant_text(&at("2026-12-01T10:00:00.12+00:00")),
            "2026-12-01T10:00:00.120Z"
        );
        assert_eq!(
            instant_text(&at("2026-12-01T10:00:00.123456+00:00")),
            "2026-12-01T10:00:00.123456Z"
        );
    }

    #[test]
    fn a_delivery_row_encodes_as_documented() {
        let text = |s: &str| Some(s.to_owned());
        let row = [
            text("1"),
            text("2026-12-01T10:00:00.120Z"),
            text("application/json"),
            text("ab"),
            text("CALL_ENDED"),
            None,
            text("stored"),
            None,
            None,
        ];
        let bytes = encode(DELIVERIES.table, &row).expect("encodes");
        let mut expected = b"calltrail-chain-v1\0deliveries\0".to_vec();
        for value in &row {
            match value {
                None => expected.push(0),
                Some(v) => {
                    expected.push(1);
                    expected.extend_from_slice(&(v.len() as u32).to_be_bytes());
                    expected.extend_from_slice(v.as_bytes());
                }
            }
        }
        assert_eq!(bytes, expected);
        // Pinned (recomputed from the documented rule in Python): a change to the encoding must
        // be a new version, not a silent edit.
        assert_eq!(
            hex::encode(link(&GENESIS, &bytes)),
            "790b063037ec8f04e8411cd07504443d4eb47e156180b3836d049c38d39b8885"
        );
    }

    #[test]
    fn a_link_is_the_sha256_of_the_previous_link_and_the_row() {
        // sha256 of 32 zero bytes followed by "abc", computed independently (`sha256sum`).
        assert_eq!(
            hex::encode(link(&GENESIS, b"abc")),
            "365aa7d8f7f9402c4b9434502b4cc89ddb09fe50d7cd95b493b834c62d5a5370"
        );
    }
}
