//! Settings: what the server is told at start, from flags, the environment and `.env`.
//!
//! [`Config`] is the plain value the server runs with (tests build one in code, with short
//! heartbeats and an in-memory engine). [`Cli`] is how a person gives it: clap flags, each with an
//! environment variable, read after `.env` (see `main.rs`), with the contract's defaults
//! (`127.0.0.1:8080`, `./data`, a random JWT secret kept in the data folder).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// How tokens are checked.
#[derive(Debug, Clone, Default)]
pub enum JwtKey {
    /// HS256 with a shared secret.
    Secret(String),
    /// RS256 with this PEM public key.
    RsaPublicPem(String),
    /// No key given: make a random HS256 secret, keep it in the data folder (or in memory for an
    /// in-memory server), and print a ready admin token.
    #[default]
    Generate,
}

/// Where the server keeps messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreSetting {
    /// sled in the data folder (or memory without one): one node.
    #[default]
    Sled,
    /// A PostgreSQL database (`postgres://…`), which several nodes can share.
    Postgres(String),
}

impl std::str::FromStr for StoreSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s == "sled" {
            Ok(StoreSetting::Sled)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(StoreSetting::Postgres(s.to_string()))
        } else {
            Err(format!(
                "unknown store {s:?}: give `sled` or a postgres:// URL"
            ))
        }
    }
}

/// Everything the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`CHAT_ADDR`, default `127.0.0.1:8080`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// The data folder (sled store, uploaded files, generated JWT secret); `None` keeps
    /// everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Where messages are stored: the data folder's sled (the default) or a shared database.
    pub store: StoreSetting,
    /// The PostgreSQL schema holding the tables (default `chat`): several deployments may share
    /// one database.
    pub store_schema: String,
    /// The bus between the nodes of a deployment (`redis://…`); `None` for a single node.
    pub bus: Option<String>,
    /// This node's id in the deployment (default: a new ULID each start).
    pub node_id: Option<String>,
    /// The JWT key.
    pub jwt: JwtKey,
    /// Clock skew tolerated on `exp`, in seconds (default 30).
    pub jwt_leeway_secs: u64,
    /// The engine's limits (file size, rate limit, typing expiry...).
    pub engine: chat_core::Config,
    /// Largest JSON request body, in bytes (default 64 KiB). Multipart bodies may be as large as
    /// the engine's file limit plus this.
    pub max_body_bytes: usize,
    /// Largest WebSocket message from a client, in bytes (default 64 KiB).
    pub max_frame_bytes: usize,
    /// Frames queued for one WebSocket before the client is considered too slow and disconnected
    /// (default 256).
    pub send_queue: usize,
    /// Longest time one write to a WebSocket may take before the client is disconnected
    /// (default 10 s).
    pub write_timeout: Duration,
    /// Open WebSockets allowed per user (default 16).
    pub max_connections_per_user: usize,
    /// Interval of WebSocket pings on `/ws`, and of Engine.IO pings on `/socket.io/` (its
    /// advertised `pingInterval`; default 25 s).
    pub ping_interval: Duration,
    /// How long a Socket.IO session may take to answer a ping with a pong before it is closed
    /// (the advertised `pingTimeout`; default 20 s).
    pub ping_timeout: Duration,
    /// Largest Socket.IO long-polling body or WebSocket message from a client, in bytes (the
    /// advertised `maxPayload`; default 1,000,000).
    pub sio_max_payload: usize,
    /// Engine.IO sessions open at once, authenticated or not (default 10,000).
    pub sio_max_sessions: usize,
    /// A WebSocket silent for this long is closed (default 60 s).
    pub idle_timeout: Duration,
    /// How long shutdown waits for in-flight requests and sockets (default 10 s).
    pub shutdown_grace: Duration,
    /// Page origins (`https://lms.example.edu`) whose browser requests to the REST routes and
    /// `/socket.io/` get CORS headers; empty (the default) allows every origin. See
    /// [`crate::cors`] for why that is safe with token authentication.
    pub cors_origins: Vec<String>,
    /// Serve the npm socket.io-client's browser bundles at `/socket.io/socket.io.js` (and
    /// `.min.js`, `.esm.min.js`, their maps), as the Node.js socket.io server does (default true).
    pub serve_client: bool,
    /// URLs that receive every event as a signed JSON POST ([`crate::webhook`]).
    pub webhooks: Vec<String>,
    /// The HMAC-SHA256 key of the webhooks' `X-Chat-Signature-256` (needed with `webhooks`).
    pub webhook_secret: Option<String>,
    /// The Web Push VAPID private key, base64url ([`crate::push`]); default: the data folder's
    /// `vapid.key`, made on first start (or one per run without a data folder).
    pub vapid_private_key: Option<String>,
    /// Who runs the server, in every VAPID token (`mailto:` or `https:`).
    pub vapid_subject: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: Some(PathBuf::from("./data")),
            store: StoreSetting::Sled,
            store_schema: "chat".to_string(),
            bus: None,
            node_id: None,
            jwt: JwtKey::Generate,
            jwt_leeway_secs: 30,
            engine: chat_core::Config::default(),
            max_body_bytes: 64 * 1024,
            max_frame_bytes: 64 * 1024,
            send_queue: 256,
            write_timeout: Duration::from_secs(10),
            max_connections_per_user: 16,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            sio_max_payload: 1_000_000,
            sio_max_sessions: 10_000,
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            cors_origins: Vec::new(),
            serve_client: true,
            webhooks: Vec::new(),
            webhook_secret: None,
            vapid_private_key: None,
            vapid_subject: "mailto:admin@localhost".to_string(),
        }
    }
}

