//! A comparison's reports as Markdown tables (one per scenario, confab / ceiling / Socket.IO
//! side by side, with the ratios the targets are stated in) and as PNG plots.

use std::fmt::Write as _;
use std::path::Path;

use crate::plot;
use crate::report::{RunReport, us};

fn servers_of(reports: &[&RunReport]) -> Vec<String> {
    let mut s: Vec<String> = Vec::new();
    for r in reports {
        if !s.contains(&r.server) {
            s.push(r.server.clone());
        }
    }
    s
}

fn pick<'a>(reports: &'a [RunReport], scenario: &str) -> Vec<&'a RunReport> {
    reports.iter().filter(|r| r.scenario == scenario).collect()
}

fn f0(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0}"))
}

/// A CPU share: "97%", or "—" when not measured.
fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0}%"))
}

fn f2(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}"))
}

fn checks(r: &RunReport) -> String {
    format!("{} / {} / {}", r.lost, r.duplicates, r.errors)
}

fn mib(b: Option<u64>) -> String {
    b.map_or("—".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
}

/// CPU µs per delivery (or append), with the engines' part as "(+ …)" when measured.
fn cpu_with_engines(r: &RunReport) -> String {
    match r.engine_cpu_us_per_delivery {
        Some(e) => format!("{} (+ {e:.2})", f2(r.cpu_us_per_delivery)),
        None => f2(r.cpu_us_per_delivery),
    }
}

/// The Markdown of a comparison.
pub fn markdown(reports: &[RunReport]) -> String {
    let mut s = String::new();
    if let Some(r) = reports.first() {
        let _ = writeln!(
            s,
            "Machine: {} cores; load average at the end of the first run: {}.\n",
            r.machine.cores, r.machine.load
        );
    }
    for scenario in ["fanout", "hot-room"] {
        let rs = pick(reports, scenario);
        if rs.is_empty() {
            continue;
        }
        let floor = rs
            .iter()
            .find(|r| r.server == "floor")
            .and_then(|r| r.cpu_us_per_delivery);
        let sio = rs
            .iter()
            .find(|r| r.server == "socketio")
            .and_then(|r| r.cpu_us_per_delivery);
        let _ = writeln!(s, "### {scenario}\n\n`{}`\n", rs[0].params);
        let _ = writeln!(
            s,
            "| server | delivered msgs/s | server CPU | CPU µs / delivery (+ engines) | × ceiling | × Socket.IO | ack p50 / p99 | delivery p50 / p99 / p99.9 / max | lost / dup / errors | RSS end | load |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|---|---|---:|---|");
        for r in &rs {
            // With engines (PostgreSQL backends, ...), the ratio with them follows in brackets.
            let engines = r.engine_cpu_us_per_delivery;
            let ratio = |base: Option<f64>| match (r.cpu_us_per_delivery, base) {
                (Some(a), Some(b)) if b > 0.0 => match engines {
                    Some(e) => format!("{:.2} ({:.2})", a / b, (a + e) / b),
                    None => format!("{:.2}", a / b),
                },
                _ => "—".into(),
            };
            let cpu = cpu_with_engines(r);
            let _ = writeln!(
                s,
                "| {} | {:.0} | {}% | {} | {} | {} | {} / {} | {} / {} / {} / {} | {} | {} | {} |",
                r.server,
                r.delivered_per_s,
                f0(r.server_cpu_pct),
                cpu,
                ratio(floor),
                ratio(sio),
                us(r.ack.p50_us),
                us(r.ack.p99_us),
                us(r.delivery.p50_us),
                us(r.delivery.p99_us),
                us(r.delivery.p999_us),
                us(r.delivery.max_us),
                checks(r),
                mib(r.rss_end),
                r.machine.load
            );
        }
        s.push('\n');
    }
    let rs = pick(reports, "capacity");
    if !rs.is_empty() {
        let _ = writeln!(
            s,
            "### capacity (fanout shape, per-sender rate raised until a step fails: loss, < 95% delivered, or delivery p99 > 50 ms)\n"
        );
        let _ = writeln!(
            s,
            "| server | rate / sender | offered msgs/s | delivered msgs/s | CPU µs / delivery | server / generator CPU | delivery p50 / p99 | lost / dup / errors | passed | load |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|---|---|---|");
        for r in &rs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {} | {} / {} | {} / {} | {} | {} | {} |",
                r.server,
                r.params["rate"],
                r.params["offered_deliveries_per_s"],
                r.delivered_per_s,
                f2(r.cpu_us_per_delivery),
                pct(r.server_cpu_pct),
                pct(r.generator_cpu_pct),
                us(r.delivery.p50_us),
                us(r.delivery.p99_us),
                checks(r),
                r.params["pass"],
                r.machine.load
            );
        }
        let _ = writeln!(
            s,
            "\nCapacity (highest passing step) and latency at half of it:\n"
        );
        let _ = writeln!(
            s,
            "| server | capacity msgs/s | half-load rate / sender | delivery p99 at half | p99.9 | CPU µs / delivery |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for server in servers_of(&rs) {
            let best = rs
                .iter()
                .filter(|r| r.server == server && r.params["pass"] == true)
                .map(|r| r.delivered_per_s)
                .fold(0.0, f64::max);
            let half = pick(reports, "half-load")
                .into_iter()
                .find(|r| r.server == server);
            let _ = writeln!(
                s,
                "| {server} | {best:.0} | {} | {} | {} | {} |",
                half.map_or("—".into(), |h| h.params["rate"].to_string()),
                half.map_or("—".into(), |h| us(h.delivery.p99_us)),
                half.map_or("—".into(), |h| us(h.delivery.p999_us)),
                f2(half.and_then(|h| h.cpu_us_per_delivery)),
            );
        }
        s.push('\n');
    }
    let rs = pick(reports, "idle");
    if !rs.is_empty() {
        let _ = writeln!(s, "### idle\n\n`{}`\n", rs[0].params);
        let _ = writeln!(
            s,
            "| server | connections held | RSS before → connected | RSS / connection | server CPU while idle | errors | load |"
        );
        let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---|");
        for r in &rs {
            let _ = writeln!(
                s,
                "| {} | {}/{} | {} → {} | {} | {}% | {} | {} |",
                r.server,
                r.connected,
                r.conns,
                mib(r.rss_before),
                mib(r.rss_connected),
                r.rss_per_conn
                    .map_or("—".into(), |b| format!("{:.2} KiB", b / 1024.0)),
                f2(r.server_cpu_pct),
                r.errors,
                r.machine.load
            );
        }
        s.push('\n');
    }
    let rs = pick(reports, "connect");
    if !rs.is_empty() {
        let _ = writeln!(s, "### connect\n\n`{}`\n", rs[0].params);
        let _ = writeln!(
            s,
            "| server | connections | connections/s | connect p50 / p99 / max | errors | load |"
        );
        let _ = writeln!(s, "|---|---:|---:|---|---:|---|");
        for r in &rs {
            let _ = writeln!(
                s,
                "| {} | {}/{} | {:.0} | {} / {} / {} | {} | {} |",
                r.server,
                r.connected,
                r.conns,
                r.connects_per_s,
                us(r.connect.p50_us),
                us(r.connect.p99_us),
                us(r.connect.max_us),
                r.errors,
                r.machine.load
            );
        }
        s.push('\n');
    }
    let rs = pick(reports, "storm");
    if !rs.is_empty() {
        let _ = writeln!(s, "### storm\n\n`{}`\n", rs[0].params);
        let _ = writeln!(
            s,
            "| server | how | everyone back after | reconnects | delivery p99 / max | lost / dup / errors | load |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---|---|---|");
        for r in &rs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} / {} | {} | {} |",
                r.server,
                r.params["storm"]["how"],
                r.storm_recover_secs
                    .map_or("—".into(), |v| format!("{v:.2} s")),
                r.reconnects,
                us(r.delivery.p99_us),
                us(r.delivery.max_us),
                checks(r),
                r.machine.load
            );
        }
        s.push('\n');
    }
    let rs = pick(reports, "append");
    if !rs.is_empty() {
        let _ = writeln!(s, "### append (the store alone, group-committed)\n");
        let _ = writeln!(
            s,
            "| store | appends/s | append p50 / p99 / max | CPU µs / append (+ engines) | lost / dup / errors | params | load |"
        );
        let _ = writeln!(s, "|---|---:|---|---:|---|---|---|");
        for r in &rs {
            let _ = writeln!(
                s,
                "| {} | {} | {} / {} / {} | {} | {} | `{}` | {} |",
                r.server,
                f0(r.appends_per_s),
                us(r.ack.p50_us),
                us(r.ack.p99_us),
                us(r.ack.max_us),
                cpu_with_engines(r),
                checks(r),
                r.params,
                r.machine.load
            );
        }
        s.push('\n');
    }
    s
}

