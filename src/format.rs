//! How devstack writes amounts and times for people, in one place: durations (`1.5s`), uptimes
//! (`2h07m`), sizes (`3.4kB`), memory (`512M`), latencies (`3.2ms`), times of day
//! (`12:00:01.250`), log stamps (RFC 3339, UTC, milliseconds), counts with their nouns, and text
//! cut to a width.

use std::time::{Duration, SystemTime};

/// `1.5s`, `30s`, `250ms`
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 || d >= Duration::from_secs(10) {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Whole seconds (`0s`, `12s`), for what changes every second (a build's time so far).
pub fn whole_secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// How long a process has run, as every table shows it (`ps`, the dashboard): `42s`, `3m`,
/// `2h07m`, `3d04h`; at most 7 characters below 1000 days. Seconds only in the first minute
/// (a fresh start is worth watching): past it the text changes once a minute, so a dashboard
/// of a quiet stack has nothing to redraw ([`uptime_changes_in`]).
pub fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// In how many seconds [`uptime`]`(secs)` shows something else.
pub fn uptime_changes_in(secs: u64) -> u64 {
    match secs {
        s if s < 60 => 1,
        s if s < 86_400 => 60 - s % 60,
        s => 3600 - s % 3600,
    }
}

/// `512B`, `3.4kB`, `12.0MB`.
pub fn bytes(n: u64) -> String {
    match n {
        n if n < 1000 => format!("{n}B"),
        n if n < 1_000_000 => format!("{:.1}kB", n as f64 / 1e3),
        n if n < 1_000_000_000 => format!("{:.1}MB", n as f64 / 1e6),
        n => format!("{:.1}GB", n as f64 / 1e9),
    }
}

/// `850µs`, `3.2ms`, `1.20s`.
pub fn latency(us: u64) -> String {
    match us {
        us if us < 1000 => format!("{us}µs"),
        us if us < 1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        us => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// Resident memory as the tables show it: `512M`, `1.5G` (`-` unknown).
pub fn memory(bytes: Option<u64>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        Some(b) => format!("{:.0}M", b as f64 / (1u64 << 20) as f64),
    }
}

/// A time as the log files and the socket write it: RFC 3339, UTC, with milliseconds.
pub fn stamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// The time of day of `at` (`12:00:01.250`, UTC as the log files have it).
pub fn time_of_day(at: SystemTime) -> String {
    let stamp = stamp(at);
    stamp.get(11..23).unwrap_or(&stamp).to_string()
}

/// A count and its noun, agreeing: `1 folder`, `2 folders`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `text` in at most `width` terminal columns: whole, or cut with `…` as its last column (a
/// state cut mid-phrase without one reads as the whole state).
pub fn ellipsize(text: &str, width: usize) -> std::borrow::Cow<'_, str> {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    if text.width() <= width {
        return text.into();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.truncate(out.trim_end().len());
        out.push('…');
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_short_and_zero_padded() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(60), "1m");
        assert_eq!(uptime(75), "1m");
        assert_eq!(uptime(3599), "59m");
        assert_eq!(uptime(3600), "1h00m");
        assert_eq!(uptime(3600 + 7 * 60 + 59), "1h07m");
        assert_eq!(uptime(86_399), "23h59m");
        assert_eq!(uptime(86_400), "1d00h");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600 + 5), "3d04h");
        assert!(uptime(999 * 86_400 + 23 * 3600).len() <= 7);
    }

    /// `uptime_changes_in` says when the text changes: not earlier (the text is a function of
    /// whole units, so the last second before is enough to check), not later.
    #[test]
    fn uptime_changes_when_its_text_does() {
        for secs in (0..200_000).chain(3 * 86_400 - 8000..3 * 86_400 + 8000) {
            let next = uptime_changes_in(secs);
            assert!(next >= 1);
            assert_eq!(uptime(secs + next - 1), uptime(secs), "{secs}+{next}-1");
            assert_ne!(uptime(secs + next), uptime(secs), "{secs}+{next}");
        }
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        use super::ellipsize;
        assert_eq!(ellipsize("running", 7), "running");
        assert_eq!(ellipsize("blocked: dependency", 10), "blocked:…");
        assert_eq!(ellipsize("日本語", 4), "日…");
        assert_eq!(ellipsize("abc", 0), "");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(super::plural(1, "folder"), "1 folder");
        assert_eq!(super::plural(0, "line"), "0 lines");
        assert_eq!(super::plural(2, "line"), "2 lines");
    }
}
