//! Charts drawn on the server as SVG: axes with rounded ticks, axis labels,
//! a title and a legend. No script runs in the browser to draw them, and
//! every label goes through maud's escaping.

use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 44.0;
const PALETTE: [&str; 10] =
    ["#2f6fde", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#4c956c", "#d1495b", "#3d5a80", "#ff8c42", "#6c757d"];

pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// One named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// About five round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| span / s <= 6.0).unwrap_or(magnitude * 10.0);
    let first = (lo / step).ceil() * step;
    (0..=12).map(|i| first + i as f64 * step).take_while(|t| *t <= hi + step * 1e-9).collect()
}

fn label(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn fit(series: &[Series]) -> Option<Frame> {
        let finite = series.iter().flat_map(|s| &s.points).filter(|(x, y)| x.is_finite() && y.is_finite());
        let (mut x, mut y) = ((f64::INFINITY, f64::NEG_INFINITY), (f64::INFINITY, f64::NEG_INFINITY));
        for &(px, py) in finite {
            x = (x.0.min(px), x.1.max(px));
            y = (y.0.min(py), y.1.max(py));
        }
        if !x.0.is_finite() {
            return None;
        }
        let widen = |(lo, hi): (f64, f64)| {
            if hi - lo < 1e-12 {
                let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.05 };
                (lo - pad, hi + pad)
            } else {
                let pad = (hi - lo) * 0.04;
                (lo - pad, hi + pad)
            }
        };
        Some(Frame { x: widen(x), y: widen(y) })
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0) * (HEIGHT - TOP - BOTTOM)
    }
}

fn axes(frame: &Frame, title: &str, x_label: &str, y_label: &str) -> Markup {
    html! {
        text.title x=(LEFT) y="20" { (title) }
        line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - RIGHT) y2=(HEIGHT - BOTTOM) stroke="#8892a6" {}
        line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) stroke="#8892a6" {}
        @for t in ticks(frame.x.0, frame.x.1) {
            line x1=(frame.px(t)) y1=(HEIGHT - BOTTOM) x2=(frame.px(t)) y2=(HEIGHT - BOTTOM + 4.0) stroke="#8892a6" {}
            text x=(frame.px(t)) y=(HEIGHT - BOTTOM + 16.0) text-anchor="middle" { (label(t)) }
        }
        @for t in ticks(frame.y.0, frame.y.1) {
            line x1=(LEFT) y1=(frame.py(t)) x2=(WIDTH - RIGHT) y2=(frame.py(t)) stroke="#eef1f6" {}
            text x=(LEFT - 6.0) y=(frame.py(t) + 4.0) text-anchor="end" { (label(t)) }
        }
        text x=((LEFT + WIDTH - RIGHT) / 2.0) y=(HEIGHT - 8.0) text-anchor="middle" { (x_label) }
        text x="14" y=((TOP + HEIGHT - BOTTOM) / 2.0) text-anchor="middle"
            transform=(format!("rotate(-90 14 {})", (TOP + HEIGHT - BOTTOM) / 2.0)) { (y_label) }
    }
}

fn legend(names: &[&str]) -> Markup {
    let shown = names.len().min(12);
    html! {
        @for (i, name) in names.iter().take(shown).enumerate() {
            @let y = TOP + 4.0 + i as f64 * 15.0;
            rect x=(WIDTH - RIGHT - 150.0) y=(y) width="10" height="10" fill=(color(i)) {}
            text x=(WIDTH - RIGHT - 135.0) y=(y + 9.0) { (truncate(name, 22)) }
        }
        @if names.len() > shown {
            text x=(WIDTH - RIGHT - 150.0) y=(TOP + 4.0 + shown as f64 * 15.0 + 9.0) { "+" (names.len() - shown) " more" }
        }
    }
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// A line per series (e.g. one metric's history per run). A point whose y
/// is not finite is a gap: the line stops there and starts again after it.
pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Markup {
    lines_over(title, x_label, y_label, series, None)
}

/// [`lines`] over a fixed x range (charts that share one time axis), with
/// the colours fixed by the series' positions, empty series included.
pub fn lines_over(title: &str, x_label: &str, y_label: &str, series: &[Series], x: Option<(f64, f64)>) -> Markup {
    let Some(mut frame) = Frame::fit(series) else {
        return html! { p.muted { (title) ": no finite values" } };
    };
    if let Some(x) = x.filter(|(lo, hi)| hi > lo) {
        frame.x = x;
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title) {
            (axes(&frame, title, x_label, y_label))
            @for (i, s) in series.iter().enumerate() {
                @for run in segments(&s.points) {
                    @if run.len() == 1 {
                        circle cx=(frame.px(run[0].0)) cy=(frame.py(run[0].1)) r="3" fill=(color(i)) {}
                    } @else {
                        @let points: Vec<String> =
                            run.iter().map(|&(x, y)| format!("{:.1},{:.1}", frame.px(x), frame.py(y))).collect();
                        polyline points=(points.join(" ")) fill="none" stroke=(color(i)) stroke-width="1.8" {}
                    }
                }
            }
            @if series.len() > 1 { (legend(&names)) }
        }
    }
}

