//! The charts, drawn as SVG on the server: no JavaScript and no chart library from a CDN
//! (the daemon may have no internet, and the CSP allows no script).
//!
//! Three pictures of the same days ([`DayStats`]): changes per day as stacked bars (added,
//! removed, failed), run duration per day (average and longest), and the most emails left
//! alone by a run each day. Colours come from the style sheet's classes (no inline style, which
//! the CSP refuses); every mark carries a `<title>`, which browsers show on hover and screen
//! readers read. Any text drawn is escaped, although it is only dates and numbers.

use std::fmt::Write;
use studio_role_sync_engine::history::DayStats;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 26.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The frame: the SVG element, the y axis with its top value, the first and last day.
fn frame(out: &mut String, label: &str, days: &[DayStats], top: f64, unit: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-label=\"{}\" data-points=\"{}\"><title>{}</title>",
        escape(label),
        days.len(),
        escape(label)
    );
    let bottom = HEIGHT - BOTTOM;
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}{}</text>\
         <text class=\"tick\" x=\"{}\" y=\"{bottom}\" text-anchor=\"end\">0</text>",
        WIDTH - RIGHT,
        LEFT - 4.0,
        TOP + 8.0,
        number(top),
        escape(unit),
        LEFT - 4.0,
    );
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{LEFT}\" y=\"{}\">{}</text>",
            HEIGHT - 8.0,
            escape(&first.day)
        );
        if days.len() > 1 {
            let _ = write!(
                out,
                "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                WIDTH - RIGHT,
                HEIGHT - 8.0,
                escape(&last.day)
            );
        }
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

fn empty(label: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {WIDTH} 40\" role=\"img\" \
         aria-label=\"{0}\" data-points=\"0\"><title>{0}</title><text class=\"tick\" x=\"{LEFT}\" y=\"24\">\
         No runs in this range.</text></svg>",
        escape(label)
    )
}

/// Changes per day: added, removed and failed actions stacked.
pub fn changes_per_day(days: &[DayStats]) -> String {
    let label = "Changes per day: added, removed, failed";
    if days.is_empty() {
        return empty(label);
    }
    let top = days
        .iter()
        .map(|d| d.adds + d.removes + d.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut out = String::with_capacity(256 + days.len() * 400);
    frame(&mut out, label, days, top, "");
    let plot = HEIGHT - TOP - BOTTOM;
    let step = (WIDTH - LEFT - RIGHT) / days.len() as f64;
    let bar = (step * 0.8).clamp(1.0, 28.0);
    for (i, d) in days.iter().enumerate() {
        let x = LEFT + i as f64 * step + (step - bar) / 2.0;
        let mut y = HEIGHT - BOTTOM;
        let _ = write!(
            out,
            "<g><title>{}: {} added, {} removed, {} failed ({} runs)</title>",
            escape(&d.day),
            d.adds,
            d.removes,
            d.failed,
            d.runs
        );
        if d.bad_runs > 0 {
            // A failed or stopped run is a red mark above the axis, never a zero.
            let _ = write!(
                out,
                "<rect class=\"badrun\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"4\"><title>{}: {} run(s) failed or stopped by a guard</title></rect>",
                HEIGHT - BOTTOM + 2.0,
                escape(&d.day),
                d.bad_runs
            );
        }
        for (class, n) in [("add", d.adds), ("remove", d.removes), ("fail", d.failed)] {
            if n > 0 {
                let h = n as f64 / top * plot;
                y -= h;
                let _ = write!(
                    out,
                    "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\"/>"
                );
            }
        }
        out.push_str("</g>");
    }
    out.push_str(&legend(&[
        ("add", "added"),
        ("remove", "removed"),
        ("fail", "failed"),
        ("badrun", "run failed"),
    ]));
    out.push_str("</svg>");
    out
}

fn legend(items: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut x = WIDTH - RIGHT - 90.0 * items.len() as f64;
    for (class, text) in items {
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{x}\" y=\"2\" width=\"10\" height=\"10\"/>\
             <text class=\"tick\" x=\"{}\" y=\"11\">{text}</text>",
            x + 14.0
        );
        x += 90.0;
    }
    out
}

