//! `[services.NAME.health]`: exactly one probe (`http`, `tcp`, `cmd` or `log`), checked against
//! the service's port, and its timings.

use super::Resolver;
use crate::config::raw::{Dur, RawHealth, Spanned};
use crate::config::{Health, Probe};
use std::time::Duration;

/// A probe can't usefully run more often, or answer faster, than this.
const MIN_PROBE_TIME: Duration = Duration::from_millis(10);

impl Resolver<'_> {
    pub(super) fn health(
        &mut self,
        h: &Spanned<RawHealth>,
        port: Option<u16>,
        lookup: &dyn Fn(&str) -> Result<String, String>,
    ) -> Option<Health> {
        let raw = h.get_ref();
        let given = [
            raw.http.is_some(),
            raw.tcp.is_some(),
            raw.cmd.is_some(),
            raw.log.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            self.error(
                h.span(),
                "a health check needs exactly one of `http`, `tcp`, `cmd` or `log`",
            );
            return None;
        }
        let probe = self.probe(raw, port, lookup)?;
        let dur = |d: Option<Dur>, default: u64| d.map_or(Duration::from_millis(default), |d| d.0);
        for (value, what) in [(raw.interval, "interval"), (raw.timeout, "timeout")] {
            if value.is_some_and(|d| d.0 < MIN_PROBE_TIME) {
                self.error(
                    h.span(),
                    format!(
                        "health `{what}` must be at least {}ms",
                        MIN_PROBE_TIME.as_millis()
                    ),
                );
            }
        }
        Some(Health {
            probe,
            interval: dur(raw.interval, 1000),
            timeout: dur(raw.timeout, 1000),
            retries: raw.retries.unwrap_or(3).max(1),
            // Until its first success a service is only starting; failures count after this.
            start_period: dur(raw.start_period, 30_000),
        })
    }

    /// The one probe given (None: a `log` regex that is not one).
    fn probe(
        &mut self,
        raw: &RawHealth,
        port: Option<u16>,
        lookup: &dyn Fn(&str) -> Result<String, String>,
    ) -> Option<Probe> {
        Some(if let Some(http) = &raw.http {
            let path = self.expand(http, lookup);
            if path.starts_with("https://") {
                self.error(
                    http.span(),
                    "https probes are not supported; probe the service's plain http port",
                );
            } else if !(path.starts_with('/') || path.starts_with("http://")) {
                self.error(
                    http.span(),
                    format!(
                        "`http = \"{path}\"`: write a path like \"/healthz\" or a full http:// URL"
                    ),
                );
            } else if path.starts_with('/') && port.is_none() {
                self.error(
                    http.span(),
                    "an http probe by path needs the service to have a `port`",
                );
            }
            Probe::Http(path)
        } else if let Some(tcp) = &raw.tcp {
            if !tcp.get_ref() {
                self.error(
                    tcp.span(),
                    "`tcp = false` checks nothing; remove [health] or set `tcp = true`",
                );
            } else if port.is_none() {
                self.error(tcp.span(), "a tcp probe needs the service to have a `port`");
            }
            Probe::Tcp
        } else if let Some(cmd) = &raw.cmd {
            Probe::Cmd(self.expand(cmd, lookup))
        } else {
            let log = raw.log.as_ref().expect("one probe is given");
            match regex::Regex::new(log.get_ref()) {
                Ok(re) => Probe::Log(re),
                Err(e) => {
                    self.error(log.span(), format!("invalid regex: {e}"));
                    return None;
                }
            }
        })
    }
}
