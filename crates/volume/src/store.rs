//! The `local` volume driver: `<data-root>/volumes/<name>/_data`, records in the metadata DB.
//!
//! A volume with driver options (`type`, `device`, `o`) is a filesystem mounted on its `_data`
//! while containers use it (reference counted in memory), as docker's local driver does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_meta::{Db, Table};
use serde::{Deserialize, Serialize};

use crate::spec::check_volume_name;
use crate::{Error, Result};

pub const VOLUMES: Table = Table::new("volumes");

/// docker's label on volumes made for `-v /path` and image VOLUMEs.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl VolumeRecord {
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

pub struct VolumeStore {
    db: Arc<Db>,
    root: PathBuf,
    /// How many running containers use each option-backed volume's mount.
    mounted: Mutex<HashMap<String, usize>>,
    /// Serializes create/remove so a name is never half made.
    lock: Mutex<()>,
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("get {name}: no such volume"))
}

const KNOWN_OPTS: &[&str] = &["type", "device", "o", "size"];

impl VolumeStore {
    pub fn open(db: Arc<Db>, root: &Path) -> Result<VolumeStore> {
        std::fs::create_dir_all(root).map_err(Error::io(format!("creating {}", root.display())))?;
        Ok(VolumeStore {
            db,
            root: root.to_path_buf(),
            mounted: Mutex::new(HashMap::new()),
            lock: Mutex::new(()),
        })
    }

