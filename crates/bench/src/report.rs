//! Turning raw samples into rows, and rows into a Markdown table.

use std::fmt::Write;
use std::time::Duration;

use crate::{NOOP, Report, Row};

/// What one connection task measured; tasks keep their own and merge at the end,
/// so nothing is shared while requests are in flight.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) latencies: Vec<Duration>,
}

impl Samples {
    pub(crate) fn merge(&mut self, other: Samples) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latencies.extend(other.latencies);
    }
}

/// Summarises one phase that ran for `elapsed`.
pub(crate) fn row(name: &str, mut samples: Samples, elapsed: Duration) -> Row {
    samples.latencies.sort_unstable();
    let successes = samples.requests.saturating_sub(samples.errors);
    let seconds = elapsed.as_secs_f64();
    let per_second = match seconds > 0.0 {
        true => successes as f64 / seconds,
        false => 0.0,
    };
    Row {
        name: name.to_owned(),
        requests: samples.requests,
        errors: samples.errors,
        per_second,
        p50: percentile(&samples.latencies, 50),
        p99: percentile(&samples.latencies, 99),
    }
}

/// The nearest-rank percentile of sorted samples, or zero when there are none.
pub(crate) fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

impl Report {
    /// Renders the report as a Markdown table, with each row's throughput and p99 latency
    /// relative to the no-op row, which is what the benchmark exists to show.
    pub fn to_markdown(&self) -> String {
        let baseline = self.rows.iter().find(|row| row.name == NOOP);
        let mut out = String::new();
        out.push_str(
            "| Operation | Requests | Errors | Req/s | p50 | p99 | Req/s vs no-op | p99 vs no-op |\n",
        );
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for row in &self.rows {
            let throughput_ratio = baseline.and_then(|base| ratio(row.per_second, base.per_second));
            let p99_ratio =
                baseline.and_then(|base| ratio(row.p99.as_secs_f64(), base.p99.as_secs_f64()));
            writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                row.name,
                row.requests,
                row.errors,
                row.per_second,
                format_duration(row.p50),
                format_duration(row.p99),
                format_ratio(throughput_ratio),
                format_ratio(p99_ratio),
            )
            .expect("writing to a String cannot fail");
        }
        out
    }
}

impl Report {
    /// A table of each served operation next to the in-process cost of its cryptography, with the
    /// ratio served / in-process: how much of the raw capacity survives the service around it.
    pub fn compare_in_process(&self, raw: &[crate::RawRow]) -> String {
        let mut out = String::new();
        out.push_str(
            "| Operation | Served req/s | In-process ops/s | Served / in-process | Service overhead per request |\n",
        );
        out.push_str("| --- | ---: | ---: | ---: | ---: |\n");
        for raw_row in raw {
            let Some(row) = self.rows.iter().find(|row| row.name == raw_row.name) else {
                continue;
            };
            // Both rates use the whole machine, so the difference of their inverses is the machine time
            // each request spends outside the cryptography: HTTP, SigV4, JSON, policy, audit.
            let overhead = match (row.per_second > 0.0, raw_row.per_second > 0.0) {
                (true, true) => format_duration(Duration::from_secs_f64(
                    (1.0 / row.per_second - 1.0 / raw_row.per_second).max(0.0),
                )),
                _ => "n/a".to_owned(),
            };
            writeln!(
                out,
                "| {} | {:.0} | {:.0} | {} | {} |",
                row.name,
                row.per_second,
                raw_row.per_second,
                format_ratio(ratio(row.per_second, raw_row.per_second)),
                overhead,
            )
            .expect("writing to a String cannot fail");
        }
        out
    }
}

fn ratio(value: f64, base: f64) -> Option<f64> {
    match base > 0.0 {
        true => Some(value / base),
        false => None,
    }
}

fn format_ratio(ratio: Option<f64>) -> String {
    match ratio {
        Some(ratio) => format!("{ratio:.2}x"),
        None => "n/a".to_owned(),
    }
}

/// Formats a latency with a unit that keeps three significant digits or so.
pub(crate) fn format_duration(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 10.0 {
        format!("{micros:.1} µs")
    } else if micros < 1_000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1_000_000.0 {
        format!("{:.2} ms", micros / 1_000.0)
    } else {
        format!("{:.2} s", micros / 1_000_000.0)
    }
}
