//! An idle shim's memory. Start-up (parsing the spec, creating the container) runs most of the
//! binary's code, and the kernel maps file pages 64 KiB around each fault, so a shim would keep
//! ~1.5 MiB of code mapped that its idle loop never runs, in every container. Once idle, the
//! shim unmaps those clean file pages (they stay in the page cache, shared; what the loop needs
//! faults back in from there) and gives freed heap back to the kernel.

/// Drops the page-table entries of every private, read-only, never-written file mapping (code,
/// read-only data), and trims the heap. Mappings holding copied-on-write pages (RELRO: relocated
/// pointers made read-only) are left alone: dropping those would bring back unrelocated bytes.
pub fn trim() {
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for m in clean_file_mappings(&smaps) {
        // SAFETY: a clean private file mapping: MADV_DONTNEED drops its PTEs and the next access
        // reads the same bytes from the file again, as after the kernel reclaims them.
        unsafe { libc::madvise(m.0 as *mut libc::c_void, m.1 - m.0, libc::MADV_DONTNEED) };
    }
}

/// `(start, end)` of the mappings in smaps text that are private, not writable, file-backed and
/// hold no anonymous (copied) pages.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let p = perms.as_bytes();
            let candidate = p.len() == 4 && p[1] == b'-' && p[3] == b'p' && path.starts_with('/');
            cur = candidate.then_some((a, b));
        } else if first == "Anonymous:"
            && let Some(m) = cur.take()
            && f.next() == Some("0")
        {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_only_clean_read_only_file_mappings() {
        let smaps = "\
55d0c0000000-55d0c0010000 r--p 00000000 00:21 12 /bin/shim
Rss:                  64 kB
Anonymous:             0 kB
55d0c0010000-55d0c0100000 r-xp 00010000 00:21 12 /bin/shim
Anonymous:             0 kB
55d0c0100000-55d0c0104000 r--p 00100000 00:21 12 /bin/shim
Anonymous:            16 kB
55d0c0104000-55d0c0105000 rw-p 00104000 00:21 12 /bin/shim
Anonymous:             4 kB
55d0c1000000-55d0c1040000 rw-p 00000000 00:00 0 [heap]
Anonymous:           256 kB
7f0000000000-7f0000001000 r--s 00000000 00:05 9 /dev/shm/x
Anonymous:             0 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(
            clean_file_mappings(smaps),
            vec![
                (0x55d0c0000000, 0x55d0c0010000),
                (0x55d0c0010000, 0x55d0c0100000)
            ]
        );
    }

    #[test]
    fn trimming_keeps_code_and_data_intact() {
        static TABLE: [u64; 4] = [1, 2, 3, 5];
        let before: u64 = TABLE.iter().sum();
        trim();
        assert_eq!(TABLE.iter().sum::<u64>(), before);
        assert_eq!(format!("{:?}", vec![1, 2]), "[1, 2]");
    }
}
