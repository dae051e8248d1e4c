//! Capability names → bit masks (parent side) and applying them (child side).

use crate::error::{Error, Result};
use crate::spec::Capabilities;
use crate::sys::{self, Res};

/// Kernel capability names in number order (capability.h).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// docker's default set (moby oci/caps/defaults.go).
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Number of a capability (`CAP_CHOWN` or `chown`).
pub fn number(name: &str) -> Option<u32> {
    let up = name.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

fn mask(names: &[String], last: u32) -> Result<u64> {
    let mut m = 0u64;
    for n in names {
        let c = number(n).ok_or_else(|| Error::InvalidSpec(format!("unknown capability {n:?}")))?;
        // Capabilities the running kernel does not know are skipped, as runc does.
        if c <= last {
            m |= 1 << c;
        }
    }
    Ok(m)
}

/// Highest capability the kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CapSets {
    pub last: u32,
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapSets {
    pub fn new(c: &Capabilities) -> Result<CapSets> {
        let last = last_cap();
        Ok(CapSets {
            last,
            bounding: mask(&c.bounding, last)?,
            effective: mask(&c.effective, last)?,
            permitted: mask(&c.permitted, last)?,
            inheritable: mask(&c.inheritable, last)?,
            ambient: mask(&c.ambient, last)?,
        })
    }

    /// Drops what is not in the bounding set; needs CAP_SETPCAP, so it runs before the
    /// user switch.
    pub fn drop_bounding(&self) -> Res<()> {
        for c in 0..=self.last {
            if self.bounding & (1 << c) == 0 {
                match sys::prctl(libc::PR_CAPBSET_DROP, c as _, 0, 0, 0) {
                    Ok(_) | Err(libc::EINVAL) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    pub fn set(&self) -> Res<()> {
        sys::capset(self.effective, self.permitted, self.inheritable)
    }

    pub fn set_ambient(&self) -> Res<()> {
        sys::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as _,
            0,
            0,
            0,
        )?;
        for c in 0..=self.last {
            if self.ambient & (1 << c) != 0 {
                sys::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as _,
                    c as _,
                    0,
                    0,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("net_raw"), Some(13));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_NOPE"), None);
        let c = Capabilities {
            bounding: DOCKER_DEFAULT.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let s = CapSets::new(&c).unwrap();
        // docker's 14 → 0x00000000a80425fb
        assert_eq!(s.bounding, 0xa80425fb);
    }
}
