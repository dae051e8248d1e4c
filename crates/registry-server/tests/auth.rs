//! htpasswd basic auth and the bearer-token flow.

mod common;
use std::collections::HashMap;

use berth_registry_server::TokenConfig;
use berth_registry_server::auth::{self, AccessEntry, Claims};
use common::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn with_users(reg_cfg: &mut berth_registry_server::Config, dir: &std::path::Path) {
    let mut text = String::new();
    text.push_str(&auth::htpasswd_line("alice", "wonderland", 4).unwrap());
    text.push('\n');
    text.push_str(&auth::htpasswd_line("bob", "builder", 5).unwrap());
    text.push('\n');
    let p = dir.join("htpasswd");
    std::fs::write(&p, text).unwrap();
    reg_cfg.htpasswd = Some(p);
}

fn htpasswd_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn basic_auth() {
    let users = htpasswd_dir();
    let reg = Reg::start_with(|c| with_users(c, users.path()));
    let anon = reg.c();
    let r = anon.get("/v2/");
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    assert!(
        r.header("WWW-Authenticate")
            .unwrap()
            .starts_with(r#"Basic realm="berth-registry""#)
    );
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    assert_eq!(anon.basic("alice", "wrong").get("/v2/").status, 401);
    assert_eq!(anon.basic("mallory", "wonderland").get("/v2/").status, 401);
    assert_eq!(anon.with_auth("Basic !!!notbase64").get("/v2/").status, 401);

    let alice = anon.basic("alice", "wonderland");
    assert_eq!(alice.get("/v2/").status, 200);
    let img = push_image(&alice, "private/app", "v1", "basic");
    assert_eq!(alice.get("/v2/private/app/manifests/v1").status, 200);
    // The second user, a different bcrypt cost.
    assert_eq!(
        anon.basic("bob", "builder")
            .get("/v2/private/app/tags/list")
            .status,
        200
    );
    // No anonymous pull, push or catalog.
    assert_eq!(anon.get("/v2/private/app/manifests/v1").status, 401);
    assert_eq!(
        anon.get(&format!("/v2/private/app/blobs/{}", img.config))
            .status,
        401
    );
    assert_eq!(
        anon.req("POST", "/v2/private/app/blobs/uploads/", &[], b"")
            .status,
        401
    );
    assert_eq!(anon.get("/v2/_catalog").status, 401);
    assert_eq!(anon.get("/v1/search?q=app").status, 401);
    assert_eq!(alice.get("/v1/search?q=app").json()["num_results"], 1);
}

#[test]
fn basic_auth_with_anonymous_pull() {
    let users = htpasswd_dir();
    let reg = Reg::start_with(|c| {
        with_users(c, users.path());
        c.anonymous_pull = true;
    });
    let anon = reg.c();
    let alice = anon.basic("alice", "wonderland");
    let img = push_image(&alice, "public/app", "v1", "anon");
    // Pulls work without credentials; /v2/ still challenges so clients learn the scheme.
    assert_eq!(anon.get("/v2/").status, 401);
    assert_eq!(anon.get("/v2/public/app/manifests/v1").status, 200);
    assert_eq!(
        anon.get(&format!("/v2/public/app/blobs/{}", img.layers[0]))
            .status,
        200
    );
    assert_eq!(anon.get("/v2/public/app/tags/list").status, 200);
    // Writes do not.
    let r = anon.req("POST", "/v2/public/app/blobs/uploads/", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    assert_eq!(anon.delete("/v2/public/app/manifests/v1").status, 401);
    let r = put_manifest(&anon, "public/app", "v2", OCI_MANIFEST, &img.manifest);
    assert_eq!(r.status, 401);
}

/// Parses `Bearer realm="…",service="…",scope="…"`.
fn challenge(h: &str) -> HashMap<String, String> {
    let rest = h.strip_prefix("Bearer ").expect(h);
    let mut out = HashMap::new();
    for part in rest.split("\",") {
        let (k, v) = part.split_once('=').unwrap();
        out.insert(k.trim().to_string(), v.trim_matches('"').to_string());
    }
    out
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Follows a challenge: asks the realm for a token with the given credentials.
fn fetch_token(c: &Client, ch: &HashMap<String, String>, scope: Option<&str>) -> Resp {
    let realm = &ch["realm"];
    let path = realm
        .strip_prefix(&format!("http://{}", c.addr))
        .unwrap_or_else(|| panic!("realm {realm} is not this registry"));
    let mut q = format!("{path}?service={}", url_encode(&ch["service"]));
    if let Some(s) = scope {
        q.push_str(&format!("&scope={}", url_encode(s)));
    }
    c.get(&q)
}

fn token_registry(anonymous_pull: bool, absolute_realm: bool) -> (Reg, tempfile::TempDir) {
    let users = htpasswd_dir();
    let reg = Reg::start_with_addr(|c, addr| {
        with_users(c, users.path());
        c.anonymous_pull = anonymous_pull;
        c.token = Some(TokenConfig {
            realm: if absolute_realm {
                format!("http://{addr}/token")
            } else {
                "/token".into()
            },
            service: "berth-test".into(),
            issuer: "berth-test-issuer".into(),
            secret: SECRET.to_vec(),
            expiration: 300,
        });
    });
    (reg, users)
}

#[test]
fn token_flow_and_scopes() {
    let (reg, _users) = token_registry(false, false);
    let anon = reg.c();

    // Challenge on /v2/.
    let r = anon.get("/v2/");
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    let ch = challenge(r.header("WWW-Authenticate").unwrap());
    assert_eq!(ch["realm"], format!("http://{}/token", reg.addr));
    assert_eq!(ch["service"], "berth-test");

    // A repository request's challenge names the scope it needs.
    let r = anon.req("POST", "/v2/team/app/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 401);
    let push_ch = challenge(r.header("WWW-Authenticate").unwrap());
    assert_eq!(push_ch["scope"], "repository:team/app:pull,push");
    let r = anon.get("/v2/team/app/manifests/v1");
    assert_eq!(
        challenge(r.header("WWW-Authenticate").unwrap())["scope"],
        "repository:team/app:pull"
    );

    // Token endpoint: bad credentials are refused.
    let r = fetch_token(
        &anon.basic("alice", "nope"),
        &push_ch,
        Some(&push_ch["scope"]),
    );
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));

    // Login-style token (no scope) opens /v2/.
    let alice = anon.basic("alice", "wonderland");
    let r = fetch_token(&alice, &ch, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["token"], j["access_token"]);
    assert_eq!(j["expires_in"], 300);
    assert!(j["issued_at"].as_str().unwrap().ends_with('Z'));
    let login = anon.with_auth(format!("Bearer {}", j["token"].as_str().unwrap()));
    assert_eq!(login.get("/v2/").status, 200);
    // ...but nothing else.
    let r = login.get("/v2/team/app/tags/list");
    assert_eq!((r.status, r.code().as_str()), (401, "DENIED"));
    assert!(
        r.header("WWW-Authenticate")
            .unwrap()
            .contains(r#"error="insufficient_scope""#)
    );

    // A push token: retry with Bearer and push an image.
    let r = fetch_token(&alice, &push_ch, Some(&push_ch["scope"]));
    let pusher = anon.with_auth(format!("Bearer {}", r.json()["token"].as_str().unwrap()));
    let img = push_image(&pusher, "team/app", "v1", "token");
    assert_eq!(pusher.get("/v2/team/app/manifests/v1").status, 200);

    // A pull-only token cannot push.
    let r = fetch_token(&alice, &push_ch, Some("repository:team/app:pull"));
    let puller = anon.with_auth(format!("Bearer {}", r.json()["token"].as_str().unwrap()));
    assert_eq!(puller.get("/v2/team/app/manifests/v1").status, 200);
    assert_eq!(
        puller
            .get(&format!("/v2/team/app/blobs/{}", img.config))
            .status,
        200
    );
    let r = puller.req("POST", "/v2/team/app/blobs/uploads/", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (401, "DENIED"));
    let again = challenge(r.header("WWW-Authenticate").unwrap());
    assert_eq!(again["scope"], "repository:team/app:pull,push");
    assert_eq!(again["error"], "insufficient_scope");
    let r = put_manifest(&puller, "team/app", "v2", OCI_MANIFEST, &img.manifest);
    assert_eq!(r.status, 401);
    // Nor may it read another repository.
    assert_eq!(puller.get("/v2/team/other/tags/list").status, 401);

    // Delete needs `delete` or `*`: the push token cannot, a `*` token can.
    let r = pusher.delete("/v2/team/app/manifests/v1");
    assert_eq!((r.status, r.code().as_str()), (401, "DENIED"));
    assert!(
        r.header("WWW-Authenticate")
            .unwrap()
            .contains("repository:team/app:delete")
    );
    let r = fetch_token(&alice, &push_ch, Some("repository:team/app:*"));
    let admin = anon.with_auth(format!("Bearer {}", r.json()["token"].as_str().unwrap()));
    assert_eq!(admin.delete("/v2/team/app/manifests/v1").status, 202);

    // The catalog needs registry:catalog:*.
    assert_eq!(pusher.get("/v2/_catalog").status, 401);
    let r = fetch_token(&alice, &ch, Some("registry:catalog:*"));
    let cat = anon.with_auth(format!("Bearer {}", r.json()["token"].as_str().unwrap()));
    assert_eq!(
        cat.get("/v2/_catalog").json()["repositories"],
        serde_json::json!(["team/app"])
    );

    // Several scopes in one token request.
    let r = anon.basic("bob", "builder").get(&format!(
        "/token?service=berth-test&scope={}&scope={}",
        url_encode("repository:a:pull"),
        url_encode("repository:b:pull,push")
    ));
    let t = r.json()["token"].as_str().unwrap().to_string();
    let claims = auth::verify_token(SECRET, &t, "berth-test", auth::now_secs()).unwrap();
    assert_eq!(claims.sub, "bob");
    assert_eq!(claims.iss, "berth-test-issuer");
    assert!(claims.allows("repository", "a", &["pull"]));
    assert!(claims.allows("repository", "b", &["pull", "push"]));
    assert!(!claims.allows("repository", "a", &["push"]));

    // OAuth2 password grant (POST).
    let r = anon.req(
        "POST",
        "/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!(
            "grant_type=password&username=alice&password=wonderland&service=berth-test&scope={}&client_id=test",
            url_encode("repository:team/app:pull")
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        anon.with_auth(format!("Bearer {t}"))
            .get("/v2/team/app/tags/list")
            .status,
        200
    );
    let r = anon.req(
        "POST",
        "/token",
        &[],
        b"grant_type=password&username=alice&password=bad&service=berth-test",
    );
    assert_eq!(r.status, 401);
    let r = anon.req(
        "POST",
        "/token",
        &[],
        b"grant_type=refresh_token&refresh_token=x",
    );
    assert_eq!(r.status, 400);
    // A wrong service name.
    assert_eq!(alice.get("/token?service=other").status, 400);
}

#[test]
fn bad_tokens() {
    // An absolute realm this time.
    let (reg, _users) = token_registry(false, true);
    let anon = reg.c();
    let now = auth::now_secs();
    let claims = |exp: u64, aud: &str| Claims {
        iss: "x".into(),
        sub: "alice".into(),
        aud: aud.into(),
        exp,
        nbf: 0,
        iat: 0,
        jti: "1".into(),
        access: vec![AccessEntry {
            kind: "repository".into(),
            name: "r".into(),
            actions: vec!["pull".into(), "push".into()],
        }],
    };
    let good = auth::sign_token(SECRET, &claims(now + 60, "berth-test"));
    assert_eq!(
        anon.with_auth(format!("Bearer {good}"))
            .get("/v2/r/tags/list")
            .status,
        404
    );
    let forged = auth::sign_token(
        b"not the secret at all, no sir",
        &claims(now + 60, "berth-test"),
    );
    let expired = auth::sign_token(SECRET, &claims(now - 3600, "berth-test"));
    let wrong_aud = auth::sign_token(SECRET, &claims(now + 60, "another-service"));
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    use base64::Engine as _;
    parts[0] =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    parts[2] = String::new();
    let alg_none = parts.join(".");
    for bad in [
        forged,
        expired,
        wrong_aud,
        alg_none,
        "garbage".into(),
        "a.b.c".into(),
        String::new(),
    ] {
        let r = anon
            .with_auth(format!("Bearer {bad}"))
            .get("/v2/r/tags/list");
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "UNAUTHORIZED"),
            "{bad}"
        );
        let h = r.header("WWW-Authenticate").unwrap();
        assert!(h.starts_with("Bearer realm="), "{h}");
    }
    // Basic credentials are not accepted in place of a token on /v2/ endpoints.
    let r = anon.basic("alice", "wonderland").get("/v2/r/tags/list");
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Bearer "));
}

#[test]
fn anonymous_tokens() {
    // Without anonymous pull, an anonymous token grants nothing.
    let (reg, _users) = token_registry(false, false);
    let alice = reg.c().basic("alice", "wonderland");
    let r = alice.get(&format!(
        "/token?service=berth-test&scope={}",
        url_encode("repository:pub:pull,push")
    ));
    let tok = r.json()["token"].as_str().unwrap().to_string();
    push_image(
        &reg.c().with_auth(format!("Bearer {tok}")),
        "pub",
        "v1",
        "anon",
    );
    let r = reg.c().get(&format!(
        "/token?service=berth-test&scope={}",
        url_encode("repository:pub:pull")
    ));
    assert_eq!(r.status, 200);
    let anon_tok = r.json()["token"].as_str().unwrap().to_string();
    let r = reg
        .c()
        .with_auth(format!("Bearer {anon_tok}"))
        .get("/v2/pub/manifests/v1");
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    drop(reg);

    // With it, anonymous tokens carry pull (and only pull), and no token at all may pull.
    let (reg, _users) = token_registry(true, false);
    let alice = reg.c().basic("alice", "wonderland");
    let r = alice.get(&format!(
        "/token?service=berth-test&scope={}",
        url_encode("repository:pub:pull,push")
    ));
    let tok = r.json()["token"].as_str().unwrap().to_string();
    push_image(
        &reg.c().with_auth(format!("Bearer {tok}")),
        "pub",
        "v1",
        "anon",
    );
    let r = reg.c().get(&format!(
        "/token?service=berth-test&scope={}",
        url_encode("repository:pub:pull,push")
    ));
    let anon_tok = r.json()["token"].as_str().unwrap().to_string();
    let claims = auth::verify_token(SECRET, &anon_tok, "berth-test", auth::now_secs()).unwrap();
    assert!(claims.allows("repository", "pub", &["pull"]));
    assert!(!claims.allows("repository", "pub", &["push"]));
    let anon = reg.c().with_auth(format!("Bearer {anon_tok}"));
    assert_eq!(anon.get("/v2/pub/manifests/v1").status, 200);
    assert_eq!(
        anon.req("POST", "/v2/pub/blobs/uploads/", &[], b"").status,
        401
    );
    assert_eq!(reg.c().get("/v2/pub/manifests/v1").status, 200);
    assert_eq!(
        reg.c()
            .req("POST", "/v2/pub/blobs/uploads/", &[], b"")
            .status,
        401
    );
}

#[test]
fn htpasswd_command_output_verifies() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["htpasswd", "carol", "--cost", "4", "-p", "s3cret"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("carol:$2y$04$"), "{line}");
    let h = auth::Htpasswd::parse(&line).unwrap();
    assert!(h.verify("carol", "s3cret"));
    assert!(!h.verify("carol", "other"));
    // From stdin.
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["htpasswd", "dave", "--cost", "4"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        auth::Htpasswd::parse(&line)
            .unwrap()
            .verify("dave", "from stdin")
    );
}