impl Config {
    /// An in-memory server on a free port of 127.0.0.1 with the given HS256 secret: what tests use.
    pub fn for_tests(secret: &str) -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            jwt: JwtKey::Secret(secret.to_string()),
            ..Config::default()
        }
    }
}

/// The command line (each flag also reads an environment variable; `.env` is loaded first).
#[derive(Debug, Parser)]
#[command(
    name = "chat-host",
    version,
    about = "Course chat server (REST, WebSocket, Socket.IO) over chat-core"
)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "CHAT_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Data folder: the sled store, uploaded files and the generated JWT secret.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Where messages are stored: `sled` (in the data folder) or a `postgres://` URL, which
    /// several nodes can share.
    #[arg(long, env = "CHAT_STORE", default_value = "sled")]
    pub store: StoreSetting,
    /// The PostgreSQL schema of the tables (with a postgres:// store).
    #[arg(long, env = "CHAT_STORE_SCHEMA", default_value = "chat")]
    pub store_schema: String,
    /// The bus between the nodes of one deployment: a `redis://` URL (needs a shared store).
    #[arg(long, env = "CHAT_BUS")]
    pub bus: Option<String>,
    /// This node's id in its deployment (default: a new one each start).
    #[arg(long, env = "CHAT_NODE_ID")]
    pub node_id: Option<String>,
    /// Keep everything in memory instead of the data folder (for trying things out).
    #[arg(long, env = "CHAT_IN_MEMORY", default_value_t = false)]
    pub in_memory: bool,
    /// HS256 secret for JWTs. Without it (and without --jwt-public-key) a random one is made and
    /// kept in the data folder.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Path to a PEM RSA public key: tokens are then RS256 (and only RS256).
    #[arg(long, env = "JWT_PUBLIC_KEY", conflicts_with = "jwt_secret")]
    pub jwt_public_key: Option<PathBuf>,
    /// Clock skew tolerated on `exp`, in seconds.
    #[arg(long, env = "JWT_LEEWAY", default_value_t = 30)]
    pub jwt_leeway: u64,
    /// Largest uploaded file, in bytes.
    #[arg(long, env = "CHAT_MAX_FILE_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// Largest JSON request body, in bytes.
    #[arg(long, env = "CHAT_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Largest WebSocket message from a client, in bytes.
    #[arg(long, env = "CHAT_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Frames queued per WebSocket before a slow client is disconnected.
    #[arg(long, env = "CHAT_SEND_QUEUE", default_value_t = 256)]
    pub send_queue: usize,
    /// Open WebSockets allowed per user.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_USER", default_value_t = 16)]
    pub max_connections_per_user: usize,
    /// Seconds between WebSocket pings.
    #[arg(long, env = "CHAT_PING_INTERVAL", default_value_t = 25)]
    pub ping_interval: u64,
    /// Seconds a Socket.IO client has to answer a ping before its session is closed.
    #[arg(long, env = "CHAT_PING_TIMEOUT", default_value_t = 20)]
    pub ping_timeout: u64,
    /// Largest Socket.IO long-polling body or WebSocket message from a client, in bytes.
    #[arg(long, env = "CHAT_SIO_MAX_PAYLOAD", default_value_t = 1_000_000)]
    pub sio_max_payload: usize,
    /// Socket.IO (Engine.IO) sessions open at once.
    #[arg(long, env = "CHAT_SIO_MAX_SESSIONS", default_value_t = 10_000)]
    pub sio_max_sessions: usize,
    /// Seconds of silence after which a WebSocket is closed.
    #[arg(long, env = "CHAT_IDLE_TIMEOUT", default_value_t = 60)]
    pub idle_timeout: u64,
    /// Sends allowed per user per course in a burst (the token bucket's size).
    #[arg(long, env = "CHAT_RATE_LIMIT", default_value_t = 10)]
    pub rate_limit: u32,
    /// Seconds in which the rate limit's burst refills.
    #[arg(long, env = "CHAT_RATE_WINDOW", default_value_t = 10)]
    pub rate_window: u64,
    /// Seconds shutdown waits for in-flight work.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// Comma-separated page origins allowed to call the API from a browser (CORS); empty or `*`
    /// allows every origin (tokens, not cookies, authenticate).
    #[arg(
        long,
        env = "CHAT_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub cors_origins: Vec<String>,
    /// Serve the socket.io-client browser bundle at `/socket.io/socket.io.js` (`false` to turn
    /// it off, e.g. when a CDN or the front end's own build provides it).
    #[arg(long, env = "CHAT_SERVE_CLIENT", default_value_t = true, action = clap::ArgAction::Set)]
    pub serve_client: bool,
    /// A URL that receives every event as a signed JSON POST (repeatable; the variable takes a
    /// comma-separated list).
    #[arg(long = "webhook", env = "CHAT_WEBHOOKS", value_delimiter = ',')]
    pub webhooks: Vec<String>,
    /// The key of the webhooks' HMAC-SHA256 signature header (required with --webhook).
    #[arg(long, env = "CHAT_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Comma-separated words the built-in word filter masks (or refuses) in sends and edits.
    #[arg(long, env = "CHAT_BLOCKED_WORDS", value_delimiter = ',')]
    pub blocked_words: Vec<String>,
    /// `mask` (replace a blocked word with `*`s) or `reject` (refuse the message, 403).
    #[arg(long, env = "CHAT_BLOCKED_WORDS_ACTION", default_value = "mask", value_parser = ["mask", "reject"])]
    pub blocked_words_action: String,
    /// Delete messages older than this many days (as tombstones; checked at start, then
    /// hourly). Default: keep every message.
    #[arg(long, env = "CHAT_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// The Web Push VAPID private key (base64url of the 32-byte P-256 scalar). Default: the data
    /// folder's `vapid.key`, made on first start.
    #[arg(long, env = "CHAT_VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub vapid_private_key: Option<String>,
    /// Who runs the server, sent to push services in every VAPID token (`mailto:` or `https:`).
    #[arg(
        long,
        env = "CHAT_VAPID_SUBJECT",
        default_value = "mailto:admin@localhost"
    )]
    pub vapid_subject: String,
}

