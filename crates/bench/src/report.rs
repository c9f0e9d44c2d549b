//! The result of one scenario run: what people read on the terminal, and `--json` for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::driver::LoadResult;
use crate::stats::Latency;

/// The machine a run was measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    /// `/proc/loadavg`'s first three fields when the run ended.
    pub load: String,
}

impl Machine {
    /// This machine now.
    pub fn now() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load: std::fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

/// One scenario against one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub scenario: String,
    pub server: String,
    pub params: serde_json::Value,
    pub machine: Machine,
    /// Zero loss, no seq violation, no error, every send acknowledged, every connection up.
    pub ok: bool,
    pub conns: usize,
    pub connected: u64,
    pub workers: usize,
    pub connect_secs: f64,
    pub connects_per_s: f64,
    pub window_secs: f64,
    pub sent_per_s: f64,
    pub delivered_per_s: f64,
    pub server_cpu_pct: Option<f64>,
    pub cpu_us_per_delivery: Option<f64>,
    /// CPU of the server's engines on this machine (PostgreSQL backends, NATS, Redis), when
    /// any was found: the work the server hands them, beside its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_cpu_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_cpu_us_per_delivery: Option<f64>,
    #[serde(default)]
    pub engine_processes: usize,
    /// CPU of the generator itself (`confab bench` and its worker processes): beside the
    /// server's, it says whether the machine's cores were all busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cpu_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cpu_us_per_delivery: Option<f64>,
    pub ack: Latency,
    pub delivery: Latency,
    pub connect: Latency,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub errors: u64,
    pub unacked: u64,
    pub reconnects: u64,
    pub storm_recover_secs: Option<f64>,
    pub rss_before: Option<u64>,
    pub rss_connected: Option<u64>,
    pub rss_end: Option<u64>,
    pub rss_per_conn: Option<f64>,
    pub notes: BTreeMap<String, u64>,
    /// Store-only runs (`append`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appends_per_s: Option<f64>,
    /// The delivery-latency histogram (µs), hex-encoded HdrHistogram V2, for re-plotting.
    #[serde(default)]
    pub delivery_hdr: String,
    #[serde(skip)]
    pub delivery_hist: Option<Histogram<u64>>,
}

/// CPU microseconds over `secs` as a percentage of one core.
pub(crate) fn share_of_core(cpu_us: Option<u64>, secs: f64) -> Option<f64> {
    cpu_us.map(|u| u as f64 / secs / 1e4)
}

/// CPU microseconds per delivered message (or append); none when nothing was delivered.
pub(crate) fn per_item(cpu_us: Option<u64>, items: u64) -> Option<f64> {
    cpu_us
        .filter(|_| items > 0)
        .map(|u| u as f64 / items as f64)
}

impl RunReport {
    /// The report of a load run.
    pub fn from_load(
        scenario: &str,
        server: &str,
        params: serde_json::Value,
        r: &LoadResult,
    ) -> Self {
        let c = r.merged.counters;
        let w = r.window;
        let secs = r.window_secs.max(1e-9);
        let rss_per_conn = match (r.rss_before, r.rss_connected) {
            (Some(a), Some(b)) if r.connected > 0 => {
                Some(b.saturating_sub(a) as f64 / r.connected as f64)
            }
            _ => None,
        };
        let ok = c.lost == 0
            && c.duplicates == 0
            && c.errors == 0
            && r.unacked == 0
            && r.connected == r.conns as u64;
        RunReport {
            scenario: scenario.into(),
            server: server.into(),
            params,
            machine: Machine::now(),
            ok,
            conns: r.conns,
            connected: r.connected,
            workers: r.workers,
            connect_secs: r.connect_secs,
            connects_per_s: r.connected as f64 / r.connect_secs.max(1e-9),
            window_secs: r.window_secs,
            sent_per_s: w.sent as f64 / secs,
            delivered_per_s: w.delivered as f64 / secs,
            server_cpu_pct: share_of_core(r.server_cpu_us, secs),
            cpu_us_per_delivery: per_item(r.server_cpu_us, w.delivered),
            engine_cpu_pct: share_of_core(r.engine_cpu_us, secs),
            engine_cpu_us_per_delivery: per_item(r.engine_cpu_us, w.delivered),
            engine_processes: r.engine_processes,
            generator_cpu_pct: share_of_core(r.generator_cpu_us, secs),
            generator_cpu_us_per_delivery: per_item(r.generator_cpu_us, w.delivered),
            ack: Latency::of(&r.merged.ack),
            delivery: Latency::of(&r.merged.delivery),
            connect: Latency::of(&r.merged.connect),
            sent: c.sent,
            acked: c.acked,
            delivered: c.delivered,
            lost: c.lost,
            duplicates: c.duplicates,
            errors: c.errors,
            unacked: r.unacked,
            reconnects: c.reconnects,
            storm_recover_secs: r.storm_recover_secs,
            rss_before: r.rss_before,
            rss_connected: r.rss_connected,
            rss_end: r.rss_end,
            rss_per_conn,
            notes: r.merged.notes.clone(),
            appends_per_s: None,
            delivery_hdr: crate::stats::encode(&r.merged.delivery),
            delivery_hist: Some(r.merged.delivery.clone()),
        }
    }

