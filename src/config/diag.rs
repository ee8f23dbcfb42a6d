//! Config diagnostics: an error that names the file, line and column and shows the offending line.
//!
//! Rendering is a dozen lines in the style of rustc; a reporting crate (miette, codespan) would add
//! a dependency tree for what is one caret under one line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

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

/// Turn a byte span into a line/column and the text of that line.
pub fn locate(src: &str, span: Range<usize>) -> Location {
    let start = span.start.min(src.len());
    let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
    let text = src[line_start..line_end].trim_end_matches('\r').to_string();
    let line = src[..start].matches('\n').count() + 1;
    let col = src[line_start..start].chars().count() + 1;
    let end = span.end.clamp(start, line_end);
    let width = src[start..end].chars().count().max(1);
    Location {
        line,
        col,
        text,
        width,
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        match &self.location {
            Some(loc) => {
                let gutter = loc.line.to_string().len();
                let pad = " ".repeat(gutter);
                writeln!(
                    f,
                    "{pad}--> {}:{}:{}",
                    self.file.display(),
                    loc.line,
                    loc.col
                )?;
                writeln!(f, "{pad} |")?;
                writeln!(f, "{} | {}", loc.line, loc.text)?;
                let indent: String = loc
                    .text
                    .chars()
                    .take(loc.col - 1)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                write!(f, "{pad} | {indent}{}", "^".repeat(loc.width))?;
            }
            None => write!(f, "  --> {}", self.file.display())?,
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
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

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
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
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("bulid", ["build", "run"]), Some("build"));
        assert_eq!(did_you_mean("zzz", ["build", "run"]), None);
    }
}
