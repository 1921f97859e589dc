//! Reports of a run: a table for the terminal and a Markdown file with the same figures plus the
//! machine they were measured on.

use std::fmt::Write as _;
use std::time::Duration;

use crate::compare::{self, DIRECT, Measured, NGINX, Shape, TONGBAN};
use crate::machine::Machine;
use crate::run::Outcome;

/// The latency quantiles reported, with their column names.
pub const QUANTILES: [(&str, f64); 4] = [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999)];

/// Everything a report says.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's name and what one request does.
    pub scenario: String,
    pub description: String,
    /// The base address loaded.
    pub target: String,
    /// Who ran the gateway: started by the tool (and how), or already running.
    pub gateway: String,
    pub connections: usize,
    pub duration_limit: Duration,
    pub max_requests: u64,
    /// Open loop at this rate (requests/s); `None` for closed loop.
    pub rate: Option<f64>,
    pub outcome: Outcome,
    /// Lines quoted from the gateway's `/metrics` after the run.
    pub gateway_metrics: Vec<String>,
    /// Notes worth reading beside the figures (log warnings, interruptions, tmpfs …).
    pub notes: Vec<String>,
}

impl Report {
    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        per_second(self.outcome.answered(), self.outcome.elapsed)
    }

    /// Successful answers per second: for `acceptance`, durably acknowledged acceptances.
    pub fn success_rate(&self) -> f64 {
        per_second(self.outcome.successes, self.outcome.elapsed)
    }

    /// The latency at quantile `q`, in milliseconds; `None` when nothing was answered.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        let h = &self.outcome.latency;
        (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
    }

    /// The highest latency, in milliseconds.
    pub fn max_ms(&self) -> Option<f64> {
        let h = &self.outcome.latency;
        (!h.is_empty()).then(|| h.max() as f64 / 1000.0)
    }

    /// `202: 51200, 429: 34`, or `none`.
    pub fn statuses(&self) -> String {
        list(self.outcome.statuses.iter().map(|(status, count)| format!("{status}: {count}")))
    }

    /// `connect: 3, timeout: 1`, or `none`.
    pub fn errors(&self) -> String {
        list(self.outcome.errors.iter().map(|(kind, count)| format!("{kind}: {count}")))
    }

    /// The summary as (label, value) rows, shared by both formats.
    fn rows(&self) -> Vec<(&'static str, String)> {
        let o = &self.outcome;
        let mut duration = format!("{:.2} s (limit {})", o.elapsed.as_secs_f64(), seconds(self.duration_limit));
        if o.interrupted {
            duration.push_str(", interrupted");
        }
        vec![
            ("scenario", self.scenario.clone()),
            ("target", self.target.clone()),
            ("gateway", self.gateway.clone()),
            ("connections", format!("{} ({}, {} TCP connects)", self.connections, loop_kind(self.rate), o.connects)),
            ("duration", duration),
            ("requests", format!("{} (limit {})", o.requests(), self.max_requests)),
            ("successes", o.successes.to_string()),
            ("throughput", format!("{:.0} answers/s, {:.0} successes/s", self.throughput(), self.success_rate())),
            ("statuses", self.statuses()),
            ("errors", self.errors()),
        ]
    }

    /// The latency row in milliseconds: the quantiles, then the max.
    fn latency_cells(&self) -> Vec<String> {
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2}"));
        QUANTILES.iter().map(|(_, q)| cell(self.latency_ms(*q))).chain([cell(self.max_ms())]).collect()
    }

    /// The report for a terminal.
    pub fn terminal(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n{}: {}\n", self.scenario, self.description);
        for (label, value) in self.rows().into_iter().skip(1) {
            let _ = writeln!(out, "  {label:<12} {value}");
        }
        let heads: Vec<&str> = QUANTILES.iter().map(|(name, _)| *name).chain(["max"]).collect();
        let _ =
            writeln!(out, "\n  {:<12} {}", "latency ms", heads.iter().map(|h| format!("{h:>9}")).collect::<String>());
        let cells = self.latency_cells();
        let _ = writeln!(out, "  {:<12} {}", "", cells.iter().map(|c| format!("{c:>9}")).collect::<String>());
        for (status, body) in &self.outcome.samples {
            let _ = writeln!(out, "\n  first {status} answer: {}", body.replace('\n', " "));
        }
        if !self.gateway_metrics.is_empty() {
            let _ = writeln!(out, "\n  gateway metrics after the run:");
            for line in &self.gateway_metrics {
                let _ = writeln!(out, "    {line}");
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n  note: {note}");
        }
        out
    }

    /// The report as Markdown, with the machine it was measured on.
    pub fn markdown(&self, machine: &Machine) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# tongban-load: {}\n\n{}\n", self.scenario, self.description);
        let _ = writeln!(out, "| | |\n|---|---|");
        for (label, value) in self.rows().into_iter().skip(1) {
            let _ = writeln!(out, "| {label} | {} |", escape(&value));
        }
        let heads: Vec<&str> = QUANTILES.iter().map(|(name, _)| *name).chain(["max"]).collect();
        let _ = writeln!(out, "\n## Latency (ms)\n\n| {} |\n|{}", heads.join(" | "), "---:|".repeat(heads.len()));
        let _ = writeln!(out, "| {} |", self.latency_cells().join(" | "));
        let _ =
            writeln!(out, "\nFrom sending the request to reading the whole answer, every answer whatever its status.");
        if !self.outcome.samples.is_empty() {
            let _ = writeln!(out, "\n## Unexpected answers (the first of each status)\n");
            for (status, body) in &self.outcome.samples {
                let _ = writeln!(out, "- `{status}`: `{}`", body.replace('`', "'").replace('\n', " "));
            }
        }
        if !self.gateway_metrics.is_empty() {
            let _ = writeln!(out, "\n## Gateway metrics after the run\n\n```text");
            for line in &self.gateway_metrics {
                let _ = writeln!(out, "{line}");
            }
            let _ = writeln!(out, "```");
        }
        machine_section(&mut out, machine);
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\n## Notes\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

/// A side-by-side run: every leg's figures, and the ratios between them.
pub struct Comparison {
    pub scenario: String,
    pub description: String,
    pub shape: Shape,
    /// In the order they were set up: direct, nginx (when installed), tongban.
    pub legs: Vec<Measured>,
    /// `nginx -v`, when nginx ran.
    pub nginx_version: Option<String>,
    pub gateway_metrics: Vec<String>,
    pub notes: Vec<String>,
}

/// A figure of one leg's round.
fn throughput_of(outcome: &Outcome) -> f64 {
    per_second(outcome.answered(), outcome.elapsed)
}

fn p99_ms(outcome: &Outcome) -> Option<f64> {
    (!outcome.latency.is_empty()).then(|| outcome.latency.value_at_quantile(0.99) as f64 / 1000.0)
}

impl Comparison {
    fn leg(&self, label: &str) -> Option<&Measured> {
        self.legs.iter().find(|leg| leg.label == label)
    }

    /// Round by round `figure(over) ∘ figure(under)`, then the median and the range.
    fn per_round(
        &self,
        over: &str,
        under: &str,
        combine: impl Fn(&Outcome, &Outcome) -> Option<f64>,
    ) -> Option<(f64, f64, f64)> {
        let (a, b) = (self.leg(over)?, self.leg(under)?);
        // A round cut short by Ctrl-C is not comparable with a whole one.
        let values: Vec<f64> = a
            .rounds
            .iter()
            .zip(&b.rounds)
            .filter(|(x, y)| !x.interrupted && !y.interrupted)
            .filter_map(|(x, y)| combine(x, y))
            .collect();
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        compare::median(values).map(|m| (m, low, high))
    }

    /// Throughput of `over` divided by `under`'s, within each round: (median, lowest, highest).
    pub fn ratio(&self, over: &str, under: &str) -> Option<(f64, f64, f64)> {
        self.per_round(over, under, |x, y| {
            let (tx, ty) = (throughput_of(x), throughput_of(y));
            (ty > 0.0).then(|| tx / ty)
        })
    }

    /// p99 of `over` minus `under`'s, within each round, in milliseconds: (median, lowest, highest).
    pub fn p99_added_ms(&self, over: &str, under: &str) -> Option<(f64, f64, f64)> {
        self.per_round(over, under, |x, y| Some(p99_ms(x)? - p99_ms(y)?))
    }

    /// The lines that sum the run up, shared by both formats: (what, median, range).
    fn ratio_rows(&self) -> Vec<(String, String, String)> {
        let mut rows = Vec::new();
        for (over, under) in [(TONGBAN, DIRECT), (TONGBAN, NGINX), (NGINX, DIRECT)] {
            if let Some((m, lo, hi)) = self.ratio(over, under) {
                rows.push((format!("throughput {over} ÷ {under}"), format!("{m:.2}×"), format!("{lo:.2}–{hi:.2}")));
            }
        }
        for over in [TONGBAN, NGINX] {
            if let Some((m, lo, hi)) = self.p99_added_ms(over, DIRECT) {
                rows.push((
                    format!("p99 added by {over} over {DIRECT}"),
                    format!("{m:+.2} ms"),
                    format!("{lo:+.2} – {hi:+.2}"),
                ));
            }
        }
        rows
    }

    fn loop_kind(&self) -> String {
        loop_kind(self.shape.rate)
    }

    /// Each leg's summary row: label, answers/s (median of rounds), successes, p50…max, statuses, errors.
    fn leg_rows(&self) -> Vec<Vec<String>> {
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2}"));
        self.legs
            .iter()
            .map(|leg| {
                let h = &leg.total.latency;
                let q = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
                // Whole rounds only: "-" when the leg's only round was cut short.
                let rate = compare::median(leg.rounds.iter().filter(|o| !o.interrupted).map(throughput_of).collect())
                    .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.0}"));
                let mut row = vec![leg.label.to_owned(), rate, leg.total.successes.to_string()];
                row.extend(QUANTILES.iter().map(|(_, quantile)| cell(q(*quantile))));
                row.push(cell((!h.is_empty()).then(|| h.max() as f64 / 1000.0)));
                row.push(list(leg.total.statuses.iter().map(|(s, c)| format!("{s}: {c}"))));
                row.push(list(leg.total.errors.iter().map(|(k, c)| format!("{k}: {c}"))));
                row
            })
            .collect()
    }

    fn heads() -> Vec<&'static str> {
        let mut heads = vec!["leg", "answers/s", "successes"];
        heads.extend(QUANTILES.iter().map(|(name, _)| *name));
        heads.extend(["max", "statuses", "errors"]);
        heads
    }

    /// The report for a terminal.
    pub fn terminal(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "
{}: {}",
            self.scenario, self.description
        );
        let _ = writeln!(
            out,
            "  {} connections, {}, {} round(s) of {} per leg; latency in ms, answers/s the median of the rounds
",
            self.shape.connections,
            self.loop_kind(),
            self.shape.rounds,
            seconds(self.shape.duration)
        );
        let heads = Self::heads();
        let _ =
            writeln!(out, "  {:<8}{}", heads[0], heads[1..8].iter().map(|h| format!("{h:>10}")).collect::<String>());
        for row in self.leg_rows() {
            let _ = writeln!(
                out,
                "  {:<8}{}  {} {}",
                row[0],
                row[1..8].iter().map(|c| format!("{c:>10}")).collect::<String>(),
                row[8],
                if row[9] == "none" { String::new() } else { format!("errors {}", row[9]) }
            );
        }
        let _ = writeln!(out);
        for (what, median, range) in self.ratio_rows() {
            let _ = writeln!(out, "  {what:<32} {median:>9}   (rounds: {range})");
        }
        for leg in &self.legs {
            for (status, body) in &leg.total.samples {
                let _ = writeln!(out, "\n  {}: first {status} answer: {}", leg.label, body.replace('\n', " "));
            }
        }
        for note in &self.notes {
            let _ = writeln!(
                out,
                "
  note: {note}"
            );
        }
        out
    }

    /// The report as Markdown, with every round and the machine.
    pub fn markdown(&self, machine: &Machine) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# tongban-load: {} side by side

