//! `/images/…`: list, inspect, history, tag, delete, prune, load, save (get) and import (create).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use berth_api::models::{
    DeleteItem, GraphDriver, HistoryItem, ImageInspect, ImageMetadata, ImagePruneReport,
    ImageSummary, RootFs,
};
use berth_api::stream::JsonMessage;
use berth_image::config::{ImageConfig, chain_ids};
use berth_image::store::{self, ImageRecord};
use berth_image::{Digest, Reference};
use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::daemon::{Daemon, driver_name};
use crate::glob::path_match;
use crate::http::{
    ApiError, ApiResult, ChannelWriter, body_reader, ok_json, parse_time_filter, status_only,
    streaming,
};
use crate::server::Ctx;

/// Publishes an image event (`tag`, `untag`, `delete`, `import`, `load`, `save`).
fn image_event(d: &Daemon, action: &str, id: &str, name: Option<&str>) {
    let mut attrs = std::collections::BTreeMap::new();
    if let Some(n) = name {
        attrs.insert("name".to_string(), n.to_string());
    }
    d.events.publish("image", action, id, attrs);
}

fn secs(ns: i64) -> i64 {
    ns / 1_000_000_000
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

fn summary(
    img: &ImageRecord,
    tags: &[Reference],
    digests: &[Reference],
    labels: BTreeMap<String, String>,
) -> ImageSummary {
    ImageSummary {
        id: img.id.to_string(),
        parent_id: img
            .parent
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        repo_tags: tags.iter().map(|t| t.familiar_string()).collect(),
        repo_digests: digests.iter().map(|t| t.familiar_string()).collect(),
        created: secs(img.created_ns),
        size: img.size as i64,
        shared_size: -1,
        labels,
        containers: -1,
    }
}

/// Every image as `GET /images/json` shows it with `all=1` and no filters.
pub fn summaries(d: &Daemon, all: bool) -> Result<Vec<ImageSummary>, ApiError> {
    list_filtered(d, all, &crate::http::Filters::default())
}

fn list_filtered(
    d: &Daemon,
    all: bool,
    f: &crate::http::Filters,
) -> Result<Vec<ImageSummary>, ApiError> {
    f.only(&["reference", "before", "since", "dangling", "label", "until"])?;
    let dangling = f.bool("dangling")?;
    let images = d.images.images()?;
    let refs = d.images.names_by_image()?;
    let by_name = |name: &str| -> Result<i64, ApiError> { Ok(d.images.resolve(name)?.created_ns) };
    let before = f
        .get("before")
        .iter()
        .map(|n| by_name(n))
        .collect::<Result<Vec<_>, _>>()?;
    let since = f
        .get("since")
        .iter()
        .map(|n| by_name(n))
        .collect::<Result<Vec<_>, _>>()?;
    let until = f
        .get("until")
        .iter()
        .map(|v| parse_time_filter(v).map(|s| s * 1_000_000_000))
        .collect::<Result<Vec<_>, _>>()?;
    let parents: HashSet<Digest> = images.iter().filter_map(|i| i.parent.clone()).collect();
    let patterns = f.get("reference");
    let mut out = Vec::new();
    for img in &images {
        let names = refs.get(&img.id).cloned().unwrap_or_default();
        let (tags, digests) = (names.tags, names.digests);
        if before.iter().any(|b| img.created_ns >= *b) || since.iter().any(|s| img.created_ns <= *s)
        {
            continue;
        }
        if until.iter().any(|u| img.created_ns >= *u) {
            continue;
        }
        match dangling {
            Some(true) if !tags.is_empty() => continue,
            Some(false) if tags.is_empty() => continue,
            _ => {}
        }
        // Intermediate images (untagged parents of others) only with `all`.
        if !all
            && tags.is_empty()
            && digests.is_empty()
            && parents.contains(&img.id)
            && dangling.is_none()
        {
            continue;
        }
        let (tags, digests) = if patterns.is_empty() {
            (tags, digests)
        } else {
            let keep = |r: &Reference| -> Result<bool, ApiError> {
                for p in patterns {
                    let m = path_match(p, &r.familiar_string()).map_err(ApiError::bad_request)?
                        || path_match(p, &r.familiar_name()).unwrap_or(false);
                    if m {
                        return Ok(true);
                    }
                }
                Ok(false)
            };
            let t: Vec<Reference> = tags
                .into_iter()
                .filter_map(|r| keep(&r).map(|k| k.then_some(r)).transpose())
                .collect::<Result<_, _>>()?;
            let dg: Vec<Reference> = digests
                .into_iter()
                .filter_map(|r| keep(&r).map(|k| k.then_some(r)).transpose())
                .collect::<Result<_, _>>()?;
            if t.is_empty() && dg.is_empty() {
                continue;
            }
            (t, dg)
        };
        let needs_labels = !f.get("label").is_empty();
        let labels = d
            .images
            .config(&img.id)
            .map(|c| c.labels())
            .unwrap_or_default();
        if needs_labels && !f.labels_match("label", &labels) {
            continue;
        }
        out.push(summary(img, &tags, &digests, labels));
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

pub async fn list(ctx: Ctx) -> ApiResult {
    let all = ctx.query.bool("all");
    let f = ctx.query.filters()?;
    let d = ctx.daemon.clone();
    let mut out = blocking(move || list_filtered(&d, all, &f)).await?;
    if ctx.query.bool("shared-size") {
        for s in &mut out {
            s.shared_size = 0;
        }
    }
    ok_json(&out)
}

/// Docker shows an image's run config with the container-config fields it implies.
fn inspect_config(cfg: &ImageConfig) -> Value {
    let mut base = json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null,
    });
    if let Some(rc) = &cfg.config
        && let (Value::Object(b), Ok(Value::Object(c))) = (&mut base, serde_json::to_value(rc))
    {
        for (k, v) in c {
            b.insert(k, v);
        }
    }
    base
}

pub fn inspect_image(d: &Daemon, img: &ImageRecord) -> Result<ImageInspect, ApiError> {
    let cfg = d.images.config(&img.id)?;
    let names = d.images.names_of(&img.id)?;
    let (tags, digests) = (names.tags, names.digests);
    let top = img.top_chain_id();
    let mut data = BTreeMap::new();
    if let Some(t) = &top {
        data.insert(
            "UpperDir".to_string(),
            d.config
                .data_root
                .join("snapshots")
                .join(t.hex())
                .display()
                .to_string(),
        );
    }
    Ok(ImageInspect {
        id: img.id.to_string(),
        repo_tags: tags.iter().map(|t| t.familiar_string()).collect(),
        repo_digests: digests.iter().map(|t| t.familiar_string()).collect(),
        parent: img
            .parent
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        comment: cfg.comment().unwrap_or_default().to_string(),
        created: cfg.created.clone().unwrap_or_default(),
        docker_version: cfg.docker_version().unwrap_or_default().to_string(),
        author: cfg.author.clone().unwrap_or_default(),
        config: inspect_config(&cfg),
        architecture: cfg.architecture.clone(),
        variant: cfg.variant.clone(),
        os: cfg.os.clone(),
        os_version: cfg.os_version.clone(),
        size: img.size as i64,
        graph_driver: GraphDriver {
            name: driver_name(d.images.snapshots.kind()).into(),
            data,
        },
        root_fs: RootFs {
            kind: "layers".into(),
            layers: img.diff_ids.iter().map(|l| l.to_string()).collect(),
        },
        metadata: ImageMetadata {
            last_tag_time: img.last_tag_time.clone(),
        },
    })
}

pub async fn inspect(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let name = name.to_string();
    let out = blocking(move || {
        let img = d.images.resolve(&name)?;
        inspect_image(&d, &img)
    })
    .await?;
    ok_json(&out)
}

pub async fn history(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let name = name.to_string();
    let out = blocking(move || -> Result<Vec<HistoryItem>, ApiError> {
        let img = d.images.resolve(&name)?;
        let cfg = d.images.config(&img.id)?;
        // Local ancestors mark the history entry where each of them ends.
        let mut marks: HashMap<usize, Digest> = HashMap::new();
        let mut cur = Some(img.clone());
        let mut guard = 0;
        while let Some(i) = cur.take() {
            guard += 1;
            if guard > 4096 {
                break;
            }
            let len = d.images.config(&i.id).map(|c| c.history.len()).unwrap_or(0);
            marks.entry(len).or_insert(i.id.clone());
            cur = match &i.parent {
                Some(p) => d.images.image(p)?,
                None => None,
            };
        }
        let chains = chain_ids(&img.diff_ids);
        let mut sizes = Vec::new();
        for c in &chains {
            sizes.push(d.images.layer(c)?.map(|l| l.size as i64).unwrap_or(0));
        }
        let mut layer_idx = 0;
        let mut items = Vec::new();
        let history = if cfg.history.is_empty() {
            // No history recorded: one entry per layer, as Docker synthesizes.
            img.diff_ids.iter().map(|_| Default::default()).collect()
        } else {
            cfg.history.clone()
        };
        for (i, h) in history.iter().enumerate() {
            let size = if h.empty_layer {
                0
            } else {
                let s = sizes.get(layer_idx).copied().unwrap_or(0);
                layer_idx += 1;
                s
            };
            let id = marks.get(&(i + 1)).cloned();
            let tags = match &id {
                Some(id) => {
                    let t = d.images.names_of(id)?.tags;
                    if t.is_empty() {
                        None
                    } else {
                        Some(t.iter().map(|r| r.familiar_string()).collect())
                    }
                }
                None => None,
            };
            items.push(HistoryItem {
                id: id
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "<missing>".into()),
                created: secs(store::unix_nanos(h.created.as_deref())),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags,
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        items.reverse();
        if let Some(first) = items.first_mut() {
            first.id = img.id.to_string();
        }
        Ok(items)
    })
    .await?;
    ok_json(&out)
}

pub async fn tag(ctx: Ctx, name: &str) -> ApiResult {
    let repo = ctx.query.get("repo").unwrap_or("").to_string();
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let d = ctx.daemon.clone();
    let name = name.to_string();
    let d2 = d.clone();
    let (id, r) = blocking(move || {
        let r = repo_tag(&repo, &tag)?;
        let img = d2.images.resolve(&name)?;
        d2.images.tag(&img.id, &r)?;
        Ok((img.id, r))
    })
    .await?;
    image_event(&d, "tag", &id.to_string(), Some(&r.familiar_string()));
    status_only(StatusCode::CREATED)
}

/// Docker's RepoTagReference: `repo` (no tag or digest in it unless `tag` is empty) + `tag`.
fn repo_tag(repo: &str, tag: &str) -> Result<Reference, ApiError> {
    if repo.is_empty() {
        return Err(ApiError::bad_request(
            "repository name must have at least one component",
        ));
    }
    let r = Reference::parse_normalized(repo).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if r.digest().is_some() {
        return Err(ApiError::bad_request(
            "refusing to create a tag with a digest reference",
        ));
    }
    if tag.is_empty() {
        return Ok(r.with_default_tag());
    }
    if r.tag().is_some() {
        return Err(ApiError::bad_request(format!(
            "invalid reference format: repository name {repo} already has a tag"
        )));
    }
    let with = r
        .with_tag(tag)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(with)
}

fn delete_items(items: Vec<store::DeleteItem>) -> Vec<DeleteItem> {
    items
        .into_iter()
        .map(|i| match i {
            store::DeleteItem::Untagged(s) => DeleteItem {
                untagged: Some(s),
                deleted: None,
            },
            store::DeleteItem::Deleted(d) => DeleteItem {
                untagged: None,
                deleted: Some(d.to_string()),
            },
        })
        .collect()
}

pub async fn delete(ctx: Ctx, name: &str) -> ApiResult {
    let force = ctx.query.bool("force");
    let noprune = ctx.query.bool("noprune");
    let d = ctx.daemon.clone();
    let name = name.to_string();
    let users = crate::handlers::containers::ContainerUsers(d.clone());
    let d2 = d.clone();
    let lookup = name.clone();
    let (id, items) = blocking(move || {
        let id = d2.images.resolve(&lookup)?.id;
        Ok((id, d2.images.delete(&lookup, force, !noprune, &users)?))
    })
    .await?;
    for i in &items {
        match i {
            store::DeleteItem::Untagged(n) => image_event(&d, "untag", &id.to_string(), Some(n)),
            store::DeleteItem::Deleted(x) if *x == id => {
                image_event(&d, "delete", &id.to_string(), None)
            }
            _ => {}
        }
    }
    ok_json(&delete_items(items))
}

pub async fn prune(ctx: Ctx) -> ApiResult {
    let f = ctx.query.filters()?;
    f.only(&["dangling", "until", "label", "label!"])?;
    let dangling_only = f.bool("dangling")?.unwrap_or(true);
    let until = f
        .get("until")
        .iter()
        .map(|v| parse_time_filter(v).map(|s| s * 1_000_000_000))
        .collect::<Result<Vec<_>, _>>()?;
    let d = ctx.daemon.clone();
    let users = crate::handlers::containers::ContainerUsers(d.clone());
    let report = blocking(move || -> Result<ImagePruneReport, ApiError> {
        let refs = d.images.names_by_image()?;
        let images = d.images.images()?;
        let before: i64 = {
            let mut seen = HashSet::new();
            let mut t = 0i64;
            for i in &images {
                for c in chain_ids(&i.diff_ids) {
                    if seen.insert(c.clone()) {
                        t += d.images.layer(&c)?.map(|l| l.size as i64).unwrap_or(0);
                    }
                }
            }
            t
        };
        let parents: HashSet<Digest> = images.iter().filter_map(|i| i.parent.clone()).collect();
        let mut deleted = Vec::new();
        for img in &images {
            let tagged = refs.get(&img.id).is_some_and(|n| !n.tags.is_empty());
            if dangling_only && tagged {
                continue;
            }
            // Parents of other images go with their children, not on their own.
            if parents.contains(&img.id) {
                continue;
            }
            if until.iter().any(|u| img.created_ns >= *u) {
                continue;
            }
            let labels = d
                .images
                .config(&img.id)
                .map(|c| c.labels())
                .unwrap_or_default();
            if !f.labels_match("label", &labels) {
                continue;
            }
            if f.get("label!").iter().any(|l| match l.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                None => labels.contains_key(l.as_str()),
            }) {
                continue;
            }
            match d
                .images
                .delete(&img.id.to_string(), !dangling_only, true, &users)
            {
                Ok(items) => deleted.extend(delete_items(items)),
                Err(berth_image::Error::NotFound(_)) => {}
                Err(berth_image::Error::Conflict(m)) => {
                    tracing::debug!("prune skipped {}: {m}", img.id)
                }
                Err(e) => return Err(e.into()),
            }
        }
        let after: i64 = {
            let mut seen = HashSet::new();
            let mut t = 0i64;
            for i in d.images.images()? {
                for c in chain_ids(&i.diff_ids) {
                    if seen.insert(c.clone()) {
                        t += d.images.layer(&c)?.map(|l| l.size as i64).unwrap_or(0);
                    }
                }
            }
            t
        };
        Ok(ImagePruneReport {
            images_deleted: if deleted.is_empty() {
                None
            } else {
                Some(deleted)
            },
            space_reclaimed: (before - after).max(0),
        })
    })
    .await?;
    ok_json(&report)
}

pub async fn load(ctx: Ctx) -> ApiResult {
    let quiet = ctx.query.bool("quiet");
    let d = ctx.daemon.clone();
    let body = ctx.req.into_body();
    let d2 = d.clone();
    let loaded = blocking(move || {
        let reader = body_reader(body);
        Ok(berth_image::archive::load(&d2.images, reader)?)
    })
    .await?;
    for l in &loaded {
        image_event(
            &d,
            "load",
            &l.id.to_string(),
            l.tags.first().map(|t| t.familiar_string()).as_deref(),
        );
    }
    let mut out = Vec::new();
    for l in &loaded {
        for (t, old) in &l.moved {
            out.extend(
                JsonMessage::stream(format!(
                    "The image {} already exists, renaming the old one with ID {old} to empty string\n",
                    t.familiar_string()
                ))
                .to_line(),
            );
        }
        if l.tags.is_empty() {
            out.extend(JsonMessage::stream(format!("Loaded image ID: {}\n", l.id)).to_line());
        }
        for t in &l.tags {
            out.extend(
                JsonMessage::stream(format!("Loaded image: {}\n", t.familiar_string())).to_line(),
            );
        }
    }
    let _ = quiet;
    let mut r = http::Response::new(crate::http::full(out));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

pub async fn save(ctx: Ctx, one: Option<String>) -> ApiResult {
    let names: Vec<String> = match one {
        Some(n) => vec![n],
        None => ctx.query.all("names"),
    };
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "no images named: give at least one image to save",
        ));
    }
    let d: Arc<Daemon> = ctx.daemon.clone();
    // Resolve every name first so a typo is a clean 404, not a broken stream.
    {
        let d = d.clone();
        let names = names.clone();
        blocking(move || {
            for n in &names {
                d.images.resolve(n)?;
            }
            Ok(())
        })
        .await?;
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx);
        if let Err(e) = berth_image::archive::save(&d.images, &names, &mut w) {
            tracing::warn!("save failed: {e}");
            w.fail(std::io::Error::other(e.to_string()));
        }
    });
    Ok(streaming(StatusCode::OK, "application/x-tar", rx))
}

