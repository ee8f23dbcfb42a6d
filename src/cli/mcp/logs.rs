//! The `logs` tool's lines: from the running stack, or from the log files of the last one
//! when none runs (`file_lines`); only those since a time (`since_time`) and matching a
//! pattern, searched through the last 20,000; the newest that fit in the answer kept as they
//! come (`Newest`), with a note of how many were left out.

use super::{Outcome, at_least_one};
use devstack::control::{LineStream, WireLine};
use rmcp::schemars;
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Log lines a `logs` call returns at most.
const MAX_LINES: usize = 2000;
/// Bytes of log lines a `logs` call returns at most (2,000 lines of 64 KiB would be 131 MB):
/// the newest lines that fit, and a note of how many earlier ones were left out.
const MAX_LOG_BYTES: usize = 512 * 1024;
/// Log lines a `logs` call returns unless told.
const DEFAULT_LINES: usize = 100;
/// Lines searched (from the end) when a `logs` call filters by time or pattern.
const SEARCHED_LINES: usize = 20_000;

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct LogsParams {
    /// Services whose lines to return (default: every service, merged in time order)
    #[serde(default)]
    services: Vec<String>,
    /// How many of the last matching lines to return (default 100, at most 2000; the answer is
    /// also cut to its newest 512 KiB)
    lines: Option<usize>,
    /// Only lines logged since then: an RFC 3339 time (`2026-01-31T12:00:00Z`) or a duration
    /// back from now (`90s`, `5m`, `1h`)
    since: Option<String>,
    /// Only lines matching this regular expression (Rust regex syntax; `(?i)` for any case)
    pattern: Option<String>,
}

/// The last `n` lines of `services` (all when empty), each to `each`, from the log files of the
/// stack whose config is `file` (or found from here up), when none runs.
pub(super) fn file_lines(
    file: Option<&Path>,
    services: &[String],
    n: usize,
    each: &mut dyn FnMut(WireLine),
) -> Result<(), String> {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let path = match file {
        Some(f) => f.to_path_buf(),
        None => devstack::config::find(&here).ok_or_else(|| {
            format!(
                "no stack runs in {} and there is no {} to find its log files by",
                here.display(),
                devstack::config::FILE_NAME
            )
        })?,
    };
    let cfg = devstack::config::load(&path).map_err(|e| {
        format!("no stack runs, and its config, which names the log files, has errors:\n{e}")
    })?;
    let names = cfg.names();
    let wanted = if services.is_empty() {
        names.ids().collect()
    } else {
        let mut wanted = Vec::new();
        for s in services {
            match cfg.id_of(s) {
                Some(i) => wanted.push(i),
                None => {
                    return Err(format!(
                        "unknown service `{s}`; services are: {}",
                        names.as_slice().join(", ")
                    ));
                }
            }
        }
        wanted
    };
    let dir = devstack::statedir::StateDir::new(&cfg.root).logs();
    for line in devstack::logs::read_files(&dir, &names, &wanted, n) {
        each(WireLine::new(&line, &names));
    }
    Ok(())
}

/// The lines of `services` (all when empty), how many from the end, each to the callback.
pub(super) type Fetch<'a> =
    dyn FnOnce(&[String], usize, &mut dyn FnMut(WireLine)) -> Result<(), String> + 'a;

/// `logs`: the lines `fetch` gives, filtered and written out.
pub(super) fn logs(p: LogsParams, fetch: Box<Fetch<'_>>) -> Outcome {
    let wanted = at_least_one(p.lines, DEFAULT_LINES, "lines")?.min(MAX_LINES);
    let since = p.since.as_deref().map(since_time).transpose()?;
    let pattern = p
        .pattern
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| format!("bad pattern: {e}"))?;
    let filtered = since.is_some() || pattern.is_some();
    let asked = if filtered { SEARCHED_LINES } else { wanted };
    // Lines are kept as they arrive, the newest that fit: a search through 20,000 long lines
    // never holds them all.
    let mut newest = Newest::new(wanted, MAX_LOG_BYTES);
    fetch(&p.services, asked, &mut |l| {
        // Times compared as times (a line whose time can't be read is kept).
        if since.is_some_and(|s| humantime::parse_rfc3339(&l.time).is_ok_and(|t| t < s))
            || pattern.as_ref().is_some_and(|re| !re.is_match(&l.text))
        {
            return;
        }
        let mark = match l.stream {
            LineStream::Out => "",
            LineStream::Build => "[build] ",
            LineStream::Devstack => "[devstack] ",
        };
        newest.push(format!("{} {} | {mark}{}", l.time, l.service, l.text));
    })?;
    Ok(newest.text().unwrap_or_else(|| {
        if filtered {
            "no line matches".to_string()
        } else {
            "no lines yet".to_string()
        }
    }))
}

