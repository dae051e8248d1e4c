//! The Dockerfile builder's executor (`POST /build`): stages run as tasks (independent ones in
//! parallel, only those the target needs), steps run in order within a stage. Every step is
//! keyed for the build cache; a miss runs it: RUN in a real container committed as a layer of
//! its diff, COPY/ADD/WORKDIR by writing files into a snapshot the builder mounts itself,
//! everything else as a config-only image. Output is the classic builder's JSON stream, each
//! stage's lines in Dockerfile order even when stages run at the same time.

pub mod cache;
pub mod fs;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use berth_api::engine::{ContainerCreateBody, HostConfig};
use berth_api::stream::{ErrorDetail, JsonMessage};
use berth_build::args::BuildArgs;
use berth_build::cache::{KeyBuilder, TreeSum};
use berth_build::context::{Context, Kind, path_match};
use berth_build::instructions::{CmdLine, Command, Dockerfile, Instruction, parse_trigger};
use berth_build::shell::Lex;
use berth_build::stages;
use berth_image::config::{RunConfig, chain_ids};
use berth_image::content::TempDir;
use berth_image::{Digest, Reference};
use berth_runtime::protocol::Request;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::containers::{lifecycle, shim};
use crate::daemon::Daemon;
use crate::http::ApiError;
use fs::{NewLayer, Scratch, TarOut};

/// A failed build: docker's message, and for a failed RUN its exit code.
#[derive(Debug, Clone)]
pub struct BuildError {
    pub message: String,
    pub code: Option<i32>,
    /// A dependency failed: the real error is reported by that stage.
    pub cascaded: bool,
}

impl BuildError {
    pub fn msg(m: impl Into<String>) -> BuildError {
        BuildError {
            message: m.into(),
            code: None,
            cascaded: false,
        }
    }
    fn at(self, line: usize) -> BuildError {
        if self.cascaded {
            return self;
        }
        BuildError {
            message: format!("dockerfile line {line}: {}", self.message),
            ..self
        }
    }
}

impl From<berth_image::Error> for BuildError {
    fn from(e: berth_image::Error) -> Self {
        BuildError::msg(e.to_string())
    }
}

impl From<berth_image::content::ContentError> for BuildError {
    fn from(e: berth_image::content::ContentError) -> Self {
        BuildError::msg(e.to_string())
    }
}

impl From<ApiError> for BuildError {
    fn from(e: ApiError) -> Self {
        BuildError::msg(e.message)
    }
}

impl From<tokio::task::JoinError> for BuildError {
    fn from(e: tokio::task::JoinError) -> Self {
        BuildError::msg(format!("build task failed: {e}"))
    }
}

/// What the request asks for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub force_remove: bool,
    pub target: Option<String>,
    pub quiet: bool,
    pub network_mode: String,
}

/// The context and Dockerfile, read before the answer starts (so their errors are HTTP errors).
pub struct Prepared {
    pub ctx: Context,
    pub df: Dockerfile,
    pub _tmp: TempDir,
}

/// Reads the context from the request body and parses the Dockerfile. Blocking.
pub fn prepare(d: &Daemon, body: impl Read, dockerfile: &str) -> Result<Prepared, ApiError> {
    let tmp = d.images.content.temp_dir("build")?;
    let mut ctx = Context::read(body, &tmp.path().join("context.tar"))
        .map_err(|e| ApiError::bad_request(format!("reading the build context: {e}")))?;
    let name = if dockerfile.is_empty() {
        "Dockerfile"
    } else {
        dockerfile
    };
    let text = match ctx.read_file(name) {
        Ok(t) => t,
        Err(_) if name == "Dockerfile" => ctx
            .read_file("dockerfile")
            .map_err(|_| ApiError::bad_request("Cannot locate specified Dockerfile: Dockerfile"))?,
        Err(_) => {
            return Err(ApiError::bad_request(format!(
                "Cannot locate specified Dockerfile: {name}"
            )));
        }
    };
    if let Ok(ignore) = ctx.read_file(".dockerignore") {
        let m = berth_build::dockerignore::Matcher::from_text(&String::from_utf8_lossy(&ignore))
            .map_err(ApiError::bad_request)?;
        ctx.apply_ignore(&m);
    }
    let df = berth_build::instructions::parse_dockerfile(&text)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Prepared { ctx, df, _tmp: tmp })
}

/// One line of output, before numbering and JSON.
enum Msg {
    Step(String),
    Text(String),
    Aux(serde_json::Value),
    Error(BuildError),
    Id(String),
}

/// Where a stage writes; the router prints slots in order.
#[derive(Clone)]
struct Out {
    slot: usize,
    tx: mpsc::UnboundedSender<(usize, Option<Msg>)>,
}

impl Out {
    fn send(&self, m: Msg) {
        let _ = self.tx.send((self.slot, Some(m)));
    }
    fn step(&self, s: &str) {
        self.send(Msg::Step(s.to_string()));
    }
    fn line(&self, s: impl Into<String>) {
        let mut s = s.into();
        s.push('\n');
        self.send(Msg::Text(s));
    }
    fn done(&self) {
        let _ = self.tx.send((self.slot, None));
    }
}

fn json_line(m: &JsonMessage) -> Bytes {
    Bytes::from(m.to_line())
}

/// Prints slot after slot; lines of later slots wait until the earlier ones are done.
async fn router(
    mut rx: mpsc::UnboundedReceiver<(usize, Option<Msg>)>,
    slots: usize,
    total: usize,
    quiet: bool,
    tx: mpsc::Sender<io::Result<Bytes>>,
) {
    let mut cur = 0;
    let mut queued: HashMap<usize, Vec<Option<Msg>>> = HashMap::new();
    let mut n = 0;
    let mut hidden: Vec<Bytes> = Vec::new();
    let emit = |m: Msg, n: &mut usize, hidden: &mut Vec<Bytes>| -> Vec<Bytes> {
        let line = match m {
            Msg::Step(s) => {
                *n += 1;
                json_line(&JsonMessage::stream(format!("Step {n}/{total} : {s}\n")))
            }
            Msg::Text(s) => json_line(&JsonMessage::stream(s)),
            Msg::Aux(v) => json_line(&JsonMessage {
                aux: Some(v),
                ..Default::default()
            }),
            Msg::Id(id) => return vec![json_line(&JsonMessage::stream(format!("{id}\n")))],
            Msg::Error(e) => {
                let mut m = JsonMessage::error(e.message.clone());
                if let Some(c) = e.code {
                    m.error_detail = Some(ErrorDetail {
                        code: Some(c as i64),
                        message: e.message,
                    });
                }
                let mut out = std::mem::take(hidden);
                out.push(json_line(&m));
                return out;
            }
        };
        if quiet {
            hidden.push(line);
            Vec::new()
        } else {
            vec![line]
        }
    };
    while cur < slots {
        // Anything queued for the current slot first.
        if let Some(q) = queued.remove(&cur) {
            let mut finished = false;
            for m in q {
                match m {
                    Some(m) => {
                        for b in emit(m, &mut n, &mut hidden) {
                            let _ = tx.send(Ok(b)).await;
                        }
                    }
                    None => finished = true,
                }
            }
            if finished {
                cur += 1;
            }
            continue;
        }
        let Some((slot, m)) = rx.recv().await else {
            break;
        };
        if slot != cur {
            queued.entry(slot).or_default().push(m);
            continue;
        }
        match m {
            Some(m) => {
                for b in emit(m, &mut n, &mut hidden) {
                    let _ = tx.send(Ok(b)).await;
                }
            }
            None => cur += 1,
        }
    }
}

