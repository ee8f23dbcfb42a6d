//! A query normalised for grouping, as `pg_stat_statements` groups them: the same statement with
//! other values is one group.

use crate::traffic::decode::MAX_TEXT;

/// `query` normalised for grouping: string literals (`'…'`, `E'…'`, `B'…'`, `X'…'`, `$tag$…$tag$`)
/// and numbers as `?`, parameters (`$1`) and quoted identifiers kept, comments dropped, each run
/// of whitespace one space, a list of literals after `IN` one `?` (`IN (?)`), the closing `;`
/// dropped, cut to [`MAX_TEXT`] characters.
pub fn normalize(query: &str) -> String {
    cut(normalized(query, MAX_TEXT * 4))
}

/// `query` normalised as [`normalize`] does, all of it (not cut): what `traffic replay` reads
/// its statements and keywords in (no literal, comment or dollar-quoted body left to mislead).
pub fn plain(query: &str) -> String {
    normalized(query, usize::MAX)
}

/// Normalised until the output passes `limit` bytes.
fn normalized(query: &str, limit: usize) -> String {
    let mut n = Normalizer {
        out: String::with_capacity(query.len().min(MAX_TEXT * 2)),
        space: false,
        last_word_in: false,
        in_list: false,
    };
    let b = query.as_bytes();
    let mut i = 0;
    while i < b.len() && n.out.len() <= limit {
        i = n.token(query, i);
    }
    n.out.retain(|c| !c.is_control());
    let end = n.out.trim_end_matches([';', ' ']).len();
    n.out.truncate(end);
    n.out
}

struct Normalizer {
    out: String,
    /// Whitespace (or a comment) came since the last token.
    space: bool,
    /// The last word was `IN`.
    last_word_in: bool,
    /// Inside `IN (`, only literals so far.
    in_list: bool,
}

impl Normalizer {
    /// Reads the token at `i`; where the next one starts.
    fn token(&mut self, query: &str, i: usize) -> usize {
        let b = query.as_bytes();
        let next = b.get(i + 1).copied();
        let after_word = i > 0 && is_word(b[i - 1]);
        match b[i] {
            c if c.is_ascii_whitespace() || c.is_ascii_control() => {
                self.space = true;
                i + 1
            }
            b'-' if next == Some(b'-') => {
                self.space = true;
                memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |e| i + e + 1)
            }
            b'/' if next == Some(b'*') => {
                self.space = true;
                block_comment_end(b, i)
            }
            b'\'' => self.literal(quoted_end(b, i + 1, false)),
            b'E' | b'e' if next == Some(b'\'') && !after_word => {
                self.literal(quoted_end(b, i + 2, true))
            }
            b'B' | b'b' | b'X' | b'x' | b'N' | b'n' if next == Some(b'\'') && !after_word => {
                self.literal(quoted_end(b, i + 2, false))
            }
            b'$' => match dollar(b, i) {
                Dollar::Param(end) => {
                    self.emit(&query[i..end], false);
                    end
                }
                Dollar::Quote(end) => self.literal(end),
                Dollar::Sign => {
                    self.emit("$", false);
                    i + 1
                }
            },
            b'"' => {
                let end = quoted_end_char(b, i + 1, b'"');
                self.emit(&query[i..end], false);
                end
            }
            c if (c.is_ascii_digit()
                || (c == b'.' && next.is_some_and(|d| d.is_ascii_digit())))
                && !after_word =>
            {
                self.literal(number_end(b, i))
            }
            c if is_word(c) => {
                let end = i + b[i..].iter().take_while(|&&c| is_word(c)).count();
                let word = &query[i..end];
                self.emit(word, false);
                self.last_word_in = word.eq_ignore_ascii_case("in");
                end
            }
            _ => {
                let end = i + utf8_len(b[i]).min(b.len() - i);
                let symbol = query.get(i..end).unwrap_or("?");
                let open = symbol == "(" && self.last_word_in;
                self.emit(symbol, open);
                end
            }
        }
    }

    /// A literal ending at `end`: `?`, or nothing more after a `?` in an `IN` list.
    fn literal(&mut self, end: usize) -> usize {
        let before_comma = self.out.trim_end().strip_suffix(',').map(str::trim_end);
        if self.in_list && before_comma.is_some_and(|t| t.ends_with('?')) {
            let keep = before_comma.map_or(0, str::len);
            self.out.truncate(keep);
            self.space = false;
        } else {
            self.emit("?", false);
        }
        end
    }

    fn emit(&mut self, token: &str, opens_list: bool) {
        if std::mem::take(&mut self.space) && !self.out.is_empty() {
            self.out.push(' ');
        }
        self.out.push_str(token);
        self.last_word_in = false;
        if opens_list {
            self.in_list = true;
        } else if token != "," && token != "?" {
            self.in_list = false;
        }
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    }
}

