//! Containers: their records, lookup by name/ID, paths on disk, and the lifecycle
//! (create, start through a shim, stop, kill, wait, remove, restart policies, live-restore).

pub mod commit;
pub mod lifecycle;
pub mod logs;
pub mod mounts;
pub mod namespaces;
pub mod record;
pub mod resources;
pub mod shim;
pub mod spec;
pub mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use berth_meta::Db;
use tokio::sync::watch;

use crate::http::ApiError;
pub use record::{CONTAINERS, ContainerRecord, State, Status};

/// A container as berthd holds it in memory.
pub struct Container {
    pub id: String,
    pub rec: Mutex<ContainerRecord>,
    /// Serializes lifecycle operations (start, stop, remove, pause) on this container.
    pub op: tokio::sync::Mutex<()>,
    /// Bumped on every state change; waiters watch it.
    pub changed: watch::Sender<u64>,
    /// How many times the init has exited (for `wait?condition=next-exit`).
    pub exits: AtomicU64,
    pub removed: AtomicBool,
    /// Attach requests that arrived before start; the start hands them to the shim.
    pub pending_attach: Mutex<Vec<shim::PendingAttach>>,
    /// Set while a restart policy's back-off runs; a user start/stop cancels it.
    pub restart_cancel: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Container {
    fn new(rec: ContainerRecord) -> Container {
        Container {
            id: rec.id.clone(),
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            changed: watch::channel(0).0,
            exits: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            pending_attach: Mutex::new(Vec::new()),
            restart_cancel: Mutex::new(None),
        }
    }

    pub fn snapshot(&self) -> ContainerRecord {
        self.rec.lock().unwrap().clone()
    }

    pub fn status(&self) -> Status {
        self.rec.lock().unwrap().state.status
    }

    pub fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
}

/// Where a container's files live.
#[derive(Clone)]
pub struct Paths {
    /// `<data-root>/containers`: bundles (config.json, shim.json, /etc files, the log, rootfs).
    pub data: PathBuf,
    /// `<exec-root>/s`: shim sockets and pid/exit files (short names: sockets paths are limited).
    pub exec: PathBuf,
    /// The `berth-shim` binary.
    pub shim_bin: PathBuf,
    /// Parent of every container's cgroup (`/berth`).
    pub cgroup_parent: String,
}

impl Paths {
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.data.join(id)
    }
    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.bundle(id).join("rootfs")
    }
    pub fn log(&self, id: &str) -> PathBuf {
        self.bundle(id).join(format!("{id}-json.log"))
    }
    pub fn state(&self, id: &str) -> PathBuf {
        self.exec.join(&id[..16.min(id.len())])
    }
    pub fn socket(&self, id: &str) -> PathBuf {
        self.state(id).join("shim.sock")
    }
}

pub struct Containers {
    pub db: Arc<Db>,
    pub paths: Paths,
    by_id: RwLock<HashMap<String, Arc<Container>>>,
}

fn no_such(name: &str) -> ApiError {
    ApiError::not_found(format!("No such container: {name}"))
}

impl Containers {
    /// Loads every recorded container.
    pub fn open(db: Arc<Db>, paths: Paths) -> anyhow::Result<Containers> {
        std::fs::create_dir_all(&paths.data)?;
        std::fs::create_dir_all(&paths.exec)?;
        let recs: Vec<(String, ContainerRecord)> = db.read(|r| r.list(CONTAINERS))?;
        let by_id = recs
            .into_iter()
            .map(|(id, rec)| (id, Arc::new(Container::new(rec))))
            .collect();
        Ok(Containers {
            db,
            paths,
            by_id: RwLock::new(by_id),
        })
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.by_id.read().unwrap().values().cloned().collect()
    }