/// What a finished stage hands to the stages that use it.
#[derive(Clone, Debug)]
struct StageResult {
    image: Option<Digest>,
}

type StageRx = watch::Receiver<Option<Result<StageResult, BuildError>>>;

struct Build {
    d: Arc<Daemon>,
    opts: Options,
    ctx: Context,
    df: Dockerfile,
    lex: Lex,
    meta: BuildArgs,
    results: Vec<Option<StageRx>>,
    new_entries: Mutex<Vec<(String, cache::CacheRecord)>>,
    hits: Mutex<Vec<String>>,
    referenced: Mutex<BuildArgs>,
    target: usize,
}

/// The state of the stage being built.
struct St {
    idx: usize,
    image: Option<Digest>,
    diff_ids: Vec<Digest>,
    config: RunConfig,
    author: Option<String>,
    args: BuildArgs,
    cmd_set: bool,
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    tokio::task::spawn_blocking(f).await?
}

fn short(id: &Digest) -> &str {
    &id.hex()[..12]
}

/// Runs a prepared build, writing the classic builder's stream to `tx`.
pub async fn run(d: Arc<Daemon>, p: Prepared, opts: Options, tx: mpsc::Sender<io::Result<Bytes>>) {
    let Prepared { ctx, mut df, _tmp } = p;
    let quiet = opts.quiet;
    // Target and needed stages.
    let target = match &opts.target {
        Some(t) if !t.is_empty() => match df.stage_index(t) {
            Some(i) => i,
            None => {
                let _ = tx
                    .send(Ok(json_line(&JsonMessage::error(format!(
                        "target stage \"{t}\" could not be found"
                    )))))
                    .await;
                return;
            }
        },
        _ => df.stages.len() - 1,
    };
    df.stages.truncate(target + 1);
    // `--label`s become LABEL steps at the end of the target stage.
    for (k, v) in &opts.labels {
        df.stages[target].commands.push(Command {
            inst: Instruction::Label(vec![(k.clone(), v.clone())]),
            code: format!("LABEL {k}={v:?}"),
            line: 0,
        });
    }
    let lex = Lex::new(df.escape);
    let mut meta = BuildArgs::new(opts.build_args.clone());
    let mut meta_err = None;
    for c in &df.meta_args {
        if let Instruction::Arg(pairs) = &c.inst {
            for (k, v) in pairs {
                let env = meta.all_allowed();
                let v = match v {
                    Some(v) => match lex.process_word(v, &env) {
                        Ok(x) => Some(x),
                        Err(e) => {
                            meta_err = Some(BuildError::msg(e.to_string()).at(c.line));
                            None
                        }
                    },
                    None => None,
                };
                meta.add_meta(k, v);
            }
        }
    }
    let deps = stages::dependencies(&df, &meta.meta_env());
    let needed = stages::needed(&deps, target);
    let total = df.meta_args.len()
        + needed
            .iter()
            .map(|&i| 1 + df.stages[i].commands.len())
            .sum::<usize>();
    // Slots: 0 = meta ARGs, then each needed stage, then the summary.
    let slots = needed.len() + 2;
    let (otx, orx) = mpsc::unbounded_channel();
    let printer = tokio::spawn(router(orx, slots, total, quiet, tx));
    let pre = Out {
        slot: 0,
        tx: otx.clone(),
    };
    for c in &df.meta_args {
        pre.step(&c.code);
    }
    pre.done();
    let summary = Out {
        slot: slots - 1,
        tx: otx.clone(),
    };
    if let Some(e) = meta_err {
        for i in 0..needed.len() {
            Out {
                slot: i + 1,
                tx: otx.clone(),
            }
            .done();
        }
        summary.send(Msg::Error(e));
        summary.done();
        drop(otx);
        let _ = printer.await;
        return;
    }
    let mut senders = Vec::new();
    let mut results: Vec<Option<StageRx>> = vec![None; df.stages.len()];
    for &i in &needed {
        let (s, r) = watch::channel(None);
        senders.push((i, s));
        results[i] = Some(r);
    }
    let referenced = meta.clone();
    let b = Arc::new(Build {
        d: d.clone(),
        opts,
        ctx,
        df,
        lex,
        meta,
        results,
        new_entries: Mutex::new(Vec::new()),
        hits: Mutex::new(Vec::new()),
        referenced: Mutex::new(referenced),
        target,
    });
    let mut handles = Vec::new();
    for (slot, (i, sender)) in senders.into_iter().enumerate() {
        let b = b.clone();
        let out = Out {
            slot: slot + 1,
            tx: otx.clone(),
        };
        handles.push((
            i,
            tokio::spawn(async move {
                let r = b.clone().stage(i, &out).await;
                out.done();
                let _ = sender.send(Some(r.clone()));
                r
            }),
        ));
    }
    let mut first_err: Option<BuildError> = None;
    let mut final_image = None;
    for (i, h) in handles {
        let r = match h.await {
            Ok(r) => r,
            Err(e) => Err(BuildError::from(e)),
        };
        match r {
            Ok(res) if i == b.target => final_image = res.image,
            Ok(_) => {}
            Err(e) => {
                if first_err.is_none()
                    || (first_err.as_ref().is_some_and(|f| f.cascaded) && !e.cascaded)
                {
                    first_err = Some(e);
                }
            }
        }
    }
    // The cache learns from every step that finished, even in a failed build.
    {
        let new = std::mem::take(&mut *b.new_entries.lock().unwrap());
        let hits = std::mem::take(&mut *b.hits.lock().unwrap());
        let d2 = d.clone();
        let _ = blocking(move || cache::record(&d2, &new, &hits).map_err(BuildError::from)).await;
    }
    match (first_err, final_image) {
        (Some(e), _) => summary.send(Msg::Error(e)),
        (None, None) => summary.send(Msg::Error(BuildError::msg(
            "No image was generated. Is your Dockerfile empty?",
        ))),
        (None, Some(id)) => {
            let unused = b.referenced.lock().unwrap().unused();
            if !unused.is_empty() {
                summary.line(format!(
                    "[Warning] One or more build-args [{}] were not consumed",
                    unused.join(" ")
                ));
            }
            summary.send(Msg::Aux(json!({"ID": id.to_string()})));
            summary.line(format!("Successfully built {}", short(&id)));
            let tags = b.opts.tags.clone();
            let d2 = d.clone();
            let id2 = id.clone();
            let tagged = blocking(move || {
                for t in &tags {
                    d2.images.tag(&id2, t)?;
                    let mut attrs = BTreeMap::new();
                    attrs.insert("name".to_string(), t.familiar_string());
                    d2.events.publish("image", "tag", &id2.to_string(), attrs);
                }
                Ok(())
            })
            .await;
            match tagged {
                Ok(()) => {
                    for t in &b.opts.tags {
                        summary.line(format!(
                            "Successfully tagged {}",
                            t.clone().with_default_tag().familiar_string()
                        ));
                    }
                    if quiet {
                        summary.send(Msg::Id(id.to_string()));
                    }
                }
                Err(e) => summary.send(Msg::Error(e)),
            }
        }
    }
    summary.done();
    drop(otx);
    let _ = printer.await;
    drop(b);
}

