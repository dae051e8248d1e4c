//! The daemon's state: the stores every handler works with, opened and reconciled at start.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use berth_image::ImageStore;
use berth_meta::Db;
use berth_storage::{DriverKind, Snapshotter};

use crate::config::Config;
use crate::containers::{Containers, Paths};
use crate::events::Events;
use crate::handlers::exec::Exec;

pub struct Daemon {
    pub config: Config,
    pub images: ImageStore,
    pub containers: Containers,
    pub volumes: berth_volume::store::VolumeStore,
    pub networks: crate::network::Networks,
    pub events: Events,
    pub execs: std::sync::Mutex<std::collections::HashMap<String, Arc<Exec>>>,
    /// A stable ID for `info`, kept in the data root.
    pub id: String,
    /// Held for the daemon's life: one berthd per data root.
    _lock: fs::File,
}

/// docker's storage driver names map onto berth's two drivers.
fn driver_kind(name: Option<&str>) -> anyhow::Result<Option<DriverKind>> {
    Ok(match name {
        None | Some("") => None,
        Some("overlay2") | Some("overlay") => Some(DriverKind::Overlay),
        Some("vfs") | Some("copy") => Some(DriverKind::Copy),
        Some(other) => bail!(
            "error initializing graphdriver: driver not supported: {other} (berth has overlay2 and vfs)"
        ),
    })
}

pub fn driver_name(k: DriverKind) -> &'static str {
    match k {
        DriverKind::Overlay => "overlay2",
        DriverKind::Copy => "vfs",
    }
}

impl Daemon {
    pub fn open(mut config: Config) -> anyhow::Result<Arc<Daemon>> {
        if let Some(r) = &config.userns_remap {
            let remap = crate::userns::resolve(r).context("--userns-remap")?;
            config.userns = Some(Arc::new(remap));
        }
        let root = &config.data_root;
        fs::create_dir_all(root)
            .with_context(|| format!("creating data root {}", root.display()))?;
        fs::create_dir_all(&config.exec_root)
            .with_context(|| format!("creating exec root {}", config.exec_root.display()))?;
        let lock = lock_data_root(root)?;
        let db =
            Arc::new(Db::open(&root.join("metadata.db")).context("opening the metadata database")?);
        let want = driver_kind(config.storage_driver.as_deref())?;
        let snapshots = Snapshotter::open(&root.join("snapshots"), want)
            .context("opening the storage driver")?;
        let images = ImageStore::open(db, root, snapshots).context("opening the image store")?;
        // A crash may have left unrecorded layers (a load cut short) and unreferenced blobs.
        // Container snapshots are named by container ID and recorded in the containers table.
        let container_ids: HashSet<String> = images
            .db
            .read(|r| r.list::<serde_json::Value>(crate::containers::CONTAINERS))?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let removed = images.remove_unrecorded_snapshots(&container_ids)?;
        let layers = images.collect_garbage()?;
        if removed > 0 || !layers.is_empty() {
            tracing::info!(
                snapshots = removed,
                layers = layers.len(),
                "removed leftovers of an earlier run"
            );
        }
        let id = daemon_id(root)?;
        let paths = Paths {
            data: root.join("containers"),
            exec: config.exec_root.join("s"),
            shim_bin: shim_binary()?,
            cgroup_parent: config.cgroup_parent.clone(),
        };
        let containers = Containers::open(images.db.clone(), paths)?;
        let volumes =
            berth_volume::store::VolumeStore::open(images.db.clone(), &root.join("volumes"))?;
        let recs: Vec<crate::containers::ContainerRecord> =
            containers.all().iter().map(|c| c.snapshot()).collect();
        let networks = crate::network::Networks::open(
            config.net.clone(),
            images.db.clone(),
            &config.exec_root,
            &recs,
        )
        .context("setting up networking")?;
        Ok(Arc::new(Daemon {
            config,
            images,
            containers,
            volumes,
            networks,
            events: Events::default(),
            execs: Default::default(),
            id,
            _lock: lock,
        }))
    }
}

fn lock_data_root(root: &std::path::Path) -> anyhow::Result<fs::File> {
    let p = root.join("berthd.lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("opening {}", p.display()))?;
    if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        bail!(
            "another berthd is already running with data root {}; stop it or choose another --data-root",
            root.display()
        );
    }
    Ok(f)
}

fn daemon_id(root: &std::path::Path) -> anyhow::Result<String> {
    let p: PathBuf = root.join("engine-id");
    if let Ok(s) = fs::read_to_string(&p) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let mut b = [0u8; 16];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
        .context("reading random bytes")?;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    let tmp = root.join("engine-id.tmp");
    fs::write(&tmp, &id)?;
    fs::rename(&tmp, &p)?;
    Ok(id)
}

/// `berth-shim` lives next to `berthd` (`BERTH_SHIM` overrides).
fn shim_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("BERTH_SHIM") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("finding berthd's own path")?;
    Ok(exe.with_file_name("berth-shim"))
}
