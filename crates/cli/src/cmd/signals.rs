//! Signals during attached sessions: docker forwards the signals it receives to the
//! container (`POST /containers/{id}/kill?signal=NAME`) and resizes the container's TTY on
//! SIGWINCH. The signals are blocked in every thread and taken by one thread with `sigwait`,
//! so no async-signal-safe handler code is needed.

use std::sync::{Arc, Mutex};

/// The asynchronous signals docker's `signal.Notify` catches and forwards (SIGCHLD, SIGPIPE
/// and SIGURG are never forwarded; SIGWINCH resizes instead).
const PROXIED: &[(libc::c_int, &str)] = &[
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGABRT, "ABRT"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGSTKFLT, "STKFLT"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGTSTP, "TSTP"),
    (libc::SIGTTIN, "TTIN"),
    (libc::SIGTTOU, "TTOU"),
    (libc::SIGXCPU, "XCPU"),
    (libc::SIGXFSZ, "XFSZ"),
    (libc::SIGVTALRM, "VTALRM"),
    (libc::SIGPROF, "PROF"),
    (libc::SIGIO, "IO"),
    (libc::SIGPWR, "PWR"),
];

/// The name docker's API takes for `sig` (`INT`, `TERM`…).
pub fn signal_name(sig: libc::c_int) -> Option<&'static str> {
    PROXIED
        .iter()
        .find(|(n, _)| *n == sig)
        .map(|(_, name)| *name)
}

/// What the signal thread does with what it receives.
type Handler = Box<dyn Fn(libc::c_int) + Send>;

/// A set of blocked signals, waited for by one thread once [`SignalRouter::route`] is called.
pub struct SignalRouter {
    set: libc::sigset_t,
    handler: Arc<Mutex<Option<Handler>>>,
}

impl SignalRouter {
    /// Blocks SIGWINCH and, with `proxy`, the forwarded signals, in this thread and every
    /// thread started after it. Call before starting other threads.
    pub fn block(proxy: bool) -> SignalRouter {
        // SAFETY: plain libc calls on a local, initialized signal set.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGWINCH);
            if proxy {
                for (sig, _) in PROXIED {
                    libc::sigaddset(&mut set, *sig);
                }
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        SignalRouter {
            set,
            handler: Arc::new(Mutex::new(None)),
        }
    }

    /// Starts (or retargets) the thread that hands each blocked signal to `handler`.
    pub fn route(&self, handler: impl Fn(libc::c_int) + Send + 'static) {
        let started = {
            let mut h = self.handler.lock().unwrap_or_else(|p| p.into_inner());
            let started = h.is_some();
            *h = Some(Box::new(handler));
            started
        };
        if started {
            return;
        }
        let set = self.set;
        let handler = self.handler.clone();
        std::thread::spawn(move || {
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is a valid signal set; `sig` is written by sigwait.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    continue;
                }
                if let Some(h) = handler.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    h(sig);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(signal_name(libc::SIGINT), Some("INT"));
        assert_eq!(signal_name(libc::SIGTERM), Some("TERM"));
        assert_eq!(signal_name(libc::SIGCHLD), None);
        assert_eq!(signal_name(libc::SIGPIPE), None);
        assert_eq!(signal_name(libc::SIGURG), None);
    }
}
