//! Settings: one struct, read from flags with environment fallbacks; tests build it in code.
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The default store: an SQLite file in the working directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://calltrail.db?mode=rwc";

/// Everything a running calltrail needs to know.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "CALLTRAIL_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub addr: String,
    /// `sqlite://path?mode=rwc` (embedded) or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,
    /// Webhook secret(s), comma-separated so a secret can be rotated without downtime.
    #[arg(
        long,
        env = "CALLTRAIL_WEBHOOK_TOKEN",
        value_delimiter = ',',
        global = true,
        hide_env_values = true
    )]
    pub webhook_token: Vec<String>,
    /// Largest `first`/`last` a GraphQL page may ask for.
    #[arg(
        long,
        env = "CALLTRAIL_MAX_PAGE_SIZE",
        default_value_t = 500,
        global = true
    )]
    pub max_page_size: u64,
    /// PostgreSQL: batches of webhook deliveries committing at once, each in its own
    /// transaction (one builds its rows while another waits for its commit to reach disk).
    /// SQLite writes one transaction at a time whatever this says.
    #[arg(
        long,
        env = "CALLTRAIL_WRITE_BATCHES",
        default_value_t = 3,
        value_parser = clap::value_parser!(u16).range(1..=16),
        global = true
    )]
    pub write_batches: u16,
    /// Longest a read's database statement may run before the database stops it and the
    /// query is answered `QUERY_TIMEOUT`: `10s`, `500ms`, or whole seconds.
    #[arg(
        long,
        env = "CALLTRAIL_QUERY_TIMEOUT",
        default_value = "10s",
        value_parser = parse_duration,
        global = true
    )]
    pub query_timeout: Duration,
    /// Origin of a web page allowed to call calltrail from a browser (CORS), such as
    /// `https://dashboard.example.com`; repeat the flag, or separate origins with commas.
    /// None by default: only pages served by calltrail itself (GraphiQL) may call it.
    #[arg(
        long = "cors-origin",
        env = "CALLTRAIL_CORS_ORIGIN",
        value_delimiter = ',',
        value_parser = parse_origin,
        global = true
    )]
    pub cors_origins: Vec<String>,
    // Operations: metrics, logs, connection limits, shutdown.
    /// Serve `/metrics` on this address of its own (e.g. `127.0.0.1:9090`) instead of on
    /// `--addr`, so it can stay off the public listener.
    #[arg(long, env = "CALLTRAIL_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<String>,
    /// `text` (one readable line per event) or `json` (one object per line, with the
    /// request's id, method and path).
    #[arg(
        long,
        env = "CALLTRAIL_LOG_FORMAT",
        value_enum,
        default_value_t = crate::ops::logs::LogFormat::Text,
        global = true
    )]
    pub log_format: crate::ops::logs::LogFormat,
    /// Longest a client may take to send a request's headers; the connection is closed then.
    #[arg(long, env = "CALLTRAIL_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body; the request is then answered 400.
    #[arg(long, env = "CALLTRAIL_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub body_read_timeout: Duration,
    /// A connection with no bytes either way for this long is closed (a kept-alive connection
    /// waits for its next request at most this or `--header-read-timeout`, the shorter).
    #[arg(long, env = "CALLTRAIL_IDLE_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen queue until one closes.
    #[arg(long, env = "CALLTRAIL_MAX_CONNECTIONS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_connections: u32,
    /// On SIGTERM or Ctrl-C: longest wait for requests in progress and background work
    /// before the process exits anyway.
    #[arg(long, env = "CALLTRAIL_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub shutdown_timeout: Duration,
    // Evidence (issue 19).
    /// Do not migrate at start (`serve` under a runtime role that may not change the schema:
    /// `calltrail db grant-runtime`); refuse to start if a migration is pending.
    #[arg(long, env = "CALLTRAIL_NO_MIGRATE", global = true)]
    pub no_migrate: bool,

    // Recordings: archiving DoubleTick's recordings and playing them back.
    /// DoubleTick's API key, which opens recording links: archiving and playback through
    /// DoubleTick need it. A secret: never printed, logged or shown.
    #[arg(
        long,
        env = "DOUBLETICK_API_KEY",
        global = true,
        hide_env_values = true
    )]
    pub doubletick_api_key: Option<crate::recordings::Secret>,
    /// Where the key goes on a recording request: `query` (`?token=<key>`) or `header`
    /// (`Authorization: <key>`).
    #[arg(
        long,
        env = "CALLTRAIL_DOUBLETICK_KEY_IN",
        value_enum,
        default_value = "query",
        global = true
    )]
    pub doubletick_key_in: crate::recordings::KeyPlacement,
    /// Where recordings are kept: `file:<dir>` or `s3://bucket/prefix` (standard `AWS_*`
    /// variables; `AWS_ENDPOINT_URL` for a store other than AWS).
    #[arg(
        long,
        env = "CALLTRAIL_RECORDINGS",
        default_value = "file:./recordings",
        global = true
    )]
    pub recordings: String,
    /// Recordings fetched at once by this instance.
    #[arg(
        long,
        env = "CALLTRAIL_ARCHIVE_WORKERS",
        default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..=64),
        global = true
    )]
    pub archive_workers: u16,
    /// Longest one fetch of a recording may take, start to stored (`10m`, `90s`).
    #[arg(
        long,
        env = "CALLTRAIL_ARCHIVE_FETCH_TIMEOUT",
        default_value = "10m",
        value_parser = crate::recordings::parse_span,
        global = true
    )]
    pub archive_fetch_timeout: Duration,
    /// How long a recording that fails to fetch is retried before it is given up (FAILED).
    #[arg(
        long,
        env = "CALLTRAIL_ARCHIVE_RETRY_WINDOW",
        default_value = "72h",
        value_parser = crate::recordings::parse_span,
        global = true
    )]
    pub archive_retry_window: Duration,
    /// The first wait before retrying a fetch; it doubles per attempt (to an hour), ±50 %.
    #[arg(
        long,
        env = "CALLTRAIL_ARCHIVE_RETRY_BASE",
        default_value = "30s",
        value_parser = crate::recordings::parse_span,
        global = true,
        hide = true
    )]
    pub archive_retry_base: Duration,
    /// Largest recording archived, in bytes; a larger one is FAILED.
    #[arg(
        long,
        env = "CALLTRAIL_MAX_RECORDING_BYTES",
        default_value_t = 500_000_000,
        global = true
    )]
    pub max_recording_bytes: u64,

    // The reviewer desk (`/`).
    /// A desk session not used for this long ends (`30m`, `8h`, `90s`).
    #[arg(
        long,
        env = "CALLTRAIL_DESK_IDLE_TIMEOUT",
        default_value = "30m",
        value_parser = crate::recordings::parse_span,
        global = true
    )]
    pub desk_idle_timeout: Duration,
    /// Mark the desk's session cookie `Secure` on every answer (it always is on a request that
    /// says it came over TLS: `X-Forwarded-Proto: https`).
    #[arg(long, env = "CALLTRAIL_DESK_SECURE_COOKIES", global = true)]
    pub desk_secure_cookies: bool,
    /// An answered call shorter than this many seconds is a short call on the desk (its
    /// search flag and review queue).
    #[arg(
        long,
        env = "CALLTRAIL_SHORT_CALL_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(i64).range(1..=86_400),
        global = true
    )]
    pub short_call_seconds: i64,
    /// A call longer than this many seconds is a long call on the desk.
    #[arg(
        long,
        env = "CALLTRAIL_LONG_CALL_SECONDS",
        default_value_t = 1800,
        value_parser = clap::value_parser!(i64).range(1..=864_000),
        global = true
    )]
    pub long_call_seconds: i64,
}

