//! `net.ipv4.ip_forward`: berth turns it on only while a bridge network exists, notes that it
//! did (so it can turn it off again), and shares that note with every berthd on the host: each
//! daemon holds a marker file with its pid, and the last one to let go restores the setting
//! (claims of daemons that died are dropped).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const SYSCTL: &str = "/proc/sys/net/ipv4/ip_forward";
const ENABLED_BY_BERTH: &str = "enabled-by-berth";

pub struct IpForward {
    dir: PathBuf,
    marker: String,
    sysctl: PathBuf,
}

fn lock(dir: &Path) -> io::Result<fs::File> {
    fs::create_dir_all(dir)?;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

impl IpForward {
    /// `dir` is shared by all daemons (`/run/berth-ip-forward`); `owner` names this daemon
    /// (its exec root).
    pub fn new(dir: &Path, owner: &Path) -> IpForward {
        let marker = owner
            .display()
            .to_string()
            .replace('/', "_")
            .trim_start_matches('_')
            .to_string();
        IpForward {
            dir: dir.to_path_buf(),
            marker: format!("daemon-{marker}"),
            sysctl: PathBuf::from(SYSCTL),
        }
    }

    /// The same, on another file than the kernel's switch (tests).
    pub fn with_sysctl(dir: &Path, owner: &Path, sysctl: &Path) -> IpForward {
        IpForward {
            sysctl: sysctl.to_path_buf(),
            ..IpForward::new(dir, owner)
        }
    }

    pub fn is_on(&self) -> bool {
        fs::read_to_string(&self.sysctl)
            .map(|s| s.trim() == "1")
            .unwrap_or(false)
    }

    /// Whether berth turned forwarding on (docker then sets the FORWARD policy to drop).
    pub fn berth_enabled(&self) -> bool {
        self.dir.join(ENABLED_BY_BERTH).exists()
    }

    /// Removes the claims of daemons that are gone (killed before they could let go). A claim
    /// holds its daemon's pid.
    fn prune(&self) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("daemon-") || name == self.marker {
                continue;
            }
            let alive = fs::read_to_string(e.path())
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Turns forwarding on if it is off; returns whether berth changed it.
    pub fn acquire(&self) -> io::Result<bool> {
        let _l = lock(&self.dir)?;
        self.prune();
        fs::write(
            self.dir.join(&self.marker),
            std::process::id().to_string().as_bytes(),
        )?;
        if self.is_on() {
            return Ok(false);
        }
        fs::write(&self.sysctl, b"1")?;
        fs::write(self.dir.join(ENABLED_BY_BERTH), b"")?;
        Ok(true)
    }

    /// Drops this daemon's claim; the last claim restores the setting berth changed.
    pub fn release(&self) -> io::Result<bool> {
        if !self.dir.exists() {
            return Ok(false);
        }
        let l = lock(&self.dir)?;
        let _ = fs::remove_file(self.dir.join(&self.marker));
        self.prune();
        let others = fs::read_dir(&self.dir)?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("daemon-"));
        if others {
            return Ok(false);
        }
        let mut restored = false;
        if self.dir.join(ENABLED_BY_BERTH).exists() {
            fs::write(&self.sysctl, b"0")?;
            let _ = fs::remove_file(self.dir.join(ENABLED_BY_BERTH));
            restored = true;
        }
        let _ = fs::remove_file(self.dir.join(".lock"));
        drop(l);
        let _ = fs::remove_dir(&self.dir);
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_daemon_restores_what_berth_changed() {
        let base = std::env::temp_dir().join(format!("berth-fwd-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        let sysctl = base.join("ip_forward");
        let dir = base.join("claims");
        fs::write(&sysctl, "0\n").unwrap();
        let a = IpForward::with_sysctl(&dir, Path::new("/run/a"), &sysctl);
        let b = IpForward::with_sysctl(&dir, Path::new("/run/b"), &sysctl);
        assert!(a.acquire().unwrap(), "a turns it on");
        assert!(!b.acquire().unwrap(), "already on");
        assert!(a.berth_enabled() && a.is_on());
        assert!(!a.release().unwrap(), "b still holds it");
        assert!(b.is_on());
        assert!(b.release().unwrap(), "the last one restores");
        assert_eq!(fs::read_to_string(&sysctl).unwrap(), "0");
        assert!(!dir.exists());
        // A claim of a daemon that died does not keep forwarding on forever.
        assert!(a.acquire().unwrap());
        fs::write(dir.join("daemon-dead"), "999999999").unwrap();
        assert!(a.release().unwrap());
        assert_eq!(fs::read_to_string(&sysctl).unwrap(), "0");
        // Forwarding that was on before berth stays on.
        fs::write(&sysctl, "1").unwrap();
        assert!(!a.acquire().unwrap());
        assert!(!a.release().unwrap());
        assert_eq!(fs::read_to_string(&sysctl).unwrap(), "1");
        let _ = fs::remove_dir_all(&base);
    }
}