/// The highest capacity-step rate that every server passed, if any.
fn common_rate(reports: &[RunReport]) -> Option<f64> {
    let caps = pick(reports, "capacity");
    let servers = servers_of(&caps);
    let rates: Vec<f64> = caps
        .iter()
        .filter_map(|r| r.params["rate"].as_f64())
        .collect();
    rates
        .into_iter()
        .filter(|rate| {
            servers.iter().all(|s| {
                caps.iter().any(|r| {
                    &r.server == s
                        && r.params["rate"].as_f64() == Some(*rate)
                        && r.params["pass"] == true
                })
            })
        })
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))))
}

/// The plot groups: (label, reports of that group, one per server).
fn groups(reports: &[RunReport]) -> Vec<(String, Vec<&RunReport>)> {
    let mut out = Vec::new();
    for scenario in ["fanout", "hot-room"] {
        let rs = pick(reports, scenario);
        if !rs.is_empty() {
            let offered = rs[0].params["offered_deliveries_per_s"]
                .as_f64()
                .unwrap_or(0.0);
            out.push((format!("{scenario} at {:.0}k/s", offered / 1000.0), rs));
        }
    }
    if let Some(rate) = common_rate(reports) {
        let rs: Vec<&RunReport> = pick(reports, "capacity")
            .into_iter()
            .filter(|r| r.params["rate"].as_f64() == Some(rate))
            .collect();
        let offered = rs[0].params["offered_deliveries_per_s"]
            .as_f64()
            .unwrap_or(0.0);
        out.push((format!("capacity step at {:.0}k/s", offered / 1000.0), rs));
    }
    out
}

