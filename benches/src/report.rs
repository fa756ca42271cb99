//! The results: per workload, each runtime's median, p10, p90 and the ratio of its median to
//! crun's; the peak RSS where measured; the goals, met or not.

use std::time::Duration;

use crate::measure::{ms, percentile};
use crate::workloads::Series;

/// One workload's results.
pub struct Table {
    pub workload: &'static str,
    pub what: String,
    pub series: Vec<Series>,
}

pub struct Row {
    pub runtime: String,
    pub median: Duration,
    pub p10: Duration,
    pub p90: Duration,
    pub peak_rss_kib: Option<u64>,
}

impl Table {
    pub fn rows(&self) -> Vec<Row> {
        self.series
            .iter()
            .map(|s| {
                let mut t: Vec<Duration> = s.samples.iter().map(|x| x.time).collect();
                t.sort();
                Row {
                    runtime: s.runtime.clone(),
                    median: percentile(&t, 0.5),
                    p10: percentile(&t, 0.1),
                    p90: percentile(&t, 0.9),
                    peak_rss_kib: s.samples.iter().filter_map(|x| x.rss_kib).max(),
                }
            })
            .collect()
    }

    pub fn median(&self, runtime: &str) -> Option<Duration> {
        self.rows()
            .into_iter()
            .find(|r| r.runtime == runtime)
            .map(|r| r.median)
    }

    pub fn peak_rss(&self, runtime: &str) -> Option<u64> {
        self.rows()
            .into_iter()
            .find(|r| r.runtime == runtime)
            .and_then(|r| r.peak_rss_kib)
    }
}

fn ratio(a: Option<Duration>, b: Option<Duration>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) if !y.is_zero() => Some(x.as_secs_f64() / y.as_secs_f64()),
        _ => None,
    }
}

/// A goal of the benchmark: `value` against `limit` (lower is better).
pub struct Goal {
    pub what: String,
    pub value: Option<f64>,
    pub limit: f64,
    pub unit: &'static str,
}

impl Goal {
    pub fn met(&self) -> Option<bool> {
        self.value.map(|v| v <= self.limit)
    }
}

/// The goals that the tables can decide.
pub fn goals(tables: &[Table]) -> Vec<Goal> {
    let find = |w: &str| tables.iter().find(|t| t.workload == w);
    let mut out = Vec::new();
    let vs_crun = |w: &str, what: &str, limit: f64, out: &mut Vec<Goal>| {
        if let Some(t) = find(w) {
            out.push(Goal {
                what: what.into(),
                value: ratio(t.median("casulo"), t.median("crun")),
                limit,
                unit: "x crun",
            });
        }
    };
    vs_crun("run", "run, template config", 0.9, &mut out);
    vs_crun("engine", "run, podman's config", 0.9, &mut out);
    vs_crun(
        "lifecycle",
        "create + start + delete --force",
        0.9,
        &mut out,
    );
    vs_crun("exec", "exec, foreground", 0.9, &mut out);
    vs_crun("exec-detach", "exec --process --detach", 0.9, &mut out);
    vs_crun("parallel", "parallel runs, batch wall time", 1.0, &mut out);
    vs_crun("state", "state", 1.0, &mut out);
    if let Some(t) = find("run") {
        let (a, b) = (t.peak_rss("casulo"), t.peak_rss("crun"));
        out.push(Goal {
            what: "peak RSS of run".into(),
            value: match (a, b) {
                (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
                _ => None,
            },
            limit: 1.0,
            unit: "x crun",
        });
    }
    if let Some(t) = find("list") {
        out.push(Goal {
            what: "list of the created containers".into(),
            value: t.median("casulo").map(ms),
            limit: 50.0,
            unit: "ms",
        });
    }
    if let (Some(lib), Some(par)) = (find("library"), find("parallel")) {
        out.push(Goal {
            what: "library batch against crun's batch of runs".into(),
            value: ratio(lib.median("casulo (library)"), par.median("crun")),
            limit: 0.5,
            unit: "x crun",
        });
    }
    out
}

pub fn print_text(tables: &[Table], host_load: &str) {
    println!("host load before the run: {host_load}");
    for t in tables {
        println!();
        println!("## {}: {}", t.workload, t.what);
        println!(
            "{:<20} {:>10} {:>10} {:>10} {:>9} {:>12}",
            "runtime", "median ms", "p10 ms", "p90 ms", "x crun", "peak RSS KiB"
        );
        let crun = t.median("crun");
        for r in t.rows() {
            let x = ratio(Some(r.median), crun)
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into());
            let rss = r
                .peak_rss_kib
                .map(|k| k.to_string())
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<20} {:>10.2} {:>10.2} {:>10.2} {:>9} {:>12}",
                r.runtime,
                ms(r.median),
                ms(r.p10),
                ms(r.p90),
                x,
                rss
            );
        }
    }
    println!();
    println!("## goals");
    for g in goals(tables) {
        let (value, verdict) = match (g.value, g.met()) {
            (Some(v), Some(m)) => (
                format!("{v:.2} {}", g.unit),
                if m { "met" } else { "MISSED" },
            ),
            _ => ("-".into(), "not measured"),
        };
        println!(
            "{:<46} {:>14}  (goal <= {} {})  {verdict}",
            g.what, value, g.limit, g.unit
        );
    }
}

pub fn json(tables: &[Table], host_load: &str) -> serde_json::Value {
    let workloads: Vec<_> = tables
        .iter()
        .map(|t| {
            let crun = t.median("crun");
            let rows: Vec<_> = t
                .rows()
                .into_iter()
                .map(|r| {
                    serde_json::json!({
                        "runtime": r.runtime,
                        "median_ms": ms(r.median),
                        "p10_ms": ms(r.p10),
                        "p90_ms": ms(r.p90),
                        "over_crun": ratio(Some(r.median), crun),
                        "peak_rss_kib": r.peak_rss_kib,
                    })
                })
                .collect();
            serde_json::json!({"workload": t.workload, "what": t.what, "results": rows})
        })
        .collect();
    let goals: Vec<_> = goals(tables)
        .into_iter()
        .map(|g| serde_json::json!({"goal": g.what, "value": g.value, "limit": g.limit, "unit": g.unit, "met": g.met()}))
        .collect();
    serde_json::json!({"host_load": host_load, "workloads": workloads, "goals": goals})
}
