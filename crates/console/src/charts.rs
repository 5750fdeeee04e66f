//! The charts, drawn as SVG on the server: no JavaScript and no chart library from a CDN
//! (the daemon may have no internet, and the CSP allows no script).
//!
//! Three pictures of the same days ([`DayStats`]): changes per day as stacked bars (added,
//! removed, failed), run duration per day (average and longest), and the most emails left
//! alone by a run each day. They are drawn so that they cannot mislead:
//! - a real date axis: each day sits at its date within the chosen range, a day without runs
//!   is a gap (lines break there), the date ticks fall on round steps (1, 2, 7, 14 or 28
//!   days) and are ISO dates;
//! - the value axis has rounded ticks (1, 2, 5 × 10ⁿ) with gridlines, and its unit written
//!   beside it; the chart's title is drawn on it, and the legend has its own row above the
//!   plot, clear of the data;
//! - a day whose runs all failed or were stopped is a dark mark under the axis, never a zero
//!   of seconds or of pending emails.
//!
//! Colours come from the style sheet's classes (no inline style, which the CSP refuses);
//! every mark carries a `<title>`, which browsers show on hover and screen readers read. Any
//! text drawn is escaped, although it is only dates and numbers.

use chrono::NaiveDate;
use std::fmt::Write;
use studio_role_sync_engine::history::DayStats;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 230.0;
/// Room for the value ticks and the unit.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
/// The title's row, then the legend's row, then the plot.
const TOP: f64 = 48.0;
/// The bad-run marks, then the date ticks.
const BOTTOM: f64 = 34.0;
/// Date ticks at most, so that ISO dates never overlap.
const MAX_DATE_TICKS: i64 = 8;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The days a chart covers, both included.
#[derive(Clone, Copy, Debug)]
pub struct Days {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl Days {
    fn count(&self) -> i64 {
        (self.last - self.first).num_days().max(0) + 1
    }

    fn slot(&self) -> f64 {
        (WIDTH - LEFT - RIGHT) / self.count() as f64
    }

    /// The left edge of `day`'s slot.
    fn x(&self, day: NaiveDate) -> f64 {
        LEFT + (day - self.first).num_days() as f64 * self.slot()
    }
}

fn parse_day(d: &DayStats) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&d.day, "%Y-%m-%d").ok()
}

/// A rounded step for about four ticks up to `max`: 1, 2 or 5 × 10ⁿ (at least `min_step`).
fn nice_step(max: f64, min_step: f64) -> f64 {
    let rough = (max / 4.0).max(min_step);
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    step.max(min_step)
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// The value axis: rounded ticks with gridlines up to the top tick (returned), and the unit.
fn value_axis(out: &mut String, max: f64, min_step: f64, unit: &str) -> f64 {
    let step = nice_step(max.max(min_step), min_step);
    let top = ((max / step).ceil().max(1.0)) * step;
    let bottom = HEIGHT - BOTTOM;
    let plot = bottom - TOP;
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let y = bottom - v / top * plot;
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            number(v)
        );
        v += step;
    }
    let _ = write!(
        out,
        "<text class=\"unit\" x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" \
         text-anchor=\"middle\">{}</text>",
        TOP + plot / 2.0,
        TOP + plot / 2.0,
        escape(unit)
    );
    top
}

/// The date axis: the baseline, and ISO dates on round steps of days with gridlines.
fn date_axis(out: &mut String, days: Days) {
    let bottom = HEIGHT - BOTTOM;
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\"/>",
        WIDTH - RIGHT
    );
    let n = days.count();
    let step = [1, 2, 7, 14, 28, 56, 91]
        .into_iter()
        .find(|s| (n + s - 1) / s <= MAX_DATE_TICKS)
        .unwrap_or(182);
    let slot = days.slot();
    let mut i = 0;
    while i < n {
        let day = days.first + chrono::Duration::days(i);
        let x = days.x(day) + slot / 2.0;
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{bottom}\"/>\
             <text class=\"tick date\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            HEIGHT - 6.0,
            day.format("%Y-%m-%d")
        );
        i += step;
    }
}

/// The opening: the SVG element, its title drawn and as `<title>`, the legend's own row.
fn open(out: &mut String, title: &str, points: usize, legend: &[(&str, &str)]) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-label=\"{0}\" data-points=\"{points}\"><title>{0}</title>\
         <text class=\"chart-title\" x=\"{LEFT}\" y=\"16\">{0}</text>",
        escape(title),
    );
    let mut x = LEFT;
    for (class, text) in legend {
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{x}\" y=\"25\" width=\"10\" height=\"10\"/>\
             <text class=\"tick\" x=\"{}\" y=\"34\">{}</text>",
            x + 14.0,
            escape(text)
        );
        x += 24.0 + 7.0 * text.chars().count() as f64;
    }
}

