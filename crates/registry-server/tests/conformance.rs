//! Walks the distribution spec's endpoint table (end-1 … end-14) against an in-process registry.

mod common;
use common::*;

#[test]
fn end_1_base_and_api_version_header() {
    let reg = Reg::start();
    let c = reg.c();
    let r = c.get("/v2/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    assert_eq!(c.head("/v2/").status, 200);
    // Every answer carries the header, errors too.
    let r = c.get("/v2/nothing/here/at/all/x");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    let r = c.req("POST", "/v2/", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.code(), "UNSUPPORTED");
}

#[test]
fn end_2_blob_get_head_and_ranges() {
    let reg = Reg::start();
    let c = reg.c();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let d = push_blob(&c, "a/b", &data);

    let r = c.get(&format!("/v2/a/b/blobs/{d}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(r.header("Content-Length"), Some("100000"));

    let r = c.head(&format!("/v2/a/b/blobs/{d}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("100000"));
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert!(r.body.is_empty());

    // Resumable pull: Range requests.
    let r = c.req(
        "GET",
        &format!("/v2/a/b/blobs/{d}"),
        &[("Range", "bytes=1000-1999")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 1000-1999/100000"));
    assert_eq!(r.body, &data[1000..2000]);
    let r = c.req(
        "GET",
        &format!("/v2/a/b/blobs/{d}"),
        &[("Range", "bytes=99990-")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[99990..]);
    let r = c.req(
        "GET",
        &format!("/v2/a/b/blobs/{d}"),
        &[("Range", "bytes=-10")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[99990..]);
    let r = c.req(
        "GET",
        &format!("/v2/a/b/blobs/{d}"),
        &[("Range", "bytes=100000-")],
        b"",
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */100000"));

    // Unknown blob, and a blob that lives in another repository only.
    let missing = sha256(b"missing");
    let r = c.get(&format!("/v2/a/b/blobs/{missing}"));
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    assert_eq!(c.head(&format!("/v2/a/b/blobs/{missing}")).status, 404);
    let r = c.get(&format!("/v2/other/blobs/{d}"));
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
}

#[test]
fn end_3_manifests_by_tag_and_digest_with_media_types() {
    let reg = Reg::start();
    let c = reg.c();
    let img = push_image(&c, "repo", "v1", "one");
    for reference in ["v1", img.digest.as_str()] {
        let r = c.get(&format!("/v2/repo/manifests/{reference}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, img.manifest);
        assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("Docker-Content-Digest"), Some(img.digest.as_str()));
        let r = c.head(&format!("/v2/repo/manifests/{reference}"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Length"),
            Some(img.manifest.len().to_string().as_str())
        );
        assert_eq!(r.header("Docker-Content-Digest"), Some(img.digest.as_str()));
    }
    // Served as stored whatever the Accept header says.
    let r = c.req(
        "GET",
        "/v2/repo/manifests/v1",
        &[("Accept", DOCKER_MANIFEST)],
        b"",
    );
    assert_eq!(
        (r.status, r.header("Content-Type")),
        (200, Some(OCI_MANIFEST))
    );

    // Docker schema 2 manifest and manifest list.
    let layer = push_blob(&c, "repo", b"docker layer");
    let config = push_blob(&c, "repo", br#"{"os":"linux"}"#);
    let dm = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config, "size": 14},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer, "size": 12}],
    }))
    .unwrap();
    let r = put_manifest(&c, "repo", "docker", DOCKER_MANIFEST, &dm);
    assert_eq!(r.status, 201, "{}", r.text());
    let dmd = sha256(&dm);
    assert_eq!(r.header("Docker-Content-Digest"), Some(dmd.as_str()));
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/repo/manifests/{dmd}").as_str())
    );
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": dmd, "size": dm.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": img.digest, "size": img.manifest.len(),
             "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    }))
    .unwrap();
    assert_eq!(
        put_manifest(&c, "repo", "multi", DOCKER_LIST, &list).status,
        201
    );
    let r = c.get("/v2/repo/manifests/multi");
    assert_eq!(
        (r.header("Content-Type"), r.body.clone()),
        (Some(DOCKER_LIST), list)
    );
    let r = c.get("/v2/repo/manifests/docker");
    assert_eq!(r.header("Content-Type"), Some(DOCKER_MANIFEST));

    // An OCI index.
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": img.digest, "size": img.manifest.len()}],
    }))
    .unwrap();
    assert_eq!(
        put_manifest(&c, "repo", "index", OCI_INDEX, &idx).status,
        201
    );
    assert_eq!(
        c.get("/v2/repo/manifests/index").header("Content-Type"),
        Some(OCI_INDEX)
    );

    // Unknown tag, digest and repository.
    for path in [
        "/v2/repo/manifests/nope".to_string(),
        format!("/v2/repo/manifests/{}", sha256(b"x")),
        "/v2/unknown/repo/manifests/v1".to_string(),
    ] {
        let r = c.get(&path);
        assert_eq!(
            (r.status, r.code().as_str()),
            (404, "MANIFEST_UNKNOWN"),
            "{path}"
        );
        assert_eq!(c.head(&path).status, 404);
    }
}

#[test]
fn end_4a_5_6_13_chunked_upload() {
    let reg = Reg::start();
    let c = reg.c();
    let data: Vec<u8> = (0..30_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let d = sha256(&data);

    // end-4a: open a session.
    let r = c.req("POST", "/v2/up/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202);
    let loc = r.header("Location").unwrap().to_string();
    assert!(loc.starts_with("/v2/up/blobs/uploads/"), "{loc}");
    assert!(r.header("Docker-Upload-UUID").is_some());
    assert_eq!(r.header("Range"), Some("0-0"));

    // end-5: first chunk.
    let r = c.req(
        "PATCH",
        &loc,
        &[
            ("Content-Range", "0-9999"),
            ("Content-Type", "application/octet-stream"),
        ],
        &data[..10_000],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("Range"), Some("0-9999"));
    let loc = r.header("Location").unwrap().to_string();

    // Out of order: 416 with the current range.
    let r = c.req(
        "PATCH",
        &loc,
        &[("Content-Range", "20000-29999")],
        &data[20_000..],
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Range"), Some("0-9999"));
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    // A chunk that repeats data already sent is out of order too.
    let r = c.req(
        "PATCH",
        &loc,
        &[("Content-Range", "0-9999")],
        &data[..10_000],
    );
    assert_eq!(r.status, 416);

    // end-13: status after the 416.
    let r = c.get(&loc);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Range"), Some("0-9999"));
    assert_eq!(r.header("Location"), Some(loc.as_str()));

    // A second chunk without Content-Range (streamed, as docker does).
    let r = c.req("PATCH", &loc, &[], &data[10_000..20_000]);
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range"), Some("0-19999"));

    // end-6: close with the final chunk in the PUT.
    let r = c.req(
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("Content-Range", "20000-29999")],
        &data[20_000..],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/up/blobs/{d}").as_str())
    );
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(c.get(&format!("/v2/up/blobs/{d}")).body, data);
    // The session is over.
    let r = c.get(&loc);
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));

    // POST then PUT with the whole blob.
    let other = b"monolithic in a put".to_vec();
    let r = c.req("POST", "/v2/up/blobs/uploads/", &[], b"");
    let loc = r.header("Location").unwrap().to_string();
    let od = sha256(&other);
    let r = c.req("PUT", &format!("{loc}?digest={od}"), &[], &other);
    assert_eq!(r.status, 201);
    assert_eq!(c.get(&format!("/v2/up/blobs/{od}")).body, other);

    // A final PATCH then an empty PUT.
    let r = c.req("POST", "/v2/up/blobs/uploads", &[], b"");
    let loc = r.header("Location").unwrap().to_string();
    let third = b"patched then closed".to_vec();
    assert_eq!(c.req("PATCH", &loc, &[], &third).status, 202);
    let r = c.req("PUT", &format!("{loc}?digest={}", sha256(&third)), &[], b"");
    assert_eq!(r.status, 201);
}

#[test]
fn end_4b_monolithic_post_and_4c_digest_algorithm() {
    let reg = Reg::start();
    let c = reg.c();
    let d = push_blob(&c, "mono", b"one request");
    assert_eq!(c.get(&format!("/v2/mono/blobs/{d}")).body, b"one request");
    let r = c.req(
        "POST",
        &format!("/v2/mono/blobs/uploads/?digest={}", sha256(b"other")),
        &[],
        b"not other",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));

    // sha512 uploads.
    use sha2::Digest as _;
    let data = b"sha512 content";
    let d512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)));
    let r = c.req(
        "POST",
        "/v2/mono/blobs/uploads/?digest-algorithm=sha512",
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
    let loc = r.header("Location").unwrap().to_string();
    assert_eq!(c.req("PATCH", &loc, &[], data).status, 202);
    let r = c.req("PUT", &format!("{loc}?digest={d512}"), &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = c.get(&format!("/v2/mono/blobs/{d512}"));
    assert_eq!((r.status, r.body.as_slice()), (200, &data[..]));
    // A sha256 session can still be closed with a sha512 digest (the file is re-hashed).
    let r = c.req("POST", "/v2/mono/blobs/uploads/", &[], b"");
    let loc = r.header("Location").unwrap().to_string();
    let r = c.req("PUT", &format!("{loc}?digest={d512}"), &[], data);
    assert_eq!(r.status, 201);
    let r = c.req(
        "POST",
        "/v2/mono/blobs/uploads/?digest-algorithm=md5",
        &[],
        b"",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
}

#[test]
fn end_7_manifest_put_with_tags_and_size_limit() {
    let reg = Reg::start();
    let c = reg.c();
    let img = push_image(&c, "seven", "first", "7");
    // end-7b: by digest, with tag parameters.
    let r = c.req(
        "PUT",
        &format!("/v2/seven/manifests/{}?tag=a&tag=b&tag=c", img.digest),
        &[("Content-Type", OCI_MANIFEST)],
        &img.manifest,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let mut tags: Vec<&str> = r.headers_all("OCI-Tag");
    tags.sort();
    assert_eq!(tags, vec!["a", "b", "c"]);
    for t in ["a", "b", "c", "first"] {
        assert_eq!(
            c.get(&format!("/v2/seven/manifests/{t}"))
                .header("Docker-Content-Digest"),
            Some(img.digest.as_str())
        );
    }
    // Retagging moves the tag (and the cache follows).
    let other = push_image(&c, "seven", "first", "8");
    assert_eq!(
        c.get("/v2/seven/manifests/first")
            .header("Docker-Content-Digest"),
        Some(other.digest.as_str())
    );
    // Over 4 MiB: 413.
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = put_manifest(&c, "seven", "big", OCI_MANIFEST, &big);
    assert_eq!((r.status, r.code().as_str()), (413, "MANIFEST_INVALID"));
    // Exactly 4 MiB is accepted (padding whitespace is valid JSON).
    let mut exact = img.manifest.clone();
    exact.resize(4 * 1024 * 1024, b' ');
    let r = put_manifest(&c, "seven", "exact", OCI_MANIFEST, &exact);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(c.get("/v2/seven/manifests/exact").body, exact);
}

#[test]
fn end_8_tags_list_pagination() {
    let reg = Reg::start();
    let c = reg.c();
    let img = push_image(&c, "tags/repo", "t0", "x");
    for t in ["b", "a", "d", "c", "E"] {
        assert_eq!(
            put_manifest(&c, "tags/repo", t, OCI_MANIFEST, &img.manifest).status,
            201
        );
    }
    let r = c.get("/v2/tags/repo/tags/list");
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["name"], "tags/repo");
    assert_eq!(
        j["tags"],
        serde_json::json!(["E", "a", "b", "c", "d", "t0"])
    );
    assert!(r.header("Link").is_none());

    // Walk the pages by following Link headers.
    let mut path = "/v2/tags/repo/tags/list?n=2".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = c.get(&path);
        assert_eq!(r.status, 200);
        let tags: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
        assert!(tags.len() <= 2);
        seen.extend(tags);
        pages += 1;
        match r.header("Link") {
            Some(l) => {
                assert!(l.ends_with(r#">; rel="next""#), "{l}");
                path = l[1..l.find('>').unwrap()].to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen, vec!["E", "a", "b", "c", "d", "t0"]);
    assert_eq!(pages, 3);

    let j = c.get("/v2/tags/repo/tags/list?n=2&last=b").json();
    assert_eq!(j["tags"], serde_json::json!(["c", "d"]));
    let j = c.get("/v2/tags/repo/tags/list?last=c").json();
    assert_eq!(j["tags"], serde_json::json!(["d", "t0"]));
    let r = c.get("/v2/tags/repo/tags/list?n=0");
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    assert!(r.header("Link").is_none());

    let r = c.get("/v2/no/such/repo/tags/list");
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
}

#[test]
fn end_9_10_deletes() {
    let reg = Reg::start();
    let c = reg.c();
    let img = push_image(&c, "del", "v1", "d");
    assert_eq!(
        put_manifest(&c, "del", "v2", OCI_MANIFEST, &img.manifest).status,
        201
    );

    // Delete a tag: the manifest stays reachable by digest and by its other tag.
    assert_eq!(c.delete("/v2/del/manifests/v1").status, 202);
    assert_eq!(c.get("/v2/del/manifests/v1").status, 404);
    assert_eq!(c.get("/v2/del/manifests/v2").status, 200);
    assert_eq!(
        c.get(&format!("/v2/del/manifests/{}", img.digest)).status,
        200
    );
    let r = c.delete("/v2/del/manifests/v1");
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));

    // Delete by digest: every tag pointing at it goes too.
    assert_eq!(
        c.delete(&format!("/v2/del/manifests/{}", img.digest))
            .status,
        202
    );
    assert_eq!(
        c.get(&format!("/v2/del/manifests/{}", img.digest)).status,
        404
    );
    assert_eq!(c.get("/v2/del/manifests/v2").status, 404);
    assert_eq!(
        c.get("/v2/del/tags/list").json()["tags"],
        serde_json::json!([])
    );
    assert_eq!(
        c.delete(&format!("/v2/del/manifests/{}", img.digest))
            .status,
        404
    );

    // end-10: blobs.
    let l = &img.layers[0];
    assert_eq!(c.delete(&format!("/v2/del/blobs/{l}")).status, 202);
    assert_eq!(c.get(&format!("/v2/del/blobs/{l}")).status, 404);
    let r = c.delete(&format!("/v2/del/blobs/{l}"));
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
}

#[test]
fn deletes_can_be_disabled() {
    let reg = Reg::start_with(|c| c.delete_enabled = false);
    let c = reg.c();
    let img = push_image(&c, "keep", "v1", "k");
    let r = c.delete("/v2/keep/manifests/v1");
    assert_eq!((r.status, r.code().as_str()), (405, "UNSUPPORTED"));
    let r = c.delete(&format!("/v2/keep/blobs/{}", img.layers[0]));
    assert_eq!(r.status, 405);
    assert_eq!(c.get("/v2/keep/manifests/v1").status, 200);
}

#[test]
fn end_11_cross_repository_mount() {
    let reg = Reg::start();
    let c = reg.c();
    let d = push_blob(&c, "src/repo", b"shared layer");
    let r = c.req(
        "POST",
        &format!("/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/dst/repo/blobs/{d}").as_str())
    );
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(
        c.get(&format!("/v2/dst/repo/blobs/{d}")).body,
        b"shared layer"
    );

    // A blob the source does not have: an ordinary upload session starts instead.
    let missing = sha256(b"not there");
    let r = c.req(
        "POST",
        &format!("/v2/dst/repo/blobs/uploads/?mount={missing}&from=src/repo"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
    assert!(
        r.header("Location")
            .unwrap()
            .starts_with("/v2/dst/repo/blobs/uploads/")
    );
    // From a repository that does not have it (even though the registry does).
    let r = c.req(
        "POST",
        &format!("/v2/third/blobs/uploads/?mount={d}&from=elsewhere"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
}

#[test]
fn end_12_referrers_with_artifact_type_filter() {
    let reg = Reg::start();
    let c = reg.c();
    let img = push_image(&c, "ref", "v1", "subject");
    let empty = push_blob(&c, "ref", b"{}");
    let payload = push_blob(&c, "ref", b"signature bytes");
    let mut referrers = Vec::new();
    for (i, at) in [
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
    ]
    .iter()
    .enumerate()
    {
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": at,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": payload, "size": 15}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": img.digest, "size": img.manifest.len()},
            "annotations": {"n": i.to_string()},
        }))
        .unwrap();
        let d = sha256(&m);
        let r = put_manifest(&c, "ref", &d, OCI_MANIFEST, &m);
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("OCI-Subject"), Some(img.digest.as_str()));
        referrers.push((d, m));
    }
    // A referrer whose config media type stands in for the missing artifactType.
    let cfg_typed = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.config", "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": img.digest, "size": img.manifest.len()},
    }))
    .unwrap();
    let cfg_d = sha256(&cfg_typed);
    assert_eq!(
        put_manifest(&c, "ref", &cfg_d, OCI_MANIFEST, &cfg_typed).status,
        201
    );

    let r = c.get(&format!("/v2/ref/referrers/{}", img.digest));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    let j = r.json();
    assert_eq!(j["schemaVersion"], 2);
    assert_eq!(j["mediaType"], OCI_INDEX);
    let list = j["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let sbom = list
        .iter()
        .find(|m| m["digest"] == referrers[0].0.as_str())
        .unwrap();
    assert_eq!(sbom["artifactType"], "application/vnd.example.sbom");
    assert_eq!(sbom["annotations"]["n"], "0");
    assert_eq!(sbom["size"], referrers[0].1.len());
    assert_eq!(sbom["mediaType"], OCI_MANIFEST);
    let typed = list.iter().find(|m| m["digest"] == cfg_d.as_str()).unwrap();
    assert_eq!(typed["artifactType"], "application/vnd.example.config");

    // end-12b: filtered.
    let r = c.get(&format!(
        "/v2/ref/referrers/{}?artifactType=application/vnd.example.sig",
        img.digest
    ));
    assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"));
    let list = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], referrers[1].0.as_str());

    // Deleting a referrer removes it from the list.
    assert_eq!(
        c.delete(&format!("/v2/ref/manifests/{}", referrers[1].0))
            .status,
        202
    );
    let list = c.get(&format!("/v2/ref/referrers/{}", img.digest)).json()["manifests"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(list, 2);

    // No referrers: an empty index, not 404. A malformed digest: 400.
    let r = c.get(&format!("/v2/ref/referrers/{}", sha256(b"lonely")));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    let r = c.get("/v2/ref/referrers/sha256:nothex");
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));

    // The subject may be pushed after its referrers.
    let late = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "x/y",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(b"future"), "size": 6},
    }))
    .unwrap();
    assert_eq!(
        put_manifest(&c, "ref", &sha256(&late), OCI_MANIFEST, &late).status,
        201
    );
}

