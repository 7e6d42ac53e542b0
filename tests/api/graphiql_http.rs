//! GraphiQL and GraphQL over HTTP against a real calltrail (SQLite in a temp dir, port 0):
//! the standard introspection query is answered while data keeps its limits, queries over
//! GET, the media type asked for, GraphiQL's files under a Content-Security-Policy, CORS; then
//! the node checks in tests/node/ (graphql-http's audit, GraphiQL in headless Chromium).
//!
//! Self-contained on purpose (no tests/common). The node checks need node, `npm ci --prefix
//! tests/node` and Debian's Chromium; without them they fail, saying what to install.
use std::path::{Path, PathBuf};
use std::time::Duration;

use calltrail::app::{self, RunningApp};
use calltrail::config::Settings;
use serde_json::{Value, json};

/// graphql-js 16's `getIntrospectionQuery()` with every option (descriptions,
/// specifiedByUrl, directiveIsRepeatable, schemaDescription, inputValueDeprecation), as
/// GraphiQL, codegen and schemathesis send it; its TypeRef nests nine `ofType`s.
const INTROSPECTION: &str = r#"query IntrospectionQuery {
  __schema {
    description
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types {
      ...FullType
    }
    directives {
      name
      description
      isRepeatable
      locations
      args(includeDeprecated: true) {
        ...InputValue
      }
    }
  }
}
fragment FullType on __Type {
  kind
  name
  description
  specifiedByURL
  fields(includeDeprecated: true) {
    name
    description
    args(includeDeprecated: true) {
      ...InputValue
    }
    type {
      ...TypeRef
    }
    isDeprecated
    deprecationReason
  }
  inputFields(includeDeprecated: true) {
    ...InputValue
  }
  interfaces {
    ...TypeRef
  }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes {
    ...TypeRef
  }
}
fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
  isDeprecated
  deprecationReason
}
fragment TypeRef on __Type { kind name ofType { name kind ofType { name kind ofType { name kind ofType { name kind ofType { name kind ofType { name kind ofType { name kind ofType { name kind ofType { name kind } } } } } } } } } }"#;

const ALLOWED_ORIGIN: &str = "https://dashboard.example.com";

