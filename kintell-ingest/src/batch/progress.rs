//! Progress of an import: the arithmetic (fraction, rows/s, ETA) from caller-supplied durations, and the observer
//! trait the pipeline reports through.

use std::time::Duration;

/// What the import is doing when it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressPhase {
    /// The pre-pass: hashing and validating the file; the row count is not known yet.
    Scanning,
    /// Writing chunks.
    Importing,
}

/// Where an import stands at one moment. Built by [`ProgressMeter::snapshot`]; the derived figures are methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// What the import is doing.
    pub phase: ProgressPhase,
    /// Bytes of the file read so far.
    pub bytes_done: u64,
    /// The file's size in bytes.
    pub bytes_total: u64,
    /// Records handled so far, counting those a resumed batch had already processed.
    pub rows_done: u64,
    /// Records in the file (while scanning: the records seen so far).
    pub rows_total: u64,
    /// Bytes read by this run (while scanning; 0 when importing).
    pub bytes_this_run: u64,
    /// Records handled by this run: what the rate is measured on, so a resume does not look impossibly fast.
    pub rows_this_run: u64,
    /// Time since this run started.
    pub elapsed: Duration,
}

impl ProgressSnapshot {
    /// How far along, from 0.0 to 1.0: bytes while scanning, rows while importing. An empty total counts as done.
    pub fn fraction(&self) -> f64 {
        let (done, total) = match self.phase {
            ProgressPhase::Scanning => (self.bytes_done, self.bytes_total),
            ProgressPhase::Importing => (self.rows_done, self.rows_total),
        };
        if total == 0 {
            1.0
        } else {
            // Display only: the loss of precision above 2^53 does not matter here.
            (done.min(total) as f64) / (total as f64)
        }
    }

    /// Records per second handled by this run; `None` before any time has passed.
    pub fn rows_per_second(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        (secs > 0.0).then(|| self.rows_this_run as f64 / secs)
    }

    /// Bytes per second read by this run while scanning; `None` before any time has passed.
    pub fn bytes_per_second(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        (secs > 0.0).then(|| self.bytes_this_run as f64 / secs)
    }

    /// Estimated time left at this run's rate: bytes while scanning, rows while importing. Zero when nothing is
    /// left; `None` while there is no rate to go by (no time elapsed or nothing done yet by this run).
    pub fn eta(&self) -> Option<Duration> {
        let (done, total, this_run) = match self.phase {
            ProgressPhase::Scanning => (self.bytes_done, self.bytes_total, self.bytes_this_run),
            ProgressPhase::Importing => (self.rows_done, self.rows_total, self.rows_this_run),
        };
        let left = total.saturating_sub(done);
        if left == 0 {
            return Some(Duration::ZERO);
        }
        if this_run == 0 || self.elapsed.is_zero() {
            return None;
        }
        // Integer arithmetic in nanoseconds: exact and the same on every machine.
        let nanos = self.elapsed.as_nanos().saturating_mul(u128::from(left)) / u128::from(this_run);
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
        Some(Duration::new(secs, sub))
    }
}

/// Turns counts and an elapsed time into [`ProgressSnapshot`]s. Holds where this run started, so rates only count
/// this run's work. No clock: the caller passes the elapsed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressMeter {
    phase: ProgressPhase,
    bytes_total: u64,
    rows_total: u64,
    bytes_at_start: u64,
    rows_at_start: u64,
}

impl ProgressMeter {
    /// A meter for the pre-pass over a file of `bytes_total` bytes.
    pub fn scanning(bytes_total: u64) -> Self {
        ProgressMeter {
            phase: ProgressPhase::Scanning,
            bytes_total,
            rows_total: 0,
            bytes_at_start: 0,
            rows_at_start: 0,
        }
    }

    /// A meter for writing `rows_total` records of a `bytes_total`-byte file, of which a resumed batch had already
    /// processed `rows_at_start`.
    pub fn importing(bytes_total: u64, rows_total: u64, rows_at_start: u64) -> Self {
        ProgressMeter {
            phase: ProgressPhase::Importing,
            bytes_total,
            rows_total,
            bytes_at_start: 0,
            rows_at_start: rows_at_start.min(rows_total),
        }
    }

    /// The snapshot after `bytes_done` bytes and `rows_done` records (in total, not this run's), `elapsed` after this
    /// run started. Counts beyond the totals are clamped to them (and, while scanning, the records seen so far are
    /// the total); counts below the starting point count as no work done by this run.
    pub fn snapshot(&self, bytes_done: u64, rows_done: u64, elapsed: Duration) -> ProgressSnapshot {
        let bytes_done = bytes_done.min(self.bytes_total);
        let (rows_done, rows_total) = match self.phase {
            ProgressPhase::Scanning => (rows_done, rows_done),
            ProgressPhase::Importing => (rows_done.min(self.rows_total), self.rows_total),
        };
        let bytes_this_run = match self.phase {
            ProgressPhase::Scanning => bytes_done.saturating_sub(self.bytes_at_start),
            ProgressPhase::Importing => 0,
        };
        ProgressSnapshot {
            phase: self.phase,
            bytes_done,
            bytes_total: self.bytes_total,
            rows_done,
            rows_total,
            bytes_this_run,
            rows_this_run: rows_done.saturating_sub(self.rows_at_start),
            elapsed,
        }
    }
}

