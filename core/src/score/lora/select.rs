//! Which parameters of a store a [`super::LoraConfig`] names: glob patterns over parameter names.
//!
//! A pattern is a parameter name in which `*` stands for any run of characters (dots included), so
//! `blocks.*.attn_qkv.weight` names the QKV projection of every block and `sigma_map.*` every
//! parameter of the σ̄ embedding. Nothing else is special.

use crate::error::{Error, Result};
use crate::nn::ParamStore;

/// Whether `name` matches `pattern`, where `*` matches any (possibly empty) run of characters.
///
/// Greedy two-pointer matching with one backtrack point, `O(|pattern|·|name|)` at worst.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    // Position of the last `*` in the pattern and of the name character it was matched up to.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == n[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            // Let the last `*` swallow one more character and retry.
            star = Some((si, sj + 1));
            i = si + 1;
            j = sj + 1;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// Indices (store order) of the parameters of `store` matched by any of `patterns`. Each pattern must
/// match at least one parameter: a typo would otherwise silently adapt or train nothing.
pub fn select<E: dfdx::prelude::Dtype, D: dfdx::prelude::Device<E>>(
    store: &ParamStore<E, D>,
    patterns: &[String],
    what: &'static str,
) -> Result<Vec<usize>> {
    for pattern in patterns {
        if !store.params().iter().any(|p| glob_match(pattern, &p.name)) {
            let names: Vec<&str> = store
                .params()
                .iter()
                .take(6)
                .map(|p| p.name.as_str())
                .collect();
            return Err(Error::invalid(
                what,
                pattern,
                format!(
                    "matches no parameter of the model (its names look like {}, …)",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(store
        .params()
        .iter()
        .enumerate()
        .filter(|(_, p)| patterns.iter().any(|pat| glob_match(pat, &p.name)))
        .map(|(i, _)| i)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn stars_match_any_run_and_literals_match_themselves() {
        assert!(glob_match(
            "blocks.*.attn_qkv.weight",
            "blocks.12.attn_qkv.weight"
        ));
        assert!(!glob_match(
            "blocks.*.attn_qkv.weight",
            "blocks.1.attn_out.weight"
        ));
        assert!(glob_match("sigma_map.*", "sigma_map.mlp.0.bias"));
        assert!(glob_match("*", ""));
        assert!(glob_match(
            "*adaLN*",
            "output_layer.adaLN_modulation.weight"
        ));
        assert!(!glob_match("blocks.0.*", "blocks.10.norm1.weight"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(!glob_match("exact", "exactly"));
    }
}
