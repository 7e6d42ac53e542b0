//! The webhook secret in every way DoubleTick can send it; no secret, no delivery; no secret configured, loopback only.

use crate::kit::{self, Backend, Inspect, TestApp, TestDatabase, fixture_bytes, for_each_app_with};
use base64::Engine;
use calltrail::app;
use calltrail::config::Settings;
use serde_json::json;

const CURRENT: &str = "s3cret-current";
const NEXT: &str = "n3xt/secret+with=odd&chars";

fn with_tokens(settings: &mut Settings) {
    settings.webhook_token = vec![CURRENT.into(), NEXT.into()];
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn url_encoded(token: &str) -> String {
    form_urlencoded::byte_serialize(token.as_bytes()).collect()
}

/// How a request carries (or fails to carry) a secret.
struct Way {
    label: &'static str,
    header: Option<(&'static str, String)>,
    query: Option<String>,
}

fn way(label: &'static str, header: Option<(&'static str, String)>, query: Option<String>) -> Way {
    Way {
        label,
        header,
        query,
    }
}

async fn send(app: &TestApp, way: &Way, body: Vec<u8>) -> (u16, serde_json::Value) {
    let mut url = app.url("/webhooks/doubletick");
    if let Some(query) = &way.query {
        url.push('?');
        url.push_str(query);
    }
    let mut request = app
        .client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some((name, value)) = &way.header {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn every_way_doubletick_can_send_the_secret_is_accepted_with_either_rotated_token() {
    for_each_app_with(with_tokens, async |app| {
        let accepted = [
            way(
                "bearer",
                Some(("authorization", format!("Bearer {CURRENT}"))),
                None,
            ),
            way(
                "bearer lower-case",
                Some(("authorization", format!("bearer {NEXT}"))),
                None,
            ),
            way(
                "basic, token as password",
                Some(("authorization", basic("doubletick", CURRENT))),
                None,
            ),
            way(
                "basic, empty user",
                Some(("authorization", basic("", NEXT))),
                None,
            ),
            way(
                "custom header",
                Some(("x-calltrail-token", CURRENT.into())),
                None,
            ),
            way(
                "custom header, next token",
                Some(("X-Calltrail-Token", NEXT.into())),
                None,
            ),
            way(
                "query parameter",
                None,
                Some(format!("token={}", url_encoded(CURRENT))),
            ),
            way(
                "query parameter among others",
                None,
                Some(format!("source=doubletick&token={}", url_encoded(NEXT))),
            ),
        ];
        for (n, way) in accepted.iter().enumerate() {
            let mut body: serde_json::Value =
                serde_json::from_slice(&fixture_bytes("events/call-ended-pstn.json"))
                    .expect("fixture");
            body["callId"] = json!(format!("call_auth_{n}"));
            let (status, answer) = send(app, way, body.to_string().into_bytes()).await;
            assert_eq!(
                status,
                200,
                "[{}] {}: {answer}",
                app.backend.name(),
                way.label
            );
            assert_eq!(answer["status"], "stored", "{}", way.label);
        }
        let data = app.query("{ calls { totalCount } }", json!({})).await;
        assert_eq!(data["calls"]["totalCount"], accepted.len());
    })
    .await;
}

#[tokio::test]
async fn a_missing_or_wrong_secret_gets_401_and_nothing_is_stored_or_logged() {
    for_each_app_with(with_tokens, async |app| {
        let refused = [
            way("no secret at all", None, None),
            way(
                "wrong bearer",
                Some(("authorization", "Bearer wrong".into())),
                None,
            ),
            way(
                "bearer prefix of the secret",
                Some(("authorization", "Bearer s3cret".into())),
                None,
            ),
            way(
                "bearer secret plus a suffix",
                Some(("authorization", format!("Bearer {CURRENT}x"))),
                None,
            ),
            way(
                "bearer without a token",
                Some(("authorization", "Bearer".into())),
                None,
            ),
            way(
                "secret as the basic user, not password",
                Some(("authorization", basic(CURRENT, "x"))),
                None,
            ),
            way(
                "basic that is not base64",
                Some(("authorization", "Basic %%%".into())),
                None,
            ),
            way(
                "unknown scheme",
                Some(("authorization", format!("Token {CURRENT}"))),
                None,
            ),
            way(
                "wrong custom header",
                Some(("x-calltrail-token", "nope".into())),
                None,
            ),
            way(
                "empty custom header",
                Some(("x-calltrail-token", String::new())),
                None,
            ),
            way("wrong query parameter", None, Some("token=nope".into())),
            way(
                "secret under another parameter",
                None,
                Some(format!("secret={}", url_encoded(CURRENT))),
            ),
            way("empty query parameter", None, Some("token=".into())),
        ];
        for way in &refused {
            let (status, answer) = send(
                app,
                way,
                fixture_bytes("events/call-ended-incoming-recorded.json"),
            )
            .await;
            assert_eq!(
                status,
                401,
                "[{}] {}: {answer}",
                app.backend.name(),
                way.label
            );
            assert_eq!(answer["error"]["code"], "UNAUTHENTICATED", "{}", way.label);
        }
        assert_eq!(app.count("deliveries").await, 0, "nothing logged");
        assert_eq!(app.count("call_events").await, 0, "nothing stored");
        assert_eq!(app.count("calls").await, 0, "nothing stored");
    })
    .await;
}

#[tokio::test]
async fn an_unauthenticated_body_is_not_even_parsed() {
    for_each_app_with(with_tokens, async |app| {
        let nobody = way("no secret", None, None);
        let (status, _) = send(app, &nobody, b"{ this is not json".to_vec()).await;
        assert_eq!(
            status, 401,
            "a malformed body is refused for its missing secret, not its syntax"
        );
        let (status, _) = send(app, &nobody, vec![b'x'; 2 * 1024 * 1024]).await;
        assert_eq!(
            status, 401,
            "an oversized body is refused before it is read"
        );
        let response = app
            .client
            .post(app.url("/webhooks/doubletick"))
            .header("content-type", "text/plain")
            .body("anything")
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status().as_u16(),
            401,
            "content type is not even looked at"
        );
        assert_eq!(app.count("deliveries").await, 0);
    })
    .await;
}

#[tokio::test]
async fn without_a_token_the_server_refuses_a_public_address_and_serves_loopback() {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let mut public = Settings::for_database(database.url.clone());
    public.addr = "0.0.0.0:0".into();
    let refusal = app::spawn(&public)
        .await
        .err()
        .expect("must refuse to start");
    assert!(
        format!("{refusal:?}").contains("refusing to listen"),
        "{refusal:?}"
    );

    let mut blank = Settings::for_database(database.url.clone());
    blank.addr = "0.0.0.0:0".into();
    blank.webhook_token = vec![" ".into(), String::new()];
    assert!(
        app::spawn(&blank).await.is_err(),
        "blank tokens are no tokens"
    );

    let mut guarded = Settings::for_database(database.url.clone());
    guarded.addr = "0.0.0.0:0".into();
    guarded.webhook_token = vec![CURRENT.into()];
    // A public address also needs an API key for reads (tests/access.rs); with one, the token
    // is what the webhook needs.
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .args(["keys", "create", "--name", "ops", "--role", "admin"])
        .env("DATABASE_URL", &database.url)
        .output()
        .expect("keys create");
    assert!(created.status.success());
    let running = app::spawn(&guarded)
        .await
        .expect("a token (and a key) make a public address fine");
    assert!(running.addr.ip().is_unspecified());
    kit::stop(running).await;

    let loopback = Settings::for_database(database.url.clone());
    let running = app::spawn(&loopback)
        .await
        .expect("loopback without a token is local use");
    assert!(running.addr.ip().is_loopback());
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{}/webhooks/doubletick", running.addr))
        .header("content-type", "application/json")
        .body(fixture_bytes("events/call-ended-pstn.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200, "open for local use");
    kit::stop(running).await;
}
