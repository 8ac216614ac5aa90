//! Watches every service replica's `/readyz` while faults are injected, so the report can say
//! how long each fault kept some service not ready.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use tokio::task::JoinHandle;

use crate::process::epoch;

#[derive(Clone, Debug)]
pub struct Sample {
    pub at: f64,
    /// (replica name, answered 200)
    pub ready: Vec<(String, bool)>,
}

pub struct ReadyWatch {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: JoinHandle<()>,
}

impl Drop for ReadyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReadyWatch {
    /// Polls `targets` (name, base URL) every `every`.
    pub fn start(http: reqwest::Client, targets: Vec<(String, String)>, every: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                let at = epoch(SystemTime::now());
                let checks = targets.iter().map(|(name, base)| {
                    let http = http.clone();
                    async move {
                        let ok = matches!(
                            http.get(format!("{base}/readyz")).timeout(Duration::from_secs(1)).send().await,
                            Ok(r) if r.status().is_success()
                        );
                        (name.clone(), ok)
                    }
                });
                let ready = futures::future::join_all(checks).await;
                if let Ok(mut s) = sink.lock() {
                    s.push(Sample { at, ready });
                }
                tokio::time::sleep(every).await;
            }
        });
        ReadyWatch { samples, task }
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// After a fault at `from` (until `until`): which replicas went not ready, and the time from
/// `from` until all of them were ready again. Replicas in `ignore` (killed on purpose at that
/// time) are left out. `None` for the time means some were still not ready at `until`.
pub fn not_ready_after(
    samples: &[Sample],
    from: f64,
    until: f64,
    ignore: &dyn Fn(&str, f64) -> bool,
) -> (Vec<String>, Option<f64>) {
    let mut went_down: Vec<String> = Vec::new();
    let mut last_bad: Option<f64> = None;
    let mut recovered: Option<f64> = None;
    for s in samples.iter().filter(|s| s.at >= from && s.at <= until) {
        let bad: Vec<&String> =
            s.ready.iter().filter(|(n, ok)| !ok && !ignore(n, s.at)).map(|(n, _)| n).collect();
        if bad.is_empty() {
            if last_bad.is_some() && recovered.is_none() {
                recovered = Some(s.at - from);
            }
        } else {
            for n in bad {
                if !went_down.contains(n) {
                    went_down.push(n.clone());
                }
            }
            last_bad = Some(s.at);
            recovered = None;
        }
    }
    match last_bad {
        None => (went_down, Some(0.0)),
        Some(_) => (went_down, recovered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: f64, ready: &[(&str, bool)]) -> Sample {
        Sample { at, ready: ready.iter().map(|(n, ok)| ((*n).to_owned(), *ok)).collect() }
    }

    #[test]
    fn recovery_is_measured_from_the_fault_to_the_first_all_ready_sample() {
        let samples = vec![
            s(0.5, &[("a", true), ("b", true)]),
            s(1.5, &[("a", false), ("b", true)]),
            s(2.5, &[("a", false), ("b", false)]),
            s(3.5, &[("a", true), ("b", true)]),
        ];
        let none = |_: &str, _: f64| false;
        assert_eq!(
            not_ready_after(&samples, 1.0, 10.0, &none),
            (vec!["a".into(), "b".into()], Some(2.5))
        );
        let all_ok = not_ready_after(&samples, 3.0, 10.0, &none);
        assert_eq!(all_ok, (vec![], Some(0.0)));
        let ignore_a = |n: &str, _: f64| n == "a";
        assert_eq!(not_ready_after(&samples, 1.0, 10.0, &ignore_a), (vec!["b".into()], Some(2.5)));
        assert_eq!(not_ready_after(&samples, 1.0, 3.0, &none).1, None);
    }
}
