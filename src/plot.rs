//! Pictures of a run: reward, evaluation reward and KL against rounds, read from a metrics file
//! (one JSON line per round, as `Run::fit` writes them) and drawn as SVG with plotters.
//!
//! SVG only: plotters' SVG backend writes text as SVG `<text>` elements, so no font file and no C
//! library is needed (its PNG backend would need a font to rasterise the labels).

use std::path::Path;

use plotters::prelude::*;

use sepo_core::{Error, Result};

/// One curve: a metric's values against rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The metric's name in the file.
    pub name: String,
    /// `(round, value)`, rounds where the metric is absent or null skipped.
    pub points: Vec<(f64, f64)>,
}

/// The step of a line: its `round` (two loops) or `update` (the single loop).
fn step(row: &serde_json::Value) -> Option<f64> {
    row.get("round").or_else(|| row.get("update"))?.as_f64()
}

/// The round lines of a metrics file (the header line and any line without `round` or `update`
/// skipped).
pub fn read_rounds(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::BadRecord {
            path: path.to_path_buf(),
            record: i + 1,
            reason: format!("not a JSON line: {e}"),
        })?;
        if step(&v).is_some() {
            rows.push(v);
        }
    }
    Ok(rows)
}

/// The curve of `name` over `rows`.
pub fn series(rows: &[serde_json::Value], name: &str) -> Series {
    let points = rows
        .iter()
        .filter_map(|r| Some((step(r)?, r.get(name)?.as_f64()?)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    Series {
        name: name.to_string(),
        points,
    }
}

/// Draws `reward` and `eval_reward` (top) and `kl` (bottom) of the metrics file `metrics` against
/// rounds into the SVG file `out` (900 × 600). A file without rounds is [`Error::EmptyCorpus`]-like
/// [`Error::Empty`]; curves absent from the file are left out.
pub fn plot_metrics(metrics: &Path, out: &Path) -> Result<()> {
    let rows = read_rounds(metrics)?;
    if rows.is_empty() {
        return Err(Error::Empty {
            op: "plot_metrics",
            what: "no round in the metrics file",
        });
    }
    let top = [series(&rows, "reward"), series(&rows, "eval_reward")];
    let bottom = [series(&rows, "kl")];
    draw(
        out,
        &[("reward", &top[..]), ("KL to the reference", &bottom[..])],
    )
}

/// Draws panels of curves, stacked, into the SVG file `out`.
pub fn draw(out: &Path, panels: &[(&str, &[Series])]) -> Result<()> {
    let fail = |e: String| Error::Io {
        path: out.to_path_buf(),
        source: std::io::Error::other(e),
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let root = SVGBackend::new(out, (900, 300 * panels.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for ((title, curves), area) in panels.iter().zip(&areas) {
        let all: Vec<(f64, f64)> = curves.iter().flat_map(|s| s.points.clone()).collect();
        if all.is_empty() {
            continue;
        }
        let (x0, x1) = bounds(all.iter().map(|p| p.0));
        let (y0, y1) = bounds(all.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(area)
            .caption(*title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("round")
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        for (s, color) in curves.iter().zip(colors.iter().cycle()) {
            if s.points.is_empty() {
                continue;
            }
            let color = *color;
            chart
                .draw_series(LineSeries::new(s.points.clone(), color))
                .map_err(|e| fail(e.to_string()))?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(e.to_string()))?;
    }
    root.present().map_err(|e| fail(e.to_string()))
}

/// `[min, max]` of `values`, widened to a non-empty range.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if hi > lo {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metrics file with a header line, rounds with and without `eval_reward`/`kl`, becomes an SVG
    /// with both panels; the curves hold exactly the rounds written.
    #[test]
    fn plots_a_metrics_file() {
        let dir = std::env::temp_dir().join(format!("sepo-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let metrics = dir.join("m.jsonl");
        std::fs::write(
            &metrics,
            "{\"run_id\":\"x\",\"header\":{}}\n\
             {\"round\":0,\"reward\":0.5,\"eval_reward\":0.4,\"kl\":null}\n\
             {\"round\":1,\"reward\":0.7,\"eval_reward\":0.6,\"kl\":0.01}\n",
        )
        .unwrap();
        let rows = read_rounds(&metrics).unwrap();
        assert_eq!(series(&rows, "reward").points, vec![(0.0, 0.5), (1.0, 0.7)]);
        assert_eq!(series(&rows, "kl").points, vec![(1.0, 0.01)]);
        let out = dir.join("m.svg");
        plot_metrics(&metrics, &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("eval_reward") && svg.contains("polyline"));
        std::fs::write(&metrics, "{\"run_id\":\"x\",\"header\":{}}\n").unwrap();
        assert!(matches!(
            plot_metrics(&metrics, &out),
            Err(Error::Empty { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