#[test]
fn end_14_cancel_upload() {
    let reg = Reg::start();
    let c = reg.c();
    let r = c.req("POST", "/v2/cancel/blobs/uploads/", &[], b"");
    let loc = r.header("Location").unwrap().to_string();
    assert_eq!(c.req("PATCH", &loc, &[], b"some data").status, 202);
    assert_eq!(c.delete(&loc).status, 204);
    let r = c.get(&loc);
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    let r = c.req("PATCH", &loc, &[], b"more");
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    assert_eq!(c.delete(&loc).status, 404);
    assert!(files_under(&reg.root().join("uploads")).is_empty());
}

#[test]
fn catalog_pagination_and_search() {
    let reg = Reg::start();
    let c = reg.c();
    for name in ["zeta/app", "alpha/web", "alpha/db", "mid"] {
        push_image(&c, name, "latest", name);
    }
    let r = c.get("/v2/_catalog");
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["alpha/db", "alpha/web", "mid", "zeta/app"])
    );
    let r = c.get("/v2/_catalog?n=3");
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["alpha/db", "alpha/web", "mid"])
    );
    let link = r.header("Link").unwrap();
    assert_eq!(link, r#"</v2/_catalog?last=mid&n=3>; rel="next""#);
    let r = c.get("/v2/_catalog?last=mid&n=3");
    assert_eq!(r.json()["repositories"], serde_json::json!(["zeta/app"]));
    assert!(r.header("Link").is_none());

    let r = c.get("/v1/search?q=alpha&n=25");
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["num_results"], 2);
    assert_eq!(j["query"], "alpha");
    assert_eq!(j["results"][0]["name"], "alpha/db");
    assert_eq!(j["results"][0]["description"], "");
    assert_eq!(j["results"][0]["star_count"], 0);
    assert_eq!(j["results"][0]["is_official"], false);
    assert_eq!(j["results"][0]["is_automated"], false);
    let j = c.get("/v1/search?q=a&n=1").json();
    assert_eq!(
        (
            j["num_results"].as_u64(),
            j["results"].as_array().unwrap().len()
        ),
        (Some(3), 1)
    );
    assert_eq!(c.get("/v1/search?q=nothing").json()["num_results"], 0);
}

#[test]
fn index_needs_its_manifests_and_too_many_uploads() {
    let reg = Reg::start_with(|c| c.max_uploads = 2);
    let c = reg.c();
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"child"), "size": 5}],
    }))
    .unwrap();
    let r = put_manifest(&c, "idx", "v1", OCI_INDEX, &idx);
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    assert_eq!(r.json()["errors"][0]["detail"]["digest"], sha256(b"child"));

    assert_eq!(
        c.req("POST", "/v2/idx/blobs/uploads/", &[], b"").status,
        202
    );
    assert_eq!(
        c.req("POST", "/v2/idx/blobs/uploads/", &[], b"").status,
        202
    );
    let r = c.req("POST", "/v2/idx/blobs/uploads/", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (429, "TOOMANYREQUESTS"));
    assert!(r.header("Retry-After").is_some());
}

#[test]
fn conditional_manifest_get() {
    let reg = Reg::start();
    let c = reg.c();
    let img = push_image(&c, "etag", "v1", "e");
    let r = c.req(
        "GET",
        "/v2/etag/manifests/v1",
        &[("If-None-Match", &format!("\"{}\"", img.digest))],
        b"",
    );
    assert_eq!(r.status, 304);
}
