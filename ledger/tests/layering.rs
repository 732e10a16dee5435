//! The module layering of `src/`, as `lib.rs` states it: each module uses only the modules before
//! it, so dependencies run one way (issue 12 untied a loop between payouts, verdicts and rate).

use std::collections::BTreeSet;
use std::path::Path;

/// The order stated in `lib.rs`: the `//` comment lines holding `a < b < c`.
fn stated_order(lib: &str) -> Vec<String> {
    let chain: Vec<&str> = lib
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("// ") && !line.starts_with("///") && line.contains(" < "))
        .map(|line| line.trim_start_matches("//"))
        .collect();
    chain
        .join(" ")
        .split('<')
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The first path segment of every `crate::` path in `source` (`crate::{a::x, b}` gives a, b).
/// Re-exports of the root resolve to their module: `Ledger` is `store`'s, `LedgerError` `error`'s.
fn crate_paths(source: &str) -> Result<BTreeSet<String>, String> {
    let mut found = BTreeSet::new();
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        let heads: Vec<String> = match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0usize;
                let mut heads = vec![String::new()];
                let mut in_head = true;
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            heads.push(String::new());
                            in_head = true;
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 && in_head {
                        if c.is_alphanumeric() || c == '_' {
                            heads.last_mut().expect("one head at least").push(c);
                        } else if !c.is_whitespace() {
                            in_head = false;
                        }
                    }
                }
                heads.into_iter().filter(|h| !h.is_empty()).collect()
            }
            None => vec![rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()],
        };
        for head in heads {
            let module = match head.as_str() {
                "Ledger" => "store".to_owned(),
                "LedgerError" => "error".to_owned(),
                name if name.starts_with(|c: char| c.is_uppercase()) => {
                    return Err(format!(
                        "crate::{name}: name the module it comes from, so the layering can be checked"
                    ));
                }
                name => name.to_owned(),
            };
            found.insert(module);
        }
    }
    Ok(found)
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let order = stated_order(&lib);
    assert!(order.len() >= 5, "no layering found in lib.rs: {order:?}");

    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if name == "lib" || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        modules.insert(name.to_owned());
        let Some(rank) = order.iter().position(|m| m == name) else {
            panic!("src/{name}.rs is not in the layering of lib.rs ({order:?}): add it there");
        };
        let source = std::fs::read_to_string(&path).unwrap();
        let used = crate_paths(&source).unwrap_or_else(|why| panic!("src/{name}.rs: {why}"));
        for dep in used {
            let dep_rank = order.iter().position(|m| *m == dep);
            // A module may name itself (a macro's `$crate::` path).
            assert!(
                dep_rank.is_some_and(|r| r <= rank),
                "src/{name}.rs uses crate::{dep}, which is not below it in lib.rs's layering \
                 ({})",
                order.join(" < ")
            );
        }
    }
    let stated: BTreeSet<String> = order.iter().cloned().collect();
    assert_eq!(
        stated, modules,
        "lib.rs's layering names exactly the modules of src/"
    );
}

#[test]
fn the_checker_sees_grouped_and_nested_paths() {
    let source = "use crate::error::LedgerError;\nuse crate::{pending::{a, b}, store::Ledger};\n\
                  fn f() { crate::verdict_rows::x(); }\nuse crate::{Ledger, LedgerError};";
    assert_eq!(
        crate_paths(source).unwrap().into_iter().collect::<Vec<_>>(),
        ["error", "pending", "store", "verdict_rows"]
    );
    assert!(crate_paths("use crate::Payout;").is_err());
    assert_eq!(
        stated_order("// a < b\n//   < c\n/// x < y\n"),
        ["a", "b", "c"]
    );
}
