//! What the database driver alone can do for a narrow export: the six summary columns of every
//! call, in export order, read through sqlx (the driver sea-orm and calltrail use) as one
//! streamed statement and written as CSV to a sink. No HTTP, no keyset pages, no `Call`: the
//! ceiling an export through this driver cannot pass. `benches/exports/compare.sh` runs it
//! beside calltrail's export and the database's own.
//!
//!   DATABASE_URL=... cargo bench --bench export_ceiling
//!
//! Prints one line: seconds, rows per second, bytes.
use std::io::Write;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::TryStreamExt;
use sea_orm::sqlx::{self, Connection, Row};

const SQL: &str = "SELECT call_id, ended_at, duration_seconds, picked_by, direction, waba_number \
                   FROM calls ORDER BY ended_at DESC, id DESC";

/// Counts what is written, keeps nothing.
#[derive(Default)]
struct Counted(u64);

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One row's six values, decoded as calltrail decodes them.
fn write_row(
    out: &mut csv::Writer<Counted>,
    id: &str,
    ended: DateTime<Utc>,
    seconds: i64,
    picked: Option<&str>,
    direction: &str,
    waba: &str,
) {
    let seconds = seconds.to_string();
    let ended = ended.to_rfc3339_opts(SecondsFormat::Millis, true);
    out.write_record([
        id,
        ended.as_str(),
        seconds.as_str(),
        picked.unwrap_or(""),
        direction,
        waba,
    ])
    .expect("write");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL names the seeded database");
    let mut out = csv::Writer::from_writer(Counted::default());
    out.write_record([
        "callId",
        "endedAt",
        "durationSeconds",
        "pickedBy",
        "direction",
        "wabaNumber",
    ])
    .expect("header");
    let started = Instant::now();
    let mut rows = 0u64;
    // The same loop over either driver's connection.
    macro_rules! read_all {
        ($conn:expr) => {{
            let mut stream = sqlx::query(SQL).fetch($conn);
            while let Some(row) = stream.try_next().await.expect("row") {
                let ended: DateTime<Utc> = row.try_get(1).expect("ended_at");
                write_row(
                    &mut out,
                    row.try_get(0).expect("call_id"),
                    ended,
                    row.try_get(2).expect("duration_seconds"),
                    row.try_get(3).expect("picked_by"),
                    row.try_get(4).expect("direction"),
                    row.try_get(5).expect("waba_number"),
                );
                rows += 1;
            }
        }};
    }
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        read_all!(&mut conn);
    } else {
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        read_all!(&mut conn);
    }
    out.flush().expect("flush");
    let bytes = out.into_inner().map_err(|_| "flush").expect("sink").0;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sqlx alone, 6 columns, one statement  {seconds:7.2} s  {:>9.0} rows/s  {:8.1} MB",
        rows as f64 / seconds,
        bytes as f64 / 1e6
    );
}