    /// Finds a container by full ID, name (with or without `/`) or unique ID prefix, as docker.
    pub fn get(&self, name: &str) -> Result<Arc<Container>, ApiError> {
        if name.is_empty() {
            return Err(no_such(name));
        }
        let map = self.by_id.read().unwrap();
        if let Some(c) = map.get(name) {
            return Ok(c.clone());
        }
        let slashed = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/{name}")
        };
        if let Some(c) = map.values().find(|c| c.rec.lock().unwrap().name == slashed) {
            return Ok(c.clone());
        }
        let matches: Vec<&Arc<Container>> = map
            .keys()
            .filter(|k| k.starts_with(name))
            .filter_map(|k| map.get(k))
            .collect();
        match matches.len() {
            1 => Ok(matches[0].clone()),
            0 => Err(no_such(name)),
            _ => Err(ApiError::bad_request(format!(
                "multiple IDs found with provided prefix: {name}"
            ))),
        }
    }

    /// Records a new container; its name must be free. Without a name, one is generated.
    pub fn insert(
        &self,
        mut rec: ContainerRecord,
        named: bool,
    ) -> Result<Arc<Container>, ApiError> {
        let mut map = self.by_id.write().unwrap();
        let taken = |map: &HashMap<String, Arc<Container>>, n: &str| {
            map.values()
                .find(|c| c.rec.lock().unwrap().name == n)
                .map(|c| c.id.clone())
        };
        if named {
            if let Some(other) = taken(&map, &rec.name) {
                return Err(name_conflict(&rec.name, &other));
            }
        } else {
            // docker's way: a few random tries, then a number appended.
            let mut tries = 0;
            while taken(&map, &rec.name).is_some() {
                tries += 1;
                rec.name = if tries < 10 {
                    format!("/{}", random_name())
                } else {
                    format!("/{}{}", random_name(), tries)
                };
            }
        }
        self.db
            .write(|w| w.put(CONTAINERS, &rec.id, &rec))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let c = Arc::new(Container::new(rec));
        map.insert(c.id.clone(), c.clone());
        Ok(c)
    }

    /// Persists the container's current record.
    pub fn save(&self, c: &Container) -> Result<(), ApiError> {
        let rec = c.snapshot();
        if c.removed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.db
            .write(|w| w.put(CONTAINERS, &rec.id, &rec))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        c.notify();
        Ok(())
    }

    /// Renames, keeping names unique.
    pub fn rename(&self, c: &Container, new_name: &str) -> Result<String, ApiError> {
        let map = self.by_id.write().unwrap();
        let slashed = format!("/{}", new_name.trim_start_matches('/'));
        if let Some(other) = map.values().find(|o| o.rec.lock().unwrap().name == slashed) {
            if other.id == c.id {
                return Err(ApiError::bad_request(
                    "Renaming a container with the same name as its current name",
                ));
            }
            return Err(name_conflict(&slashed, &other.id));
        }
        let old = {
            let mut r = c.rec.lock().unwrap();
            std::mem::replace(&mut r.name, slashed)
        };
        drop(map);
        self.save(c)?;
        Ok(old)
    }

    /// Forgets a container (its files are removed by the caller).
    pub fn forget(&self, c: &Container) -> Result<(), ApiError> {
        self.db
            .write(|w| w.delete(CONTAINERS, &c.id).map(|_| ()))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        self.by_id.write().unwrap().remove(&c.id);
        c.removed.store(true, Ordering::SeqCst);
        c.notify();
        Ok(())
    }

    /// Whether any container was made from image `id` (and whether one of them runs).
    pub fn image_user(&self, image: &str) -> Option<(bool, String)> {
        let mut found = None;
        for c in self.all() {
            let r = c.rec.lock().unwrap();
            if r.image == image {
                if r.state.status.is_running() {
                    return Some((true, r.id.clone()));
                }
                found.get_or_insert((false, r.id.clone()));
            }
        }
        found
    }
}

