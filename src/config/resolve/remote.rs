//! A service with a `url`: its remote end read (`config::remote`), and what a `url` cannot go
//! with, said at its place: no `port` to be reached on here, `proxy = false`, an `image`,
//! `insecure` without one.

use super::Resolver;
use crate::config::raw::RawService;
use crate::config::remote::Remote;
use crate::config::{Health, Probe, Protocol};
use std::time::Duration;

impl Resolver<'_> {
    /// The remote end of a service, if it has a `url`.
    pub(super) fn remote(&mut self, raw: &RawService) -> Option<Remote> {
        let Some(url) = &raw.url else {
            if let Some(i) = &raw.insecure {
                self.error(
                    i.span(),
                    "`insecure` is about a `url`'s certificate: this service has none",
                );
            }
            return None;
        };
        let insecure = raw.insecure.as_ref().is_some_and(|i| *i.get_ref());
        let remote = match Remote::parse(url.get_ref(), insecure) {
            Ok(r) => r,
            Err(e) => {
                let at = match &raw.insecure {
                    Some(i) if e.contains("insecure") => i.span(),
                    _ => url.span(),
                };
                self.error(at, e);
                return None;
            }
        };
        if raw.port.is_none() {
            self.error(
                url.span(),
                "a `url` service is reached here on its `port`, and it has none",
            )
            .help = Some("add `port = …`: callers use 127.0.0.1 on it (its NAME_URL)".into());
        }
        if raw.proxy == Some(false) {
            self.error(
                url.span(),
                "a `url` is reached through the proxy, and this service says `proxy = false`",
            );
        }
        if let Some(image) = &raw.image {
            self.error(
                image.span(),
                "a service runs from an `image` or is served elsewhere (`url`), not both",
            );
        }
        Some(remote)
    }
}

/// How the proxy reads a service's traffic: its `protocol`, else what its `url` says (plain
/// HTTP here for an https end), else sniffed.
pub(super) fn protocol(raw: &RawService) -> Protocol {
    let written = raw.protocol.as_ref().map(|p| *p.get_ref());
    let from_url = || Remote::parse(raw.url.as_ref()?.get_ref(), false).ok();
    written
        .or_else(|| from_url().map(|r| r.protocol()))
        .unwrap_or_default()
}

/// A remote-only service without a probe of its own: its end is checked by connecting to it
/// (with TLS's handshake for https) every 5 s.
pub(super) fn default_remote_health() -> Health {
    Health {
        probe: Probe::Tcp,
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(3),
        retries: 3,
        start_period: Duration::ZERO,
    }
}