/// The newest lines, at most `max_lines` of them and `max_bytes` of text (one a line), as they
/// come, oldest first.
struct Newest {
    lines: VecDeque<String>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
    /// Lines pushed, of which the last `max_lines` were asked for.
    pushed: usize,
}

impl Newest {
    fn new(max_lines: usize, max_bytes: usize) -> Newest {
        Newest {
            lines: VecDeque::new(),
            bytes: 0,
            max_lines,
            max_bytes,
            pushed: 0,
        }
    }

    fn push(&mut self, mut line: String) {
        // A line longer than everything allowed is cut, at a character's boundary.
        if line.len() >= self.max_bytes {
            let cut = line.floor_char_boundary(self.max_bytes.saturating_sub(16));
            line.truncate(cut);
            line.push_str(" … (line cut)");
        }
        self.pushed += 1;
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.lines.len() > self.max_lines
            || (self.bytes > self.max_bytes && self.lines.len() > 1)
        {
            let old = self.lines.pop_front().expect("more than one line");
            self.bytes -= old.len() + 1;
        }
    }

    /// The lines, one a line; first, when some that were asked for were left out to stay within
    /// the bytes, how many. None when there is none.
    fn text(self) -> Option<String> {
        if self.lines.is_empty() {
            return None;
        }
        let left_out = self.pushed.min(self.max_lines) - self.lines.len();
        let mut text = String::with_capacity(self.bytes + 200);
        if left_out > 0 {
            text.push_str(&format!(
                "[{} left out: the answer is cut to its newest {} KiB; ask for fewer lines, or narrow with `since` or `pattern`]\n",
                devstack::format::plural(left_out, "earlier line"),
                self.max_bytes / 1024
            ));
        }
        text.push_str(&Vec::from(self.lines).join("\n"));
        Some(text)
    }
}

/// `since`: an RFC 3339 time, or a duration back from now.
fn since_time(since: &str) -> Result<SystemTime, String> {
    let at = if let Ok(back) = humantime::parse_duration(since) {
        SystemTime::now()
            .checked_sub(back)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    } else if let Some(at) = devstack::format::parse_time(since) {
        at
    } else {
        return Err(format!(
            "bad since `{since}`: write an RFC 3339 time (2026-01-31T12:00:00Z) or a duration back from now (90s, 5m, 1h)"
        ));
    };
    // No line was logged before 1970.
    Ok(at.max(SystemTime::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newest(lines: &[String], max_lines: usize, max_bytes: usize) -> Option<String> {
        let mut newest = Newest::new(max_lines, max_bytes);
        lines.iter().for_each(|l| newest.push(l.clone()));
        newest.text()
    }

    #[test]
    fn an_answer_keeps_the_newest_lines_that_fit_and_says_how_many_were_left_out() {
        let lines: Vec<String> = (0..10).map(|i| format!("{i}{}", "x".repeat(99))).collect();
        let text = newest(&lines, 2000, 350).unwrap();
        let kept: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(kept, lines[7..]);
        assert!(text.starts_with("[7 earlier lines left out"), "{text}");
        // Lines beyond those asked for are not "left out".
        let text = newest(&lines, 5, 350).unwrap();
        assert!(text.starts_with("[2 earlier lines left out"), "{text}");
        assert_eq!(
            newest(&lines[..2], 2000, 1000).unwrap(),
            lines[..2].join("\n")
        );
        assert_eq!(newest(&lines, 3, 1000).unwrap(), lines[7..].join("\n"));
        assert_eq!(newest(&[], 3, 1000), None);
        // One line longer than everything allowed is cut, at a character's boundary.
        let text = newest(&["é".repeat(100)], 5, 50).unwrap();
        assert!(
            text.len() <= 50 + " … (line cut)".len() && text.ends_with("(line cut)"),
            "{text}"
        );
    }

    #[test]
    fn since_before_1970_is_every_line_and_zero_counts_are_refused() {
        for since in [
            "1969-12-31T23:59:59Z",
            "1900-01-01T00:00:00+02:00",
            "100000y",
        ] {
            assert_eq!(since_time(since).unwrap(), SystemTime::UNIX_EPOCH);
        }
        assert!(
            at_least_one(Some(0), 50, "limit")
                .unwrap_err()
                .contains("1 or more")
        );
        assert_eq!(at_least_one(None, 50, "limit"), Ok(50));
    }
}
