//! Metrics a filter defines, readable by tests.

use crate::abi::Status;

/// The kind of a metric, as numbered by the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// 0: only grows.
    Counter,
    /// 1: goes up and down.
    Gauge,
    /// 2: records values.
    Histogram,
}

/// A metric as a test reads it. Envoy shows the same metric in its stats
/// as `wasmcustom.<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metric {
    /// The name the filter defined.
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The counter or gauge value (0 for histograms).
    pub value: i64,
    /// Every value recorded into a histogram, in order.
    pub samples: Vec<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    entries: Vec<Metric>,
}

impl Metrics {
    pub(crate) fn define(&mut self, kind: i32, name: String) -> Result<u32, Status> {
        let kind = match kind {
            0 => MetricKind::Counter,
            1 => MetricKind::Gauge,
            2 => MetricKind::Histogram,
            _ => return Err(Status::BadArgument),
        };
        // Envoy's stats scope hands back the same stat for the same name.
        if let Some(i) = self
            .entries
            .iter()
            .position(|m| m.name == name && m.kind == kind)
        {
            return Ok(id(i));
        }
        self.entries.push(Metric {
            name,
            kind,
            value: 0,
            samples: Vec::new(),
        });
        Ok(id(self.entries.len() - 1))
    }

    fn get_mut(&mut self, metric_id: u32) -> Result<&mut Metric, Status> {
        let index = usize::try_from(metric_id.checked_sub(1).ok_or(Status::NotFound)?)
            .map_err(|_| Status::NotFound)?;
        self.entries.get_mut(index).ok_or(Status::NotFound)
    }

    pub(crate) fn increment(&mut self, metric_id: u32, delta: i64) -> Result<(), Status> {
        let m = self.get_mut(metric_id)?;
        match m.kind {
            MetricKind::Counter if delta < 0 => Err(Status::BadArgument),
            MetricKind::Counter | MetricKind::Gauge => {
                m.value = m.value.saturating_add(delta);
                Ok(())
            }
            MetricKind::Histogram => Err(Status::BadArgument),
        }
    }

    pub(crate) fn record(&mut self, metric_id: u32, value: u64) -> Result<(), Status> {
        let m = self.get_mut(metric_id)?;
        let signed = i64::try_from(value).unwrap_or(i64::MAX);
        match m.kind {
            // Envoy adds a recorded value to a counter.
            MetricKind::Counter => m.value = m.value.saturating_add(signed),
            MetricKind::Gauge => m.value = signed,
            MetricKind::Histogram => m.samples.push(value),
        }
        Ok(())
    }

    pub(crate) fn get(&mut self, metric_id: u32) -> Result<u64, Status> {
        let m = self.get_mut(metric_id)?;
        match m.kind {
            MetricKind::Histogram => Err(Status::BadArgument),
            _ => Ok(u64::try_from(m.value).unwrap_or(0)),
        }
    }

    pub(crate) fn all(&self) -> &[Metric] {
        &self.entries
    }
}

// Ids start at 1 so a zeroed id never names a metric.
fn id(index: usize) -> u32 {
    u32::try_from(index).map_or(u32::MAX, |i| i.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_only_grow_and_histograms_keep_samples() {
        let mut m = Metrics::default();
        let c = m.define(0, "c".into()).unwrap();
        assert_eq!(m.define(0, "c".into()), Ok(c));
        assert_eq!(m.increment(c, 2), Ok(()));
        assert_eq!(m.increment(c, -1), Err(Status::BadArgument));
        assert_eq!(m.get(c), Ok(2));
        let h = m.define(2, "h".into()).unwrap();
        assert_eq!(m.record(h, 7), Ok(()));
        assert_eq!(m.get(h), Err(Status::BadArgument));
        assert_eq!(m.all()[1].samples, vec![7]);
        assert_eq!(m.define(9, "x".into()), Err(Status::BadArgument));
        assert_eq!(m.increment(42, 1), Err(Status::NotFound));
    }
}