/// Where a `'…'` literal whose text starts at `i` ends (`''` is a quote inside; with
/// `backslash`, `\'` too).
fn quoted_end(b: &[u8], mut i: usize, backslash: bool) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Where a quoted identifier whose text starts at `i` ends (`""` is a quote inside).
fn quoted_end_char(b: &[u8], mut i: usize, quote: u8) -> usize {
    while i < b.len() {
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// Where a block comment (which nests) starting at `i` ends.
fn block_comment_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// Where a number starting at `i` ends: digits, a point, an exponent, `_` separators, `0x…`.
fn number_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'e' | b'E' if matches!(b.get(i + 1), Some(b'+' | b'-')) => i += 2,
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' => i += 1,
            _ => break,
        }
    }
    i
}

enum Dollar {
    /// `$1`: ends there.
    Param(usize),
    /// `$tag$…$tag$`: ends there.
    Quote(usize),
    Sign,
}

fn dollar(b: &[u8], i: usize) -> Dollar {
    let rest = &b[i + 1..];
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 {
        return Dollar::Param(i + 1 + digits);
    }
    let tag_len = rest
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_')
        .count();
    if rest.get(tag_len) != Some(&b'$') || rest.first().is_some_and(u8::is_ascii_digit) {
        return Dollar::Sign;
    }
    let tag = &b[i..i + tag_len + 2];
    let body = i + tag.len();
    let end = b[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(b.len(), |p| body + p + tag.len());
    Dollar::Quote(end)
}

fn cut(mut out: String) -> String {
    out.truncate(out.trim_end().len());
    if out.chars().count() <= MAX_TEXT {
        return out;
    }
    let end = out
        .char_indices()
        .nth(MAX_TEXT - 1)
        .map_or(out.len(), |(i, _)| i);
    out.truncate(end);
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_placeholders() {
        let cases = [
            (
                "SELECT * FROM users WHERE id = 42",
                "SELECT * FROM users WHERE id = ?",
            ),
            (
                "select *\n  from users\twhere id = $1",
                "select * from users where id = $1",
            ),
            (
                "SELECT 'it''s', E'a\\'b', $$x$$, $f$ y $f$, 1.5e-3, .5, 0x1F",
                "SELECT ?, ?, ?, ?, ?, ?, ?",
            ),
            (
                "INSERT INTO t (a, b) VALUES (1, 'x')",
                "INSERT INTO t (a, b) VALUES (?, ?)",
            ),
            (
                "SELECT * FROM t WHERE id IN (1, 2, 3) AND k in ('a','b')",
                "SELECT * FROM t WHERE id IN (?) AND k in (?)",
            ),
            (
                "SELECT * FROM t WHERE id IN ($1, $2)",
                "SELECT * FROM t WHERE id IN ($1, $2)",
            ),
            (
                "SELECT \"col 1\", t2.c3 FROM t2 -- note\n WHERE x = -7 /* a /* nested */ one */",
                "SELECT \"col 1\", t2.c3 FROM t2 WHERE x = -?",
            ),
            (
                "SELECT '2024-01-01'::date, B'101', X'1f'",
                "SELECT ?::date, ?, ?",
            ),
            ("SELECT 'unterminated", "SELECT ?"),
            ("SELECT $", "SELECT $"),
            ("SELECT 1;\n", "SELECT ?"),
            ("SELECT 1; SELECT 2 ;", "SELECT ?; SELECT ?"),
            (
                "SELECT café FROM t WHERE n = 'é'",
                "SELECT café FROM t WHERE n = ?",
            ),
        ];
        for (query, want) in cases {
            assert_eq!(normalize(query), want, "{query}");
        }
    }

    #[test]
    fn long_queries_are_cut() {
        let long = format!("SELECT {} FROM t", "a, ".repeat(500));
        let got = normalize(&long);
        assert_eq!(got.chars().count(), MAX_TEXT);
        assert!(got.ends_with('…'));
        assert_eq!(normalize(&"x".repeat(1 << 20)).chars().count(), MAX_TEXT);
    }
}
