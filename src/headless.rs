//! Headless output: every line as `name | text`, names padded and coloured, devstack's own events
//! marked. Lines of one batch go out in one write, so services never interleave mid-line.

use crate::config::Services;
use crate::ignored::Ignore;
use crate::logs::{LineTap, LogLine, Stream, strip_sgr};
use std::io::Write;

const PALETTE: [u8; 6] = [36, 33, 32, 35, 34, 31];

pub struct Printer {
    prefixes: Services<String>,
    color: bool,
    to_stderr: bool,
    /// Only devstack's own lines (`ci`/`run --quiet`: a failure still shows its service's last
    /// lines, from the buffers).
    quiet: bool,
}

impl Printer {
    pub fn new(names: &Services<String>, color: bool) -> Self {
        let width = names.values().map(|n| n.chars().count()).max().unwrap_or(0);
        // Colours go round the palette down the list.
        let prefixes = names
            .values()
            .enumerate()
            .map(|(i, n)| {
                if color {
                    format!("\x1b[{}m{n:<width$}\x1b[0m | ", PALETTE[i % PALETTE.len()])
                } else {
                    format!("{n:<width$} | ")
                }
            })
            .collect();
        Printer {
            prefixes,
            color,
            to_stderr: false,
            quiet: false,
        }
    }

    /// Print only devstack's own lines, none of the services' output or builds.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Print to stderr instead (`devstack run`, whose command owns stdout).
    pub fn to_stderr(mut self) -> Self {
        self.to_stderr = true;
        self
    }

    pub fn format(&self, lines: &[LogLine], out: &mut Vec<u8>) {
        for line in lines {
            if self.quiet && line.stream != Stream::System {
                continue;
            }
            out.extend_from_slice(self.prefixes[line.service].as_bytes());
            let marker = match (line.stream, self.color) {
                (Stream::Out, _) => "",
                (Stream::Build, false) => "[build] ",
                (Stream::Build, true) => "\x1b[2m[build]\x1b[0m ",
                (Stream::System, false) => "[devstack] ",
                (Stream::System, true) => "\x1b[1;35m[devstack]\x1b[0m ",
            };
            out.extend_from_slice(marker.as_bytes());
            if self.color {
                out.extend_from_slice(line.text.as_bytes());
                if line.text.contains('\x1b') {
                    out.extend_from_slice(b"\x1b[0m");
                }
            } else {
                out.extend_from_slice(strip_sgr(&line.text).as_bytes());
            }
            out.push(b'\n');
        }
    }
}

impl LineTap for Printer {
    fn lines(&self, lines: &[LogLine]) {
        let mut buf = Vec::with_capacity(lines.len() * 100);
        self.format(lines, &mut buf);
        if buf.is_empty() {
            return;
        }
        let written = if self.to_stderr {
            std::io::stderr().lock().write_all(&buf)
        } else {
            std::io::stdout().lock().write_all(&buf)
        };
        written.or_say("a closed stdout (a pipe into `head`) must not stop the stack");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceId;
    use std::time::SystemTime;

    fn line(service: usize, stream: Stream, text: &str) -> LogLine {
        LogLine {
            service: ServiceId(service),
            stream,
            time: SystemTime::now(),
            text: text.into(),
        }
    }

    fn names() -> Services<String> {
        vec!["db".into(), "gateway".into()].into()
    }

    #[test]
    fn pads_names_marks_events_and_strips_colour_without_a_terminal() {
        let p = Printer::new(&names(), false);
        let mut out = Vec::new();
        p.format(
            &[
                line(0, Stream::Out, "\x1b[31mready\x1b[0m"),
                line(1, Stream::System, "spawned pid 7"),
                line(1, Stream::Build, "Compiling"),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "db      | ready\ngateway | [devstack] spawned pid 7\ngateway | [build] Compiling\n"
        );
        let quiet = Printer::new(&names(), false).quiet(true);
        let mut out = Vec::new();
        quiet.format(
            &[
                line(0, Stream::Out, "ready"),
                line(1, Stream::System, "spawned pid 7"),
                line(1, Stream::Build, "Compiling"),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "gateway | [devstack] spawned pid 7\n"
        );
    }
}