    /// Reports saved by `compare` (`results.json`), with their histograms decoded.
    pub fn load_all(path: &std::path::Path) -> anyhow::Result<Vec<RunReport>> {
        let mut all: Vec<RunReport> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        for r in &mut all {
            if !r.delivery_hdr.is_empty() {
                r.delivery_hist = Some(crate::stats::decode(&r.delivery_hdr)?);
            }
        }
        Ok(all)
    }

    /// The CPU lines: the server's (`label` before its share, `suffix` after), then its
    /// engines' and the generator's when they were measured, each per `per`.
    fn cpu_lines(&self, label: &str, suffix: &str, per: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  {label}{}{suffix}  →  {} per {per}",
            opt(self.server_cpu_pct, "%", 0),
            opt(self.cpu_us_per_delivery, " µs", 2)
        );
        if let Some(pct) = self.engine_cpu_pct {
            let total = self
                .cpu_us_per_delivery
                .zip(self.engine_cpu_us_per_delivery)
                .map(|(a, b)| format!("; with the server's own, {:.2} µs", a + b))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  engines CPU   {pct:.0}% ({} process{} at the far end of the server's connections)  →  {} per {per}{total}",
                self.engine_processes,
                if self.engine_processes == 1 { "" } else { "es" },
                opt(self.engine_cpu_us_per_delivery, " µs", 2),
            );
        }
        if let Some(pct) = self.generator_cpu_pct {
            let _ = writeln!(
                s,
                "  generator CPU {pct:.0}% (this process and its workers)  →  {} per {per}",
                opt(self.generator_cpu_us_per_delivery, " µs", 2)
            );
        }
        s
    }

    /// The human-readable form.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let verdict = if self.ok { "OK" } else { "FAILED" };
        let _ = writeln!(
            s,
            "{} on {} — {verdict} (load {} on {} cores)",
            self.scenario, self.server, self.machine.load, self.machine.cores
        );
        let _ = writeln!(s, "  params        {}", self.params);
        if let Some(a) = self.appends_per_s {
            let _ = writeln!(s, "  appends       {a:.0}/s over {:.1} s", self.window_secs);
            let _ = writeln!(s, "  append lat.   {}", lat(&self.ack));
            s.push_str(&self.cpu_lines("CPU           ", " of this process", "append"));
            let _ = writeln!(
                s,
                "  lost {}  duplicates {}  errors {}",
                self.lost, self.duplicates, self.errors
            );
            return s;
        }
        let _ = writeln!(
            s,
            "  connections   {}/{} in {:.2} s ({:.0}/s, {} worker process{}), connect {}",
            self.connected,
            self.conns,
            self.connect_secs,
            self.connects_per_s,
            self.workers,
            if self.workers == 1 { "" } else { "es" },
            lat(&self.connect)
        );
        if self.window_secs > 0.0 {
            let _ = writeln!(
                s,
                "  throughput    sent {:.0}/s, delivered {:.0}/s over {:.1} s",
                self.sent_per_s, self.delivered_per_s, self.window_secs
            );
            s.push_str(&self.cpu_lines("server CPU    ", "", "delivered message"));
            let _ = writeln!(s, "  ack latency   {}", lat(&self.ack));
            let _ = writeln!(s, "  delivery lat. {}", lat(&self.delivery));
        }
        let _ = writeln!(
            s,
            "  server RSS    before {}, connected {}, end {}{}",
            mib(self.rss_before),
            mib(self.rss_connected),
            mib(self.rss_end),
            match self.rss_per_conn {
                Some(b) => format!(", {:.2} KiB per connection", b / 1024.0),
                None => String::new(),
            }
        );
        if let Some(secs) = self.storm_recover_secs {
            let _ = writeln!(
                s,
                "  storm         everyone back in {secs:.2} s, {} reconnects",
                self.reconnects
            );
        }
        let _ = writeln!(
            s,
            "  checks        sent {} acked {} delivered {}; lost {} duplicates {} errors {} unacked {}",
            self.sent,
            self.acked,
            self.delivered,
            self.lost,
            self.duplicates,
            self.errors,
            self.unacked
        );
        if !self.notes.is_empty() {
            let notes: Vec<String> = self
                .notes
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect();
            let _ = writeln!(s, "  notes         {}", notes.join("; "));
        }
        s
    }
}

fn lat(l: &Latency) -> String {
    if l.count == 0 {
        return "—".into();
    }
    format!(
        "p50 {} p99 {} p99.9 {} max {} (n={})",
        us(l.p50_us),
        us(l.p99_us),
        us(l.p999_us),
        us(l.max_us),
        l.count
    )
}

/// Microseconds, shown in a readable unit.
pub fn us(v: u64) -> String {
    if v >= 1_000_000 {
        format!("{:.2} s", v as f64 / 1e6)
    } else if v >= 1000 {
        format!("{:.2} ms", v as f64 / 1e3)
    } else {
        format!("{v} µs")
    }
}

fn mib(b: Option<u64>) -> String {
    b.map_or("?".into(), |b| {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    })
}

fn opt(v: Option<f64>, unit: &str, prec: usize) -> String {
    v.map_or("?".into(), |v| format!("{v:.prec$}{unit}"))
}
