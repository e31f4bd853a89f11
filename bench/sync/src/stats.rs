//! Percentiles of latencies, and the target lines `bench/sync.sh` prints at the end.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

/// p50/p90/p99/max of a set of latencies (nearest rank).
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// `None` when there is nothing to summarize.
    pub fn of(mut samples: Vec<Duration>) -> Option<Percentiles> {
        samples.sort_unstable();
        let max = *samples.last()?;
        let rank = |per_cent: usize| {
            // Nearest rank: the smallest sample with at least per_cent % at or below it.
            let rank = (samples.len() * per_cent).div_ceil(100).max(1);
            samples[rank - 1]
        };
        Some(Percentiles {
            count: samples.len(),
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max,
        })
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}  p90 {}  p99 {}  max {}  (n = {})",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            self.count
        )
    }
}

/// `12.3 ms`.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// Appends `what | measured | target | within` to the summary file `bench/sync.sh`
/// prints at the end, or prints it when there is no such file.
pub fn summary_line(
    file: Option<&Path>,
    what: &str,
    measured: &str,
    target: &str,
    within: Option<bool>,
) -> anyhow::Result<()> {
    let within = match within {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };
    let line = format!("{what:<44} {measured:>22}   {target:<12} {within}");
    let Some(path) = file else {
        println!("{line}");
        return Ok(());
    };
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the summary file {}", path.display()))?;
    writeln!(out, "{line}")
        .with_context(|| format!("cannot write the summary file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples = (1..=200).map(Duration::from_millis).collect();
        let p = Percentiles::of(samples).unwrap();
        assert_eq!(p.p50, Duration::from_millis(100));
        assert_eq!(p.p90, Duration::from_millis(180));
        assert_eq!(p.p99, Duration::from_millis(198));
        assert_eq!(p.max, Duration::from_millis(200));
        assert!(Percentiles::of(Vec::new()).is_none());
        let one = Percentiles::of(vec![Duration::from_millis(7)]).unwrap();
        assert_eq!(one.p50, Duration::from_millis(7));
    }
}
