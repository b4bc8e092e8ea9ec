//! Reading Rust source as text: the code without comments, literals and
//! `#[cfg(test)]` items, and the `crate::` / `super::` paths it names.

use std::collections::BTreeMap;

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The length of the literal (string, raw string or character) starting at
/// `i`, or `None` when `i` starts none (a lifetime's `'` included).
fn literal_len(s: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| s.get(k).copied();
    // `r` starts a raw string unless it ends an identifier (`br"` does not).
    let byte_prefix = |k: usize| s[k] == 'b' && (k == 0 || !is_ident(s[k - 1]));
    let after_ident = i > 0 && is_ident(s[i - 1]) && !byte_prefix(i - 1);
    if at(i) == Some('r') && !after_ident && matches!(at(i + 1), Some('"' | '#')) {
        let hashes = s[i + 1..].iter().take_while(|c| **c == '#').count();
        if at(i + 1 + hashes) == Some('"') {
            let close: Vec<char> = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            let body = i + 2 + hashes;
            let end = (body..s.len()).find(|&k| s[k..].starts_with(&close));
            return Some(end.map_or(s.len(), |k| k + close.len()) - i);
        }
    }
    match at(i)? {
        '"' => {
            let mut k = i + 1;
            while k < s.len() && s[k] != '"' {
                k += if s[k] == '\\' { 2 } else { 1 };
            }
            Some(k + 1 - i)
        }
        '\'' if at(i + 1) == Some('\\') => {
            // An escape is at least two characters: `'\\'`, `'\''`, `'\u{1F600}'`.
            let end = (i + 3..s.len()).find(|&k| s[k] == '\'');
            Some(end.map_or(s.len(), |k| k + 1) - i)
        }
        '\'' if at(i + 2) == Some('\'') => Some(3),
        _ => None,
    }
}