/// `500ms`, `10s` or `10` (seconds).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000)
    } else {
        (text, 1000)
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 500ms, 10s or 10"))?;
    if n == 0 {
        return Err("must be more than zero".into());
    }
    Ok(Duration::from_millis(n.saturating_mul(scale)))
}

/// An origin as browsers send it: `scheme://host[:port]`, lower case, without a path.
fn parse_origin(text: &str) -> Result<String, String> {
    let origin = text.trim().to_ascii_lowercase();
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match rest {
        _ if origin.is_empty() => Ok(origin),
        Some(host)
            if !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)) =>
        {
            Ok(origin)
        }
        _ => Err(format!(
            "`{text}` is not an origin: write scheme://host[:port], such as https://dashboard.example.com, without a path or a trailing slash"
        )),
    }
}

impl Settings {
    /// Settings for `database_url` with every other value at its default.
    pub fn for_database(database_url: impl Into<String>) -> Settings {
        Settings {
            addr: "127.0.0.1:0".into(),
            database_url: database_url.into(),
            webhook_token: Vec::new(),
            max_page_size: 500,
            write_batches: 3,
            query_timeout: Duration::from_secs(10),
            cors_origins: Vec::new(),
            // Operations.
            metrics_addr: None,
            log_format: crate::ops::logs::LogFormat::Text,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            max_connections: 1000,
            shutdown_timeout: Duration::from_secs(30),
            // Evidence (issue 19).
            no_migrate: false,
            // Recordings: in code-built settings (tests), in the temp directory; content
            // addressing makes sharing it harmless.
            doubletick_api_key: None,
            doubletick_key_in: crate::recordings::KeyPlacement::Query,
            recordings: format!(
                "file:{}",
                std::env::temp_dir().join("calltrail-recordings").display()
            ),
            archive_workers: 2,
            archive_fetch_timeout: Duration::from_secs(600),
            archive_retry_window: Duration::from_secs(72 * 3600),
            archive_retry_base: Duration::from_secs(30),
            max_recording_bytes: 500_000_000,
            desk_idle_timeout: Duration::from_secs(30 * 60),
            desk_secure_cookies: false,
            short_call_seconds: 30,
            long_call_seconds: 1800,
        }
    }

