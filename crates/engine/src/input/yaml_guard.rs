//! Refuses YAML that would cost far more to parse than its size: a linear scan run before
//! the config or a roles file reaches the YAML parser.
//!
//! Two shapes are refused, with their line:
//! - **Anchors and aliases** (`&name`, `*name`). One anchor reused 20,000 times in a 435 KB
//!   roles file expanded to 1.1 GB; neither file ever needs them, so they are refused
//!   outright rather than counted.
//! - **Deep nesting** (more than [`MAX_NESTING`] levels of `[`/`{`, indentation or `- `).
//!   The YAML scanner spends time proportional to the nesting depth on each token, so 200 KB
//!   of nested `[` took 28 s; neither file needs more than a few levels.
//!
//! The scan knows just enough YAML to find where a node starts (after indentation, `- `,
//! `? `, `: `, `[`, `{`, `,`), and to skip comments, quoted scalars and block scalars
//! (`|`, `>`), so `*` and `&` inside text (a SQL query, an email) are not mistaken for
//! aliases. Where it cannot tell (a `*` opening a continuation line of a plain multi-line
//! scalar) it refuses and says to quote the text: it errs on the side of refusing.

/// The deepest nesting accepted; a roles file needs 3 levels, the config 4.
pub(crate) const MAX_NESTING: usize = 32;

/// Why a text was refused, with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct YamlRefusal {
    pub line: usize,
    pub message: String,
}

/// Refuses anchors, aliases and deep nesting; linear in the length of `text`.
pub(crate) fn check(text: &str) -> Result<(), YamlRefusal> {
    let mut scan = Scan::default();
    for (i, line) in text.lines().enumerate() {
        scan.line(line).map_err(|message| YamlRefusal {
            line: i + 1,
            message,
        })?;
    }
    Ok(())
}

#[derive(Default)]
struct Scan {
    /// Indents of the open block collections (approximate: enough to bound the depth).
    blocks: Vec<usize>,
    /// Open `[`/`{`.
    flow: usize,
    /// Inside a quoted scalar that goes on to the next line.
    quote: Option<u8>,
    /// Inside a block scalar: the indent of the line that opened it.
    block_scalar: Option<usize>,
}

impl Scan {
    fn line(&mut self, line: &str) -> Result<(), String> {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        let blank = bytes[indent..]
            .iter()
            .all(|b| *b == b' ' || *b == b'\t' || *b == b'\r');
        if let Some(parent) = self.block_scalar {
            if blank || indent > parent {
                return Ok(()); // text of the block scalar
            }
            self.block_scalar = None;
        }
        let mut i = indent;
        let mut node_start = true;
        if self.quote.is_none() {
            if blank || bytes[i] == b'#' {
                return Ok(());
            }
            if indent == 0 && (line.starts_with("---") || line.starts_with("...")) {
                if bytes.get(3).is_some_and(|b| *b != b' ' && *b != b'\t') {
                    // a plain scalar such as `----`; scanned as one below
                } else if line.starts_with("...") {
                    return Ok(());
                } else {
                    i = 3;
                }
            }
            if indent == 0 && bytes[0] == b'%' {
                return Ok(()); // a directive
            }
            if self.flow == 0 {
                while self.blocks.last().is_some_and(|d| *d >= indent) {
                    self.blocks.pop();
                }
                self.blocks.push(indent);
                self.depth(0)?;
            }
        }
        let mut compact = 0;
        let mut after_quote = false;
        while i < bytes.len() {
            let c = bytes[i];
            if let Some(q) = self.quote {
                if c == b'\\' && q == b'"' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                    node_start = false;
                    after_quote = true;
                }
                i += 1;
                continue;
            }
            let next = bytes.get(i + 1).copied();
            let space_after = next.is_none_or(|n| n == b' ' || n == b'\t' || n == b'\r');
            match c {
                b' ' | b'\t' | b'\r' => {}
                b'#' if i == 0 || matches!(bytes[i - 1], b' ' | b'\t') => break,
                b'&' | b'*' if node_start => return Err(refuse_alias(c, &line[i..])),
                b'\'' | b'"' if node_start => self.quote = Some(c),
                b'!' if node_start => {
                    // A tag; a node (maybe an anchor) follows it.
                    while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t') {
                        i += 1;
                    }
                    continue;
                }
                b'|' | b'>' if node_start && self.flow == 0 => {
                    self.block_scalar = Some(indent);
                    break;
                }
                b'-' | b'?' if node_start && space_after && (self.flow == 0 || c == b'?') => {
                    compact += 1;
                    self.depth(compact)?;
                }
                b'[' | b'{' if node_start || self.flow > 0 => {
                    self.flow += 1;
                    self.depth(compact)?;
                    node_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    node_start = false;
                }
                b',' if self.flow > 0 => node_start = true,
                b':' if space_after || (self.flow > 0 && after_quote) => node_start = true,
                _ if node_start => node_start = false,
                _ => {}
            }
            if !matches!(c, b' ' | b'\t' | b'\r') {
                after_quote = false;
            }
            i += 1;
        }
        Ok(())
    }

    fn depth(&self, compact: usize) -> Result<(), String> {
        let depth = self.blocks.len() + self.flow + compact;
        if depth > MAX_NESTING {
            return Err(format!(
                "YAML nested deeper than {MAX_NESTING} levels (brackets, braces, indentation or `- `) \
                 is not accepted: this file needs only a few levels, and deep nesting makes \
                 parsing slow"
            ));
        }
        Ok(())
    }
}

