//! The latency model `L(T)`: the seed's `avgRtt`, or the RTT samples interpolated at `T`.
//!
//! These are network round-trip times (ICE candidate pair), not the delay through the diffusion
//! model, so ALIGN uses only their *variation* around the mean; the mean lag itself is part of the
//! estimated clock offset.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::LatencyLog;

/// Which latency model was used, recorded with every alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LatencySource {
    /// `rttSamples` interpolated linearly at `T`, held flat before the first and after the last.
    RttSamples,
    /// The constant `avgRtt` (the seed's model): too few samples to interpolate.
    AvgRtt,
    /// Neither samples nor `avgRtt`: a constant 0.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencyModel {
    pub source: LatencySource,
    /// The model's mean over the samples (or `avgRtt`).
    pub mean_ms: f64,
    /// `(t_ms, rtt_ms)` sorted by `t_ms`; empty unless `source` is `RttSamples`.
    #[serde(skip)]
    samples: Vec<(f64, f64)>,
}

impl LatencyModel {
    /// Chooses the model: samples when there are at least two, else `avgRtt`, else none.
    pub fn from_log(log: &LatencyLog) -> Self {
        let mut samples: Vec<(f64, f64)> = log
            .rtt_samples
            .iter()
            .map(|sample| (sample.t, sample.rtt))
            .filter(|(t, rtt)| t.is_finite() && rtt.is_finite())
            .collect();
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        if samples.len() >= 2 {
            let mean_ms = samples.iter().map(|(_, rtt)| rtt).sum::<f64>() / samples.len() as f64;
            return Self {
                source: LatencySource::RttSamples,
                mean_ms,
                samples,
            };
        }
        match log.avg_rtt.or(samples.first().map(|(_, rtt)| *rtt)) {
            Some(avg) if avg.is_finite() => Self::constant(LatencySource::AvgRtt, avg),
            _ => Self::constant(LatencySource::None, 0.0),
        }
    }

    pub fn constant(source: LatencySource, mean_ms: f64) -> Self {
        Self {
            source,
            mean_ms,
            samples: Vec::new(),
        }
    }

    /// `L(T)`, ms.
    pub fn at(&self, t_ms: f64) -> f64 {
        let samples = &self.samples;
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return self.mean_ms;
        };
        if t_ms <= first.0 {
            return first.1;
        }
        if t_ms >= last.0 {
            return last.1;
        }
        let after = samples.partition_point(|(t, _)| *t <= t_ms);
        let (t0, l0) = samples[after - 1];
        let (t1, l1) = samples[after];
        if t1 > t0 {
            l0 + (l1 - l0) * (t_ms - t0) / (t1 - t0)
        } else {
            l1
        }
    }

    /// `L(T) - mean`: what the model adds to a fixed offset.
    pub fn variation_at(&self, t_ms: f64) -> f64 {
        self.at(t_ms) - self.mean_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RttSample;

    fn log(avg: Option<f64>, samples: &[(f64, f64)]) -> LatencyLog {
        LatencyLog {
            initial_latency: None,
            avg_rtt: avg,
            rtt_samples: samples
                .iter()
                .map(|&(t, rtt)| RttSample {
                    t,
                    rtt,
                    extra: Default::default(),
                })
                .collect(),
            extra: Default::default(),
        }
    }

    #[test]
    fn interpolates_and_clamps() {
        let model = LatencyModel::from_log(&log(Some(999.0), &[(2000.0, 300.0), (1000.0, 100.0)]));
        assert_eq!(model.source, LatencySource::RttSamples);
        assert_eq!(model.mean_ms, 200.0);
        assert_eq!(model.at(0.0), 100.0);
        assert_eq!(model.at(1500.0), 200.0);
        assert_eq!(model.at(1750.0), 250.0);
        assert_eq!(model.at(9000.0), 300.0);
        assert_eq!(model.variation_at(1000.0), -100.0);
    }

    #[test]
    fn falls_back_to_avg_rtt_then_nothing() {
        let model = LatencyModel::from_log(&log(Some(348.5), &[(1.0, 340.0)]));
        assert_eq!(
            (model.source, model.at(5.0)),
            (LatencySource::AvgRtt, 348.5)
        );
        let model = LatencyModel::from_log(&log(None, &[]));
        assert_eq!((model.source, model.at(5.0)), (LatencySource::None, 0.0));
        assert_eq!(model.variation_at(5.0), 0.0);
    }
}
