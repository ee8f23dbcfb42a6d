//! devstack: run a stack of local services, with one engine driven by the TUI, headless mode and CLI.

pub mod config;
pub mod control;
pub mod engine;
pub mod headless;
pub mod health;
pub mod logs;
pub mod process;
pub mod routes;
pub mod statedir;
pub mod traffic;
pub mod ui;
pub mod watch;

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