/// Observes an import's progress. The pipeline calls it after the pre-pass advances and after every chunk commits;
/// implementations must be cheap and must not block (the CLI draws a bar, the server stores the latest snapshot).
///
/// Any `Fn(&ProgressSnapshot) + Send + Sync` closure is one.
pub trait Progress: Send + Sync {
    /// Called with the latest snapshot.
    fn on_progress(&self, p: &ProgressSnapshot);
}

/// The observer that ignores every report: the default when nobody is watching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn on_progress(&self, _: &ProgressSnapshot) {}
}

impl<F> Progress for F
where
    F: Fn(&ProgressSnapshot) + Send + Sync,
{
    fn on_progress(&self, p: &ProgressSnapshot) {
        self(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Mutex;

    #[test]
    fn importing_rate_and_eta_count_only_this_run() {
        // A resumed batch: 600 of 1,000 rows were done before; this run did 100 more in 10 s.
        let meter = ProgressMeter::importing(50_000, 1_000, 600);
        let p = meter.snapshot(35_000, 700, Duration::from_secs(10));
        assert_eq!(p.rows_this_run, 100);
        assert_eq!(p.rows_per_second(), Some(10.0));
        assert_eq!(p.eta(), Some(Duration::from_secs(30)));
        assert_eq!(p.fraction(), 0.7);
    }

    #[test]
    fn scanning_goes_by_bytes() {
        let meter = ProgressMeter::scanning(4_000);
        let p = meter.snapshot(1_000, 25, Duration::from_millis(500));
        assert_eq!((p.rows_done, p.rows_total), (25, 25));
        assert_eq!(p.bytes_per_second(), Some(2_000.0));
        assert_eq!(p.eta(), Some(Duration::from_millis(1_500)));
        assert_eq!(p.fraction(), 0.25);
    }

    #[test]
    fn no_rate_before_time_or_work() {
        let meter = ProgressMeter::importing(10, 10, 0);
        let at_start = meter.snapshot(0, 0, Duration::ZERO);
        assert_eq!((at_start.rows_per_second(), at_start.eta()), (None, None));
        let idle = meter.snapshot(0, 0, Duration::from_secs(3));
        assert_eq!((idle.rows_per_second(), idle.eta()), (Some(0.0), None));
        let done = meter.snapshot(10, 10, Duration::ZERO);
        assert_eq!(done.eta(), Some(Duration::ZERO));
    }

    #[test]
    fn empty_file_is_done_and_overshoot_is_clamped() {
        let empty = ProgressMeter::importing(0, 0, 0).snapshot(0, 0, Duration::ZERO);
        assert_eq!(empty.fraction(), 1.0);
        let over = ProgressMeter::importing(10, 5, 9).snapshot(99, 99, Duration::from_secs(1));
        assert_eq!(
            (over.bytes_done, over.rows_done, over.rows_this_run),
            (10, 5, 0)
        );
        assert_eq!(over.fraction(), 1.0);
    }

    #[test]
    fn observers_receive_snapshots() {
        let seen = Mutex::new(Vec::new());
        let record = |p: &ProgressSnapshot| {
            if let Ok(mut v) = seen.lock() {
                v.push(p.rows_done);
            }
        };
        let observers: [&dyn Progress; 2] = [&NoProgress, &record];
        let meter = ProgressMeter::importing(10, 10, 0);
        for rows in [3, 10] {
            for o in observers {
                o.on_progress(&meter.snapshot(rows, rows, Duration::from_secs(1)));
            }
        }
        assert_eq!(*seen.lock().expect("not poisoned"), [3, 10]);
    }

    proptest! {
        #[test]
        fn figures_stay_in_range(
            bytes_total in 0u64..u64::MAX,
            bytes_done in any::<u64>(),
            rows_total in any::<u64>(),
            rows_done in any::<u64>(),
            at_start in any::<u64>(),
            nanos in any::<u64>(),
            scanning in any::<bool>(),
        ) {
            let meter = if scanning {
                ProgressMeter::scanning(bytes_total)
            } else {
                ProgressMeter::importing(bytes_total, rows_total, at_start)
            };
            let p = meter.snapshot(bytes_done, rows_done, Duration::from_nanos(nanos));
            let f = p.fraction();
            prop_assert!((0.0..=1.0).contains(&f));
            prop_assert!(p.rows_done <= p.rows_total);
            prop_assert!(p.rows_this_run <= p.rows_done);
            if let Some(r) = p.rows_per_second() {
                prop_assert!(r >= 0.0 && r.is_finite());
            }
            let (left, this_run) = match p.phase {
                ProgressPhase::Scanning => (p.bytes_total - p.bytes_done, p.bytes_this_run),
                ProgressPhase::Importing => (p.rows_total - p.rows_done, p.rows_this_run),
            };
            // An estimate whenever there is a rate to go by, whatever the sizes (and no panic on overflow).
            prop_assert_eq!(p.eta().is_none(), left > 0 && (this_run == 0 || p.elapsed.is_zero()));
        }
    }
}
