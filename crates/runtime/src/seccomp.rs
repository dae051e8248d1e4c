//! seccomp: docker-format profiles compiled to a classic BPF program in the parent (the child
//! must not allocate), loaded by the container process just before `execve`.
//!
//! The program checks the architecture (native x86_64 only; other ABIs get the default
//! action, as does the x32 range), then walks the allowed syscalls in ascending order. A
//! syscall's rules are tried in profile order; each rule's argument conditions are ANDed, and
//! a syscall with only conditional rules falls through to the default action.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::syscalls;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const JMP_JSET_K: u16 = 0x45;
const JMP_JA: u16 = 0x05;
const ALU_AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;

// Offsets in struct seccomp_data.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
const fn off_arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default = "default_action")]
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

fn default_action() -> String {
    "SCMP_ACT_ERRNO".into()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    #[serde(default)]
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

fn action(name: &str, errno: Option<u32>, default_errno: u32) -> Result<u32> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => RET_ALLOW,
        "SCMP_ACT_ERRNO" => RET_ERRNO | (errno.unwrap_or(default_errno) & 0xffff),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        "SCMP_ACT_TRACE" => RET_TRACE | (errno.unwrap_or(0) & 0xffff),
        "SCMP_ACT_LOG" => RET_LOG,
        other => {
            return Err(Error::InvalidSpec(format!(
                "seccomp: unknown action {other:?}"
            )));
        }
    })
}

/// Is this rule for us: x86_64, the container's capabilities, this kernel?
fn applies(r: &Rule, caps: &[String], kernel: (u32, u32)) -> bool {
    let arch_ok = |arches: &[String]| {
        arches
            .iter()
            .any(|a| matches!(a.as_str(), "amd64" | "x86_64" | "SCMP_ARCH_X86_64"))
    };
    if let Some(inc) = &r.includes {
        if !inc.arches.is_empty() && !arch_ok(&inc.arches) {
            return false;
        }
        if !inc.caps.iter().all(|c| caps.contains(c)) {
            return false;
        }
        if let Some(min) = &inc.min_kernel
            && parse_kernel(min).is_some_and(|m| kernel < m)
        {
            return false;
        }
    }
    if let Some(exc) = &r.excludes {
        if !exc.arches.is_empty() && arch_ok(&exc.arches) {
            return false;
        }
        if exc.caps.iter().any(|c| caps.contains(c)) {
            return false;
        }
    }
    true
}

fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    Some((
        it.next()?.parse().ok()?,
        it.next().unwrap_or("0").parse().ok()?,
    ))
}

fn running_kernel() -> (u32, u32) {
    let u = rustix::system::uname();
    parse_kernel(&u.release().to_string_lossy()).unwrap_or((0, 0))
}

/// One compiled rule: conditions (ANDed) then the action.
struct Compiled {
    args: Vec<Arg>,
    ret: u32,
}

/// A program under construction; jumps are relative and resolved as emitted.
struct Prog(Vec<libc::sock_filter>);