/// The listed origins, or an empty list (every origin) when the list names `*` or nothing.
fn cors_list(given: &[String]) -> Vec<String> {
    let list: Vec<String> = given
        .iter()
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    if list.iter().any(|o| o == "*") {
        Vec::new()
    } else {
        list
    }
}

/// Refuses engine limits the engine cannot run with ([`chat_core::Config::validate`], the one
/// rule for them): `--rate-limit 0`, `--rate-window 0` (or over a day), `--max-file-bytes 0`...
pub(crate) fn check_engine(engine: &chat_core::Config) -> Result<(), crate::HostError> {
    engine
        .validate()
        .map_err(|e| crate::HostError::Config(format!("engine limit: {e}")))
}

/// Refuses webhook URLs that are not `http(s)://`, and webhooks without a signing secret.
pub(crate) fn check_webhooks(
    urls: &[String],
    secret: Option<&str>,
) -> Result<(), crate::HostError> {
    for url in urls {
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !ok {
            return Err(crate::HostError::Config(format!(
                "webhook {url:?}: give an http:// or https:// URL"
            )));
        }
    }
    if !urls.is_empty() && secret.is_none_or(str::is_empty) {
        return Err(crate::HostError::Config(
            "--webhook needs --webhook-secret (CHAT_WEBHOOK_SECRET) to sign its requests".into(),
        ));
    }
    Ok(())
}

