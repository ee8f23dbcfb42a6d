//! Config diagnostics: an error that names the file, line and column and shows the offending line.
//!
//! Rendering is a dozen lines in the style of rustc; a reporting crate (miette, codespan) would add
//! a dependency tree for what is one caret under one line.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use unicode_width::UnicodeWidthChar;

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub message: String,
    pub help: Option<String>,
    /// line (1-based), column (1-based, in characters), the line's text, caret width
    pub location: Option<Location>,
}

#[derive(Debug, Clone)]
pub struct Location {
    pub line: usize,
    pub col: usize,
    pub text: String,
    pub width: usize,
}

impl Diagnostic {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            message: message.into(),
            help: None,
            location: None,
        }
    }

    pub fn at(file: &Path, src: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            location: Some(locate(src, span)),
            ..Diagnostic::new(file, message)
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Turn a byte span into a line/column and the text of that line. Offsets past the end or
/// inside a character move to the nearest character boundary, so no span can panic.
pub fn locate(src: &str, span: Range<usize>) -> Location {
    let start = src.floor_char_boundary(span.start);
    let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
    let text = src[line_start..line_end].trim_end_matches('\r').to_string();
    let line = src[..start].matches('\n').count() + 1;
    let col = src[line_start..start].chars().count() + 1;
    let end = src.ceil_char_boundary(span.end.clamp(start, line_end));
    let width = src[start..end].chars().count().max(1);
    Location {
        line,
        col,
        text,
        width,
    }
}

/// Text from a config (a line, a name, a value, a path) made safe to print: control characters
/// (C0, DEL, C1) and bidirectional overrides are written as escapes (`\u{1b}`), so a config can't
/// reach the user's terminal (titles, clipboard writes) or reorder what they read.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(needs_escape) {
        Cow::Owned(text.chars().map(escaped).collect())
    } else {
        Cow::Borrowed(text)
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// One character as printed: itself, or its escape.
fn escaped(c: char) -> String {
    if needs_escape(c) {
        c.escape_debug().to_string()
    } else {
        c.to_string()
    }
}

/// The columns a character of the source line takes once printed (escaped, or wide).
fn printed_width(c: char) -> usize {
    if needs_escape(c) {
        c.escape_debug().count()
    } else {
        UnicodeWidthChar::width(c).unwrap_or(0)
    }
}

/// Where the bytes `range` of a string value lie in the source, the value being spelled at
/// `span` (quotes included). Escapes (`\t`, `\u00e9`, a line-ending backslash) make the value's
/// offsets differ from the source's: the spelling is followed character by character and checked
/// against the value. When it can't be followed (not a string, or a spelling this doesn't know),
/// the whole span.
pub fn value_span(src: &str, span: Range<usize>, value: &str, range: Range<usize>) -> Range<usize> {
    match source_offsets(src, span.clone(), value) {
        Some(map) => {
            let from = range.start.min(value.len());
            let to = range.end.clamp(from, value.len());
            map[from]..map[to]
        }
        None => span,
    }
}

/// For each byte offset of `value` and for its end, the source offset where the character
/// holding that byte is spelled.
fn source_offsets(src: &str, span: Range<usize>, value: &str) -> Option<Vec<usize>> {
    let literal = src.get(span.clone())?;
    let quote = [r#"""""#, "'''", "\"", "'"]
        .into_iter()
        .find(|q| literal.len() >= 2 * q.len() && literal.starts_with(q) && literal.ends_with(q))?;
    let basic = quote.starts_with('"');
    let mut at = span.start + quote.len();
    let end = span.end - quote.len();
    if quote.len() == 3 {
        // A newline right after the opening delimiter is not part of the value.
        if let Some(nl) = ["\r\n", "\n"]
            .into_iter()
            .find(|nl| src[at..end].starts_with(nl))
        {
            at += nl.len();
        }
    }
    let mut map = Vec::with_capacity(value.len() + 1);
    let mut want = value.chars().peekable();
    while at < end {
        let rest = &src[at..end];
        let c = rest.chars().next()?;
        let (decoded, spelled) = if basic && c == '\\' {
            decode_escape(&rest[1..]).map(|(d, n)| (d, n + 1))?
        } else if rest.starts_with("\r\n") && want.peek() == Some(&'\n') {
            (Some('\n'), 2) // a CRLF the parser gave as LF
        } else {
            (Some(c), c.len_utf8())
        };
        if let Some(d) = decoded {
            if want.next() != Some(d) {
                return None;
            }
            map.extend(std::iter::repeat_n(at, d.len_utf8()));
        }
        at += spelled;
    }
    if want.next().is_some() {
        return None;
    }
    map.push(end);
    Some(map)
}

/// The escape after a backslash in a basic string: the character it stands for (none for a
/// line-ending backslash) and how many bytes it is spelled with.
fn decode_escape(rest: &str) -> Option<(Option<char>, usize)> {
    let c = rest.chars().next()?;
    let simple = match c {
        'b' => Some('\u{8}'),
        't' => Some('\t'),
        'n' => Some('\n'),
        'f' => Some('\u{c}'),
        'r' => Some('\r'),
        'e' => Some('\u{1b}'),
        '"' => Some('"'),
        '\\' => Some('\\'),
        _ => None,
    };
    if simple.is_some() {
        return Some((simple, 1));
    }
    let digits = match c {
        'x' => 2,
        'u' => 4,
        'U' => 8,
        ' ' | '\t' | '\r' | '\n' => {
            // A line-ending backslash: it and all the whitespace and newlines after it vanish.
            let kept = rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
            return Some((None, rest.len() - kept));
        }
        _ => return None,
    };
    let code = u32::from_str_radix(rest.get(1..1 + digits)?, 16).ok()?;
    Some((Some(char::from_u32(code)?), 1 + digits))
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display().to_string();
        let file = printable(&file);
        writeln!(f, "error: {}", printable(&self.message))?;
        match &self.location {
            Some(loc) => {
                let gutter = loc.line.to_string().len();
                let pad = " ".repeat(gutter);
                writeln!(f, "{pad}--> {file}:{}:{}", loc.line, loc.col)?;
                writeln!(f, "{pad} |")?;
                // Tabs stay tabs, in the line and under it, so the caret lines up either way.
                let shown: String = loc
                    .text
                    .chars()
                    .map(|c| if c == '\t' { c.to_string() } else { escaped(c) })
                    .collect();
                writeln!(f, "{} | {shown}", loc.line)?;
                let mut chars = loc.text.chars();
                let indent: String = chars
                    .by_ref()
                    .take(loc.col - 1)
                    .map(|c| match c {
                        '\t' => "\t".to_string(),
                        c => " ".repeat(printed_width(c)),
                    })
                    .collect();
                let width: usize = chars
                    .take(loc.width)
                    .map(|c| if c == '\t' { 1 } else { printed_width(c) })
                    .sum();
                write!(f, "{pad} | {indent}{}", "^".repeat(width.max(1)))?;
            }
            None => write!(f, "  --> {file}")?,
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {}", printable(help))?;
        }
        Ok(())
    }
}

/// All the problems found in one config file.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The closest candidate to `word`, if it is close enough to be a plausible typo: similar
/// (Jaro-Winkler), or one slip away (a letter missing, extra, wrong or two swapped), which
/// Jaro-Winkler misses in short words (`rnu` for `run`).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            let slip = word.chars().count() >= 3 && strsim::osa_distance(word, c) == 1;
            let score = strsim::jaro_winkler(word, c);
            (if slip { score.max(0.81) } else { score }, c)
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_reports_line_and_column_in_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        let at = src.find('"').unwrap();
        let loc = locate(src, at..at + 3);
        assert_eq!((loc.line, loc.col, loc.width), (2, 6, 3));
        assert_eq!(loc.text, "bé = \"x\"");
    }

    #[test]
    fn locate_never_splits_a_character() {
        let src = "x = \"é日\"";
        for start in 0..=src.len() + 2 {
            for end in 0..=src.len() + 2 {
                locate(src, start..end);
            }
        }
    }

    /// The value of `k` in `src`, with its span.
    fn value(src: &str) -> (Range<usize>, String) {
        let t: std::collections::BTreeMap<String, toml::Spanned<String>> =
            toml::from_str(src).unwrap();
        (t["k"].span(), t["k"].get_ref().clone())
    }

    #[test]
    fn value_spans_follow_escapes_to_the_source() {
        for (src, wanted, spelled) in [
            (r#"k = "a\tb ${X}""#, "${X}", "${X}"),
            (r#"k = "\u00e9\U0001F600 ${X}""#, "${X}", "${X}"),
            (r#"k = "a ${\té""#, "${\té", r"${\té"),
            (r"k = 'a\t ${X}'", "${X}", "${X}"),
            ("k = \"\"\"\nline \\\n    ${X}\"\"\"", "${X}", "${X}"),
            ("k = '''\r\nraw\r\n${X}'''", "${X}", "${X}"),
        ] {
            let (span, v) = value(src);
            let at = v.find(wanted).unwrap();
            let got = value_span(src, span, &v, at..at + wanted.len());
            assert_eq!(&src[got], spelled, "{src}");
        }
    }

    #[test]
    fn a_value_spelled_otherwise_gets_its_whole_span() {
        assert_eq!(value_span("k = 12", 4..6, "12", 0..1), 4..6);
        assert_eq!(value_span("k = \"ab\"", 4..8, "zz", 0..1), 4..8);
        // Ranges past the value are clamped to it.
        assert_eq!(value_span("k = \"ab\"", 4..8, "ab", 5..9), 7..7);
        assert_eq!(
            value_span("k = \"ab\"", 4..8, "ab", Range { start: 1, end: 0 }),
            6..6
        );
    }

    #[test]
    fn printable_escapes_controls_and_bidi_only() {
        assert_eq!(
            printable("a\u{1b}]0;t\u{7}é\u{202e}\"\\"),
            "a\\u{1b}]0;t\\u{7}é\\u{202e}\"\\"
        );
        assert!(matches!(printable("plain é"), Cow::Borrowed(_)));
    }

    /// `c` as TOML writes it in a basic string: raw, `\uXXXX`, `\UXXXXXXXX`, or a short escape.
    fn spell(c: char, how: u8) -> String {
        let raw_ok = !matches!(c, '"' | '\\') && (c == '\t' || !c.is_control());
        let short = match c {
            '\t' => Some("\\t"),
            '\n' => Some("\\n"),
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\u{1b}' => Some("\\e"),
            _ => None,
        };
        match how {
            0 if raw_ok => c.to_string(),
            1 if short.is_some() => short.unwrap().to_string(),
            2 => format!("\\U{:08X}", c as u32),
            _ if c > '\u{ffff}' => format!("\\U{:08X}", c as u32),
            _ => format!("\\u{:04X}", c as u32),
        }
    }

    proptest::proptest! {
        /// Any value, each character spelled raw or escaped at random: every character's source
        /// span spells that character.
        #[test]
        fn every_character_maps_to_its_spelling(
            chars in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        'a', ' ', 'é', '日', '😀', '$', '{', '}', '"', '\\', '\t', '\n', '\u{1b}', '\u{7f}',
                    ]),
                    0..4u8,
                ),
                0..24,
            )
        ) {
            let body: String = chars.iter().map(|&(c, how)| spell(c, how)).collect();
            let src = format!("k = \"{body}\"");
            let (span, v) = value(&src);
            let mut at = 0;
            for &(c, _) in &chars {
                let got = value_span(&src, span.clone(), &v, at..at + c.len_utf8());
                let (_, one) = value(&format!("k = \"{}\"", &src[got]));
                proptest::prop_assert_eq!(one, c.to_string(), "{}", src);
                at += c.len_utf8();
            }
        }
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("bulid", ["build", "run"]), Some("build"));
        assert_eq!(did_you_mean("zzz", ["build", "run"]), None);
        assert_eq!(did_you_mean("rnu", ["build", "run"]), Some("run"));
        assert_eq!(did_you_mean("ps", ["up", "ci"]), None);
    }
}