/// A dark mark under the axis for a day with runs that failed or were stopped (the red is
/// the failed actions' bars).
fn bad_mark(out: &mut String, days: Days, day: NaiveDate, d: &DayStats) {
    if d.bad_runs == 0 {
        return;
    }
    let slot = days.slot();
    let w = (slot * 0.7).clamp(2.0, 24.0);
    let _ = write!(
        out,
        "<rect class=\"badrun\" x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"5\"><title>{}: {} run(s) failed or stopped by a guard</title></rect>",
        days.x(day) + (slot - w) / 2.0,
        HEIGHT - BOTTOM + 3.0,
        escape(&d.day),
        d.bad_runs
    );
}

fn empty(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {WIDTH} 48\" role=\"img\" \
         aria-label=\"{0}\" data-points=\"0\"><title>{0}</title><text class=\"chart-title\" x=\"{LEFT}\" y=\"16\">{0}</text>\
         <text class=\"tick\" x=\"{LEFT}\" y=\"38\">No runs in this range.</text></svg>",
        escape(title)
    )
}

/// The days of `stats` inside `days`, with their date.
fn placed(stats: &[DayStats], days: Days) -> Vec<(NaiveDate, &DayStats)> {
    stats
        .iter()
        .filter_map(|d| parse_day(d).map(|day| (day, d)))
        .filter(|(day, _)| *day >= days.first && *day <= days.last)
        .collect()
}