struct Server {
    base: String,
    client: reqwest::Client,
    running: Option<RunningApp>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(cors_origins: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("calltrail.db").display()
        );
        let mut settings = Settings::for_database(url);
        settings.cors_origins = cors_origins.iter().map(|o| o.to_string()).collect();
        let running = app::spawn(&settings).await.expect("calltrail starts");
        Server {
            base: format!("http://{}", running.addr),
            client: reqwest::Client::new(),
            running: Some(running),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` to /graphql with `accept`; returns status, content type and JSON body.
    async fn post(&self, accept: &str, body: Value) -> (u16, String, Value) {
        let response = self
            .client
            .post(self.url("/graphql"))
            .header("accept", accept)
            .json(&body)
            .send()
            .await
            .expect("graphql request");
        answer(response).await
    }

    async fn get(&self, path_and_query: &str, accept: &str) -> reqwest::Response {
        self.client
            .get(self.url(path_and_query))
            .header("accept", accept)
            .send()
            .await
            .expect("GET")
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            let store = running.store.clone();
            running.stop().await;
            store.close().await;
        }
    }
}

async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = header(&response, "content-type");
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_owned())
        .unwrap_or_default()
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

#[tokio::test]
async fn the_standard_introspection_query_is_answered_in_full() {
    let server = Server::start(&[]).await;
    let (status, _, body) = server
        .post(
            "application/json",
            json!({ "query": INTROSPECTION, "operationName": "IntrospectionQuery" }),
        )
        .await;
    assert_eq!(status, 200, "{}", short(&body));
    assert!(body.get("errors").is_none(), "{}", short(&body));
    let schema = &body["data"]["__schema"];
    assert_eq!(schema["queryType"]["name"], "Query");
    let types = schema["types"].as_array().expect("types");
    let query = types
        .iter()
        .find(|t| t["name"] == "Query")
        .expect("Query type");
    let calls = query["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "calls")
        .expect("Query.calls");
    assert_eq!(calls["type"]["kind"], "NON_NULL");
    assert_eq!(calls["type"]["ofType"]["name"], "CallConnection");
    assert!(
        types
            .iter()
            .any(|t| t["name"] == "Call" && t["description"].is_string())
    );
    let directives = schema["directives"].as_array().expect("directives");
    assert!(
        directives
            .iter()
            .any(|d| d["name"] == "skip" && d["isRepeatable"] == false)
    );

    let (status, _, body) = server
        .post("application/json", json!({ "query": "{ __typename }" }))
        .await;
    assert_eq!(
        (status, &body),
        (200, &json!({ "data": { "__typename": "Query" } }))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_request_that_also_asks_for_data_keeps_the_data_limits() {
    let server = Server::start(&[]).await;
    let deep_data = format!(
        "{{ calls {{ nodes {{ {} callId {} }} }} }}",
        "revisions { call { ".repeat(8),
        "} } ".repeat(8)
    );
    let with_data = INTROSPECTION.replacen("__schema {", "calls { totalCount } __schema {", 1);
    for query in [deep_data.as_str(), with_data.as_str()] {
        let (status, _, body) = server
            .post("application/json", json!({ "query": query }))
            .await;
        assert_eq!(status, 200, "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("nested too deep"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "QUERY_TOO_DEEP");
        assert!(body.get("data").is_none(), "refused before running: {body}");
    }

    let nested_lists =
        "{ __schema { types { fields { type { fields { type { interfaces { name } } } } } } } }";
    let (_, _, body) = server
        .post("application/json", json!({ "query": nested_lists }))
        .await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too deeply"), "{body}");

    // The standard query costs 229; five copies in one request fit the bound, six do not.
    let copies = |n: usize| {
        let aliased: String = (0..n)
            .map(|n| format!("s{n}: __schema {{ ...S }} "))
            .collect();
        let fragments =
            &INTROSPECTION[INTROSPECTION.find("fragment FullType").expect("fragment")..];
        format!("{{ {aliased} }} fragment S on __Schema {{ types {{ ...FullType }} }} {fragments}")
    };
    let (_, _, body) = server
        .post("application/json", json!({ "query": copies(2) }))
        .await;
    assert!(body.get("errors").is_none(), "{}", short(&body));
    assert!(body["data"]["s1"]["types"].is_array(), "{}", short(&body));
    let (_, _, body) = server
        .post("application/json", json!({ "query": copies(6) }))
        .await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{}", short(&body));
    server.stop().await;
}

/// A body short enough for a failure message.
fn short(body: &Value) -> String {
    body.to_string().chars().take(600).collect()
}

#[tokio::test]
async fn queries_are_answered_over_get_and_mutations_are_not() {
    let server = Server::start(&[]).await;
    let pairs = [
        (
            "query",
            "query Named($name: String!) { __type(name: $name) { name kind } calls { totalCount } }",
        ),
        ("variables", r#"{"name":"Call"}"#),
        ("operationName", "Named"),
    ];
    let response = server
        .get(
            &format!("/graphql?{}", query_string(&pairs)),
            "application/json",
        )
        .await;
    let (status, content_type, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(
        body,
        json!({ "data": { "__type": { "name": "Call", "kind": "OBJECT" }, "calls": { "totalCount": 0 } } })
    );

    let mutation = query_string(&[("query", "mutation { __typename }")]);
    let response = server
        .get(
            &format!("/graphql?{mutation}"),
            "application/graphql-response+json",
        )
        .await;
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(header(&response, "allow"), "POST");
    let (_, _, body) = answer(response).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "METHOD_NOT_ALLOWED",
        "{body}"
    );

    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = server.get("/graphql", browser).await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert!(page.text().await.expect("page").contains("graphiql.min.js"));

    let (status, _, body) = answer(server.get("/graphql", "application/json").await).await;
    assert_eq!(status, 400, "a client that wants JSON gets no page: {body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "MALFORMED_BODY");
    server.stop().await;
}

#[tokio::test]
async fn the_answer_comes_in_the_media_type_asked_for() {
    let server = Server::start(&[]).await;
    let typename = json!({ "query": "{ __typename }" });
    for (accept, expected) in [
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        (
            "application/graphql-response+json",
            "application/graphql-response+json",
        ),
        (
            "application/graphql-response+json, application/json",
            "application/graphql-response+json",
        ),
    ] {
        let (status, content_type, body) = server.post(accept, typename.clone()).await;
        assert_eq!(status, 200, "{accept}: {body}");
        assert_eq!(
            content_type.split(';').next(),
            Some(expected),
            "Accept: {accept}"
        );
    }

    let unparsable = json!({ "query": "{" });
    let (status, _, body) = server.post("application/json", unparsable.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("data").is_none() && body["errors"].is_array(),
        "{body}"
    );
    let (status, _, body) = server
        .post("application/graphql-response+json", unparsable)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.get("data").is_none(), "{body}");

    let without_content_type = server
        .client
        .post(server.url("/graphql"))
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(without_content_type.status().as_u16(), 415);
    server.stop().await;
}

#[tokio::test]
async fn graphiql_and_its_files_are_served_from_calltrail_under_a_content_security_policy() {
    let server = Server::start(&[]).await;
    let page = server.get("/graphql", "text/html").await;
    let policy = header(&page, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    let script_src = policy
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .expect("script-src");
    assert!(!script_src.contains("unsafe-inline"), "{policy}");
    let html = page.text().await.expect("page");
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "no CDN: {html}"
    );

    let files: Vec<&str> = html
        .split("graphql/assets/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(files.len(), 6, "{html}");
    for file in files {
        let response = server.get(&format!("/graphql/assets/{file}"), "*/*").await;
        assert_eq!(response.status().as_u16(), 200, "{file}");
        let content_type = header(&response, "content-type");
        let expected = if file.contains(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert!(content_type.starts_with(expected), "{file}: {content_type}");
        assert!(
            header(&response, "cache-control").contains("max-age=31536000"),
            "{file}"
        );
        assert_eq!(
            header(&response, "content-security-policy"),
            policy,
            "{file}"
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert!(!response.bytes().await.expect("body").is_empty(), "{file}");
    }
    let missing = server.get("/graphql/assets/nothing.js", "*/*").await;
    assert_eq!(missing.status().as_u16(), 404);
    server.stop().await;
}

#[tokio::test]
async fn cors_preflight_is_answered_for_allowed_origins_only() {
    let preflight = |server: &Server, origin: &str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/graphql"))
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let server = Server::start(&[ALLOWED_ORIGIN]).await;
    let allowed = preflight(&server, ALLOWED_ORIGIN).await.expect("preflight");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        ALLOWED_ORIGIN
    );
    let headers = header(&allowed, "access-control-allow-headers").to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert!(header(&allowed, "access-control-allow-methods").contains("POST"));

    // Without Access-Control-Allow-Origin a browser refuses the call.
    let other = preflight(&server, "https://elsewhere.example.com")
        .await
        .expect("preflight");
    assert_eq!(header(&other, "access-control-allow-origin"), "");
    assert_eq!(header(&other, "access-control-allow-credentials"), "");

    let call = server
        .client
        .post(server.url("/graphql"))
        .header("origin", ALLOWED_ORIGIN)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("request");
    assert_eq!(header(&call, "access-control-allow-origin"), ALLOWED_ORIGIN);
    server.stop().await;

    let closed = Server::start(&[]).await;
    let refused = preflight(&closed, ALLOWED_ORIGIN).await.expect("preflight");
    assert_eq!(header(&refused, "access-control-allow-origin"), "");
    assert!(
        !refused.status().is_success(),
        "no origin configured: {}",
        refused.status()
    );
    closed.stop().await;
}

#[tokio::test]
async fn the_graphql_over_http_audit_passes_every_must() {
    let out = run_node_check("audit.mjs", &["graphql-http", "graphql"]).await;
    assert!(out.contains("MUST: 13 pass, 0 do not"), "{out}");
}

#[tokio::test]
async fn graphiql_works_offline_in_headless_chromium() {
    let out = run_node_check("graphiql.mjs", &["playwright-core"]).await;
    assert!(out.contains("GraphiQL works offline"), "{out}");
}

/// Runs `tests/node/<script>` against a fresh calltrail; fails, saying what to install, when
/// node, the script's packages or Chromium are missing. Returns what the script printed.
async fn run_node_check(script: &str, packages: &[&str]) -> String {
    let node_dir = node_ready(packages);
    let server = Server::start(&[]).await;
    let child = tokio::process::Command::new("node")
        .arg(node_dir.join(script))
        .env("CALLTRAIL_URL", &server.base)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), child)
        .await
        .unwrap_or_else(|_| panic!("node {script} did not finish in 3 minutes"))
        .expect("node runs");
    server.stop().await;
    node_output(script, &output)
}

/// `tests/node`, once node, the scripts' pinned `packages` (installed on first use) and, for
/// playwright, Chromium are there; fails saying what to install otherwise.
pub fn node_ready(packages: &[&str]) -> PathBuf {
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not installed: `apt-get install -y nodejs npm` (node 20 or later)"
    );
    // The pinned packages are installed on first use (the README's test command then needs no
    // step of its own); once for every test of this binary.
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    {
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        let missing = packages
            .iter()
            .any(|p| !node_dir.join("node_modules").join(p).is_dir());
        if missing && !*installed {
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(&node_dir)
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "`npm ci --prefix tests/node` failed: install node 20 or later with npm"
            );
            *installed = true;
        }
    }
    for package in packages {
        let path: PathBuf = node_dir.join("node_modules").join(package);
        assert!(
            path.is_dir(),
            "{} is missing: run `npm ci --prefix tests/node`",
            path.display()
        );
    }
    if packages.contains(&"playwright-core") {
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "/usr/bin/chromium is missing: `apt-get install -y chromium chromium-driver`"
        );
    }
    node_dir
}

/// What a node check printed; fails the test when it failed.
pub fn node_output(script: &str, output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "node {script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}
