//! The reviewer desk over HTTP on both backends: sessions (cookie flags, a hash in the
//! database, idle expiry, sign-out, a revoked key), CSRF, what an analyst and a scoped key
//! see, the access log, reviews; then the whole desk in headless Chromium
//! (`tests/node/desk.mjs`).
use std::time::Duration;

use crate::kit::{
    Inspect, TestApp, create_key, fixture_json, for_each_app, for_each_app_with, keys,
};
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use serde_json::json;
use sha2::{Digest, Sha256};

const CALL: &str = "call_8F2kQ1xLmA";
const NAME: &str = "Meera Iyer";
const NUMBER: &str = "919811122233";
const AGENT: &str = "919700011122";

/// A browser without JavaScript: keeps the desk's cookies and never follows redirects.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
}

/// What a request answered.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The `value` of the first hidden input named `name`.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let at = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body));
        let rest = &self.body[at + marker.len()..];
        rest[..rest.find('"').expect("end of value")].to_owned()
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, answer: &Answer) {
        for line in answer.set_cookies() {
            let pair = line.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.retain(|(name, _)| name != k);
                if !v.is_empty() && !line.contains("Max-Age=0") {
                    self.cookies.push((k.to_owned(), v.to_owned()));
                }
            }
        }
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let response = self
            .client
            .get(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET");
        let answer = Self::answer(response).await;
        self.keep(&answer);
        answer
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .client
            .post(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        let answer = Self::answer(response).await;
        self.keep(&answer);
        answer
    }

    /// Signs in with `key`; the answer to the form.
    async fn sign_in(&mut self, key: &str) -> Answer {
        let page = self.get("/").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.hidden("csrf");
        self.post("/sign-in", &[("key", key), ("csrf", &csrf)])
            .await
    }

    fn session(&self) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == "calltrail_desk")
            .map(|(_, v)| v.clone())
    }

    /// The session's CSRF token, as its pages carry it.
    async fn csrf(&mut self) -> String {
        self.get("/calls").await.hidden("csrf")
    }
}

async fn post_call(app: &TestApp) {
    let (status, body) = app
        .post_fixture("events/call-ended-incoming-recorded.json")
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn signed_in<'a>(app: &'a TestApp, key: &str) -> Browser<'a> {
    let mut browser = Browser::new(app);
    let answer = browser.sign_in(key).await;
    assert_eq!(
        answer.status,
        303,
        "[{}] {}",
        app.backend.name(),
        answer.body
    );
    assert!(browser.session().is_some());
    browser
}

#[tokio::test]
async fn desk_sessions_are_strict_http_only_cookies_kept_as_a_hash() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let key = create_key(app, "compliance", "reviewer", &[]);
        let mut browser = Browser::new(app);
        let page = browser.get("/").await;
        assert_eq!(page.status, 200, "[{name}]");
        let csp = page.headers["content-security-policy"]
            .to_str()
            .unwrap_or("");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "[{name}] {csp}"
        );
        assert_eq!(page.headers["x-content-type-options"], "nosniff");
        let answer = browser.sign_in(&key).await;
        assert_eq!(answer.status, 303, "[{name}] {}", answer.body);
        assert_eq!(answer.location(), "/calls");
        let cookie = answer
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("calltrail_desk="))
            .expect("a session cookie");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(flag), "[{name}] {cookie}");
        }
        assert!(!cookie.contains("Secure"), "[{name}] plain HTTP: {cookie}");
        let token = browser.session().expect("token");
        let stored = app
            .query_strings("SELECT token_sha256 AS s FROM desk_sessions")
            .await;
        assert_eq!(
            stored,
            vec![hex::encode(Sha256::digest(token.as_bytes()))],
            "[{name}]"
        );
        let everything = app.query_json("SELECT * FROM desk_sessions").await;
        assert!(
            !format!("{everything:?}").contains(&token),
            "[{name}] the token is stored"
        );
        let calls = browser.get("/calls").await;
        assert_eq!(calls.status, 200, "[{name}] {}", calls.body);
        assert!(calls.body.contains("Signed in as"), "[{name}]");
        // Behind a TLS proxy the cookie is Secure.
        let page = Browser::new(app);
        let form = page
            .client
            .get(app.url("/"))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .expect("GET");
        let cookie = form.headers()[SET_COOKIE].to_str().unwrap_or("").to_owned();
        assert!(cookie.contains("; Secure"), "[{name}] {cookie}");
        // GraphiQL is still at /graphql.
        let graphiql = app
            .client
            .get(app.url("/graphql"))
            .header("accept", "text/html")
            .send()
            .await
            .expect("GET /graphql");
        assert_eq!(graphiql.status(), 200);
        assert!(
            graphiql
                .text()
                .await
                .unwrap_or_default()
                .contains("graphiql")
        );
    })
    .await;
}

