//! Legs of a run and their rounds. A run has one leg (`tongban`), or with `--compare` three, run
//! in turn for the same duration: `direct` (the scenario's native request straight to the
//! simulated platform: the physical limit), `nginx` (the same request through nginx
//! `proxy_pass`) and `tongban` (the scenario's own request through the gateway). Each round
//! starts with a different leg, so drift on a shared machine (other load, frequency, caches)
//! falls on every leg alike; ratios are taken within a round.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::progress::Progress;
use crate::run::{self, Outcome, Plan};
use crate::scenario::Scenario;

/// Leg names, as the reports print them.
pub const DIRECT: &str = "direct";
pub const NGINX: &str = "nginx";
pub const TONGBAN: &str = "tongban";

/// The request numbers of one leg's round start this far apart (ids carry 48 bits of it).
const SEQ_SPACE: u64 = 1 << 40;

/// Where one leg sends what.
pub struct Leg {
    pub label: &'static str,
    /// `http://…`, for the report.
    pub target: String,
    pub addr: SocketAddr,
    /// The `Host` header.
    pub authority: String,
    pub scenario: Arc<dyn Scenario>,
}

/// A leg's figures.
pub struct Measured {
    pub label: &'static str,
    pub target: String,
    /// One outcome per round, in round order.
    pub rounds: Vec<Outcome>,
    /// The rounds together.
    pub total: Outcome,
}

/// How every leg runs.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub connections: usize,
    pub duration: Duration,
    pub max_requests: u64,
    pub timeout: Duration,
    pub rate: Option<f64>,
    pub rounds: usize,
}

/// Runs every leg `shape.rounds` times, alternating; Ctrl-C (`stop`) ends the run after the
/// requests in flight.
pub async fn alternate(legs: &[Leg], shape: Shape, stop: &Arc<AtomicBool>) -> anyhow::Result<Vec<Measured>> {
    let mut measured: Vec<Measured> = legs
        .iter()
        .map(|leg| {
            Ok(Measured { label: leg.label, target: leg.target.clone(), rounds: Vec::new(), total: Outcome::new()? })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut turn: u64 = 1;
    'rounds: for round in 0..shape.rounds {
        for k in 0..legs.len() {
            if stop.load(Ordering::Relaxed) {
                break 'rounds;
            }
            let index = (round + k) % legs.len();
            let leg = &legs[index];
            let label = if shape.rounds > 1 {
                format!("{} round {}/{}", leg.label, round + 1, shape.rounds)
            } else {
                leg.label.to_owned()
            };
            let outcome = one(leg, shape, turn * SEQ_SPACE, &label, stop).await?;
            turn += 1;
            let figures = &mut measured[index];
            figures.total.merge(outcome.clone())?;
            figures.total.elapsed += outcome.elapsed;
            figures.total.interrupted |= outcome.interrupted;
            figures.rounds.push(outcome);
        }
    }
    Ok(measured)
}

/// One leg once, with a progress bar.
async fn one(leg: &Leg, shape: Shape, first_seq: u64, label: &str, stop: &Arc<AtomicBool>) -> anyhow::Result<Outcome> {
    let plan = Plan {
        addr: leg.addr,
        authority: leg.authority.clone(),
        connections: shape.connections,
        duration: shape.duration,
        max_requests: shape.max_requests,
        timeout: shape.timeout,
        rate: shape.rate,
        first_seq,
        answered: Arc::default(),
    };
    let progress = Progress::start(label, shape.duration, shape.max_requests, plan.answered.clone());
    let outcome = run::execute(plan, leg.scenario.clone(), stop.clone()).await;
    progress.finish();
    outcome
}

/// The middle value (the mean of the two middle ones for an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_rounds() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0]), Some(3.0));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN, 1.0]), Some(1.0));
    }
}