impl Prog {
    fn stmt(&mut self, code: u16, k: u32) {
        self.0.push(libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }
    fn jump(&mut self, code: u16, k: u32, jt: u8, jf: u8) {
        self.0.push(libc::sock_filter { code, jt, jf, k });
    }
}

fn jump_len(n: usize) -> Result<u8> {
    u8::try_from(n).map_err(|_| {
        Error::InvalidSpec("seccomp: a syscall's rules are too long for one BPF jump".into())
    })
}

/// Emits the checks of one rule: on success return its action; on failure fall through to
/// the code after it. Each condition compares a 64-bit argument as two 32-bit words.
fn emit_rule(p: &mut Prog, r: &Compiled) -> Result<()> {
    // Build the rule's body first to know the distance to its end (the fall-through point).
    let mut body = Prog(Vec::new());
    let mut fail_jumps: Vec<(usize, bool)> = Vec::new(); // (index, jump on true?) to patch
    for a in &r.args {
        let (lo, hi) = (a.value as u32, (a.value >> 32) as u32);
        let (lo2, hi2) = (a.value_two as u32, (a.value_two >> 32) as u32);
        let idx = a.index;
        if idx > 5 {
            return Err(Error::InvalidSpec(format!(
                "seccomp: argument index {idx} out of range"
            )));
        }
        match a.op.as_str() {
            "SCMP_CMP_EQ" => {
                body.stmt(LD_W_ABS, off_arg_hi(idx));
                fail_jumps.push((body.0.len(), false));
                body.jump(JMP_JEQ_K, hi, 0, 0);
                body.stmt(LD_W_ABS, off_arg_lo(idx));
                fail_jumps.push((body.0.len(), false));
                body.jump(JMP_JEQ_K, lo, 0, 0);
            }
            "SCMP_CMP_NE" => {
                // Fails only when both words are equal.
                body.stmt(LD_W_ABS, off_arg_hi(idx));
                body.jump(JMP_JEQ_K, hi, 0, 2);
                body.stmt(LD_W_ABS, off_arg_lo(idx));
                fail_jumps.push((body.0.len(), true));
                body.jump(JMP_JEQ_K, lo, 0, 0);
            }
            "SCMP_CMP_MASKED_EQ" => {
                // (arg & value) == value_two
                body.stmt(LD_W_ABS, off_arg_hi(idx));
                body.stmt(ALU_AND_K, hi);
                fail_jumps.push((body.0.len(), false));
                body.jump(JMP_JEQ_K, hi2, 0, 0);
                body.stmt(LD_W_ABS, off_arg_lo(idx));
                body.stmt(ALU_AND_K, lo);
                fail_jumps.push((body.0.len(), false));
                body.jump(JMP_JEQ_K, lo2, 0, 0);
            }
            op @ ("SCMP_CMP_GT" | "SCMP_CMP_GE" | "SCMP_CMP_LT" | "SCMP_CMP_LE") => {
                // Unsigned 64-bit order: decide on the high word unless it is equal.
                let (code, pass_if_true) = match op {
                    "SCMP_CMP_GT" => (JMP_JGT_K, true),
                    "SCMP_CMP_GE" => (JMP_JGE_K, true),
                    "SCMP_CMP_LT" => (JMP_JGE_K, false),
                    _ => (JMP_JGT_K, false),
                };
                body.stmt(LD_W_ABS, off_arg_hi(idx));
                // hi > k_hi: GT/GE pass, LT/LE fail; hi < k_hi: the opposite.
                let gt_hi = body.0.len();
                body.jump(JMP_JGT_K, hi, 0, 0);
                let eq_hi = body.0.len();
                body.jump(JMP_JEQ_K, hi, 0, 0);
                body.stmt(LD_W_ABS, off_arg_lo(idx));
                let lo_cmp = body.0.len();
                body.jump(code, lo, 0, 0);
                let cont = body.0.len();
                // Patch local jumps: hi > k → pass (skip to cont) or fail.
                if pass_if_true {
                    body.0[gt_hi].jt = jump_len(cont - gt_hi - 1)?;
                    fail_jumps.push((eq_hi, false));
                    fail_jumps.push((lo_cmp, false));
                } else {
                    fail_jumps.push((gt_hi, true));
                    body.0[eq_hi].jf = jump_len(cont - eq_hi - 1)?;
                    fail_jumps.push((lo_cmp, true));
                }
            }
            other => {
                return Err(Error::InvalidSpec(format!(
                    "seccomp: unknown operator {other:?}"
                )));
            }
        }
    }
    body.stmt(RET_K, r.ret);
    let end = body.0.len();
    for (i, on_true) in fail_jumps {
        let dist = jump_len(end - i - 1)?;
        if on_true {
            body.0[i].jt = dist;
        } else {
            body.0[i].jf = dist;
        }
    }
    p.0.extend(body.0);
    Ok(())
}

/// Compiles a docker-format profile for a process with `caps`. The result is loaded with
/// [`load`]. Unknown syscall names (other architectures, newer kernels) are skipped, as
/// libseccomp does.
pub fn compile(profile: &serde_json::Value, caps: &[String]) -> Result<Vec<libc::sock_filter>> {
    let prof: Profile = serde_json::from_value(profile.clone())
        .map_err(|e| Error::InvalidSpec(format!("invalid seccomp profile: {e}")))?;
    let default_errno = prof.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let default_ret = action(&prof.default_action, prof.default_errno_ret, default_errno)?;
    let kernel = running_kernel();
    let mut by_nr: BTreeMap<u32, Vec<Compiled>> = BTreeMap::new();
    for r in &prof.syscalls {
        if !applies(r, caps, kernel) {
            continue;
        }
        let ret = action(&r.action, r.errno_ret, default_errno)?;
        let names = r.names.iter().chain(r.name.iter());
        for n in names {
            if let Some(nr) = syscalls::number(n) {
                by_nr.entry(nr).or_default().push(Compiled {
                    args: r.args.clone().unwrap_or_default(),
                    ret,
                });
            }
        }
    }
    let mut p = Prog(Vec::new());
    // Native x86_64 only: anything else (i386, x32 numbers) gets the default action.
    p.stmt(LD_W_ABS, OFF_ARCH);
    p.jump(JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0);
    p.stmt(RET_K, default_ret);
    p.stmt(LD_W_ABS, OFF_NR);
    p.jump(JMP_JSET_K, X32_SYSCALL_BIT, 0, 1);
    p.stmt(RET_K, default_ret);
    for (nr, rules) in &by_nr {
        let mut block = Prog(Vec::new());
        for r in rules {
            emit_rule(&mut block, r)?;
            if r.args.is_empty() {
                break; // an unconditional rule ends the search
            }
        }
        if rules.iter().all(|r| !r.args.is_empty()) {
            block.stmt(RET_K, default_ret);
        }
        // The nr check jumps over the block when it does not match; the accumulator must
        // hold the syscall number again after a block that loaded arguments.
        let skip = block.0.len();
        if skip <= 255 {
            p.jump(JMP_JEQ_K, *nr, 0, skip as u8);
        } else {
            p.jump(JMP_JEQ_K, *nr, 1, 0);
            p.stmt(JMP_JA, skip as u32);
        }
        p.0.extend(block.0);
        // Every block returns, so execution after it continues only by the skip, with the
        // number still in the accumulator.
    }
    p.stmt(RET_K, default_ret);
    if p.0.len() > 4096 {
        return Err(Error::InvalidSpec(format!(
            "seccomp: the compiled program has {} instructions (max 4096)",
            p.0.len()
        )));
    }
    Ok(p.0)
}

/// Installs the filter in the calling thread (child side: no allocation). Needs
/// no_new_privs or CAP_SYS_ADMIN.
pub(crate) fn load(prog: &[libc::sock_filter]) -> std::result::Result<(), i32> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at a live program for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1, /* SECCOMP_SET_MODE_FILTER */
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on a synthetic seccomp_data (a small classic-BPF interpreter).
    fn run(prog: &[libc::sock_filter], nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            match i.code {
                LD_W_ABS => {
                    acc =
                        u32::from_ne_bytes(data[i.k as usize..i.k as usize + 4].try_into().unwrap())
                }
                ALU_AND_K => acc &= i.k,
                RET_K => return i.k,
                JMP_JA => {
                    pc += i.k as usize;
                }
                JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K | JMP_JSET_K => {
                    let t = match i.code {
                        JMP_JEQ_K => acc == i.k,
                        JMP_JGT_K => acc > i.k,
                        JMP_JGE_K => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    fn default_caps() -> Vec<String> {
        crate::DEFAULT_CAPABILITIES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn docker_default_profile_allows_and_denies_as_docker() {
        let prog = compile(&crate::seccomp_default::profile(), &default_caps()).unwrap();
        let eperm = RET_ERRNO | libc::EPERM as u32;
        let nr = |n: &str| syscalls::number(n).unwrap();
        assert_eq!(run(&prog, nr("read"), [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, nr("execve"), [0; 6]), RET_ALLOW);
        assert_eq!(
            run(&prog, nr("mount"), [0; 6]),
            eperm,
            "mount needs CAP_SYS_ADMIN"
        );
        assert_eq!(run(&prog, nr("unshare"), [0; 6]), eperm);
        assert_eq!(run(&prog, nr("keyctl"), [0; 6]), eperm);
        assert_eq!(
            run(&prog, nr("socket"), [libc::AF_INET as u64, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            run(&prog, nr("socket"), [40, 0, 0, 0, 0, 0]),
            eperm,
            "AF_VSOCK"
        );
        assert_eq!(
            run(&prog, nr("personality"), [0x8, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(run(&prog, nr("personality"), [0x1, 0, 0, 0, 0, 0]), eperm);
        // clone without namespace flags is fine; with CLONE_NEWUSER it is not.
        assert_eq!(
            run(&prog, nr("clone"), [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            run(
                &prog,
                nr("clone"),
                [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]
            ),
            eperm
        );
        assert_eq!(
            run(&prog, nr("clone3"), [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(run(&prog, 0x4000_0000 | 1, [0; 6]), eperm, "x32 ABI");
        for allowed in [
            "capset",
            "capget",
            "prctl",
            "setgroups",
            "setresuid",
            "setresgid",
            "chdir",
            "getcwd",
            "umask",
            "sendmsg",
            "rt_sigprocmask",
            "newfstatat",
            "faccessat2",
        ] {
            assert_eq!(run(&prog, nr(allowed), [0; 6]), RET_ALLOW, "{allowed}");
        }
        // With CAP_SYS_ADMIN, mount and unshare are allowed.
        let mut caps = default_caps();
        caps.push("CAP_SYS_ADMIN".into());
        let prog = compile(&crate::seccomp_default::profile(), &caps).unwrap();
        assert_eq!(run(&prog, nr("mount"), [0; 6]), RET_ALLOW);
        assert_eq!(
            run(
                &prog,
                nr("clone"),
                [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]
            ),
            RET_ALLOW
        );
    }

    #[test]
    fn comparisons_on_64_bit_arguments() {
        let profile = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, "value": 4096, "op": "SCMP_CMP_GT"}]},
                {"names": ["write"], "action": "SCMP_ACT_KILL_PROCESS", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LE"}]},
            ]
        });
        let prog = compile(&profile, &[]).unwrap();
        let nr = |n: &str| syscalls::number(n).unwrap();
        assert_eq!(run(&prog, nr("mkdir"), [0; 6]), RET_ERRNO | 13);
        assert_eq!(run(&prog, nr("read"), [0, 0, 4096, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&prog, nr("read"), [0, 0, 4097, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(
            run(&prog, nr("read"), [0, 0, 1 << 33, 0, 0, 0]),
            RET_ERRNO | 1
        );
        assert_eq!(
            run(&prog, nr("write"), [1, 0, 0, 0, 0, 0]),
            RET_KILL_PROCESS
        );
        assert_eq!(run(&prog, nr("write"), [2, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&prog, nr("write"), [1 << 32, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert!(
            compile(
                &serde_json::json!({"syscalls": [{"names": ["x"], "action": "BOGUS"}]}),
                &[]
            )
            .is_err()
        );
    }
}