/// The runs of consecutive finite points.
fn segments(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points.split(|(x, y)| !(x.is_finite() && y.is_finite())).filter(|run| !run.is_empty()).collect()
}

/// One dot per point, colored by series.
pub fn scatter(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Markup {
    let Some(frame) = Frame::fit(series) else {
        return html! { p.muted { (title) ": no runs have both values" } };
    };
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title) {
            (axes(&frame, title, x_label, y_label))
            @for (i, s) in series.iter().enumerate() {
                @for &(x, y) in s.points.iter().filter(|(x, y)| x.is_finite() && y.is_finite()) {
                    circle cx=(format!("{:.1}", frame.px(x))) cy=(format!("{:.1}", frame.py(y))) r="4" fill=(color(i)) fill-opacity="0.8" {
                        title { (s.name) ": " (label(x)) ", " (label(y)) }
                    }
                }
            }
            @if series.len() > 1 && series.len() <= 12 { (legend(&names)) }
        }
    }
}

/// Horizontal bars, one per (label, value), in the order given (at most
/// `MAX_BARS`); values below zero draw as zero-length bars.
pub fn bars(title: &str, value_label: &str, items: &[(String, f64)]) -> Markup {
    const MAX_BARS: usize = 30;
    const ROW: f64 = 18.0;
    const LABEL_W: f64 = 200.0;
    let items = &items[..items.len().min(MAX_BARS)];
    let max = items.iter().map(|(_, v)| *v).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let height = TOP + BOTTOM + ROW * items.len() as f64;
    let plot_w = WIDTH - LEFT.max(LABEL_W) - RIGHT - 60.0;
    let x0 = LEFT.max(LABEL_W);
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {height}")) xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title) {
            text x=(WIDTH / 2.0) y="20" text-anchor="middle" font-weight="600" { (title) }
            @for (i, (name, v)) in items.iter().enumerate() {
                @let y = TOP + ROW * i as f64;
                @let w = if max > 0.0 && v.is_finite() { (v.max(0.0) / max) * plot_w } else { 0.0 };
                text x=(x0 - 6.0) y=(format!("{:.1}", y + ROW * 0.7)) text-anchor="end" font-size="12" { (truncate(name, 30)) }
                rect x=(x0) y=(format!("{:.1}", y + 2.0)) width=(format!("{w:.1}")) height=(ROW - 4.0) fill=(color(0)) {
                    title { (name) ": " (label(*v)) }
                }
                text x=(format!("{:.1}", x0 + w + 4.0)) y=(format!("{:.1}", y + ROW * 0.7)) font-size="11" { (label(*v)) }
            }
            text x=(x0 + plot_w / 2.0) y=(height - 12.0) text-anchor="middle" font-size="12" { (value_label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        let t = ticks(13.0, 97.0);
        assert!(t.first().unwrap() >= &13.0 && t.last().unwrap() <= &97.0 && t.len() >= 4, "{t:?}");
        assert_eq!(label(0.25), "0.25");
        assert_eq!(label(1234.0), "1234");
        assert_eq!(label(1e-7), "1.00e-7");
    }

    #[test]
    fn labels_are_escaped_and_empty_series_say_so() {
        let s = [Series { name: "<script>x</script>".into(), points: vec![(0.0, 1.0), (1.0, 2.0)] }];
        let svg = lines("t<b>", "step", "value", &s).into_string();
        assert!(svg.contains("t&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        let two =
            [Series { name: "a".into(), points: vec![(0.0, 1.0)] }, Series { name: "<i>".into(), points: vec![] }];
        assert!(!lines("t", "x", "y", &two).into_string().contains("<i>"));
        assert!(lines("t", "x", "y", &[]).into_string().contains("no finite values"));
    }

    #[test]
    fn gaps_break_lines_and_a_fixed_axis_is_kept() {
        let s = [Series {
            name: "a".into(),
            points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 1.0), (4.0, 3.0)],
        }];
        let svg = lines_over("t", "x", "y", &s, Some((0.0, 60.0))).into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        // Ticks run to 60 although the data stop at 4.
        assert!(svg.contains(">60</text>"), "{svg}");
        let lone = [Series { name: "a".into(), points: vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 2.0)] }];
        assert_eq!(lines("t", "x", "y", &lone).into_string().matches("<circle").count(), 2);
    }
}