    /// The desk's short and long calls.
    pub fn thresholds(&self) -> crate::domain::desk::Thresholds {
        crate::domain::desk::Thresholds {
            short_call_seconds: self.short_call_seconds,
            long_call_seconds: self.long_call_seconds,
        }
    }

    /// How the store is opened.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            query_timeout: self.query_timeout,
            write_batches: self.write_batches,
        }
    }

    /// How the server treats connections.
    pub fn connection_limits(&self) -> crate::ops::server::Limits {
        crate::ops::server::Limits {
            header_read: self.header_read_timeout,
            idle: self.idle_timeout,
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            shutdown: self.shutdown_timeout,
        }
    }

    /// The configured webhook tokens, blanks dropped.
    pub fn tokens(&self) -> Vec<String> {
        self.webhook_token
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    }
}

/// calltrail: DoubleTick call webhooks in, a queryable call record out over GraphQL.
#[derive(Debug, Parser)]
#[command(name = "calltrail", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `calltrail keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the last line printed is the key alone (shown once, never stored).
    Create {
        /// A name saying whose key it is (shown in listings and in the access log).
        #[arg(long)]
        name: String,
        /// `admin`, `reviewer` or `analyst`.
        #[arg(long)]
        role: String,
        /// Limit the key to this business number's calls (repeatable).
        #[arg(long = "waba")]
        waba: Vec<String>,
        /// Limit the key to this agent's calls (`pickedBy`; repeatable).
        #[arg(long = "agent")]
        agent: Vec<String>,
        /// The key stops working this many days from now.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List every key: id, name, role, scope, created, last used, expiry, revoked.
    List,
    /// Revoke key `ID`, at once, on every instance sharing the database.
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Re-process logged deliveries, reporting what each became.
    Replay {
        /// Re-process the deliveries that were rejected and not yet resolved.
        #[arg(long)]
        rejected: bool,
    },
    /// API keys for reading calls: create, list, revoke.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Load synthetic calls for benchmarks (into an empty database, for realistic figures).
    Seed {
        /// How many calls.
        #[arg(long, default_value_t = 1_000_000)]
        calls: u64,
        /// Generator seed: the same seed loads the same calls.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Skip the `call_events` rows (half the bytes): queries do not read them, but a
        /// later redelivery of a seeded call is then folded without its seeded event.
        #[arg(long)]
        without_events: bool,
    },
    /// SQLite: write a consistent copy of the database to a new file while it serves
    /// (PostgreSQL: use pg_dump or base backups, docs/operations.md).
    Backup {
        /// The copy's path; it must not exist yet.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    // Evidence (issue 19).
    /// Check the stored evidence: the logs' hash chains, every body's SHA-256, every call
    /// against its events and revisions, both rollup tiers against the calls. Exits non-zero
    /// on any difference.
    Verify {
        /// Print the chains' current heads, to record outside the system, and exit.
        #[arg(long)]
        head: bool,
        /// A head recorded earlier: also fail unless it is still a link of a chain.
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
        /// Do not re-hash archived recordings.
        #[arg(long)]
        skip_recordings: bool,
    },
    /// Database administration (PostgreSQL), run as the owner of the tables.
    Db {
        #[command(subcommand)]
        action: DbCommand,
    },
    /// Archived recordings: queue the calls stored before archiving, re-check what is stored.
    Recordings {
        #[command(subcommand)]
        action: RecordingsCommand,
    },
    // Exports (issue 23).
    /// Write an evidence bundle (a zip a recipient can check without calltrail) of one
    /// customer's, agent's or set of calls' records, deliveries, recordings and access log.
    Evidence(EvidenceArgs),
    /// Check an evidence bundle offline, from the zip alone: every file against its manifest,
    /// every delivery body and recording against its recorded SHA-256, every chain link it
    /// carries. Exits non-zero, naming the file, on any difference.
    VerifyBundle {
        /// The bundle (`.zip`).
        file: std::path::PathBuf,
    },
}

/// `calltrail evidence ...`: whose calls, over which period, into which file.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("whose")
        .required(true)
        .multiple(true)
        .args(["customer_number", "agent", "call"])
))]
pub struct EvidenceArgs {
    /// The customer's number (any formatting; matched by its digits).
    #[arg(long)]
    pub customer_number: Option<String>,
    /// An agent (`pickedBy`, as sent); repeat for several.
    #[arg(long)]
    pub agent: Vec<String>,
    /// A call by its DoubleTick `callId`; repeat for several.
    #[arg(long)]
    pub call: Vec<String>,
    /// Calls that ended at or after this instant (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Calls that ended before this instant (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// The zip to write; it must not exist yet.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

/// `calltrail db ...`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Give the existing login role ROLE exactly what `serve --no-migrate` needs: no DDL, no
    /// TRUNCATE, no UPDATE or DELETE on the append-only tables.
    GrantRuntime {
        /// The role (created beforehand, e.g. `CREATE ROLE calltrail_app LOGIN PASSWORD ...`).
        role: String,
    },
}

/// `calltrail recordings ...`.
#[derive(Debug, Subcommand)]
pub enum RecordingsCommand {
    /// Queue the recording of every stored call that has none queued (calls stored before
    /// archiving existed); the running servers' workers archive them.
    Backfill,
    /// Re-read every archived recording from the store and compare its SHA-256 and size;
    /// exits non-zero on any mismatch or missing object.
    Verify,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_are_repeatable_or_comma_separated_and_must_be_origins() {
        let cli = Cli::try_parse_from([
            "calltrail",
            "--cors-origin",
            "https://Dashboard.example.com",
            "--cors-origin",
            "http://localhost:5173,http://[::1]:3000",
        ])
        .expect("parses");
        assert_eq!(
            cli.settings.cors_origins,
            [
                "https://dashboard.example.com",
                "http://localhost:5173",
                "http://[::1]:3000"
            ]
        );
        for wrong in [
            "dashboard.example.com",
            "https://dashboard.example.com/",
            "https://dashboard.example.com/app",
            "*",
            "https://",
        ] {
            assert!(
                Cli::try_parse_from(["calltrail", "--cors-origin", wrong]).is_err(),
                "{wrong}"
            );
        }
    }
}