#[tokio::test]
async fn a_wrong_key_is_refused_plainly_and_never_echoed() {
    for_each_app(async |app| {
        let name = app.backend.name();
        create_key(app, "compliance", "reviewer", &[]);
        let mut browser = Browser::new(app);
        let wrong = "ct_deadbeef_0123456789abcdef0123456789abcdef01234567";
        let answer = browser.sign_in(wrong).await;
        assert_eq!(answer.status, 401, "[{name}]");
        assert!(
            answer.body.contains("That key was not accepted"),
            "[{name}] {}",
            answer.body
        );
        assert!(
            !answer.body.contains("deadbeef"),
            "[{name}] the key is echoed"
        );
        assert!(browser.session().is_none());
        assert_eq!(app.count("desk_sessions").await, 0);
        // Without a session every page sends the browser to sign in, and comes back after.
        let page = browser.get("/calls/x?tz=UTC").await;
        assert_eq!(page.status, 303, "[{name}]");
        assert_eq!(page.location(), "/?next=%2Fcalls%2Fx%3Ftz%3DUTC");
    })
    .await;
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused() {
    for_each_app(async |app| {
        let name = app.backend.name();
        post_call(app).await;
        let key = create_key(app, "compliance", "reviewer", &[]);
        // Sign-in: no token, then another browser's.
        let mut browser = Browser::new(app);
        browser.get("/").await;
        let answer = browser.post("/sign-in", &[("key", &key)]).await;
        assert_eq!(answer.status, 403, "[{name}] {}", answer.body);
        let answer = browser
            .post("/sign-in", &[("key", &key), ("csrf", "forged")])
            .await;
        assert_eq!(answer.status, 403, "[{name}]");
        assert!(browser.session().is_none());
        let mut browser = signed_in(app, &key).await;
        let path = format!("/calls/{CALL}/reviews");
        let answer = browser
            .post(&path, &[("verdict", "OK"), ("note", "fine")])
            .await;
        assert_eq!(answer.status, 403, "[{name}]");
        assert!(
            answer.body.contains("This form cannot be accepted"),
            "[{name}]"
        );
        let answer = browser
            .post(&path, &[("verdict", "OK"), ("note", "fine"), ("csrf", "x")])
            .await;
        assert_eq!(answer.status, 403, "[{name}]");
        assert_eq!(app.count("call_reviews").await, 0, "[{name}]");
        let answer = browser.post("/sign-out", &[]).await;
        assert_eq!(answer.status, 403, "[{name}]");
        assert_eq!(
            browser.get("/calls").await.status,
            200,
            "[{name}] still signed in"
        );
        // Another site's form, even with the token.
        let csrf = browser.csrf().await;
        let forged = browser
            .client
            .post(app.url(&path))
            .header(COOKIE, browser.cookie_header())
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("verdict=OK&csrf={csrf}"))
            .send()
            .await
            .expect("POST");
        assert_eq!(forged.status(), 403, "[{name}]");
        assert_eq!(app.count("call_reviews").await, 0, "[{name}]");
    })
    .await;
}

