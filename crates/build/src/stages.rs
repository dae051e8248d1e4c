//! The stage graph: which stages a stage needs (its FROM, its `COPY --from`), and which
//! stages a target needs at all.

use std::collections::BTreeSet;

use crate::instructions::{Dockerfile, Instruction};
use crate::shell::{Env, Lex};

/// A stage named by `--from`/FROM: by name, or by index for `--from`.
pub fn stage_ref(df: &Dockerfile, name: &str, allow_index: bool, before: usize) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(i) = df.stages[..before]
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Some(i);
    }
    if allow_index
        && let Ok(i) = name.parse::<usize>()
        && i < before
    {
        return Some(i);
    }
    None
}

/// For each stage, the earlier stages it depends on. FROM lines are expanded with the meta
/// ARGs (`meta_env`).
pub fn dependencies(df: &Dockerfile, meta_env: &dyn Env) -> Vec<BTreeSet<usize>> {
    let lex = Lex::new(df.escape);
    let mut out = Vec::new();
    for (i, s) in df.stages.iter().enumerate() {
        let mut deps = BTreeSet::new();
        let base = lex
            .process_word(&s.base, meta_env)
            .unwrap_or_else(|_| s.base.clone());
        if let Some(d) = stage_ref(df, &base, false, i) {
            deps.insert(d);
        }
        for c in &s.commands {
            if let Instruction::Copy(spec) = &c.inst
                && let Some(f) = &spec.from
                && let Some(d) = stage_ref(df, f, true, i)
            {
                deps.insert(d);
            }
        }
        out.push(deps);
    }
    out
}

/// The stages `target` needs, itself included, in Dockerfile order.
pub fn needed(deps: &[BTreeSet<usize>], target: usize) -> Vec<usize> {
    let mut want = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(s) = todo.pop() {
        if want.insert(s) {
            todo.extend(deps[s].iter().copied());
        }
    }
    want.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instructions::parse_dockerfile;

    #[test]
    fn target_needs_only_its_dependencies() {
        let df = parse_dockerfile(
            b"ARG B=base\nFROM busybox AS base\nFROM busybox AS unused\nRUN x\nFROM ${B} AS mid\nFROM busybox AS gen\nFROM mid\nCOPY --from=gen /a /a\nCOPY --from=0 /b /b\n",
        )
        .unwrap();
        let meta = vec!["B=base".to_string()];
        let deps = dependencies(&df, &meta);
        assert_eq!(deps[2], BTreeSet::from([0]));
        assert_eq!(deps[4], BTreeSet::from([0, 2, 3]));
        assert_eq!(needed(&deps, 4), vec![0, 2, 3, 4]);
        assert_eq!(needed(&deps, 1), vec![1]);
    }
}