/// The code without comments (line, block, doc) and with every literal
/// emptied, so neither can name a module or unbalance a brace.
pub fn strip_comments_and_literals(src: &str) -> String {
    let s: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(&['/', '/']) {
            i = (i..s.len()).find(|&k| s[k] == '\n').unwrap_or(s.len());
        } else if s[i..].starts_with(&['/', '*']) {
            let mut depth = 0;
            while i < s.len() {
                if s[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    i += 2;
                } else if s[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if let Some(len) = literal_len(&s, i) {
            out.push_str("\"\"");
            i += len;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// The index just past the bracket matching the one at `open`.
fn matching(s: &[char], open: usize, (l, r): (char, char)) -> usize {
    let mut depth = 0;
    for (k, c) in s.iter().enumerate().skip(open) {
        if *c == l {
            depth += 1;
        } else if *c == r {
            depth -= 1;
            if depth == 0 {
                return k + 1;
            }
        }
    }
    s.len()
}

/// Removes every `#[cfg(test)]` item (with its other attributes) from code
/// already stripped of comments and literals; returns what is left and the
/// names of test modules declared as `mod name;` (their files are tests).
pub fn strip_test_items(code: &str) -> (String, Vec<String>) {
    const CFG_TEST: &str = "#[cfg(test)]";
    let mut rest = code;
    let mut out = String::new();
    let mut test_files = Vec::new();
    while let Some(at) = rest.find(CFG_TEST) {
        out.push_str(&rest[..at]);
        let item: Vec<char> = rest[at + CFG_TEST.len()..].chars().collect();
        let mut i = 0;
        loop {
            while item.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            if item.get(i) != Some(&'#') {
                break;
            }
            let open = (i..item.len())
                .find(|&k| item[k] == '[')
                .unwrap_or(item.len());
            i = matching(&item, open, ('[', ']'));
        }
        let stop = (i..item.len()).find(|&k| item[k] == '{' || item[k] == ';');
        let end = match stop {
            Some(k) if item[k] == ';' => {
                let head: String = item[i..k].iter().collect();
                let words: Vec<&str> = head.split_whitespace().collect();
                if let [.., "mod", name] = words[..] {
                    test_files.push(name.to_owned());
                }
                k + 1
            }
            Some(k) => matching(&item, k, ('{', '}')),
            None => item.len(),
        };
        let skipped: usize = item[..end].iter().map(|c| c.len_utf8()).sum();
        rest = &rest[at + CFG_TEST.len() + skipped..];
    }
    out.push_str(rest);
    (out, test_files)
}

/// Whether `word` starts at `i`, not inside a longer identifier
/// (`$crate::` counts, `pub(crate)` and `my_crate::` do not).
fn word_at(s: &[char], i: usize, word: &str) -> bool {
    let alone = i == 0 || !is_ident(s[i - 1]);
    alone && s.len() >= i + word.len() && s[i..i + word.len()].iter().copied().eq(word.chars())
}

/// The identifier at `i` (empty when none), `i` moved past it.
fn ident(s: &[char], i: &mut usize) -> String {
    let start = *i;
    while s.get(*i).is_some_and(|c| is_ident(*c)) {
        *i += 1;
    }
    s[start..*i].iter().collect()
}

fn skip_whitespace(s: &[char], i: &mut usize) {
    while s.get(*i).is_some_and(|c| c.is_whitespace()) {
        *i += 1;
    }
}

/// The paths of a use tree starting at `i` (`a::{b, c::d}` is `a::b` and
/// `a::c::d`), each with the name it is known by (its last segment, or its
/// `as` alias). `self` segments are dropped, a glob ends its path.
fn use_tree(s: &[char], i: &mut usize) -> Vec<(Vec<String>, String)> {
    skip_whitespace(s, i);
    if s.get(*i) == Some(&'{') {
        *i += 1;
        let mut paths = Vec::new();
        while *i < s.len() && s[*i] != '}' {
            let before = *i;
            paths.extend(use_tree(s, i));
            skip_whitespace(s, i);
            if s.get(*i) == Some(&',') || *i == before {
                *i += 1;
            }
        }
        *i += 1;
        return paths;
    }
    let segment = ident(s, i);
    if segment.is_empty() {
        return vec![(Vec::new(), String::new())];
    }
    if s[*i..].starts_with(&[':', ':']) {
        *i += 2;
        let mut paths = use_tree(s, i);
        if segment != "self" {
            paths
                .iter_mut()
                .for_each(|(path, _)| path.insert(0, segment.clone()));
        }
        return paths;
    }
    let mut name = segment.clone();
    let mut k = *i;
    skip_whitespace(s, &mut k);
    if word_at(s, k, "as") && s.get(k + 2).is_some_and(|c| c.is_whitespace()) {
        k += 2;
        skip_whitespace(s, &mut k);
        name = ident(s, &mut k);
        *i = k;
    }
    let path = if segment == "self" {
        vec![]
    } else {
        vec![segment]
    };
    vec![(path, name)]
}

/// The crate paths `code` (of `module`) names through `crate::` (or
/// `$crate::`) and, when `follow_super`, `super::`, as segments from the
/// crate root.
pub fn crate_paths(module: &str, code: &str, follow_super: bool) -> Vec<Vec<String>> {
    let s: Vec<char> = code.chars().collect();
    let own: Vec<String> = module
        .split("::")
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let base = if word_at(&s, i, "crate::") {
            i += "crate::".len();
            Vec::new()
        } else if follow_super && word_at(&s, i, "super::") {
            let mut up = own.len();
            while word_at(&s, i, "super::") {
                up = up.saturating_sub(1);
                i += "super::".len();
            }
            own[..up].to_vec()
        } else {
            i += 1;
            continue;
        };
        for (path, _) in use_tree(&s, &mut i) {
            paths.push(base.iter().chain(&path).cloned().collect());
        }
    }
    paths
}

/// What the crate root imports or re-exports (`pub use registry::sender_for;`),
/// which the whole crate may name as `crate::sender_for`: each name to the
/// path it stands for.
pub fn root_reexports(root_code: &str) -> BTreeMap<String, Vec<String>> {
    let s: Vec<char> = root_code.chars().collect();
    let mut names = BTreeMap::new();
    for (at, _) in root_code.match_indices("use ") {
        if root_code[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let mut i = root_code[..at].chars().count() + "use ".len();
        for (path, name) in use_tree(&s, &mut i) {
            let path: Vec<String> = path.into_iter().skip_while(|p| p == "crate").collect();
            if path.len() > 1 {
                names.insert(name, path);
            }
        }
    }
    names
}