#[tokio::test]
async fn sessions_end_at_sign_out_when_idle_and_when_their_key_is_revoked() {
    for_each_app_with(
        |s| s.desk_idle_timeout = Duration::from_secs(2),
        async |app| {
            let name = app.backend.name();
            let key = create_key(app, "compliance", "reviewer", &[]);
            // Sign-out.
            let mut browser = signed_in(app, &key).await;
            let csrf = browser.csrf().await;
            let token = browser.session().expect("token");
            let answer = browser.post("/sign-out", &[("csrf", &csrf)]).await;
            assert_eq!(answer.status, 303, "[{name}]");
            assert!(
                browser.session().is_none(),
                "[{name}] the cookie is cleared"
            );
            assert_eq!(app.count("desk_sessions").await, 0, "[{name}]");
            browser.cookies.push(("calltrail_desk".into(), token));
            assert_eq!(
                browser.get("/calls").await.status,
                303,
                "[{name}] the old cookie still works"
            );
            // Used within the timeout it lives on; idle past it, it ends.
            let mut browser = signed_in(app, &key).await;
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(900)).await;
                assert_eq!(
                    browser.get("/queue").await.status,
                    200,
                    "[{name}] expired while in use"
                );
            }
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let page = browser.get("/queue").await;
            assert_eq!(page.status, 303, "[{name}] an idle session still works");
            assert_eq!(app.count("desk_sessions").await, 0, "[{name}]");
            // A revoked key ends its sessions.
            let mut browser = signed_in(app, &key).await;
            assert_eq!(browser.get("/calls").await.status, 200);
            let id = app.query_number("SELECT id AS n FROM api_keys").await;
            keys(&app.database.url, &["revoke", &id.to_string()]);
            assert_eq!(
                browser.get("/calls").await.status,
                303,
                "[{name}] revoked key still reads"
            );
            assert_eq!(app.count("desk_sessions").await, 0, "[{name}]");
            let again = Browser::new(app).sign_in(&key).await;
            assert_eq!(again.status, 401, "[{name}]");
        },
    )
    .await;
}