/// Writes the plots; returns each file's name and outcome.
pub fn plots(reports: &[RunReport], dir: &Path) -> Vec<(String, anyhow::Result<()>)> {
    let mut out = Vec::new();
    let groups = groups(reports);
    for (i, (label, rs)) in groups.iter().enumerate() {
        let curves: Vec<(String, &hdrhistogram::Histogram<u64>)> = rs
            .iter()
            .filter_map(|r| Some((r.server.clone(), r.delivery_hist.as_ref()?)))
            .collect();
        if curves.is_empty() {
            continue;
        }
        let name = format!(
            "latency-{}.png",
            ["fanout", "hot-room", "fanout-high"][i.min(2)]
        );
        let title = format!("{label}: delivery latency by percentile");
        out.push((
            name.clone(),
            plot::latency_cdf(&dir.join(&name), &title, &curves),
        ));
    }
    if !groups.is_empty() {
        let all: Vec<&RunReport> = groups
            .iter()
            .flat_map(|(_, rs)| rs.iter().copied())
            .collect();
        let servers = servers_of(&all);
        let values: Vec<Vec<Option<(f64, f64)>>> = groups
            .iter()
            .map(|(_, rs)| {
                servers
                    .iter()
                    .map(|s| {
                        let r = rs.iter().find(|r| &r.server == s)?;
                        let own = r.cpu_us_per_delivery?;
                        Some((own, r.engine_cpu_us_per_delivery.unwrap_or(0.0)))
                    })
                    .collect()
            })
            .collect();
        let labels: Vec<String> = groups.iter().map(|(l, _)| l.clone()).collect();
        let name = "cpu-per-delivery.png".to_string();
        out.push((
            name.clone(),
            plot::bars(
                &dir.join(&name),
                "server CPU per delivered message, engines' (PostgreSQL...) lighter on top",
                "CPU µs per delivery",
                &labels,
                &servers,
                &values,
            ),
        ));
    }
    out
}