pub async fn create(ctx: Ctx) -> ApiResult {
    if ctx.query.get("fromImage").is_some() {
        return crate::handlers::distribution::pull(ctx).await;
    }
    let Some(src) = ctx.query.get("fromSrc").map(str::to_string) else {
        return Err(ApiError::bad_request(
            "either fromImage or fromSrc is required",
        ));
    };
    let repo = ctx.query.get("repo").unwrap_or("").to_string();
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let tag_ref = if repo.is_empty() {
        None
    } else {
        Some(repo_tag(&repo, &tag)?)
    };
    let opts = berth_image::import::ImportOptions {
        source: src.clone(),
        message: ctx
            .query
            .get("message")
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        changes: ctx.query.all("changes"),
        tag: tag_ref,
    };
    let d = ctx.daemon.clone();
    let body = ctx.req.into_body();
    let d2 = d.clone();
    let id = blocking(move || {
        if src == "-" {
            return Ok(berth_image::import::import(
                &d2.images,
                body_reader(body),
                &opts,
            )?);
        }
        let resp = berth_api::client::fetch_url(&src)
            .map_err(|e| ApiError::bad_request(format!("cannot download {src}: {e}")))?;
        Ok(berth_image::import::import(&d2.images, resp, &opts)?)
    })
    .await?;
    image_event(&d, "import", &id.to_string(), None);
    let line = JsonMessage::status(id.to_string()).to_line();
    let mut r = http::Response::new(crate::http::full(line));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