impl Cli {
    /// The settings these flags describe (reads the public key file, if any).
    pub fn into_config(self) -> Result<Config, crate::HostError> {
        let jwt = match (self.jwt_secret, self.jwt_public_key) {
            (Some(s), _) if s.trim().is_empty() => {
                return Err(crate::HostError::Config("JWT_SECRET is empty".into()))
            }
            (Some(s), _) => JwtKey::Secret(s),
            (None, Some(path)) => {
                let pem = std::fs::read_to_string(&path)
                    .map_err(|source| crate::HostError::DataDir { path, source })?;
                JwtKey::RsaPublicPem(pem)
            }
            (None, None) => JwtKey::Generate,
        };
        if self.ping_interval == 0 || self.idle_timeout == 0 || self.ping_timeout == 0 {
            return Err(crate::HostError::Config(
                "ping interval, ping timeout and idle timeout must be at least 1 second".into(),
            ));
        }
        let engine = chat_core::Config {
            max_file_bytes: self.max_file_bytes,
            rate_limit_burst: self.rate_limit,
            rate_limit_window: Duration::from_secs(self.rate_window),
            blocked_words: self
                .blocked_words
                .iter()
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .collect(),
            blocked_words_action: if self.blocked_words_action == "reject" {
                chat_core::word_filter::WordFilterAction::Reject
            } else {
                chat_core::word_filter::WordFilterAction::Mask
            },
            retention_days: self.retention_days,
            ..chat_core::Config::default()
        };
        check_engine(&engine)?;
        let bus = self.bus.filter(|b| !b.trim().is_empty());
        if let Some(url) = &bus {
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                return Err(crate::HostError::Config(format!(
                    "unknown bus {url:?}: give a redis:// URL"
                )));
            }
            if self.store == StoreSetting::Sled {
                return Err(crate::HostError::Config(
                    "a bus joins several nodes, which need a shared store: give --store postgres://…"
                        .into(),
                ));
            }
        }
        let webhooks: Vec<String> = self
            .webhooks
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        let webhook_secret = self.webhook_secret.filter(|s| !s.is_empty());
        check_webhooks(&webhooks, webhook_secret.as_deref())?;
        Ok(Config {
            addr: self.addr,
            data_dir: (!self.in_memory).then_some(self.data_dir),
            store: self.store,
            store_schema: self.store_schema,
            bus,
            node_id: self.node_id.filter(|n| !n.trim().is_empty()),
            jwt,
            jwt_leeway_secs: self.jwt_leeway,
            engine,
            max_body_bytes: self.max_body_bytes.max(1024),
            max_frame_bytes: self.max_frame_bytes.max(1024),
            send_queue: self.send_queue.max(1),
            write_timeout: Duration::from_secs(10),
            max_connections_per_user: self.max_connections_per_user.max(1),
            ping_interval: Duration::from_secs(self.ping_interval),
            ping_timeout: Duration::from_secs(self.ping_timeout),
            sio_max_payload: self.sio_max_payload.max(1024),
            sio_max_sessions: self.sio_max_sessions.max(1),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            cors_origins: cors_list(&self.cors_origins),
            serve_client: self.serve_client,
            webhooks,
            webhook_secret,
            vapid_private_key: self.vapid_private_key,
            vapid_subject: self.vapid_subject,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Config {
        let mut all = vec!["chat-host", "--jwt-secret", "s"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().into_config().unwrap()
    }

    fn refused(args: &[&str]) -> String {
        let mut all = vec!["chat-host", "--jwt-secret", "s"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).unwrap().into_config() {
            Err(crate::HostError::Config(m)) => m,
            other => panic!("{args:?} not refused: {other:?}"),
        }
    }

    #[test]
    fn engine_limits_come_from_the_flags() {
        let c = cli(&[
            "--rate-limit",
            "3",
            "--rate-window",
            "7",
            "--max-file-bytes",
            "99",
        ]);
        assert_eq!(c.engine.rate_limit_burst, 3);
        assert_eq!(c.engine.rate_limit_window, Duration::from_secs(7));
        assert_eq!(c.engine.max_file_bytes, 99);
    }

    #[test]
    fn vapid_settings_come_from_their_flags() {
        let c = cli(&[
            "--vapid-private-key",
            "abc",
            "--vapid-subject",
            "mailto:ops@example.org",
        ]);
        assert_eq!(c.vapid_private_key.as_deref(), Some("abc"));
        assert_eq!(c.vapid_subject, "mailto:ops@example.org");
        assert_eq!(cli(&[]).vapid_subject, "mailto:admin@localhost");
    }

    #[test]
    fn retention_comes_from_its_flag_and_is_checked() {
        assert_eq!(cli(&[]).engine.retention_days, None);
        assert_eq!(
            cli(&["--retention-days", "365"]).engine.retention_days,
            Some(365)
        );
        assert!(refused(&["--retention-days", "0"]).contains("retention_days"));
    }

    #[test]
    fn the_word_filter_and_webhooks_come_from_the_flags() {
        let c = cli(&[
            "--blocked-words",
            "darn, heck,",
            "--blocked-words-action",
            "reject",
        ]);
        assert_eq!(c.engine.blocked_words, ["darn", "heck"]);
        assert_eq!(
            c.engine.blocked_words_action,
            chat_core::word_filter::WordFilterAction::Reject
        );
        assert!(refused(&["--blocked-words", "two words"]).contains("one word"));
        let c = cli(&[
            "--webhook",
            "http://a/x",
            "--webhook",
            "https://b/",
            "--webhook-secret",
            "k",
        ]);
        assert_eq!(c.webhooks, ["http://a/x", "https://b/"]);
        assert!(refused(&["--webhook", "http://a/"]).contains("--webhook-secret"));
        assert!(refused(&["--webhook", "a/b", "--webhook-secret", "k"]).contains("http"));
    }

    #[test]
    fn engine_limits_it_cannot_run_with_are_refused() {
        assert_eq!(
            refused(&["--rate-limit", "0"]),
            "engine limit: rate_limit_burst must be at least 1"
        );
        assert!(refused(&["--rate-window", "0"]).starts_with("engine limit: rate_limit_window"));
        assert!(refused(&["--rate-window", "86401"]).starts_with("engine limit: rate_limit_window"));
        assert_eq!(
            refused(&["--max-file-bytes", "0"]),
            "engine limit: max_file_bytes must be at least 1"
        );
        assert!(refused(&["--ping-interval", "0"]).contains("at least 1 second"));
    }

    #[test]
    fn stores_and_buses() {
        assert_eq!(cli(&[]).store, StoreSetting::Sled);
        assert_eq!(cli(&[]).bus, None);
        let pg = "postgres://chat@db/chat";
        let c = cli(&["--store", pg, "--bus", "redis://r:6379", "--node-id", "n1"]);
        assert_eq!(c.store, StoreSetting::Postgres(pg.into()));
        assert_eq!(c.bus.as_deref(), Some("redis://r:6379"));
        assert_eq!(c.node_id.as_deref(), Some("n1"));
        let refused = |args: &[&str]| {
            let mut all = vec!["chat-host", "--jwt-secret", "s"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all)
                .map_err(|e| e.to_string())
                .and_then(|c| c.into_config().map_err(|e| e.to_string()))
                .expect_err("refused")
        };
        assert!(refused(&["--store", "mysql://x"]).contains("unknown store"));
        assert!(refused(&["--bus", "redis://r"]).contains("shared store"));
        assert!(refused(&["--store", pg, "--bus", "amqp://x"]).contains("unknown bus"));
    }

    #[test]
    fn the_client_bundle_is_served_unless_turned_off() {
        assert!(cli(&[]).serve_client);
        assert!(!cli(&["--serve-client", "false"]).serve_client);
        assert!(!cli(&["--serve-client=false"]).serve_client);
    }

    #[test]
    fn cors_origins_default_to_every_origin() {
        assert!(cli(&[]).cors_origins.is_empty());
        assert!(cli(&["--cors-origins", "*"]).cors_origins.is_empty());
        assert!(cli(&["--cors-origins", "https://a.example,*"])
            .cors_origins
            .is_empty());
        assert_eq!(
            cli(&["--cors-origins", "https://a.example/, https://b.example"]).cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
    }
}
