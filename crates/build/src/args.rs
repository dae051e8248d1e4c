//! Build arguments with docker's scoping: `--build-arg` values only reach ARGs the Dockerfile
//! declares (plus the predefined proxy args); ARGs before the first FROM are usable in FROM
//! lines and as defaults of a stage's `ARG NAME`; a stage's ARGs start empty; ENV wins over ARG.

use std::collections::{BTreeMap, BTreeSet};

/// The proxy arguments every build accepts without an ARG.
pub const BUILTIN: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn is_builtin(k: &str) -> bool {
    BUILTIN.contains(&k)
}

#[derive(Debug, Clone, Default)]
pub struct BuildArgs {
    /// `--build-arg` values (None: given without a value and not in the client's env).
    given: BTreeMap<String, Option<String>>,
    meta: BTreeMap<String, Option<String>>,
    allowed: BTreeMap<String, Option<String>>,
    referenced: BTreeSet<String>,
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map(|(k, _)| k).unwrap_or(e)
}

impl BuildArgs {
    pub fn new(given: BTreeMap<String, Option<String>>) -> BuildArgs {
        BuildArgs {
            given,
            ..Default::default()
        }
    }

    fn value(&self, k: &str, default: &Option<String>) -> Option<String> {
        match self.given.get(k) {
            Some(Some(v)) => Some(v.clone()),
            _ => default.clone(),
        }
    }

    /// A meta ARG (before the first FROM), already expanded.
    pub fn add_meta(&mut self, k: &str, v: Option<String>) {
        self.meta.insert(k.to_string(), v.clone());
        self.allowed.insert(k.to_string(), v);
        self.referenced.insert(k.to_string());
    }

    /// The arguments a new stage starts with: the meta ARGs stay known, nothing is declared.
    pub fn for_stage(&self) -> BuildArgs {
        BuildArgs {
            given: self.given.clone(),
            meta: self.meta.clone(),
            allowed: BTreeMap::new(),
            referenced: self.referenced.clone(),
        }
    }

    /// `ARG k[=v]` in a stage; without a value, a meta ARG's value is the default.
    pub fn add_arg(&mut self, k: &str, v: Option<String>) {
        let v = v.or_else(|| self.meta.get(k).cloned().flatten());
        self.allowed.insert(k.to_string(), v);
        self.referenced.insert(k.to_string());
    }

    /// Every declared (or predefined and given) argument that has a value, as `K=V`.
    pub fn all_allowed(&self) -> Vec<String> {
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &self.given {
            if is_builtin(k)
                && let Some(v) = v
            {
                m.insert(k.clone(), v.clone());
            }
        }
        for (k, d) in &self.allowed {
            if let Some(v) = self.value(k, d) {
                m.insert(k.clone(), v);
            }
        }
        m.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The allowed arguments that no ENV of `env` shadows.
    pub fn filter_allowed(&self, env: &[String]) -> Vec<String> {
        let keys: BTreeSet<&str> = env.iter().map(|e| env_key(e)).collect();
        self.all_allowed()
            .into_iter()
            .filter(|a| !keys.contains(env_key(a)))
            .collect()
    }

    /// What FROM lines expand with: the meta ARGs (overridden by `--build-arg`) and given
    /// proxy args.
    pub fn meta_env(&self) -> Vec<String> {
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &self.given {
            if is_builtin(k)
                && let Some(v) = v
            {
                m.insert(k.clone(), v.clone());
            }
        }
        for (k, d) in &self.meta {
            if let Some(v) = self.value(k, d) {
                m.insert(k.clone(), v);
            }
        }
        m.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The build-time environment a RUN sees besides the image's ENV, and the part of it that
    /// goes into the cache key (predefined proxy args only when declared), sorted.
    pub fn run_env(&self, env: &[String]) -> (Vec<String>, Vec<String>) {
        let all = self.filter_allowed(env);
        let mut keyed: Vec<String> = all
            .iter()
            .filter(|a| {
                let k = env_key(a);
                !is_builtin(k) || self.allowed.contains_key(k)
            })
            .cloned()
            .collect();
        keyed.sort();
        (all, keyed)
    }

    /// `--build-arg`s the Dockerfile never declared (docker warns about them).
    pub fn unused(&self) -> Vec<String> {
        self.given
            .keys()
            .filter(|k| !is_builtin(k) && !self.referenced.contains(*k))
            .cloned()
            .collect()
    }

    /// Merges what a finished stage referenced (for the unused-args warning).
    pub fn merge_referenced(&mut self, other: &BuildArgs) {
        self.referenced.extend(other.referenced.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, Option<&str>)]) -> BuildArgs {
        BuildArgs::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        )
    }

    #[test]
    fn scoping() {
        let mut meta = given(&[
            ("V", Some("2")),
            ("X", Some("x")),
            ("http_proxy", Some("p")),
        ]);
        meta.add_meta("V", Some("1".into()));
        meta.add_meta("W", Some("w".into()));
        assert_eq!(meta.meta_env(), vec!["V=2", "W=w", "http_proxy=p"]);
        let mut st = meta.for_stage();
        // Undeclared: not visible (except proxies).
        assert_eq!(st.all_allowed(), vec!["http_proxy=p"]);
        st.add_arg("W", None);
        st.add_arg("X", None);
        st.add_arg("D", Some("d".into()));
        assert_eq!(st.all_allowed(), vec!["D=d", "W=w", "X=x", "http_proxy=p"]);
        // ENV shadows ARG.
        assert_eq!(
            st.filter_allowed(&["D=env".into()]),
            vec!["W=w", "X=x", "http_proxy=p"]
        );
        let (all, keyed) = st.run_env(&[]);
        assert!(all.contains(&"http_proxy=p".to_string()));
        assert!(!keyed.contains(&"http_proxy=p".to_string()));
        assert!(meta.unused().is_empty() || meta.unused() == vec!["X"]);
        let mut m2 = meta.clone();
        m2.merge_referenced(&st);
        assert!(m2.unused().is_empty());
    }
}