/// Changes per day: added, removed and failed actions stacked.
pub fn changes_per_day(stats: &[DayStats], days: Days) -> String {
    let title = "Changes per day (actions): added, removed, failed";
    let placed = placed(stats, days);
    if placed.is_empty() {
        return empty(title);
    }
    let max = placed
        .iter()
        .map(|(_, d)| d.adds + d.removes + d.failed)
        .max()
        .unwrap_or(0) as f64;
    let mut out = String::with_capacity(2048 + placed.len() * 400);
    open(
        &mut out,
        title,
        placed.len(),
        &[
            ("add", "added"),
            ("remove", "removed"),
            ("fail", "failed"),
            ("badrun", "run failed or stopped"),
        ],
    );
    let top = value_axis(&mut out, max, 1.0, "actions");
    date_axis(&mut out, days);
    let plot = HEIGHT - TOP - BOTTOM;
    let slot = days.slot();
    let bar = (slot * 0.7).clamp(1.0, 24.0);
    for (day, d) in placed {
        let x = days.x(day) + (slot - bar) / 2.0;
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
        bad_mark(&mut out, days, day, d);
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
    out.push_str("</svg>");
    out
}

/// A line: its style class, its name in the legend, and its value on a day.
type Series<'a> = (&'a str, &'a str, fn(&DayStats) -> f64);

/// Whether a day has a value to draw: some run that day finished and read Studio. A day of
/// failed or stopped runs only is a gap with a dark mark, never a zero.
fn has_value(d: &DayStats) -> bool {
    d.runs > d.bad_runs
}

/// One or more lines over the days, broken where a day has no value.
fn lines(title: &str, unit: &str, stats: &[DayStats], days: Days, series: &[Series<'_>]) -> String {
    let placed = placed(stats, days);
    if placed.is_empty() {
        return empty(title);
    }
    let max = placed
        .iter()
        .filter(|(_, d)| has_value(d))
        .flat_map(|(_, d)| series.iter().map(move |(_, _, f)| f(d)))
        .fold(0.0_f64, f64::max);
    let mut out = String::with_capacity(2048 + placed.len() * 120 * series.len());
    let mut legend: Vec<(&str, &str)> = series.iter().map(|(c, n, _)| (*c, *n)).collect();
    legend.push(("badrun", "runs failed or stopped"));
    open(&mut out, title, placed.len(), &legend);
    let top = value_axis(
        &mut out,
        max,
        if unit == "seconds" { 0.1 } else { 1.0 },
        unit,
    );
    date_axis(&mut out, days);
    let plot = HEIGHT - TOP - BOTTOM;
    let slot = days.slot();
    for (day, d) in &placed {
        bad_mark(&mut out, days, *day, d);
    }
    for (class, name, value) in series {
        // Consecutive days with a value make one polyline; a missing day breaks it.
        let mut segment: Vec<(f64, f64)> = Vec::new();
        let mut previous: Option<NaiveDate> = None;
        let flush = |out: &mut String, segment: &mut Vec<(f64, f64)>| {
            if segment.len() > 1 {
                let _ = write!(out, "<polyline class=\"{class}\" points=\"");
                for (x, y) in segment.iter() {
                    let _ = write!(out, "{x:.1},{y:.1} ");
                }
                out.push_str("\"/>");
            }
            segment.clear();
        };
        for (day, d) in &placed {
            if !has_value(d) {
                flush(&mut out, &mut segment);
                previous = None;
                continue;
            }
            if previous.is_some_and(|p| (*day - p).num_days() != 1) {
                flush(&mut out, &mut segment);
            }
            let (x, y) = (
                days.x(*day) + slot / 2.0,
                HEIGHT - BOTTOM - value(d) / top * plot,
            );
            segment.push((x, y));
            previous = Some(*day);
            let _ = write!(
                out,
                "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\"><title>{}: {name} {} {}</title></circle>",
                escape(&d.day),
                number((value(d) * 10.0).round() / 10.0),
                escape(unit)
            );
        }
        flush(&mut out, &mut segment);
    }
    out.push_str("</svg>");
    out
}

/// Run duration per day, average and longest, in seconds.
pub fn duration_per_day(stats: &[DayStats], days: Days) -> String {
    lines(
        "Run duration per day: average and longest",
        "seconds",
        stats,
        days,
        &[
            ("avg", "average", |d| d.duration_avg),
            ("max", "longest", |d| d.duration_max),
        ],
    )
}

/// The most emails a run left alone, per day.
pub fn pending_per_day(stats: &[DayStats], days: Days) -> String {
    lines(
        "Emails pending per day: most in one run",
        "emails",
        stats,
        days,
        &[("pending", "pending", |d| d.pending_max as f64)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, runs: i64, bad: i64, avg: f64) -> DayStats {
        DayStats {
            day: day.into(),
            runs,
            adds: 3,
            removes: 1,
            failed: 0,
            pending_max: 4,
            bad_runs: bad,
            duration_avg: avg,
            duration_max: avg * 2.0,
        }
    }

    fn march(first: u32, last: u32) -> Days {
        Days {
            first: NaiveDate::from_ymd_opt(2025, 3, first).unwrap(),
            last: NaiveDate::from_ymd_opt(2025, 3, last).unwrap(),
        }
    }

    #[test]
    fn days_sit_at_their_dates_and_gaps_break_lines() {
        // Runs on the 1st, 2nd and 5th of ten days: the 5th is placed at its date, and the
        // line breaks between the 2nd and the 5th.
        let stats = [
            day("2025-03-01", 2, 0, 1.0),
            day("2025-03-02", 2, 0, 2.0),
            day("2025-03-05", 2, 0, 3.0),
        ];
        let svg = duration_per_day(&stats, march(1, 10));
        assert_eq!(svg.matches("<polyline class=\"avg\"").count(), 1);
        assert_eq!(svg.matches("<circle class=\"avg\"").count(), 3);
        let slot = (WIDTH - LEFT - RIGHT) / 10.0;
        let x5 = LEFT + 4.0 * slot + slot / 2.0;
        assert!(svg.contains(&format!("cx=\"{x5:.1}\"")), "{svg}");
        assert!(svg.contains(">seconds</text>") && svg.contains(">Run duration per day"));
        assert!(svg.contains(">2025-03-01</text>"));
    }

    #[test]
    fn a_day_of_failed_runs_is_a_dark_mark_not_a_zero() {
        let stats = [
            day("2025-03-01", 2, 0, 1.0),
            day("2025-03-02", 1, 1, 0.0),
            day("2025-03-03", 2, 0, 1.0),
        ];
        let svg = pending_per_day(&stats, march(1, 3));
        assert_eq!(svg.matches("<circle class=\"pending\"").count(), 2);
        assert!(
            !svg.contains("<polyline"),
            "no line across the failed day: {svg}"
        );
        assert!(svg.contains("2025-03-02: 1 run(s) failed"));
        assert!(pending_per_day(&[], march(1, 3)).contains("No runs in this range."));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(121.0, 1.0), 50.0);
        assert_eq!(nice_step(7.0, 1.0), 2.0);
        assert_eq!(nice_step(1.0, 1.0), 1.0);
        assert_eq!(nice_step(0.3, 0.1), 0.1);
        let svg = changes_per_day(&[day("2025-03-01", 1, 0, 1.0)], march(1, 30));
        // 30 days: a tick every 7 days, five dates.
        assert_eq!(svg.matches("class=\"tick date\"").count(), 5, "{svg}");
        assert!(svg.contains("2025-03-01: 3 added, 1 removed"));
    }
}