#[tokio::test]
async fn an_analyst_sees_no_customer_and_no_player() {
    for_each_app(async |app| {
        let name = app.backend.name();
        post_call(app).await;
        let key = create_key(app, "bi", "analyst", &[]);
        let mut browser = signed_in(app, &key).await;
        for path in [
            "/calls".to_owned(),
            format!("/calls/{CALL}"),
            format!("/agents/{AGENT}/2026-03-02"),
            "/queue".to_owned(),
        ] {
            let page = browser.get(&path).await;
            assert_eq!(page.status, 200, "[{name}] {path}: {}", page.body);
            for secret in [
                NAME,
                NUMBER,
                "customer_Qm3Tz8Lp2v",
                "recordings.doubletick.io",
                "<audio",
            ] {
                assert!(
                    !page.body.contains(secret),
                    "[{name}] {path} shows {secret}"
                );
            }
        }
        let call = browser.get(&format!("/calls/{CALL}")).await;
        assert!(
            call.body.contains(AGENT),
            "[{name}] the agent is not identity"
        );
        assert!(call.body.contains("hidden (analyst key)"), "[{name}]");
        let by_number = browser.get(&format!("/calls?customer={NUMBER}")).await;
        assert_eq!(by_number.status, 403, "[{name}]");
        assert!(!by_number.body.contains(NAME));
        let playback = browser.get(&format!("/recordings/{CALL}")).await;
        assert_eq!(playback.status, 403, "[{name}]");
        let csrf = browser.csrf().await;
        let review = browser
            .post(
                &format!("/calls/{CALL}/reviews"),
                &[("verdict", "OK"), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(review.status, 403, "[{name}]");
        assert_eq!(app.count("call_reviews").await, 0);
    })
    .await;
}

#[tokio::test]
async fn a_scoped_key_cannot_open_a_call_outside_its_scope() {
    for_each_app(async |app| {
        let name = app.backend.name();
        post_call(app).await;
        let mut other = fixture_json("events/call-ended-incoming-recorded.json");
        other["callId"] = json!("call_other_waba");
        other["wabaNumber"] = json!("918045670000");
        let (status, _) = app
            .post_webhook("application/json", other.to_string())
            .await;
        assert_eq!(status, 200);
        let key = create_key(app, "branch", "reviewer", &["--waba", "918045670000"]);
        let mut browser = signed_in(app, &key).await;
        let outside = browser.get(&format!("/calls/{CALL}")).await;
        assert_eq!(outside.status, 404, "[{name}]");
        assert!(!outside.body.contains(NAME), "[{name}]");
        assert_eq!(
            browser.get(&format!("/recordings/{CALL}")).await.status,
            404,
            "[{name}]"
        );
        let csrf = browser.csrf().await;
        let review = browser
            .post(
                &format!("/calls/{CALL}/reviews"),
                &[("verdict", "OK"), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(review.status, 404, "[{name}]");
        let inside = browser.get("/calls/call_other_waba").await;
        assert_eq!(inside.status, 200, "[{name}]");
        let list = browser.get(&format!("/calls?customer={NUMBER}")).await;
        assert!(
            list.body.contains("call_other_waba") && !list.body.contains(&format!("/calls/{CALL}")),
            "[{name}]"
        );
        assert!(
            list.body.contains("1 call matches"),
            "[{name}] {}",
            list.body
        );
    })
    .await;
}

#[tokio::test]
async fn every_page_that_shows_a_customer_is_in_the_access_log() {
    for_each_app(async |app| {
        let name = app.backend.name();
        post_call(app).await;
        let key = create_key(app, "compliance", "reviewer", &[]);
        let mut browser = signed_in(app, &key).await;
        let before = app.count_where("access_log", "surface = 'desk'").await;
        // A differently formatted number finds the call.
        let search = browser
            .get("/calls?customer=%2B91+98111-22233&tz=Asia%2FKolkata")
            .await;
        assert_eq!(search.status, 200, "[{name}]");
        assert!(
            search.body.contains(NAME) && search.body.contains("1 call matches"),
            "[{name}] {}",
            search.body
        );
        assert!(
            search.body.contains("2026-03-02 14:49:17 IST"),
            "[{name}] times in the zone asked"
        );
        browser.get(&format!("/calls/{CALL}")).await;
        browser.get(&format!("/agents/{AGENT}/2026-03-02")).await;
        let rows = app
            .query_json(&format!(
                "SELECT e.operation_name AS page, e.role AS role FROM access_log e \
                 JOIN access_log_calls c ON c.access_id = e.id \
                 WHERE e.surface = 'desk' AND c.call_id = '{CALL}' ORDER BY e.id"
            ))
            .await;
        let pages: Vec<String> = rows
            .iter()
            .map(|r| r["page"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(
            pages,
            vec![
                "/calls?customer=%2B91+98111-22233&tz=Asia%2FKolkata".to_owned(),
                format!("/calls/{CALL}"),
                format!("/agents/{AGENT}/2026-03-02"),
            ],
            "[{name}]"
        );
        assert!(rows.iter().all(|r| r["role"] == "reviewer"), "[{name}]");
        assert_eq!(
            app.count_where("access_log", "surface = 'desk'").await,
            before + 3
        );
    })
    .await;
}

#[tokio::test]
async fn a_review_is_appended_and_the_call_leaves_the_queue() {
    for_each_app(async |app| {
        let name = app.backend.name();
        let mut short = fixture_json("events/call-ended-incoming-recorded.json");
        short["durationInSeconds"] = json!(12);
        short["callEndedAt"] = json!("2026-03-02T09:14:17.000Z");
        let (status, _) = app
            .post_webhook("application/json", short.to_string())
            .await;
        assert_eq!(status, 200);
        let key = create_key(app, "compliance", "reviewer", &[]);
        let mut browser = signed_in(app, &key).await;
        let queue = browser.get("/queue").await;
        assert!(
            queue.body.contains(&format!("/calls/{CALL}")),
            "[{name}] {}",
            queue.body
        );
        let short = browser.get("/calls?length=short&sort=oldest&min=10").await;
        assert!(
            short.body.contains("1 call matches"),
            "[{name}] {}",
            short.body
        );
        let none = browser.get("/calls?length=short&min=13").await;
        assert!(
            none.body.contains("0 calls match"),
            "[{name}] {}",
            none.body
        );
        let long = browser.get("/calls?length=long").await;
        assert!(long.body.contains("0 calls match"), "[{name}]");
        let csrf = browser.csrf().await;
        let path = format!("/calls/{CALL}/reviews");
        let refused = browser
            .post(
                &path,
                &[("verdict", "ISSUE"), ("note", " "), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(refused.status, 400, "[{name}] an issue without a note");
        assert!(refused.body.contains("needs a note"), "[{name}]");
        let first = browser
            .post(
                &path,
                &[
                    ("verdict", "ISSUE"),
                    ("note", "Disclosure skipped"),
                    ("csrf", &csrf),
                    ("tz", ""),
                ],
            )
            .await;
        assert_eq!(first.status, 303, "[{name}] {}", first.body);
        assert_eq!(first.location(), format!("/calls/{CALL}#reviews"));
        let second = browser
            .post(
                &path,
                &[
                    ("verdict", "OK"),
                    ("note", "Heard again: fine <b>"),
                    ("csrf", &csrf),
                ],
            )
            .await;
        assert_eq!(second.status, 303, "[{name}]");
        let call = browser.get(&format!("/calls/{CALL}")).await;
        let issue = call
            .body
            .find("Disclosure skipped")
            .expect("the first review");
        let ok = call
            .body
            .find("Heard again: fine &lt;b&gt;")
            .expect("the second, escaped");
        assert!(issue < ok, "[{name}] oldest first");
        assert!(call.body.contains("by compliance"), "[{name}]");
        let stored = app
            .query_json("SELECT verdict, note, key_name FROM call_reviews ORDER BY id")
            .await;
        assert_eq!(stored.len(), 2, "[{name}] {stored:?}");
        assert_eq!(stored[0]["verdict"], "ISSUE");
        assert_eq!(stored[1]["key_name"], "compliance");
        let queue = browser.get("/queue").await;
        assert!(
            !queue.body.contains(&format!("/calls/{CALL}")),
            "[{name}] still queued"
        );
        assert!(queue.body.contains("Nothing waits for review"), "[{name}]");
        let unreviewed = browser.get("/calls?unreviewed=1").await;
        assert!(unreviewed.body.contains("0 calls match"), "[{name}]");
    })
    .await;
}

/// The whole desk in headless Chromium (`tests/node/desk.mjs`), over a call whose recording,
/// a real MP3, was archived from the fake DoubleTick host.
#[tokio::test]
async fn the_desk_works_in_headless_chromium() {
    use crate::kit::media::{KeyIn, MediaHost, WAV_SECONDS};
    use crate::recordings::{archiving, post, recorded_call, settled};

    use calltrail::recordings::KeyPlacement;
    let node_dir = crate::graphiql_http::node_ready(&["playwright-core"]);
    crate::kit::for_each_backend(async |backend| {
        let name = backend.name();
        let host = MediaHost::start(KeyIn::Query).await;
        let dir = tempfile::tempdir().expect("archive dir");
        let app = TestApp::spawn_with(&backend, |s| {
            archiving(s, dir.path(), KeyPlacement::Query);
        })
        .await;
        post(
            &app,
            recorded_call(CALL, &host.url("silent-mp3", CALL), "918045671200"),
        )
        .await;
        let mut outside = fixture_json("events/call-ended-incoming-recorded.json");
        outside["callId"] = json!("call_outside_scope");
        outside["wabaNumber"] = json!("918045679999");
        outside["recordingUrl"] = json!(null);
        outside["customerNumber"] = json!("917000000001");
        let (status, _) = app
            .post_webhook("application/json", outside.to_string())
            .await;
        assert_eq!(status, 200);
        let reviewer = create_key(&app, "compliance", "reviewer", &[]);
        let rec = settled(&app, Some(&reviewer), CALL, &["ARCHIVED"]).await;
        assert_eq!(rec["contentType"], "audio/mpeg", "[{name}] {rec}");
        let analyst = create_key(&app, "bi", "analyst", &[]);
        let scoped = create_key(&app, "branch", "reviewer", &["--waba", "918045671200"]);
        let child = tokio::process::Command::new("node")
            .arg(node_dir.join("desk.mjs"))
            .env("CALLTRAIL_URL", &app.base)
            .env("REVIEWER_KEY", &reviewer)
            .env("ANALYST_KEY", &analyst)
            .env("SCOPED_KEY", &scoped)
            .env("CALL_ID", CALL)
            .env("OUTSIDE_CALL_ID", "call_outside_scope")
            .env("NUMBER", "+91 98111-22233")
            .env("NAME", NAME)
            .env("SECONDS", WAV_SECONDS.to_string())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(180), child)
            .await
            .expect("node desk.mjs finishes within 3 minutes")
            .expect("node runs");
        let printed = crate::graphiql_http::node_output("desk.mjs", &output);
        assert!(
            printed.contains("the desk works in Chromium"),
            "[{name}] {printed}"
        );
        // The playback and the review went where they must.
        let plays = app
            .count_where(
                "access_log",
                "surface = 'recording' AND key_name = 'compliance'",
            )
            .await;
        assert!(plays >= 1, "[{name}] no playback logged");
        assert_eq!(app.count("call_reviews").await, 1, "[{name}]");
        assert_eq!(
            app.count("desk_sessions").await,
            0,
            "[{name}] a session outlived sign-out"
        );
        app.finish().await;
    })
    .await;
}
