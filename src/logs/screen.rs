//! The terminal emulator of typing mode: while someone types into a service, a `vt100` screen
//! of its own is fed its raw output, so that what it draws (prompts, REPLs, full-screen
//! programs) shows as it would in a terminal.

use super::{LogHub, Stream};
use crate::config::ServiceId;
use crate::sync::Locked;
use std::sync::Mutex;

/// A service's emulated terminal: None while nobody types into it.
pub(super) type Screen = Mutex<Option<vt100::Parser>>;

impl LogHub {
    /// Start emulating a service's terminal at this size, seeded with its recent lines, so that
    /// what it draws (prompts, REPLs, full-screen programs) shows as it would in a terminal.
    pub fn open_screen(&self, service: ServiceId, rows: u16, cols: u16) {
        let mut parser = vt100::Parser::new(rows.max(1), cols.max(1), 0);
        for line in self.buffered(service, rows as usize) {
            if line.stream == Stream::Out {
                parser.process(line.text.as_bytes());
                parser.process(b"\r\n");
            }
        }
        *self.screens[service].locked() = Some(parser);
    }

    pub fn close_screen(&self, service: ServiceId) {
        *self.screens[service].locked() = None;
    }

    /// Read a service's emulated terminal, if it has one open.
    pub fn screen<T>(&self, service: ServiceId, f: impl FnOnce(&vt100::Screen) -> T) -> Option<T> {
        self.screens[service]
            .locked()
            .as_ref()
            .map(|p| f(p.screen()))
    }

    pub(super) fn feed_screen(&self, service: ServiceId, raw: &[u8]) {
        if let Some(parser) = self.screens[service].locked().as_mut() {
            parser.process(raw);
        }
    }
}