pub fn name_conflict(name: &str, id: &str) -> ApiError {
    ApiError::conflict(format!(
        "Conflict. The container name \"{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

/// docker's container-name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let n = name.trim_start_matches('/');
    let mut chars = n.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    n.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// A fresh 64-hex container or exec ID.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).expect("getrandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// docker's generated names: adjective_surname.
pub fn random_name() -> String {
    const LEFT: &[&str] = &[
        "admiring",
        "affectionate",
        "agitated",
        "amazing",
        "angry",
        "awesome",
        "beautiful",
        "blissful",
        "bold",
        "boring",
        "brave",
        "busy",
        "charming",
        "clever",
        "compassionate",
        "competent",
        "confident",
        "cool",
        "cranky",
        "crazy",
        "dazzling",
        "determined",
        "distracted",
        "dreamy",
        "eager",
        "ecstatic",
        "elastic",
        "elated",
        "elegant",
        "eloquent",
        "epic",
        "exciting",
        "fervent",
        "festive",
        "flamboyant",
        "focused",
        "friendly",
        "frosty",
        "funny",
        "gallant",
        "gifted",
        "goofy",
        "gracious",
        "great",
        "happy",
        "hardcore",
        "heuristic",
        "hopeful",
        "hungry",
        "infallible",
        "inspiring",
        "intelligent",
        "interesting",
        "jolly",
        "jovial",
        "keen",
        "kind",
        "laughing",
        "loving",
        "lucid",
        "magical",
        "modest",
        "musing",
        "mystifying",
        "naughty",
        "nervous",
        "nice",
        "nifty",
        "nostalgic",
        "objective",
        "optimistic",
        "peaceful",
        "pedantic",
        "pensive",
        "practical",
        "priceless",
        "quirky",
        "quizzical",
        "recursing",
        "relaxed",
        "reverent",
        "romantic",
        "sad",
        "serene",
        "sharp",
        "silly",
        "sleepy",
        "stoic",
        "strange",
        "stupefied",
        "suspicious",
        "sweet",
        "tender",
        "thirsty",
        "trusting",
        "unruffled",
        "upbeat",
        "vibrant",
        "vigilant",
        "vigorous",
        "wizardly",
        "wonderful",
        "xenodochial",
        "youthful",
        "zealous",
        "zen",
    ];
    const RIGHT: &[&str] = &[
        "agnesi",
        "albattani",
        "allen",
        "almeida",
        "archimedes",
        "ardinghelli",
        "aryabhata",
        "austin",
        "babbage",
        "banach",
        "bardeen",
        "bartik",
        "bassi",
        "bell",
        "benz",
        "bhabha",
        "bhaskara",
        "blackwell",
        "bohr",
        "booth",
        "borg",
        "bose",
        "boyd",
        "brahmagupta",
        "brattain",
        "brown",
        "carson",
        "cerf",
        "chandrasekhar",
        "clarke",
        "colden",
        "cori",
        "cray",
        "curie",
        "darwin",
        "davinci",
        "dijkstra",
        "dubinsky",
        "easley",
        "edison",
        "einstein",
        "elion",
        "engelbart",
        "euclid",
        "euler",
        "fermat",
        "fermi",
        "feynman",
        "franklin",
        "galileo",
        "gates",
        "goldberg",
        "goldstine",
        "goldwasser",
        "golick",
        "goodall",
        "haibt",
        "hamilton",
        "hawking",
        "heisenberg",
        "hermann",
        "heyrovsky",
        "hodgkin",
        "hoover",
        "hopper",
        "hugle",
        "hypatia",
        "jackson",
        "jang",
        "jennings",
        "jepsen",
        "johnson",
        "joliot",
        "jones",
        "kalam",
        "kare",
        "keller",
        "kepler",
        "khorana",
        "kilby",
        "kirch",
        "knuth",
        "kowalevski",
        "lalande",
        "lamarr",
        "lamport",
        "leakey",
        "leavitt",
        "lewin",
        "lichterman",
        "liskov",
        "lovelace",
        "lumiere",
        "mahavira",
        "mayer",
        "mccarthy",
        "mcclintock",
        "mclean",
        "mcnulty",
        "meitner",
        "meninsky",
        "mestorf",
        "minsky",
        "mirzakhani",
        "morse",
        "murdock",
        "neumann",
        "newton",
        "nightingale",
        "nobel",
        "noether",
        "northcutt",
        "noyce",
        "panini",
        "pare",
        "pasteur",
        "payne",
        "perlman",
        "pike",
        "poincare",
        "poitras",
        "ptolemy",
        "raman",
        "ramanujan",
        "ride",
        "ritchie",
        "roentgen",
        "rosalind",
        "saha",
        "sammet",
        "shannon",
        "shaw",
        "shirley",
        "shockley",
        "sinoussi",
        "snyder",
        "spence",
        "stallman",
        "stonebraker",
        "swanson",
        "swartz",
        "swirles",
        "tesla",
        "thompson",
        "torvalds",
        "turing",
        "varahamihira",
        "visvesvaraya",
        "volhard",
        "wescoff",
        "williams",
        "wilson",
        "wing",
        "wozniak",
        "wright",
        "yalow",
        "yonath",
    ];
    let mut b = [0u8; 4];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).expect("getrandom");
    let (l, r) = (
        u16::from_le_bytes([b[0], b[1]]) as usize,
        u16::from_le_bytes([b[2], b[3]]) as usize,
    );
    format!("{}_{}", LEFT[l % LEFT.len()], RIGHT[r % RIGHT.len()])
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid_name("web"));
        assert!(valid_name("/web-1.a_b"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-web"));
        assert!(!valid_name("we b"));
        assert_eq!(new_id().len(), 64);
        assert!(random_name().contains('_'));
    }
}