{}
",
            self.scenario, self.description
        );
        let _ = writeln!(
            out,
            "{} connections, {}, {} round(s) of {} per leg, legs alternating (each round starts with the next leg). \
             Latency in ms over every round, from the request (open loop: from when it was due) to the end of the answer.\n",
            self.shape.connections,
            self.loop_kind(),
            self.shape.rounds,
            seconds(self.shape.duration)
        );
        let heads = Self::heads();
        let _ = writeln!(
            out,
            "| {} |
|---|{}",
            heads.join(" | "),
            "---:|".repeat(7) + "---|---|"
        );
        for row in self.leg_rows() {
            let _ = writeln!(out, "| {} |", row.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | "));
        }
        let rows = self.ratio_rows();
        if !rows.is_empty() {
            let _ = writeln!(
                out,
                "
## Ratios (within each round; the median, then the range)

| | median | rounds |
|---|---:|---:|"
            );
            for (what, median, range) in rows {
                let _ = writeln!(out, "| {what} | {median} | {range} |");
            }
        }
        let _ = writeln!(
            out,
            "
## Rounds (answers/s)
"
        );
        let labels: Vec<&str> = self.legs.iter().map(|leg| leg.label).collect();
        let _ = writeln!(
            out,
            "| round | {} |
|---:|{}",
            labels.join(" | "),
            "---:|".repeat(labels.len())
        );
        for round in 0..self.shape.rounds {
            let cells: Vec<String> = self
                .legs
                .iter()
                .map(|leg| leg.rounds.get(round).map_or_else(|| "-".to_owned(), |o| format!("{:.0}", throughput_of(o))))
                .collect();
            let _ = writeln!(out, "| {} | {} |", round + 1, cells.join(" | "));
        }
        let _ = writeln!(
            out,
            "
## Legs
"
        );
        for leg in &self.legs {
            let what = match leg.label {
                DIRECT => "the native request straight to the simulated platform (the physical limit)".to_owned(),
                NGINX => format!(
                    "the same native request through nginx proxy_pass ({}; upstream keep-alive, no access log, one worker per core)",
                    self.nginx_version.as_deref().unwrap_or("nginx")
                ),
                _ => "the scenario's request through the gateway, which translates it for the platform".to_owned(),
            };
            let _ = writeln!(out, "- `{}` → {}: {what}", leg.label, leg.target);
        }
        for leg in &self.legs {
            for (status, body) in &leg.total.samples {
                let _ =
                    writeln!(out, "- {} first `{status}`: `{}`", leg.label, body.replace('`', "'").replace('\n', " "));
            }
        }
        if !self.gateway_metrics.is_empty() {
            let _ = writeln!(
                out,
                "
## Gateway metrics after the run

```text"
            );
            for line in &self.gateway_metrics {
                let _ = writeln!(out, "{line}");
            }
            let _ = writeln!(out, "```");
        }
        machine_section(&mut out, machine);
        if !self.notes.is_empty() {
            let _ = writeln!(
                out,
                "
## Notes
"
            );
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

fn loop_kind(rate: Option<f64>) -> String {
    match rate {
        Some(rate) => format!("open loop at {rate:.0} requests/s"),
        None => "closed loop".to_owned(),
    }
}

/// The machine, as a Markdown section.
fn machine_section(out: &mut String, machine: &Machine) {
    let _ = writeln!(
        out,
        "
## Machine

| | |
|---|---|"
    );
    let _ = writeln!(out, "| CPU | {} |", escape(&machine.cpu));
    let _ = writeln!(out, "| cores | {} |", machine.cores);
    let _ = writeln!(out, "| memory | {} |", machine.memory);
    let _ = writeln!(out, "| kernel | {} |", escape(&machine.kernel));
    if let Some(fs) = &machine.filesystem {
        let _ = writeln!(out, "| store file system | {} |", escape(fs));
    }
    if let Some(commit) = &machine.commit {
        let _ = writeln!(out, "| workspace commit | {} |", escape(commit));
    }
    let _ = writeln!(
        out,
        "\nThe load generator, the gateway and the simulated platforms share this machine and its cores, \
         so the figures are a floor for the gateway alone, not a capacity of dedicated hardware."
    );
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{:.3} s", d.as_secs_f64()) }
}

fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// Keeps a value inside its Markdown table cell.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 answers in 2 s: 990 × 202 at 1..=990 µs, 10 × 429 at 100 ms; 2 timeouts.
    fn synthetic() -> Report {
        let mut outcome = Outcome::new().unwrap();
        for us in 1..=990 {
            outcome.latency.record(us).unwrap();
        }
        for _ in 0..10 {
            outcome.latency.record(100_000).unwrap();
        }
        outcome.statuses.insert(202, 990);
        outcome.statuses.insert(429, 10);
        outcome.successes = 990;
        outcome.errors.insert(crate::run::TIMEOUT, 2);
        outcome.samples.insert(429, "{\"type\":\"urn:tongban:problem:rate-limited\"}".into());
        outcome.connects = 4;
        outcome.elapsed = Duration::from_secs(2);
        Report {
            scenario: "acceptance".into(),
            description: "POST /v1/acceptances".into(),
            target: "http://127.0.0.1:8080".into(),
            gateway: "already running".into(),
            connections: 4,
            duration_limit: Duration::from_secs(2),
            max_requests: 5000,
            rate: None,
            outcome,
            gateway_metrics: vec!["tongban_acceptance_queue_depth 7".into()],
            notes: vec!["the gateway logged 1 warning".into()],
        }
    }

    fn machine() -> Machine {
        Machine {
            cpu: "Test CPU @ 2.0GHz".into(),
            cores: 2,
            memory: "4.0 GiB".into(),
            kernel: "Linux 6.1.0 x86_64".into(),
            filesystem: Some("ext4 (/dev/vda, mounted on /)".into()),
            commit: Some("1337e6b".into()),
        }
    }

    #[test]
    fn figures_come_from_the_histogram_and_the_counts() {
        let report = synthetic();
        assert_eq!(report.outcome.requests(), 1002);
        assert!((report.throughput() - 500.0).abs() < 1e-9);
        assert!((report.success_rate() - 495.0).abs() < 1e-9);
        let p50 = report.latency_ms(0.5).unwrap();
        assert!((0.49..=0.51).contains(&p50), "p50 {p50}");
        let p99 = report.latency_ms(0.99).unwrap();
        assert!((0.98..=1.0).contains(&p99), "p99 {p99}");
        let max = report.max_ms().unwrap();
        assert!((99.9..=100.1).contains(&max), "max {max}");
        assert_eq!(report.statuses(), "202: 990, 429: 10");
        assert_eq!(report.errors(), "timeout: 2");
    }

    #[test]
    fn the_terminal_table_has_every_figure() {
        let text = synthetic().terminal();
        for expected in [
            "acceptance: POST /v1/acceptances",
            "requests     1002 (limit 5000)",
            "throughput   500 answers/s, 495 successes/s",
            "statuses     202: 990, 429: 10",
            "errors       timeout: 2",
            "p50      p90      p99    p99.9      max",
            "first 429 answer: {\"type\":\"urn:tongban:problem:rate-limited\"}",
            "tongban_acceptance_queue_depth 7",
            "note: the gateway logged 1 warning",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn the_markdown_report_adds_the_machine() {
        let text = synthetic().markdown(&machine());
        for expected in [
            "# tongban-load: acceptance",
            "| throughput | 500 answers/s, 495 successes/s |",
            "| duration | 2.00 s (limit 2 s) |",
            "| p50 | p90 | p99 | p99.9 | max |",
            "|---:|---:|---:|---:|---:|",
            "| 0.50 | 0.90 | 0.99 | 100.03 | 100.03 |", // 100 ms within the histogram's 3 significant digits,
            "| CPU | Test CPU @ 2.0GHz |",
            "| cores | 2 |",
            "| kernel | Linux 6.1.0 x86_64 |",
            "| store file system | ext4 (/dev/vda, mounted on /) |",
            "| workspace commit | 1337e6b |",
            "share this machine",
            "- `429`: `{\"type\":\"urn:tongban:problem:rate-limited\"}`",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn an_empty_run_reports_dashes_not_zeros() {
        let mut report = synthetic();
        report.outcome = Outcome::new().unwrap();
        report.outcome.errors.insert(crate::run::CONNECT, 3);
        assert_eq!(report.latency_ms(0.5), None);
        assert!(report.terminal().contains("        -        -        -        -        -"));
        assert_eq!(report.statuses(), "none");
    }
}
