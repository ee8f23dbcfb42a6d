//! How devstack writes amounts and times for people, in one place: durations (`1.5s`), uptimes
//! (`2h07m`), sizes (`3.4kB`), memory (`512M`), latencies (`3.2ms`), times of day
//! (`12:00:01.250`), log stamps (RFC 3339, UTC, milliseconds), counts with their nouns, and text
//! cut to a width; and the one time people write that devstack reads with its offset
//! (`parse_time`).

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

/// A time as RFC 3339 writes it, with any offset (`2026-01-31T12:00:00Z`,
/// `2026-01-31T13:00:00.5+01:00`; `t`, `z` and a space for the `T` as it allows), as people give
/// one; None when it is not one. humantime reads the date and the time of day, in UTC and from
/// 1970 only: the offset is applied here, and a year before 1970 is read 400 years on (the
/// calendar repeats itself every 400 years) and taken back.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.to_ascii_uppercase();
    let (local, east) = match text.strip_suffix('Z') {
        Some(local) => (local, 0),
        None => {
            let (local, offset) = text.split_at_checked(text.len().checked_sub(6)?)?;
            let sign = match offset.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = (digits(offset.get(1..3))?, digits(offset.get(4..))?);
            if offset.as_bytes()[3] != b':' || hours > 23 || minutes > 59 {
                return None;
            }
            (local, sign * (hours * 3600 + minutes * 60) as i64)
        }
    };
    let year = digits(local.get(..4))?;
    let cycles = 1970u64.saturating_sub(year).div_ceil(400);
    let shifted = format!("{:04}{}Z", year + 400 * cycles, local.get(4..)?);
    let utc = humantime::parse_rfc3339_weak(&shifted).ok()?;
    let utc = utc.checked_sub(GREGORIAN_CYCLE * u32::try_from(cycles).ok()?)?;
    let offset = Duration::from_secs(east.unsigned_abs());
    if east >= 0 {
        utc.checked_sub(offset)
    } else {
        utc.checked_add(offset)
    }
}

/// 400 years of the Gregorian calendar, after which it repeats itself.
const GREGORIAN_CYCLE: Duration = Duration::from_secs(146_097 * 86_400);

/// The number `text` writes in decimal digits alone (no sign).
fn digits(text: Option<&str>) -> Option<u64> {
    text.filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
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

/// `text` cut to at most `max` bytes (on a character boundary), ending in `…` when cut.
pub fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// Bytes as `xxd` shows them, 16 a line (offset, hex, printable ASCII), the first `most` of
/// them, and a line saying how many more there are.
pub fn hex_dump(data: &[u8], most: usize) -> Vec<String> {
    let mut lines: Vec<String> = data[..data.len().min(most)]
        .chunks(16)
        .enumerate()
        .map(|(i, row)| {
            let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            let ascii: String = row
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}  {:<47}  {ascii}", i * 16, hex.join(" "))
        })
        .collect();
    if data.len() > most {
        lines.push(format!("… {} more", bytes((data.len() - most) as u64)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hex_dump_shows_offsets_hex_and_printable_bytes() {
        let lines = hex_dump(b"GET /\x00\xff0123456789abcdef", 16);
        assert_eq!(
            lines[0],
            "00000000  47 45 54 20 2f 00 ff 30 31 32 33 34 35 36 37 38  GET /..012345678"
        );
        assert_eq!(lines[1], "… 7B more");
        assert_eq!(lines.len(), 2);
    }

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
    fn times_are_read_with_any_offset_and_before_1970() {
        let at = |t: &str| parse_time(t).map(stamp);
        let same = [
            ("2026-01-31T12:00:00Z", "2026-01-31T12:00:00.000Z"),
            ("2026-01-31T13:00:00+01:00", "2026-01-31T12:00:00.000Z"),
            ("2026-01-31T10:30:00-01:30", "2026-01-31T12:00:00.000Z"),
            ("2026-01-31t12:00:00.25z", "2026-01-31T12:00:00.250Z"),
            ("2026-01-31 12:00:00+00:00", "2026-01-31T12:00:00.000Z"),
            ("2024-02-29T23:00:00-02:00", "2024-03-01T01:00:00.000Z"),
            ("1969-12-31T23:30:00-01:00", "1970-01-01T00:30:00.000Z"),
            ("2999-01-01T00:00:00+01:00", "2998-12-31T23:00:00.000Z"),
        ];
        for (text, utc) in same {
            assert_eq!(at(text).as_deref(), Some(utc), "{text}");
        }
        let before = |t: &str| {
            SystemTime::UNIX_EPOCH
                .duration_since(parse_time(t).unwrap())
                .ok()
        };
        assert_eq!(before("1969-12-31T23:59:59Z"), Some(Duration::from_secs(1)));
        assert_eq!(
            before("1970-01-01T00:30:00+01:00"),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            before("1900-01-01T00:00:00Z"),
            Some(Duration::from_secs(2_208_988_800))
        );
        assert_eq!(
            before("1900-01-01T02:00:00+02:00"),
            Some(Duration::from_secs(2_208_988_800))
        );
        assert_eq!(
            before("0000-03-01T00:00:00Z"),
            Some(Duration::from_secs(62_162_035_200))
        );
        for bad in [
            "2026-01-31T12:00:00",
            "2026-01-31T12:00:00+1:00",
            "2026-01-31T12:00:00+01:0a",
            "2026-01-31T12:00:00+24:00",
            "2026-01-31T12:00:00+00:00Z",
            "2026-01-31X12:00:00Z",
            "2026-13-01T00:00:00Z",
            "+026-01-01T00:00:00Z",
            "yesterday",
            "éééééééé",
            "",
        ] {
            assert_eq!(at(bad), None, "{bad}");
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