/// A line: its style class, its name in the legend, and its value on a day.
type Series<'a> = (&'a str, &'a str, fn(&DayStats) -> f64);

/// One or more lines over the days.
fn lines(label: &str, unit: &str, days: &[DayStats], series: &[Series<'_>]) -> String {
    if days.is_empty() {
        return empty(label);
    }
    let top = days
        .iter()
        .flat_map(|d| series.iter().map(move |(_, _, f)| f(d)))
        .fold(0.0_f64, f64::max);
    let top = if top <= 0.0 { 1.0 } else { top };
    let mut out = String::with_capacity(256 + days.len() * 120 * series.len());
    frame(&mut out, label, days, top, unit);
    let plot = HEIGHT - TOP - BOTTOM;
    let step = (WIDTH - LEFT - RIGHT) / days.len() as f64;
    for (class, name, value) in series {
        let points: Vec<(f64, f64)> = days
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    LEFT + (i as f64 + 0.5) * step,
                    HEIGHT - BOTTOM - value(d) / top * plot,
                )
            })
            .collect();
        let _ = write!(out, "<polyline class=\"{class}\" points=\"");
        for (x, y) in &points {
            let _ = write!(out, "{x:.1},{y:.1} ");
        }
        out.push_str("\"/>");
        for ((x, y), d) in points.iter().zip(days) {
            let _ = write!(
                out,
                "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\"><title>{}: {name} {}{}</title></circle>",
                escape(&d.day),
                number((value(d) * 10.0).round() / 10.0),
                escape(unit)
            );
        }
    }
    let names: Vec<(&str, &str)> = series.iter().map(|(c, n, _)| (*c, *n)).collect();
    out.push_str(&legend(&names));
    out.push_str("</svg>");
    out
}

/// Run duration per day, average and longest, in seconds.
pub fn duration_per_day(days: &[DayStats]) -> String {
    lines(
        "Run duration per day (seconds): average and longest",
        " s",
        days,
        &[
            ("avg", "average", |d| d.duration_avg),
            ("max", "longest", |d| d.duration_max),
        ],
    )
}

/// The most emails a run left alone, per day.
pub fn pending_per_day(days: &[DayStats]) -> String {
    lines(
        "Emails left alone (pending) per day: most in one run",
        "",
        days,
        &[("pending", "pending", |d| d.pending_max as f64)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, adds: i64, removes: i64, failed: i64) -> DayStats {
        DayStats {
            day: day.into(),
            runs: 96,
            adds,
            removes,
            failed,
            pending_max: 4,
            bad_runs: 0,
            duration_avg: 1.5,
            duration_max: 3.0,
        }
    }

    #[test]
    fn a_failed_run_is_a_red_mark_not_a_zero() {
        let failing = DayStats {
            bad_runs: 2,
            ..day("2025-03-01", 0, 0, 0)
        };
        let svg = changes_per_day(&[failing, day("2025-03-02", 1, 0, 0)]);
        assert_eq!(svg.matches("<rect class=\"badrun\" x=").count(), 2, "{svg}");
        assert!(svg.contains("2025-03-01: 2 run(s) failed or stopped by a guard"));
    }

    #[test]
    fn bars_stack_to_the_day_total_and_carry_titles() {
        let svg = changes_per_day(&[day("2025-03-01", 2, 1, 1), day("2025-03-02", 0, 0, 0)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("data-points=\"2\""));
        assert!(svg.contains("<title>2025-03-01: 2 added, 1 removed, 1 failed (96 runs)</title>"));
        // The tallest day fills the plot: its three bars add up to the plot height.
        let heights: f64 = svg
            .split("height=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next()?.parse::<f64>().ok())
            .filter(|h| *h != 10.0)
            .sum();
        assert!((heights - (HEIGHT - TOP - BOTTOM)).abs() < 0.5, "{heights}");
        assert!(changes_per_day(&[]).contains("No runs in this range."));
    }

    #[test]
    fn lines_have_a_point_per_day() {
        let days = [day("2025-03-01", 0, 0, 0), day("2025-03-02", 0, 0, 0)];
        let svg = duration_per_day(&days);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("2025-03-02: longest 3 s"));
        assert!(pending_per_day(&days).contains("2025-03-01: pending 4"));
    }
}