    /// Where the volume's data lives on the host.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Result<VolumeRecord> {
        self.db
            .read(|r| r.get::<VolumeRecord>(VOLUMES, name))?
            .ok_or_else(|| not_found(name))
    }

    pub fn list(&self) -> Result<Vec<VolumeRecord>> {
        Ok(self
            .db
            .read(|r| r.list::<VolumeRecord>(VOLUMES))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Creates a volume; an existing one of that name is returned as is (docker's behaviour).
    pub fn create(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<VolumeRecord> {
        check_volume_name(name)?;
        for k in options.keys() {
            if !KNOWN_OPTS.contains(&k.as_str()) {
                return Err(Error::Invalid(format!("invalid option: \"{k}\"")));
            }
        }
        if options.contains_key("type") != options.contains_key("device")
            && !options.contains_key("size")
        {
            return Err(Error::Invalid("missing required option: \"device\"".into()));
        }
        let _g = self.lock.lock().unwrap();
        if let Some(v) = self.db.read(|r| r.get::<VolumeRecord>(VOLUMES, name))? {
            return Ok(v);
        }
        let data = self.data_path(name);
        std::fs::create_dir_all(&data)
            .map_err(Error::io(format!("creating {}", data.display())))?;
        let rec = VolumeRecord {
            name: name.to_string(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            labels,
            options,
        };
        self.db.write(|w| w.put(VOLUMES, name, &rec))?;
        Ok(rec)
    }

    /// Removes a volume and its data. The caller checks that no container uses it.
    pub fn remove(&self, name: &str) -> Result<()> {
        let _g = self.lock.lock().unwrap();
        self.get(name)?;
        if self
            .mounted
            .lock()
            .unwrap()
            .get(name)
            .is_some_and(|n| *n > 0)
        {
            return Err(Error::Conflict(format!("remove {name}: volume is in use")));
        }
        self.db.write(|w| w.delete(VOLUMES, name).map(|_| ()))?;
        let dir = self.root.join(name);
        std::fs::remove_dir_all(&dir).map_err(Error::io(format!("removing {}", dir.display())))?;
        Ok(())
    }

    /// Makes the volume's data available for a container: mounts an option-backed volume on
    /// its `_data` the first time. Returns the host path to bind into the container.
    pub fn acquire(&self, name: &str) -> Result<PathBuf> {
        let rec = self.get(name)?;
        let data = self.data_path(name);
        if rec.options.is_empty() {
            return Ok(data);
        }
        let mut m = self.mounted.lock().unwrap();
        let n = m.entry(name.to_string()).or_default();
        if *n == 0 {
            mount_options(&rec.options, &data)?;
        }
        *n += 1;
        Ok(data)
    }

    /// The container no longer uses the volume; an option-backed one is unmounted when unused.
    pub fn release(&self, name: &str) {
        let mut m = self.mounted.lock().unwrap();
        if let Some(n) = m.get_mut(name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(name);
                let _ = rustix::mount::unmount(
                    self.data_path(name),
                    rustix::mount::UnmountFlags::DETACH,
                );
            }
        }
    }

    /// Bytes used by the volume's files (for `system df`).
    pub fn usage(&self, name: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data_path(name))
    }
}

/// The local driver's `-o type=… -o device=… -o o=…` as a mount on `target`.
fn mount_options(opts: &BTreeMap<String, String>, target: &Path) -> Result<()> {
    let kind = opts.get("type").map(String::as_str).unwrap_or("none");
    let device = opts.get("device").map(String::as_str).unwrap_or("");
    let o = opts.get("o").map(String::as_str).unwrap_or("");
    let flags: Vec<&str> = o.split(',').filter(|x| !x.is_empty()).collect();
    let err = |e: rustix::io::Errno| Error::Io {
        context: format!("mounting volume ({kind} {device}) on {}", target.display()),
        source: e.into(),
    };
    if flags.contains(&"bind") || flags.contains(&"rbind") {
        if !device.starts_with('/') {
            return Err(Error::Invalid(format!(
                "invalid volume device {device:?}: a bind device must be an absolute path"
            )));
        }
        let mut f = rustix::mount::MountFlags::BIND;
        if flags.contains(&"rbind") {
            f |= rustix::mount::MountFlags::REC;
        }
        rustix::mount::mount(device, target, "", f, None::<&std::ffi::CStr>).map_err(err)?;
        if flags.contains(&"ro") {
            rustix::mount::mount_remount(
                target,
                rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
                "",
            )
            .map_err(err)?;
        }
        return Ok(());
    }
    let data: String = flags
        .iter()
        .filter(|f| !matches!(**f, "ro" | "rw"))
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let mut f = rustix::mount::MountFlags::empty();
    if flags.contains(&"ro") {
        f |= rustix::mount::MountFlags::RDONLY;
    }
    let source = if device.is_empty() { kind } else { device };
    let data = std::ffi::CString::new(data)
        .map_err(|_| Error::Invalid("volume options contain a NUL byte".into()))?;
    rustix::mount::mount(source, target, kind, f, Some(data.as_c_str())).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_remove_and_tmpfs_backed_volumes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&dir.path().join("m.db")).unwrap());
        let s = VolumeStore::open(db, &dir.path().join("volumes")).unwrap();
        let v = s
            .create(
                "data",
                BTreeMap::from([("a".into(), "b".into())]),
                BTreeMap::new(),
            )
            .unwrap();
        assert!(!v.anonymous());
        assert!(s.data_path("data").is_dir());
        // Creating again returns the same volume.
        assert_eq!(
            s.create("data", BTreeMap::new(), BTreeMap::new()).unwrap(),
            v
        );
        assert!(
            s.create("bad/name", BTreeMap::new(), BTreeMap::new())
                .is_err()
        );
        assert!(
            s.create(
                "x1",
                BTreeMap::new(),
                BTreeMap::from([("bogus".into(), "1".into())])
            )
            .is_err()
        );
        let opts = BTreeMap::from([
            ("type".to_string(), "tmpfs".to_string()),
            ("device".to_string(), "tmpfs".to_string()),
            ("o".to_string(), "size=1m".to_string()),
        ]);
        s.create("ram", BTreeMap::new(), opts).unwrap();
        let p = s.acquire("ram").unwrap();
        let st = rustix::fs::statfs(&p).unwrap();
        assert_eq!(st.f_type as i64, 0x0102_1994, "tmpfs mounted on _data");
        assert!(matches!(s.remove("ram"), Err(Error::Conflict(_))));
        s.release("ram");
        s.remove("ram").unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
        s.remove("data").unwrap();
        assert!(matches!(s.get("data"), Err(Error::NotFound(_))));
    }
}
