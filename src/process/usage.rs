//! CPU time and resident memory of whole sessions (a service and everything it started), from
//! each service's process tree (the keeper's walk samples them), and the `Meter` that turns
//! samples into loads and says only those that show differently.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used so far by the session's live processes.
    pub cpu: Duration,
    pub rss_bytes: u64,
}

/// How often CPU and memory are sampled, while they are wanted and what they show changes,
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// and while it doesn't (a quiet stack): a service that gets busy shows it within this.
pub const QUIET_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// A session's load: CPU in % of one core since the sample before, and resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub cpu_percent: f32,
    pub rss_bytes: u64,
}

/// Where the keeper's samples go (see `orphans::keep`): taken while `wanted` says so, each
/// `report`ed only when what it shows changed.
pub struct Feed {
    pub wanted: Box<dyn Fn() -> bool + Send>,
    pub report: Box<dyn Fn(HashMap<i32, Load>) + Send>,
}

/// Turns samples of CPU time into loads, and tells which are news: a load is news when it
/// shows differently (CPU to a tenth of a percent, memory to a tenth of a MiB), so that a
/// quiet stack's samples wake nobody.
#[derive(Default)]
pub struct Meter {
    /// The previous sample: when, and CPU time per session.
    last: Option<(Instant, HashMap<i32, Duration>)>,
    said: HashMap<i32, Load>,
    /// The previous sample was no news.
    quiet: bool,
}

impl Meter {
    /// A sample is due (the first one at once).
    pub fn due(&self) -> bool {
        let every = if self.quiet {
            QUIET_SAMPLE_EVERY
        } else {
            SAMPLE_EVERY
        };
        self.last
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= every)
    }

    /// Not wanted any more: the next sample, when wanted again, starts afresh and is news.
    pub fn forget(&mut self) {
        *self = Meter::default();
    }

    /// The loads of a sample taken at `now`, if they are news.
    pub fn take(&mut self, now: Instant, usage: HashMap<i32, Usage>) -> Option<HashMap<i32, Load>> {
        let loads: HashMap<i32, Load> = usage
            .iter()
            .map(|(&sid, u)| {
                let cpu = self.last.as_ref().and_then(|(then, cpu)| {
                    let spent = u.cpu.saturating_sub(*cpu.get(&sid)?).as_secs_f32();
                    Some(100.0 * spent / now.duration_since(*then).as_secs_f32().max(0.001))
                });
                let load = Load {
                    cpu_percent: cpu.unwrap_or(0.0),
                    rss_bytes: u.rss_bytes,
                };
                (sid, load)
            })
            .collect();
        self.last = Some((
            now,
            usage.into_iter().map(|(sid, u)| (sid, u.cpu)).collect(),
        ));
        let shown = |l: &Load| {
            (
                (l.cpu_percent * 10.0).round() as i64,
                (l.rss_bytes * 10) >> 20,
            )
        };
        let news = loads.len() != self.said.len()
            || loads
                .iter()
                .any(|(sid, l)| self.said.get(sid).is_none_or(|s| shown(s) != shown(l)));
        self.quiet = !news;
        news.then(|| {
            self.said = loads.clone();
            loads
        })
    }
}

impl Usage {
    /// Count one more process of the session.
    #[cfg(target_os = "linux")]
    pub fn add(&mut self, stat: &super::Stat) {
        let (tps, page) = (procfs::ticks_per_second(), procfs::page_size());
        self.cpu += Duration::from_secs_f64((stat.utime + stat.stime) as f64 / tps as f64);
        self.rss_bytes += stat.rss * page;
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn usage(cpu_ms: u64, rss_bytes: u64) -> Usage {
        Usage {
            cpu: Duration::from_millis(cpu_ms),
            rss_bytes,
        }
    }

    /// CPU % is the CPU time spent between two samples over the time between them; a load is
    /// said when it shows differently, not for every tick of a counter.
    #[test]
    fn loads_are_news_only_when_they_show_differently() {
        let mut meter = Meter::default();
        let t0 = Instant::now();
        let first = meter.take(t0, [(7, usage(500, 10 << 20))].into()).unwrap();
        assert_eq!(
            first[&7].cpu_percent, 0.0,
            "no CPU % without a sample before"
        );
        // 200 ms of CPU over 2 s: 10%.
        let t1 = t0 + Duration::from_secs(2);
        let busy = meter.take(t1, [(7, usage(700, 10 << 20))].into()).unwrap();
        assert!((busy[&7].cpu_percent - 10.0).abs() < 0.01, "{busy:?}");
        // Still 10%, 4 KiB more memory: shows the same, so not news.
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(
            meter.take(t2, [(7, usage(900, (10 << 20) + 4096))].into()),
            None
        );
        // Idle again: news.
        let t3 = t2 + Duration::from_secs(2);
        let idle = meter.take(t3, [(7, usage(900, 10 << 20))].into()).unwrap();
        assert_eq!(idle[&7].cpu_percent, 0.0);
        assert_eq!(
            meter.take(t3 + SAMPLE_EVERY, [(7, usage(900, 10 << 20))].into()),
            None
        );
        // A new session (a restart): news.
        let t4 = t3 + 2 * SAMPLE_EVERY;
        assert!(meter.take(t4, [(8, usage(0, 10 << 20))].into()).is_some());
        // Forgotten: the next sample is news whatever it shows.
        meter.forget();
        assert!(meter.due());
        assert!(meter.take(t4, [(8, usage(0, 10 << 20))].into()).is_some());
    }
}
