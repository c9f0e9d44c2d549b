//! PNG plots of a comparison, drawn with plotters: the delivery-latency percentile curve
//! (HdrHistogram style: latency against 1/(1-p) on a log axis) and CPU µs per delivered
//! message by scenario and server. Text needs a TrueType font, read from the system.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use plotters::style::FontStyle;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
];

/// Registers a system font as "sans-serif" once; false when none is installed.
fn font() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        for path in FONTS {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// One latency curve per server: `(label, histogram of µs)`.
pub fn latency_cdf(
    path: &Path,
    title: &str,
    curves: &[(String, &Histogram<u64>)],
) -> anyhow::Result<()> {
    anyhow::ensure!(font(), "no TrueType font found (looked in {FONTS:?})");
    let series: Vec<(String, Vec<(f64, f64)>)> = curves
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(label, h)| {
            let pts = h
                .iter_quantiles(4)
                .map(|v| {
                    (
                        v.quantile_iterated_to(),
                        v.value_iterated_to() as f64 / 1000.0,
                    )
                })
                .filter(|(q, _)| *q < 0.99999)
                .map(|(q, ms)| (1.0 / (1.0 - q), ms.max(0.001)))
                .collect();
            (label.clone(), pts)
        })
        .collect();
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0_f64, f64::max);
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (1.0..100_000.0_f64).log_scale(),
            (0.05..max_y * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("delivery latency (ms)")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 1.0 / x);
            if p < 1.0 {
                "0".into()
            } else {
                format!("{p:.3}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            }
        })
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(err)?;
    for (i, (label, pts)) in series.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Grouped bars: for each scenario, one bar per server (`None` where it did not run), each
/// `(own, stacked)`: a second, lighter part on top of the first (the engines' CPU), if not 0.
pub fn bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    servers: &[String],
    values: &[Vec<Option<(f64, f64)>>],
) -> anyhow::Result<()> {
    anyhow::ensure!(font(), "no TrueType font found (looked in {FONTS:?})");
    let max = values
        .iter()
        .flatten()
        .flatten()
        .fold(0.0_f64, |a, (own, more)| a.max(own + more))
        .max(1e-6);
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let n = groups.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n, 0.0..max * 1.15)
        .map_err(err)?;
    let labels = groups.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    let k = servers.len().max(1) as f64;
    let width = 0.8 / k;
    for (s, server) in servers.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        // (left edge, own value, stacked value) of each bar this server has.
        let points: Vec<(f64, f64, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(g, row)| {
                let (v, more) = (*row.get(s)?)?;
                Some((g as f64 + 0.1 + s as f64 * width, v, more))
            })
            .collect();
        let w = width * 0.9;
        let bars = points
            .iter()
            .map(|&(x0, v, _)| Rectangle::new([(x0, 0.0), (x0 + w, v)], color.filled()));
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(server.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        let stacked = points.iter().filter(|p| p.2 > 0.0).map(|&(x0, v, more)| {
            Rectangle::new([(x0, v), (x0 + w, v + more)], color.mix(0.35).filled())
        });
        chart.draw_series(stacked).map_err(err)?;
        let texts = points.iter().map(|&(x0, v, more)| {
            let text = if more > 0.0 {
                format!("{v:.2}+{more:.2}")
            } else {
                format!("{v:.2}")
            };
            Text::new(
                text,
                (x0, v + more + max * 0.02),
                ("sans-serif", 13).into_font(),
            )
        });
        chart.draw_series(texts).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn plots_are_written_as_png() {
        if !font() {
            eprintln!("skipped: no TrueType font on this machine");
            return;
        }
        let dir = tempfile::tempdir().expect("dir");
        let mut h = new_histogram();
        for v in 1..5000u64 {
            h.record(v * 3).expect("record");
        }
        let cdf = dir.path().join("cdf.png");
        latency_cdf(&cdf, "test", &[("a".into(), &h)]).expect("cdf");
        let bar = dir.path().join("bars.png");
        bars(
            &bar,
            "test",
            "µs",
            &["fanout".into(), "hot-room".into()],
            &["confab".into(), "floor".into()],
            &[
                vec![Some((3.0, 0.0)), Some((1.0, 0.0))],
                vec![Some((4.0, 2.5)), None],
            ],
        )
        .expect("bars");
        for p in [cdf, bar] {
            let bytes = std::fs::read(&p).expect("written");
            assert_eq!(&bytes[1..4], b"PNG");
        }
    }
}
