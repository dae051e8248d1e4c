//! `GET /events`: past events since `since`, then live ones until `until` (or forever).

use http::StatusCode;
use tokio::sync::mpsc;

use crate::events::Event;
use crate::http::{ApiResult, Filters, parse_time_filter, streaming};
use crate::server::Ctx;

/// docker's event filters: type, event (action), container, image, label.
fn matches(e: &Event, f: &Filters) -> bool {
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
        f.get(key).is_empty() || f.get(key).iter().any(|v| pred(v))
    };
    let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str).unwrap_or("");
    any("type", &|v| v == e.kind)
        && any("event", &|v| {
            v == e.action || e.action.starts_with(&format!("{v}:"))
        })
        && any("container", &|v| {
            e.kind == "container" && (e.actor.id.starts_with(v) || attr("name") == v)
        })
        && any("image", &|v| {
            attr("image") == v || (e.kind == "image" && e.actor.id == v)
        })
        && f.get("label").iter().all(|l| match l.split_once('=') {
            Some((k, v)) => attr(k) == v,
            None => e.actor.attributes.contains_key(l.as_str()),
        })
}

fn line(e: &Event) -> bytes::Bytes {
    let mut v = serde_json::to_vec(e).expect("events serialize");
    v.push(b'\n');
    bytes::Bytes::from(v)
}

pub async fn events(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let f = ctx.query.filters()?;
    let time = |k: &str| -> Result<Option<i64>, crate::http::ApiError> {
        match ctx.query.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => match v.parse::<f64>() {
                Ok(x) => Ok(Some((x * 1e9) as i64)),
                Err(_) => Ok(Some(parse_time_filter(v)? * 1_000_000_000)),
            },
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    let mut live = d.events.subscribe();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut last = 0i64;
        if let Some(s) = since {
            for e in d.events.since(s) {
                if until.is_some_and(|u| e.time_nano > u) {
                    return;
                }
                last = e.time_nano;
                if matches(&e, &f) && tx.send(Ok(line(&e))).await.is_err() {
                    return;
                }
            }
        }
        let deadline = until.map(|u| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            tokio::time::Instant::now() + std::time::Duration::from_nanos((u - now).max(0) as u64)
        });
        loop {
            let next = match deadline {
                Some(dl) => match tokio::time::timeout_at(dl, live.recv()).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => live.recv().await,
            };
            match next {
                Ok(e) => {
                    // History already sent these.
                    if e.time_nano <= last {
                        continue;
                    }
                    if matches(&e, &f) && tx.send(Ok(line(&e))).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
    Ok(streaming(StatusCode::OK, "application/json", rx))
}