fn expand_err(e: impl std::fmt::Display) -> BuildError {
    BuildError::msg(e.to_string())
}

impl Build {
    async fn stage(self: Arc<Self>, idx: usize, out: &Out) -> Result<StageResult, BuildError> {
        let stage = self.df.stages[idx].clone();
        out.step(&stage.code);
        let mut args = self.meta.for_stage();
        let meta_env = self.meta.meta_env();
        let base = self
            .lex
            .process_word(&stage.base, &meta_env)
            .map_err(|e| expand_err(e).at(stage.line))?;
        if base.is_empty() {
            return Err(
                BuildError::msg(format!("base name ({}) should not be blank", stage.base))
                    .at(stage.line),
            );
        }
        let image = if let Some(dep) = stages::stage_ref(&self.df, &base, false, idx) {
            self.wait_stage(dep).await?.image
        } else if base == "scratch" {
            None
        } else {
            let d = self.d.clone();
            let name = base.clone();
            let found = blocking(move || match d.images.resolve(&name) {
                Ok(img) => Ok(Some(img.id)),
                Err(berth_image::Error::NotFound(_)) => Ok(None),
                Err(e) => Err(e.into()),
            })
            .await?;
            match found {
                Some(id) => Some(id),
                None => {
                    return Err(BuildError::msg(format!(
                        "pull access denied for {base}, repository does not exist or may require 'docker login': no such image locally (berth build uses local images; pull or load it first)"
                    ))
                    .at(stage.line));
                }
            }
        };
        let mut st = St {
            idx,
            image: None,
            diff_ids: Vec::new(),
            config: RunConfig::default(),
            author: None,
            args: std::mem::take(&mut args),
            cmd_set: false,
        };
        self.set_image(&mut st, image.clone()).await?;
        if st
            .config
            .env
            .as_ref()
            .is_none_or(|e| !e.iter().any(|x| x.starts_with("PATH=")))
        {
            st.config
                .env
                .get_or_insert_with(Vec::new)
                .push(DEFAULT_PATH.into());
        }
        out.line(format!(" ---> {}", image.as_ref().map(short).unwrap_or("")));
        // ONBUILD triggers of the base image run first.
        let triggers = st.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            out.line(format!(
                "# Executing {} build trigger{}",
                triggers.len(),
                if triggers.len() > 1 { "s" } else { "" }
            ));
            for t in &triggers {
                let cmd =
                    parse_trigger(t).map_err(|e| BuildError::msg(e.message).at(stage.line))?;
                self.dispatch(&mut st, &cmd, out)
                    .await
                    .map_err(|e| e.at(stage.line))?;
            }
        }
        for cmd in &stage.commands {
            out.step(&cmd.code);
            self.dispatch(&mut st, cmd, out)
                .await
                .map_err(|e| if cmd.line > 0 { e.at(cmd.line) } else { e })?;
            out.line(format!(
                " ---> {}",
                st.image.as_ref().map(short).unwrap_or("")
            ));
        }
        self.referenced.lock().unwrap().merge_referenced(&st.args);
        // A stage of only config steps on scratch still is an image.
        if st.image.is_none() {
            let cfg = st.config.clone();
            let author = st.author.clone();
            let d = self.d.clone();
            let id = blocking(move || fs::commit_step(&d, None, None, &cfg, author.as_deref(), ""))
                .await?;
            st.image = Some(id);
        }
        Ok(StageResult { image: st.image })
    }

    async fn wait_stage(&self, i: usize) -> Result<StageResult, BuildError> {
        let Some(mut rx) = self.results[i].clone() else {
            return Err(BuildError::msg(format!(
                "stage {i} is not part of this build"
            )));
        };
        let v = rx
            .wait_for(|v| v.is_some())
            .await
            .map_err(|_| BuildError::msg("a stage this one needs went away"))?;
        match v.clone().expect("some") {
            Ok(r) => Ok(r),
            Err(_) => Err(BuildError {
                message: "a stage this one needs failed".into(),
                code: None,
                cascaded: true,
            }),
        }
    }

    /// Moves the stage to image `id`, reading its config and layers.
    async fn set_image(&self, st: &mut St, id: Option<Digest>) -> Result<(), BuildError> {
        let Some(id) = id else {
            st.image = None;
            st.diff_ids = Vec::new();
            return Ok(());
        };
        let d = self.d.clone();
        let id2 = id.clone();
        let (rec, cfg) = blocking(move || {
            let rec = d
                .images
                .image(&id2)?
                .ok_or_else(|| BuildError::msg(format!("No such image: {id2}")))?;
            let cfg = d.images.config(&id2)?;
            Ok((rec, cfg))
        })
        .await?;
        st.image = Some(id);
        st.diff_ids = rec.diff_ids;
        st.config = cfg.config.unwrap_or_default();
        Ok(())
    }

    fn env(&self, st: &St) -> Vec<String> {
        let env = st.config.env.clone().unwrap_or_default();
        let mut all = env.clone();
        all.extend(st.args.filter_allowed(&env));
        all
    }

    fn word(&self, st: &St, w: &str) -> Result<String, BuildError> {
        self.lex.process_word(w, &self.env(st)).map_err(expand_err)
    }

    fn parent_key(st: &St) -> String {
        st.image.as_ref().map(|i| i.to_string()).unwrap_or_default()
    }

    /// A cache hit moves the stage to the cached image.
    async fn cached(&self, st: &mut St, key: &str, out: &Out) -> Result<bool, BuildError> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let d = self.d.clone();
        let k = key.to_string();
        let hit = blocking(move || cache::lookup(&d, &k).map_err(BuildError::from)).await?;
        let Some(id) = hit else {
            return Ok(false);
        };
        out.line(" ---> Using cache");
        self.set_image(st, Some(id)).await?;
        self.hits.lock().unwrap().push(key.to_string());
        Ok(true)
    }

    fn remember(&self, key: String, image: &Digest, description: &str, size: u64) {
        let t = cache::now();
        self.new_entries.lock().unwrap().push((
            key,
            cache::CacheRecord {
                image: image.clone(),
                description: description.to_string(),
                size,
                created: t,
                last_used: t,
                usage_count: 0,
            },
        ));
    }

    fn shell(st: &St) -> Vec<String> {
        st.config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn nop(st: &St, comment: &str) -> String {
        let mut v = Self::shell(st);
        v.push(format!("#(nop) {comment}"));
        v.join(" ")
    }

    /// A config-only step: cached by parent + resulting config.
    async fn commit_meta(
        &self,
        st: &mut St,
        created_by: String,
        out: &Out,
    ) -> Result<(), BuildError> {
        let mut k = KeyBuilder::new("config", &Self::parent_key(st));
        k.add(&serde_json::to_string(&st.config).expect("serializes"))
            .add(st.author.as_deref().unwrap_or(""))
            .add(&created_by);
        let key = k.finish();
        let config = st.config.clone();
        if self.cached(st, &key, out).await? {
            st.config = config;
            return Ok(());
        }
        let d = self.d.clone();
        let parent = st.image.clone();
        let author = st.author.clone();
        let cb = created_by.clone();
        let id = blocking(move || {
            fs::commit_step(&d, parent.as_ref(), None, &config, author.as_deref(), &cb)
        })
        .await?;
        self.remember(key, &id, &created_by, 0);
        self.set_image(st, Some(id)).await?;
        Ok(())
    }

    async fn commit_layer(
        &self,
        st: &mut St,
        key: String,
        layer: NewLayer,
        created_by: String,
    ) -> Result<(), BuildError> {
        let d = self.d.clone();
        let parent = st.image.clone();
        let author = st.author.clone();
        let config = st.config.clone();
        let cb = created_by.clone();
        let size = layer.record.size;
        let id = blocking(move || {
            let id = fs::commit_step(
                &d,
                parent.as_ref(),
                Some(&layer.record),
                &config,
                author.as_deref(),
                &cb,
            );
            drop(layer);
            id
        })
        .await?;
        self.remember(key, &id, &created_by, size);
        self.set_image(st, Some(id)).await
    }

    fn resolve_cmd(st: &St, c: &CmdLine) -> Vec<String> {
        let mut args = c.args.clone();
        if !c.files.is_empty() && args.len() == 1 && c.prepend_shell {
            if matches!(berth_build::parser::parse_heredoc(&args[0]), Ok(Some(_))) {
                let f = &c.files[0];
                let data = if f.chomp {
                    berth_build::parser::chomp_heredoc(&f.content)
                } else {
                    f.content.clone()
                };
                args = vec![data];
            } else {
                let mut s = args[0].clone();
                for f in &c.files {
                    s.push('\n');
                    s.push_str(&f.content);
                    s.push_str(&f.name);
                }
                args = vec![s];
            }
        }
        if c.prepend_shell && !args.is_empty() {
            let mut v = Self::shell(st);
            v.extend(args);
            v
        } else {
            args
        }
    }

    fn dispatch<'a>(
        &'a self,
        st: &'a mut St,
        cmd: &'a Command,
        out: &'a Out,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BuildError>> + Send + 'a>>
    {
        Box::pin(async move {
            match &cmd.inst {
                Instruction::Env(pairs) => {
                    let mut msg = String::from("ENV");
                    for (k, v) in pairs {
                        let k = self.word(st, k)?;
                        let v = self.word(st, v)?;
                        msg.push_str(&format!(" {k}={v}"));
                        let env = st.config.env.get_or_insert_with(Vec::new);
                        let kv = format!("{k}={v}");
                        match env
                            .iter_mut()
                            .find(|e| e.split('=').next() == Some(k.as_str()))
                        {
                            Some(e) => *e = kv,
                            None => env.push(kv),
                        }
                    }
                    let cb = Self::nop(st, &format!(" {msg}"));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Maintainer(m) => {
                    st.author = Some(m.clone());
                    let cb = Self::nop(st, &format!(" MAINTAINER {m}"));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Label(pairs) => {
                    let mut msg = String::from("LABEL");
                    for (k, v) in pairs {
                        let (k, v) = if cmd.line == 0 {
                            (k.clone(), v.clone())
                        } else {
                            (self.word(st, k)?, self.word(st, v)?)
                        };
                        msg.push_str(&format!(" {k}={v}"));
                        st.config
                            .labels
                            .get_or_insert_with(BTreeMap::new)
                            .insert(k, v);
                    }
                    let cb = Self::nop(st, &format!(" {msg}"));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Onbuild(expr) => {
                    st.config
                        .on_build
                        .get_or_insert_with(Vec::new)
                        .push(expr.clone());
                    let cb = Self::nop(st, &format!(" ONBUILD {expr}"));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Cmd(c) => {
                    let v = Self::resolve_cmd(st, c);
                    let cb = Self::nop(st, &format!(" CMD {}", go_quote_list(&v)));
                    st.config.cmd = Some(v);
                    if !c.args.is_empty() {
                        st.cmd_set = true;
                    }
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Entrypoint(c) => {
                    let v = Self::resolve_cmd(st, c);
                    let cb = Self::nop(st, &format!(" ENTRYPOINT {}", go_quote_list(&v)));
                    st.config.entrypoint = if v.is_empty() { None } else { Some(v) };
                    if !st.cmd_set {
                        st.config.cmd = None;
                    }
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Healthcheck(h) => {
                    let mut hc = serde_json::Map::new();
                    hc.insert("Test".into(), json!(h.test));
                    let ns = |d: std::time::Duration| d.as_nanos() as i64;
                    if !h.interval.is_zero() {
                        hc.insert("Interval".into(), json!(ns(h.interval)));
                    }
                    if !h.timeout.is_zero() {
                        hc.insert("Timeout".into(), json!(ns(h.timeout)));
                    }
                    if !h.start_period.is_zero() {
                        hc.insert("StartPeriod".into(), json!(ns(h.start_period)));
                    }
                    if !h.start_interval.is_zero() {
                        hc.insert("StartInterval".into(), json!(ns(h.start_interval)));
                    }
                    if h.retries != 0 {
                        hc.insert("Retries".into(), json!(h.retries));
                    }
                    if let Some(old) = st.config.healthcheck.as_ref().and_then(|o| o.get("Test"))
                        && old.get(0).and_then(|v| v.as_str()) != Some("NONE")
                    {
                        out.line(format!("Note: overriding previous HEALTHCHECK: {old}"));
                    }
                    st.config.healthcheck = Some(serde_json::Value::Object(hc));
                    let cb = Self::nop(st, &format!(" HEALTHCHECK {}", h.test.join(" ")));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Expose(ports) => {
                    let env = self.env(st);
                    let mut all = Vec::new();
                    for p in ports {
                        all.extend(self.lex.process_words(p, &env).map_err(expand_err)?);
                    }
                    let map = st.config.exposed_ports.get_or_insert_with(BTreeMap::new);
                    for p in &all {
                        for k in parse_port_spec(p)? {
                            map.insert(k, json!({}));
                        }
                    }
                    let cb = Self::nop(st, &format!(" EXPOSE {}", all.join(" ")));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::User(u) => {
                    let u = self.word(st, u)?;
                    st.config.user = Some(u.clone());
                    let cb = Self::nop(st, &format!(" USER {u}"));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Volume(vs) => {
                    let mut list = Vec::new();
                    for v in vs {
                        let v = self.word(st, v)?;
                        if v.is_empty() {
                            return Err(BuildError::msg(
                                "VOLUME specified can not be an empty string",
                            ));
                        }
                        st.config
                            .volumes
                            .get_or_insert_with(BTreeMap::new)
                            .insert(v.clone(), json!({}));
                        list.push(v);
                    }
                    let cb = Self::nop(st, &format!(" VOLUME [{}]", list.join(" ")));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::StopSignal(s) => {
                    let s = self.word(st, s)?;
                    lifecycle::parse_signal(&s).map_err(|e| BuildError::msg(e.message))?;
                    st.config.stop_signal = Some(s.clone());
                    let cb = Self::nop(st, &format!(" STOPSIGNAL {s}"));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Arg(pairs) => {
                    let mut parts = Vec::new();
                    for (k, v) in pairs {
                        let k = self.word(st, k)?;
                        let v = match v {
                            Some(v) => Some(self.word(st, v)?),
                            None => None,
                        };
                        parts.push(match &v {
                            Some(v) => format!("{k}={v}"),
                            None => k.clone(),
                        });
                        st.args.add_arg(&k, v);
                    }
                    let cb = Self::nop(st, &format!(" ARG {}", parts.join(" ")));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Shell(sh) => {
                    st.config.shell = Some(sh.clone());
                    let cb = Self::nop(st, &format!(" SHELL [{}]", sh.join(" ")));
                    self.commit_meta(st, cb, out).await
                }
                Instruction::Workdir(p) => self.workdir(st, p, out).await,
                Instruction::Run { cmd: c, flags } => {
                    if let Some(f) = flags.first() {
                        return Err(BuildError::msg(format!(
                            "the {} option is not supported by berth's builder",
                            f.split('=').next().unwrap_or(f)
                        )));
                    }
                    self.run_step(st, c, out).await
                }
                Instruction::Copy(spec) => self.copy_step(st, spec, "COPY", out).await,
                Instruction::Add(spec) => self.copy_step(st, spec, "ADD", out).await,
            }
        })
    }

    async fn workdir(&self, st: &mut St, p: &str, out: &Out) -> Result<(), BuildError> {
        let p = self.word(st, p)?;
        let wd = fs::normalize_dest(st.config.working_dir.as_deref().unwrap_or("/"), &p);
        let wd = if wd.len() > 1 {
            wd.trim_end_matches('/').to_string()
        } else {
            wd
        };
        st.config.working_dir = Some(wd.clone());
        let cb = Self::nop(st, &format!("WORKDIR {wd}"));
        let mut k = KeyBuilder::new("workdir", &Self::parent_key(st));
        k.add(&serde_json::to_string(&st.config).expect("serializes"))
            .add(&cb);
        let key = k.finish();
        let config = st.config.clone();
        if self.cached(st, &key, out).await? {
            st.config = config;
            return Ok(());
        }
        let d = self.d.clone();
        let top = chain_ids(&st.diff_ids).last().cloned();
        let diff_ids = st.diff_ids.clone();
        let wd2 = wd.clone();
        let tmp = d.images.content.temp_dir("build-tar")?;
        let layer = blocking(move || {
            let s = Scratch::new(&d, top.as_ref())?;
            if fs::is_dir(&s.root, &wd2) {
                return Ok(None);
            }
            let mut t = TarOut::new(tmp.path().join("w.tar"))?;
            fs::mkdirs(&s.root, &wd2, (0, 0), &mut t)?;
            t.extract_into(&s.root)?;
            Ok(Some(s.into_layer(&diff_ids)?))
        })
        .await?;
        match layer {
            Some(l) => self.commit_layer(st, key, l, cb).await,
            None => {
                let d = self.d.clone();
                let parent = st.image.clone();
                let author = st.author.clone();
                let cb2 = cb.clone();
                let id = blocking(move || {
                    fs::commit_step(&d, parent.as_ref(), None, &config, author.as_deref(), &cb2)
                })
                .await?;
                self.remember(key, &id, &cb, 0);
                self.set_image(st, Some(id)).await
            }
        }
    }

    async fn run_step(&self, st: &mut St, c: &CmdLine, out: &Out) -> Result<(), BuildError> {
        let cmd = Self::resolve_cmd(st, c);
        if cmd.is_empty() {
            return Err(BuildError::msg("RUN requires at least one argument"));
        }
        let env = st.config.env.clone().unwrap_or_default();
        let (run_env, keyed) = st.args.run_env(&env);
        let mut save = Vec::new();
        if !keyed.is_empty() {
            save.push(format!("|{}", keyed.len()));
            save.extend(keyed.iter().cloned());
        }
        save.extend(cmd.iter().cloned());
        let created_by = save.join(" ");
        let mut k = KeyBuilder::new("run", &Self::parent_key(st));
        k.add_all(&save);
        let key = k.finish();
        if self.cached(st, &key, out).await? {
            return Ok(());
        }
        let Some(image) = st.image.clone() else {
            return Err(BuildError::msg(
                "RUN needs a base image with a shell: this stage is FROM scratch with no files",
            ));
        };
        let d = self.d.clone();
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(cmd.clone()),
            entrypoint: Some(Vec::new()),
            env: Some(run_env),
            host_config: Some(HostConfig {
                network_mode: Some(self.opts.network_mode.clone()),
                ..Default::default()
            }),
            labels: Some(HashMap::from([(
                "com.berth.build".to_string(),
                "1".to_string(),
            )])),
            ..Default::default()
        };
        let (id, _) = lifecycle::create(&d, None, body)
            .await
            .map_err(BuildError::from)?;
        let c = d.containers.get(&id).map_err(BuildError::from)?;
        // The step's writes are synced once when it is committed, not at every copy-up.
        let _ = d.images.snapshots.set_volatile(&id);
        out.line(format!(" ---> Running in {}", &id[..12]));
        let result = self.run_container(&c, out).await;
        let outcome = match result {
            Ok(0) => {
                let d2 = d.clone();
                let key2 = id.clone();
                let diff_ids = st.diff_ids.clone();
                blocking(move || fs::layer_from_active(&d2, &key2, &diff_ids)).await
            }
            Ok(code) => Err(BuildError {
                message: format!(
                    "The command '{}' returned a non-zero code: {code}",
                    cmd.join(" ")
                ),
                code: Some(code),
                cascaded: false,
            }),
            Err(e) => Err(e),
        };
        let removed = lifecycle::remove(&d, &c, true, true).await;
        let layer = outcome?;
        if removed.is_ok() {
            out.line(format!("Removing intermediate container {}", &id[..12]));
        }
        self.commit_layer(st, key, layer, created_by).await
    }

    /// Starts a build container with its output attached to the stream; its exit code.
    async fn run_container(
        &self,
        c: &Arc<crate::containers::Container>,
        out: &Out,
    ) -> Result<i32, BuildError> {
        let d = &self.d;
        let (tx, rx) = tokio::sync::oneshot::channel();
        c.pending_attach.lock().unwrap().push(shim::PendingAttach {
            request: Request::Attach {
                stdin: false,
                stdout: true,
                stderr: true,
            },
            tx,
        });
        lifecycle::start(d, c).await.map_err(BuildError::from)?;
        if let Ok(Ok(mut conn)) = rx.await {
            while let Ok(Some((kind, data))) = shim::read_frame(&mut conn).await {
                if kind == berth_runtime::protocol::FRAME_STDOUT
                    || kind == berth_runtime::protocol::FRAME_STDERR
                {
                    out.send(Msg::Text(String::from_utf8_lossy(&data).into_owned()));
                }
            }
        }
        let (code, _) = lifecycle::wait(c, "not-running")
            .await
            .map_err(BuildError::from)?;
        Ok(code as i32)
    }

    async fn copy_step(
        &self,
        st: &mut St,
        spec: &berth_build::instructions::CopySpec,
        cmdname: &str,
        out: &Out,
    ) -> Result<(), BuildError> {
        let env = self.env(st);
        let w = |s: &str| self.lex.process_word(s, &env).map_err(expand_err);
        let sources: Vec<String> = spec
            .sources
            .iter()
            .map(|s| w(s))
            .collect::<Result<_, _>>()?;
        let dest_raw = w(&spec.dest)?;
        let chown = spec.chown.as_deref().map(w).transpose()?;
        let chmod = spec.chmod.as_deref().map(w).transpose()?;
        let chmod_bits = chmod.as_deref().map(fs::parse_chmod).transpose()?;
        let from = spec.from.as_deref().map(w).transpose()?;
        let workdir = st.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let dest = fs::normalize_dest(&workdir, &dest_raw);
        let is_add = cmdname == "ADD";
        let mut k = KeyBuilder::new(cmdname, &Self::parent_key(st));
        k.add(&dest)
            .add(chown.as_deref().unwrap_or(""))
            .add(chmod.as_deref().unwrap_or(""))
            .add_all(&sources);
        for i in &spec.inline {
            let data = if i.expand {
                self.lex
                    .process_word(&i.data, &env)
                    .unwrap_or(i.data.clone())
            } else {
                i.data.clone()
            };
            k.add(&i.name).add(&data);
        }
        // Where the files come from.
        let from_image = match &from {
            Some(f) => {
                let img = match stages::stage_ref(&self.df, f, true, st.idx) {
                    Some(i) => self.wait_stage(i).await?.image,
                    None => {
                        let d = self.d.clone();
                        let name = f.clone();
                        let found = blocking(move || match d.images.resolve(&name) {
                            Ok(i) => Ok(Some(i.id)),
                            Err(_) => Ok(None),
                        })
                        .await?;
                        match found {
                            Some(id) => Some(id),
                            None => {
                                return Err(BuildError::msg(format!(
                                    "invalid from flag value {f}: no build stage or local image named {f:?}"
                                )));
                            }
                        }
                    }
                };
                k.add("from")
                    .add(&img.as_ref().map(|i| i.to_string()).unwrap_or_default());
                Some(img)
            }
            None => None,
        };
        let mut downloads: Vec<(String, PathBuf)> = Vec::new();
        let tmp = self.d.images.content.temp_dir("build-copy")?;
        if from_image.is_none() {
            // Content checksum of the context sources (and downloads for ADD).
            let mut count = spec.inline.len();
            for s in &sources {
                if is_add && (s.starts_with("http://") || s.starts_with("https://")) {
                    let p = tmp.path().join(format!("dl-{}", downloads.len()));
                    let url = s.clone();
                    let p2 = p.clone();
                    let digest = blocking(move || download(&url, &p2)).await?;
                    k.add("url").add(s).add(&digest);
                    downloads.push((s.clone(), p));
                    count += 1;
                    continue;
                }
                let found = fs::context_sources(&self.ctx, std::slice::from_ref(s), cmdname)?;
                count += found.len();
                for src in found {
                    let mut sum = TreeSum::default();
                    let e = src.entry;
                    match e.kind {
                        Kind::Dir => {
                            for (rel, x) in fs::below(&self.ctx, e) {
                                sum.add(&rel, kind_char(x.kind), x.mode, None, &x.link, &x.digest);
                            }
                        }
                        _ => sum.add("", kind_char(e.kind), e.mode, None, &e.link, &e.digest),
                    }
                    k.add(&src.base).add(&sum.finish());
                }
            }
            if count > 1 && !dest.ends_with('/') {
                return Err(BuildError::msg(format!(
                    "When using {cmdname} with more than one source file, the destination must be a directory and end with a /"
                )));
            }
        }
        let key = k.finish();
        let created_by = Self::nop(
            st,
            &format!(
                "{cmdname} {}{} in {dest} ",
                chown
                    .as_ref()
                    .map(|c| format!("--chown={c} "))
                    .unwrap_or_default(),
                sources.join(" ")
            ),
        );
        if self.cached(st, &key, out).await? {
            return Ok(());
        }
        let d = self.d.clone();
        let top = chain_ids(&st.diff_ids).last().cloned();
        let diff_ids = st.diff_ids.clone();
        let job = CopyJob {
            sources,
            inline: spec
                .inline
                .iter()
                .map(|i| {
                    let data = if i.expand {
                        self.lex
                            .process_word(&i.data, &env)
                            .unwrap_or(i.data.clone())
                    } else {
                        i.data.clone()
                    };
                    (i.name.clone(), data)
                })
                .collect(),
            dest,
            chown,
            chmod: chmod_bits,
            is_add,
            cmdname: cmdname.to_string(),
            downloads,
            from_image,
            excludes: spec.excludes.clone(),
        };
        // The context lives in the Build: run the copy on a blocking thread with a scoped borrow.
        let layer = {
            let this: &Build = self;
            let tmp_path = tmp.path().to_path_buf();
            tokio::task::block_in_place(|| {
                let s = Scratch::new(&d, top.as_ref())?;
                job.run(this, &s.root, &tmp_path)?;
                s.into_layer(&diff_ids)
            })?
        };
        drop(tmp);
        self.commit_layer(st, key, layer, created_by).await
    }
}

use std::path::{Path, PathBuf};

fn kind_char(k: Kind) -> char {
    match k {
        Kind::File | Kind::Hardlink => 'f',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Other => 'o',
    }
}

/// Fetches an ADD URL to `path`; returns the content digest. Blocking.
fn download(url: &str, path: &Path) -> Result<String, BuildError> {
    let mut resp = berth_api::client::fetch_url(url)
        .map_err(|e| BuildError::msg(format!("ADD failed: fetching {url}: {e}")))?;
    if resp.status >= 400 {
        return Err(BuildError::msg(format!(
            "ADD failed: fetching {url}: HTTP status {}",
            resp.status
        )));
    }
    let f = std::fs::File::create(path).map_err(fs::io_err("storing a download"))?;
    let mut w = berth_image::digest::DigestWriter::new(f);
    io::copy(&mut resp, &mut w).map_err(fs::io_err("downloading"))?;
    let (_, d, _) = w.finish();
    Ok(d.to_string())
}

/// Go's `%q` of a string slice (`["a" "b"]`), as docker prints CMD/ENTRYPOINT in history.
fn go_quote_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).expect("string"))
        .collect();
    format!("[{}]", items.join(" "))
}

/// `EXPOSE` values: `80`, `80/udp`, `8000-8002/tcp` → `port/proto` keys.
fn parse_port_spec(raw: &str) -> Result<Vec<String>, BuildError> {
    let spec = raw.rsplit(':').next().unwrap_or(raw);
    let (port, proto) = match spec.split_once('/') {
        Some((p, pr)) => (p, pr.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if port.is_empty() {
        return Err(BuildError::msg(format!("no port specified: {raw}<empty>")));
    }
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(BuildError::msg(format!("invalid proto: {proto}")));
    }
    let bad = || BuildError::msg(format!("invalid containerPort: {port}"));
    let (a, b) = match port.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = port.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if b < a {
        return Err(bad());
    }
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// Everything a COPY/ADD needs once the destination snapshot is mounted.
struct CopyJob {
    sources: Vec<String>,
    inline: Vec<(String, String)>,
    dest: String,
    chown: Option<String>,
    chmod: Option<u32>,
    is_add: bool,
    cmdname: String,
    downloads: Vec<(String, PathBuf)>,
    from_image: Option<Option<Digest>>,
    excludes: Vec<String>,
}

impl CopyJob {
    fn excluded(&self, rel: &str) -> bool {
        self.excludes.iter().any(|p| path_match(p, rel))
    }

    /// Where a file source lands: inside `dest` if it names a directory.
    fn file_dest(&self, root: &Path, base: &str) -> String {
        if self.dest.ends_with('/') || fs::is_dir(root, &self.dest) {
            format!("{}/{base}", self.dest.trim_end_matches('/'))
        } else {
            self.dest.clone()
        }
    }

    fn run(&self, b: &Build, root: &Path, tmp: &Path) -> Result<(), BuildError> {
        let owner = match &self.chown {
            Some(c) => Some(fs::parse_chown(root, c)?),
            None => None,
        };
        let dir_owner = owner.unwrap_or((0, 0));
        let mut t = TarOut::new(tmp.join("copy.tar"))?;
        let mut made: HashSet<String> = HashSet::new();
        let mut mkdirs = |t: &mut TarOut, dir: &str| -> Result<(), BuildError> {
            let mut cur = String::new();
            for c in dir.trim_matches('/').split('/').filter(|c| !c.is_empty()) {
                cur.push('/');
                cur.push_str(c);
                if !made.contains(&cur) && !fs::exists(root, &cur) {
                    t.dir(&cur, 0o755, dir_owner)?;
                    made.insert(cur.clone());
                }
            }
            Ok(())
        };
        let parent_of = |p: &str| -> String {
            match p.trim_end_matches('/').rsplit_once('/') {
                Some((a, _)) => a.to_string(),
                None => "/".into(),
            }
        };
        let mode_of = |m: u32| self.chmod.unwrap_or(m);
        let mut archives: Vec<(String, PathBuf, Option<berth_build::context::Entry>)> = Vec::new();
        if let Some(img) = &self.from_image {
            self.copy_from_image(b, img.as_ref(), root, tmp, &mut t, &mut mkdirs)?;
        } else {
            let now = cache::now() as u64;
            for (name, data) in &self.inline {
                let dst = self.file_dest(root, name);
                mkdirs(&mut t, &parent_of(&dst))?;
                t.file(
                    &dst,
                    mode_of(0o644),
                    dir_owner,
                    now,
                    data.len() as u64,
                    data.as_bytes(),
                )?;
            }
            for (url, path) in &self.downloads {
                let base = url
                    .split(['?', '#'])
                    .next()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                if base.is_empty() && self.dest.ends_with('/') {
                    return Err(BuildError::msg(format!(
                        "cannot determine filename for source {url}"
                    )));
                }
                let dst = if base.is_empty() {
                    self.dest.clone()
                } else {
                    self.file_dest(root, &base)
                };
                mkdirs(&mut t, &parent_of(&dst))?;
                let f = std::fs::File::open(path).map_err(fs::io_err("reading a download"))?;
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                t.file(&dst, mode_of(0o600), dir_owner, 0, len, f)?;
            }
            for s in &self.sources {
                if self.is_add && (s.starts_with("http://") || s.starts_with("https://")) {
                    continue;
                }
                for src in fs::context_sources(&b.ctx, std::slice::from_ref(s), &self.cmdname)? {
                    let e = src.entry;
                    match e.kind {
                        Kind::Dir => {
                            let dir = self.dest.trim_end_matches('/').to_string();
                            mkdirs(&mut t, if dir.is_empty() { "/" } else { &dir })?;
                            for (rel, x) in fs::below(&b.ctx, e) {
                                if self.excluded(&rel) {
                                    continue;
                                }
                                let p = format!("{dir}/{rel}");
                                let o = owner.unwrap_or((0, 0));
                                match x.kind {
                                    Kind::Dir => t.dir(&p, mode_of(x.mode), o)?,
                                    Kind::File | Kind::Hardlink => {
                                        let mut data = Vec::new();
                                        b.ctx
                                            .copy_entry(x, &mut data)
                                            .map_err(fs::io_err("reading the context"))?;
                                        t.file(&p, mode_of(x.mode), o, x.mtime, x.size, &data[..])?;
                                    }
                                    Kind::Symlink => t.symlink(&p, &x.link, o, x.mtime)?,
                                    Kind::Other => {}
                                }
                            }
                        }
                        Kind::File | Kind::Hardlink => {
                            let mut data = Vec::new();
                            b.ctx
                                .copy_entry(e, &mut data)
                                .map_err(fs::io_err("reading the context"))?;
                            if self.is_add && is_archive(&data) {
                                archives.push((self.dest.clone(), PathBuf::new(), Some(e.clone())));
                                continue;
                            }
                            let dst = self.file_dest(root, &src.base);
                            mkdirs(&mut t, &parent_of(&dst))?;
                            t.file(
                                &dst,
                                mode_of(e.mode),
                                owner.unwrap_or((0, 0)),
                                e.mtime,
                                e.size,
                                &data[..],
                            )?;
                        }
                        Kind::Symlink | Kind::Other => {}
                    }
                }
            }
            for (dest, _, _) in &archives {
                mkdirs(&mut t, dest.trim_end_matches('/'))?;
            }
        }
        t.extract_into(root)?;
        for (dest, _, e) in archives {
            let e = e.expect("context archive");
            let data = b
                .ctx
                .read_entry(&e)
                .map_err(fs::io_err("reading the context"))?;
            let (_, r) = berth_build::archive::decompress(&data[..])
                .map_err(fs::io_err("reading the archive"))?;
            berth_storage::pathcopy::extract(root, dest.trim_end_matches('/'), r)
                .map_err(|e| BuildError::msg(format!("ADD failed: extracting {}: {e}", e)))?;
        }
        Ok(())
    }

    /// `COPY --from`: the sources are read from the other image's filesystem.
    fn copy_from_image(
        &self,
        b: &Build,
        img: Option<&Digest>,
        root: &Path,
        tmp: &Path,
        t: &mut TarOut,
        mkdirs: &mut dyn FnMut(&mut TarOut, &str) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let d = &b.d;
        let view = d
            .config
            .exec_root
            .join("build")
            .join(format!("from-{}", &crate::containers::new_id()[..16]));
        std::fs::create_dir_all(&view).map_err(fs::io_err("creating a mount point"))?;
        struct Unmount<'a>(&'a Daemon, PathBuf, bool);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                if self.2 {
                    let _ = self.0.images.snapshots.unmount(&self.1);
                }
                let _ = std::fs::remove_dir(&self.1);
            }
        }
        let mut guard = Unmount(d, view.clone(), false);
        if let Some(img) = img {
            let rec = d
                .images
                .image(img)?
                .ok_or_else(|| BuildError::msg(format!("No such image: {img}")))?;
            if let Some(top) = rec.top_chain_id() {
                d.images
                    .snapshots
                    .mount_readonly_view(top.hex(), &view)
                    .map_err(|e| BuildError::msg(format!("mounting the source image: {e}")))?;
                guard.2 = true;
            }
        }
        let mut matched = Vec::new();
        for s in &self.sources {
            let c = berth_build::dockerignore::clean(&format!("/{s}"));
            if berth_build::context::has_wildcards(&c) {
                let (dir, pat) = c.rsplit_once('/').unwrap_or(("", &c));
                let list = berth_storage::pathcopy::stat(&view, &format!("{dir}/"))
                    .ok()
                    .and_then(|_| std::fs::read_dir(view.join(dir.trim_start_matches('/'))).ok());
                let mut names: Vec<String> = list
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| path_match(pat, n))
                    .collect();
                names.sort();
                for n in names {
                    matched.push(format!("{dir}/{n}"));
                }
            } else {
                if berth_storage::pathcopy::stat(&view, &c).is_err() {
                    return Err(BuildError::msg(format!(
                        "{} failed: stat {c}: file does not exist",
                        self.cmdname
                    )));
                }
                matched.push(c);
            }
        }
        if matched.is_empty() {
            return Err(BuildError::msg(format!(
                "{} failed: no source files were specified",
                self.cmdname
            )));
        }
        if matched.len() > 1 && !self.dest.ends_with('/') {
            return Err(BuildError::msg(format!(
                "When using {} with more than one source file, the destination must be a directory and end with a /",
                self.cmdname
            )));
        }
        let owner = match &self.chown {
            Some(c) => Some(fs::parse_chown(root, c)?),
            None => None,
        };
        for (i, src) in matched.iter().enumerate() {
            let src_is_dir = fs::is_dir(&view, src);
            let base = src.rsplit('/').next().unwrap_or("").to_string();
            // A tar of the source rooted at "s" (followed if it is a symlink to a directory).
            let tar_path = tmp.join(format!("from-{i}.tar"));
            {
                let f = std::fs::File::create(&tar_path).map_err(fs::io_err("staging"))?;
                let mut w = std::io::BufWriter::new(f);
                let path = if src_is_dir {
                    format!("{}/", src.trim_end_matches('/'))
                } else {
                    src.clone()
                };
                berth_storage::pathcopy::tar(&view, &path, Some("s"), &mut w)
                    .map_err(|e| BuildError::msg(format!("{} failed: {e}", self.cmdname)))?;
                use std::io::Write;
                w.flush().map_err(fs::io_err("staging"))?;
            }
            let target_root = if src_is_dir {
                let dir = self.dest.trim_end_matches('/').to_string();
                let dir = if dir.is_empty() { "/".to_string() } else { dir };
                mkdirs(t, &dir)?;
                dir
            } else {
                let dst = self.file_dest(root, &base);
                let parent = dst
                    .rsplit_once('/')
                    .map(|(a, _)| a.to_string())
                    .unwrap_or_default();
                mkdirs(t, if parent.is_empty() { "/" } else { &parent })?;
                dst
            };
            let f = std::fs::File::open(&tar_path).map_err(fs::io_err("staging"))?;
            let mut ar = tar::Archive::new(std::io::BufReader::new(f));
            for e in ar.entries().map_err(fs::io_err("reading the source"))? {
                let mut e = e.map_err(fs::io_err("reading the source"))?;
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let rel = name
                    .trim_start_matches("./")
                    .strip_prefix('s')
                    .unwrap_or("")
                    .trim_start_matches('/')
                    .trim_end_matches('/')
                    .to_string();
                if src_is_dir && rel.is_empty() {
                    continue;
                }
                if !rel.is_empty() && self.excluded(&rel) {
                    continue;
                }
                let dst = if rel.is_empty() {
                    target_root.clone()
                } else {
                    format!("{}/{rel}", target_root.trim_end_matches('/'))
                };
                let h = e.header().clone();
                let o = owner.unwrap_or((h.uid().unwrap_or(0), h.gid().unwrap_or(0)));
                let mode = self.chmod.unwrap_or(h.mode().unwrap_or(0o644) & 0o7777);
                let mtime = h.mtime().unwrap_or(0);
                match h.entry_type() {
                    tar::EntryType::Directory => t.dir(&dst, mode, o)?,
                    tar::EntryType::Symlink => {
                        let l = e
                            .link_name()
                            .ok()
                            .flatten()
                            .map(|l| l.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        t.symlink(&dst, &l, o, mtime)?
                    }
                    tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Link => {
                        let size = e.size();
                        if h.entry_type() == tar::EntryType::Link {
                            // Hardlinks inside the source: copy the target's content instead.
                            continue;
                        }
                        t.file(&dst, mode, o, mtime, size, &mut e)?
                    }
                    _ => {}
                }
            }
            let _ = std::fs::remove_file(&tar_path);
        }
        Ok(())
    }
}

/// Whether a local ADD source is an archive docker would unpack.
fn is_archive(data: &[u8]) -> bool {
    let Ok((_, mut r)) = berth_build::archive::decompress(data) else {
        return false;
    };
    let mut block = [0u8; 512];
    let mut n = 0;
    while n < 512 {
        match r.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    berth_build::archive::looks_like_tar(&block[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_port_spec("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_port_spec("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(parse_port_spec("8000-8001").unwrap().len(), 2);
        assert!(parse_port_spec("80/xx").is_err());
        assert!(parse_port_spec("abc").is_err());
        assert_eq!(
            go_quote_list(&["a b".into(), "c".into()]),
            "[\"a b\" \"c\"]"
        );
    }
}
