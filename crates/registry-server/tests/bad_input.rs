//! Malformed and hostile input is refused with the spec's codes and leaves nothing visible.

mod common;
use common::*;

#[test]
fn malformed_digests() {
    let reg = Reg::start();
    let c = reg.c();
    for bad in [
        "sha256:xyz",
        "sha256:ABCDEF",
        "sha256",
        "sha256:",
        ":abc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ] {
        for path in [
            format!("/v2/repo/blobs/{bad}"),
            format!("/v2/repo/referrers/{bad}"),
        ] {
            let r = c.get(&path);
            assert_eq!(
                (r.status, r.code().as_str()),
                (400, "DIGEST_INVALID"),
                "{path}"
            );
        }
        let r = c.req(
            "POST",
            &format!("/v2/repo/blobs/uploads/?digest={bad}"),
            &[],
            b"x",
        );
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "DIGEST_INVALID"),
            "{bad}"
        );
        let r = c.delete(&format!("/v2/repo/blobs/{bad}"));
        assert_eq!(r.status, 400, "{bad}");
    }
    // A short sha256.
    let r = c.get(&format!("/v2/repo/manifests/sha256:{}", "a".repeat(63)));
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // Closing an upload without or with a bad digest.
    let loc = c
        .req("POST", "/v2/repo/blobs/uploads/", &[], b"")
        .header("Location")
        .unwrap()
        .to_string();
    let r = c.req("PUT", &loc, &[], b"data");
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    let r = c.req("PUT", &format!("{loc}?digest=sha256:nope"), &[], b"");
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
}

#[test]
fn malformed_names() {
    let reg = Reg::start();
    let c = reg.c();
    let long = "a".repeat(256);
    for name in [
        "UPPER",
        "a..b",
        "-lead",
        "trail-",
        "a//b",
        "a___b",
        "a/_x",
        long.as_str(),
        "a%20b",
    ] {
        for path in [
            format!("/v2/{name}/tags/list"),
            format!("/v2/{name}/manifests/latest"),
            format!("/v2/{name}/blobs/{}", sha256(b"x")),
        ] {
            let r = c.get(&path);
            assert_eq!(
                (r.status, r.code().as_str()),
                (400, "NAME_INVALID"),
                "{path}"
            );
        }
        let r = c.req("POST", &format!("/v2/{name}/blobs/uploads/"), &[], b"");
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "NAME_INVALID"),
            "{name}"
        );
    }
    // Traversal through percent-encoding is still a bad name.
    let r = c.get("/v2/a/%2e%2e/%2e%2e/etc/tags/list");
    assert_eq!((r.status, r.code().as_str()), (400, "NAME_INVALID"));
    // Tags.
    let img_body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let r = put_manifest(&c, "repo", ".hidden", OCI_INDEX, img_body);
    assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
    let r = c.req(
        "PUT",
        &format!("/v2/repo/manifests/{}?tag=bad/tag", sha256(img_body)),
        &[("Content-Type", OCI_INDEX)],
        img_body,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        c.get(&format!("/v2/repo/manifests/{}", "t".repeat(129)))
            .status,
        404
    );
}

#[test]
fn malformed_and_mismatched_content_range() {
    let reg = Reg::start();
    let c = reg.c();
    let loc = c
        .req("POST", "/v2/cr/blobs/uploads/", &[], b"")
        .header("Location")
        .unwrap()
        .to_string();
    for bad in ["abc", "0-", "-5", "5", "0-x", "bytes=0-3"] {
        let r = c.req("PATCH", &loc, &[("Content-Range", bad)], b"data");
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "BLOB_UPLOAD_INVALID"),
            "{bad}"
        );
    }
    // end < start
    let r = c.req("PATCH", &loc, &[("Content-Range", "0-0")], b"");
    assert_eq!(r.status, 400, "empty body for a 1-byte range: {}", r.text());
    // The range announces more bytes than the body has: refused, nothing kept.
    let r = c.req("PATCH", &loc, &[("Content-Range", "0-9")], b"data");
    assert_eq!((r.status, r.code().as_str()), (400, "SIZE_INVALID"));
    let r = c.get(&loc);
    assert_eq!((r.status, r.header("Range")), (204, Some("0-0")));
    // The session still works after the refusals.
    assert_eq!(
        c.req("PATCH", &loc, &[("Content-Range", "0-3")], b"data")
            .status,
        202
    );
    let r = c.req(
        "PUT",
        &format!("{loc}?digest={}", sha256(b"data")),
        &[],
        b"",
    );
    assert_eq!(r.status, 201);
}