fn refuse_alias(c: u8, from: &str) -> String {
    let name: String = from[1..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
        .take(32)
        .collect();
    let what = if c == b'&' { "anchor" } else { "alias" };
    format!(
        "`{}{name}` is a YAML {what}: anchors and aliases (`&name`, `*name`) are not accepted \
         in this file, because they let a small file expand without bound; write the value \
         out (or quote it, if it is text)",
        c as char
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> YamlRefusal {
        check(text).expect_err(text)
    }

    #[test]
    fn ordinary_files_pass() {
        for text in [
            "users:\n  alice@x.edu: [Admin]\n  bob&co@x.edu: [Admin, CaptionEditor]  # a & b *c\n",
            "users:\n  'a*b@x.edu':\n    - Admin\n  \"&x@y.edu\": []\n",
            "source:\n  sql:\n    query: |\n      SELECT *\n      *\n        &odd\n    url_env: X\nlog: {level: info, format: json}\n",
            "studio:\n  base_url: https://x.edu/a*b&c\n  oauth: {client_id: 'it''s', client_secret_env: \"a\\\"*b\"}\n",
            "---\nusers:\n  a@x.edu: [Admin]\n...\n",
            "query: \"multi\n  *line &quoted\"\nother: 'a\n  *b'\n",
            "x: [a, b*, c&d, {k: v*}]\n",
            "x: - a\n",
        ] {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn anchors_and_aliases_are_refused_with_their_line() {
        let r = refused("users:\n  a@x.edu: &roles [Admin]\n  b@x.edu: *roles\n");
        assert_eq!(r.line, 2);
        assert!(r.message.starts_with("`&roles` is a YAML anchor"), "{r:?}");
        let r = refused("users:\n  b@x.edu: *roles\n");
        assert_eq!(r.line, 2);
        assert!(r.message.starts_with("`*roles` is a YAML alias"), "{r:?}");
        for text in [
            "a: [x, *y]\n",
            "a: {k: *y}\n",
            "- *y\n",
            "*y : v\n",
            "a: !!seq &x [b]\n",
            "--- &x\na: b\n",
            "a: ['q', *y]\n",
            "{\"k\":*y}\n",
        ] {
            refused(text);
        }
    }

    #[test]
    fn deep_nesting_is_refused_early() {
        let deep = format!("users: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let r = refused(&deep);
        assert_eq!(r.line, 1);
        assert!(r.message.contains("nested deeper than 32 levels"), "{r:?}");
        let mut block = String::new();
        for d in 0..40 {
            block += &format!("{}k{d}:\n", " ".repeat(d));
        }
        assert_eq!(refused(&block).line, 33);
        assert_eq!(refused(&format!("{}x\n", "- ".repeat(40))).line, 1);
        let shallow = format!("a: {}{}\n", "[".repeat(20), "]".repeat(20));
        assert_eq!(check(&shallow), Ok(()));
    }
}
