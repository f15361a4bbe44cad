//! `lull demo --plot FILE.svg`: write latency over time for the demo's
//! three runs, one panel each on a shared scale, with the migration steps
//! and the long read transaction marked, so the difference is seen at a
//! glance.
//!
//! SVG only (plotters' SVG backend writes text as `<text>`, so no font
//! files are needed).

use std::path::Path;

use lull_demo::report::RunReport;
use lull_demo::DemoReport;
use plotters::prelude::*;

const WIDTH: u32 = 1000;
const PANEL: u32 = 230;

/// Draws the report into `path`.
pub fn write_svg(report: &DemoReport, path: &Path) -> Result<(), String> {
    let runs = report.runs();
    let x_max = runs
        .iter()
        .flat_map(|r| r.samples.iter().map(|s| s.due.as_secs_f64()))
        .fold(1.0f64, f64::max);
    let y_max = runs
        .iter()
        .map(|r| r.total.worst.as_secs_f64())
        .fold(0.2f64, f64::max)
        * 1.1;
    let height = 50 + PANEL * runs.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let (top, body) = root.split_vertically(50);
    top.draw(&Text::new(
        format!(
            "Write latency during the migrations ({} rows, {} writes/s, a {:.0} s read transaction)",
            lull_demo::thousands(report.rows),
            report.rate,
            report.blocker.as_secs_f64()
        ),
        (20, 18),
        ("sans-serif", 18).into_font(),
    ))
    .map_err(e)?;
    let panels = body.split_evenly((runs.len(), 1));
    for (area, run) in panels.iter().zip(runs) {
        panel(area, run, x_max, y_max).map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    run: &RunReport,
    x_max: f64,
    y_max: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let title = format!(
        "{}: worst write {}, {} writes over 1 s",
        run.label,
        latency(run.total.worst),
        run.total.over_1s
    );
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds from the start of the run")
        .y_desc("write latency (s)")
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    if let Some(b) = run.blocker {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(b.start.as_secs_f64(), 0.0), (b.end.as_secs_f64(), y_max)],
            RGBColor(255, 221, 153).mix(0.45).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            "read transaction open",
            (b.start.as_secs_f64(), y_max * 0.97),
            ("sans-serif", 11).into_font().color(&RGBColor(150, 100, 0)),
        )))?;
    }
    for (i, s) in run.steps.iter().enumerate() {
        let (start, end) = (
            s.step.span.start.as_secs_f64(),
            s.step.span.end.as_secs_f64(),
        );
        let band = if s.step.blocks_writes {
            RGBColor(120, 150, 230)
        } else {
            RGBColor(150, 200, 150)
        };
        // A step marker: a bar along the bottom, and its label above it.
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (start, 0.0),
                (end.max(start + x_max / 400.0), y_max * 0.025),
            ],
            band.filled(),
        )))?;
        let level = 0.06 + 0.07 * (i % 3) as f64;
        chart.draw_series(std::iter::once(Text::new(
            format!("{} #{}", s.step.version, s.step.step),
            (start, y_max * level),
            ("sans-serif", 10).into_font().color(&band),
        )))?;
    }
    chart.draw_series(run.samples.iter().map(|w| {
        let color = if w.latency.as_secs_f64() > 1.0 {
            RGBColor(200, 40, 40)
        } else {
            RGBColor(40, 40, 40)
        };
        Circle::new(
            (w.due.as_secs_f64(), w.latency.as_secs_f64()),
            1,
            color.filled(),
        )
    }))?;
    Ok(())
}

fn latency(d: std::time::Duration) -> String {
    if d < std::time::Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}