#[test]
fn blob_with_wrong_bytes_is_never_visible() {
    let reg = Reg::start();
    let c = reg.c();
    let claimed = sha256(b"the real content");
    // Chunked upload whose bytes do not match.
    let loc = c
        .req("POST", "/v2/bad/blobs/uploads/", &[], b"")
        .header("Location")
        .unwrap()
        .to_string();
    assert_eq!(c.req("PATCH", &loc, &[], b"tampered content").status, 202);
    let r = c.req("PUT", &format!("{loc}?digest={claimed}"), &[], b"");
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // Monolithic.
    let r = c.req(
        "POST",
        &format!("/v2/bad/blobs/uploads/?digest={claimed}"),
        &[],
        b"tampered",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(c.head(&format!("/v2/bad/blobs/{claimed}")).status, 404);
    assert_eq!(c.get(&format!("/v2/bad/blobs/{claimed}")).status, 404);
    // Nothing in the blob store, nothing left in uploads, the failed session is gone.
    assert!(files_under(&reg.root().join("blobs")).is_empty());
    assert!(files_under(&reg.root().join("uploads")).is_empty());
    assert_eq!(c.get(&loc).status, 404);
    // A mount of the unknown digest does not conjure it either.
    let r = c.req(
        "POST",
        &format!("/v2/bad2/blobs/uploads/?mount={claimed}&from=bad"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
}

#[test]
fn oversize_manifests() {
    let reg = Reg::start();
    let c = reg.c();
    let big = vec![b' '; 5 * 1024 * 1024];
    // With a Content-Length: refused before reading.
    let r = put_manifest(&c, "big", "v1", OCI_MANIFEST, &big);
    assert_eq!((r.status, r.code().as_str()), (413, "MANIFEST_INVALID"));
    // Chunked, so the size shows only while reading.
    let r = c.send(
        "PUT",
        "/v2/big/manifests/v2",
        &[("Content-Type", OCI_MANIFEST)],
        BodyMode::Chunked(&big),
    );
    assert_eq!((r.status, r.code().as_str()), (413, "MANIFEST_INVALID"));
    assert!(files_under(&reg.root().join("blobs")).is_empty());
    assert_eq!(c.get("/v2/big/manifests/v1").status, 404);
}

#[test]
fn manifest_referencing_missing_blobs() {
    let reg = Reg::start();
    let c = reg.c();
    let config = push_blob(&c, "m", b"{}");
    let missing1 = sha256(b"layer one");
    let missing2 = sha256(b"layer two");
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing1, "size": 9},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing2, "size": 9},
        ],
    }))
    .unwrap();
    let r = put_manifest(&c, "m", "v1", OCI_MANIFEST, &m);
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    let errs = r.json()["errors"].as_array().unwrap().clone();
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0]["detail"]["digest"], missing1);
    assert_eq!(errs[1]["detail"]["digest"], missing2);
    assert_eq!(c.get("/v2/m/manifests/v1").status, 404);
    // A blob pushed to another repository does not count either.
    push_blob(&c, "elsewhere", b"layer one");
    push_blob(&c, "elsewhere", b"layer two");
    let r = put_manifest(&c, "m", "v1", OCI_MANIFEST, &m);
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    // Once they are in the repository, it goes through.
    push_blob(&c, "m", b"layer one");
    push_blob(&c, "m", b"layer two");
    assert_eq!(put_manifest(&c, "m", "v1", OCI_MANIFEST, &m).status, 201);
}

#[test]
fn invalid_manifests() {
    let reg = Reg::start();
    let c = reg.c();
    let config = push_blob(&c, "inv", b"{}");
    let good = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2}, "layers": [],
    });
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), OCI_MANIFEST),
        (b"[1,2]".to_vec(), OCI_MANIFEST),
        (
            br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#.to_vec(),
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ),
        (br#"{"schemaVersion":3}"#.to_vec(), OCI_MANIFEST),
        (serde_json::to_vec(&good).unwrap(), OCI_INDEX), // Content-Type ≠ mediaType
        (
            serde_json::to_vec(
                &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"digest": "sha256:zz", "size": 1}, "layers": []}),
            )
            .unwrap(),
            OCI_MANIFEST,
        ),
        (
            serde_json::to_vec(
                &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"digest": config, "size": -1}, "layers": []}),
            )
            .unwrap(),
            OCI_MANIFEST,
        ),
        (
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "text/plain"}))
                .unwrap(),
            "text/plain",
        ),
    ];
    for (body, ct) in cases {
        let r = put_manifest(&c, "inv", "v1", ct, &body);
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "MANIFEST_INVALID"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    // Pushed by a digest that is not its own.
    let body = serde_json::to_vec(&good).unwrap();
    let r = put_manifest(&c, "inv", &sha256(b"other"), OCI_MANIFEST, &body);
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert!(
        c.get("/v2/inv/tags/list").json()["tags"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The good one, with a Content-Type carrying parameters.
    let r = put_manifest(
        &c,
        "inv",
        "v1",
        &format!("{OCI_MANIFEST}; charset=utf-8"),
        &body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn upload_sessions_are_confined() {
    let reg = Reg::start();
    let c = reg.c();
    let loc = c
        .req("POST", "/v2/mine/blobs/uploads/", &[], b"")
        .header("Location")
        .unwrap()
        .to_string();
    let id = loc.rsplit('/').next().unwrap();
    // Another repository cannot touch the session.
    let r = c.req(
        "PATCH",
        &format!("/v2/theirs/blobs/uploads/{id}"),
        &[],
        b"x",
    );
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    // Made-up and traversal IDs.
    for bad in ["nope", "00000000-0000-4000-8000-000000000000"] {
        let r = c.get(&format!("/v2/mine/blobs/uploads/{bad}"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (404, "BLOB_UPLOAD_UNKNOWN"),
            "{bad}"
        );
    }
    assert_eq!(c.get("/v2/mine/blobs/uploads/..%2F..%2Fblobs").status, 404);
    assert_eq!(
        c.req(
            "PUT",
            &format!(
                "/v2/mine/blobs/uploads/..%2F..%2F{id}?digest={}",
                sha256(b"")
            ),
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(c.get(&loc).status, 204);
}
