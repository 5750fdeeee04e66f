//! Where a key stands in a YAML file, for error messages.
//!
//! serde reports the line of a *type* error, but checks that need the whole value (a role
//! that is not managed, an email seen twice, `http://` to a remote host) happen after parsing,
//! when serde's positions are gone. This scanner recovers the line of a key from the text: it
//! follows block mappings by indentation, which is how config and roles files are written.
//! Where it cannot tell (flow mappings, anchors), callers fall back to the nearest parent key.

/// One block-mapping key: its path from the document root and its 1-based line.
struct KeyAt {
    path: Vec<String>,
    line: usize,
}

/// The lines of a YAML text as YAML counts them: `\r\n`, `\n` and a lone `\r` each end a
/// line (a file saved with old Mac line ends), so a line number here is the parser's too.
fn yaml_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let line = &rest[..end];
        let tail = &rest[end..];
        rest = match tail.strip_prefix("\r\n") {
            Some(after) => after,
            None if tail.is_empty() => tail,
            // One line break, `\n` or `\r`: one byte.
            None => &tail[1..],
        };
        Some(line)
    })
}

fn scan(text: &str) -> Vec<KeyAt> {
    let mut out = Vec::new();
    // (indent, key) of the open mappings above the current line.
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (i, raw) in yaml_lines(text).enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let Some(key) = leading_key(trimmed) else {
            continue;
        };
        while stack.last().is_some_and(|(d, _)| *d >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        out.push(KeyAt {
            path: stack.iter().map(|(_, k)| k.clone()).collect(),
            line: i + 1,
        });
    }
    out
}

/// The key at the start of a line (`key: ...`, `"key": ...`), if the line opens one.
fn leading_key(line: &str) -> Option<String> {
    if let Some(quote) = line.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let rest = &line[1..];
        let end = rest.find(quote)?;
        let after = rest[end + 1..].trim_start();
        return after.starts_with(':').then(|| rest[..end].to_string());
    }
    if line.starts_with(['-', '[', '{', '&', '*', '!', '|', '>']) {
        return None;
    }
    // A key ends at the first ": " or at a ':' closing the line (emails contain no ": ").
    let end = line.find(": ").or_else(|| {
        let t = line.split(" #").next().unwrap_or(line).trim_end();
        t.ends_with(':').then(|| t.len() - 1)
    })?;
    Some(line[..end].trim_end().to_string())
}

/// The line of the key at `path` (e.g. `["studio", "base_url"]`), or of its nearest parent
/// that can be found.
pub fn key_line(text: &str, path: &[&str]) -> Option<usize> {
    let keys = scan(text);
    (1..=path.len()).rev().find_map(|n| {
        keys.iter()
            .find(|k| k.path.len() == n && k.path.iter().zip(&path[..n]).all(|(a, b)| a == b))
            .map(|k| k.line)
    })
}

/// Every key directly under the mapping at `parent` (e.g. `["users"]`), in file order, with
/// its line; a key written twice appears twice.
pub(crate) fn child_keys(text: &str, parent: &[&str]) -> Vec<(String, usize)> {
    scan(text)
        .into_iter()
        .filter(|k| {
            k.path.len() == parent.len() + 1 && k.path.iter().zip(parent).all(|(a, b)| a == b)
        })
        .map(|mut k| (k.path.pop().unwrap_or_default(), k.line))
        .collect()
}

/// The line serde blames for a parse error. serde reports no location when a text holds more
/// than one document: the second document's `---`/`...` marker is shown, or, when the parser
/// saw a new document without one (a line indented less than the first), that line.
pub(crate) fn error_line(error: &serde_yaml::Error, text: &str) -> Option<usize> {
    if let Some(l) = error.location() {
        return Some(l.line());
    }
    let mut first_indent = None;
    for (i, line) in yaml_lines(text).enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        match first_indent {
            None if t.starts_with("---") => {}
            None => first_indent = Some(indent),
            Some(_) if t.starts_with("---") || t.starts_with("...") => return Some(i + 1),
            Some(first) if indent < first => return Some(i + 1),
            Some(_) => {}
        }
    }
    // Nowhere better to point: the first line with content.
    yaml_lines(text)
        .position(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_as_yaml_ends_them() {
        let lines: Vec<&str> = yaml_lines("a\r\nb\rc\n\nd\r\r").collect();
        assert_eq!(lines, ["a", "b", "c", "", "d", ""]);
        assert_eq!(yaml_lines("a\nb\n").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(yaml_lines("").count(), 0);
    }

    const TEXT: &str = "# comment\nstudio:\n  base_url: https://x\n  token_env: T\nroles:\n  managed: [Admin]\nusers:\n  a@x.edu: [Admin]\n  \"B@x.edu\":\n    - Admin\n  a@x.edu: []\n";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(key_line(TEXT, &["studio", "token_env"]), Some(4));
        assert_eq!(key_line(TEXT, &["roles", "managed"]), Some(6));
        assert_eq!(
            key_line(TEXT, &["roles", "missing"]),
            Some(5),
            "falls back to parent"
        );
        assert_eq!(key_line(TEXT, &["nothing"]), None);
    }

    #[test]
    fn lists_children_with_duplicates() {
        let keys = child_keys(TEXT, &["users"]);
        let expected = [("a@x.edu", 8), ("B@x.edu", 9), ("a@x.edu", 11)];
        assert_eq!(keys, expected.map(|(k, l)| (k.to_string(), l)));
    }
}
