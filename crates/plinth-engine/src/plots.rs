//! Small SVG plots logged as run artifacts (MLflow's UI previews SVG):
//! a confusion matrix for classifiers and residuals against predictions for
//! regressors. Every label is XML-escaped.

use std::fmt::Write;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Counts `[actual][predicted]` over class indices.
pub fn confusion(y: &[f64], predicted: &[f64], classes: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; classes]; classes];
    for (&a, &p) in y.iter().zip(predicted) {
        if let Some(row) = m.get_mut(a as usize)
            && let Some(cell) = row.get_mut(p as usize)
        {
            *cell += 1;
        }
    }
    m
}

/// A confusion matrix: rows actual, columns predicted, shaded by share of the row.
pub fn confusion_svg(matrix: &[Vec<u64>], labels: &[String]) -> String {
    let n = matrix.len().max(1);
    let cell = (420 / n).clamp(24, 90);
    let (left, top) = (130, 70);
    let (w, h) = (left + cell * n + 20, top + cell * n + 60);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="20" font-size="15" text-anchor="middle">Confusion matrix (test rows)</text>"#,
        w / 2
    );
    let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="middle">predicted</text>"#, left + cell * n / 2, top - 30);
    let _ = write!(
        s,
        r#"<text x="20" y="{}" transform="rotate(-90 20 {})" text-anchor="middle">actual</text>"#,
        top + cell * n / 2,
        top + cell * n / 2
    );
    for (i, row) in matrix.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        let label = escape(labels.get(i).map(String::as_str).unwrap_or("?"));
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{label}</text>"#,
            left - 8,
            top + i * cell + cell / 2 + 4
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{label}</text>"#,
            left + i * cell + cell / 2,
            top - 8
        );
        for (j, &count) in row.iter().enumerate() {
            let share = count as f64 / total;
            let shade = (255.0 - share * 200.0) as u8;
            let (x, y) = (left + j * cell, top + i * cell);
            let _ = write!(
                s,
                r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({shade},{shade},255)" stroke="#999"/>"##
            );
            let _ =
                write!(s, r#"<text x="{}" y="{}" text-anchor="middle">{count}</text>"#, x + cell / 2, y + cell / 2 + 4);
        }
    }
    s.push_str("</svg>");
    s
}

/// Residuals (actual - predicted) against predictions, with axes and a zero line.
pub fn residuals_svg(y: &[f64], predicted: &[f64]) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 420.0, 70.0, 20.0, 40.0, 50.0);
    let points: Vec<(f64, f64)> = predicted.iter().zip(y).map(|(&p, &a)| (p, a - p)).take(5000).collect();
    let (mut x0, mut x1, mut r0, mut r1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64, 0.0f64);
    for &(x, r) in &points {
        (x0, x1, r0, r1) = (x0.min(x), x1.max(x), r0.min(r), r1.max(r));
    }
    if x1.partial_cmp(&x0) != Some(std::cmp::Ordering::Greater) {
        (x0, x1) = (x0 - 1.0, x0 + 1.0);
    }
    if r1 <= r0 {
        (r0, r1) = (-1.0, 1.0);
    }
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let sy = |r: f64| top + (r1 - r) / (r1 - r0) * (h - top - bottom);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ =
        write!(s, r#"<text x="{}" y="20" font-size="15" text-anchor="middle">Residuals on test rows</text>"#, w / 2.0);
    let _ =
        write!(s, r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##, h - bottom, w - right, h - bottom);
    let _ = write!(s, r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>"##, h - bottom);
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#c33" stroke-dasharray="4"/>"##,
        sy(0.0),
        w - right,
        sy(0.0)
    );
    for (v, anchor_x) in [(x0, sx(x0)), (x1, sx(x1))] {
        let _ = write!(s, r#"<text x="{anchor_x}" y="{}" text-anchor="middle">{v:.3}</text>"#, h - bottom + 16.0);
    }
    for v in [r0, r1] {
        let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="end">{v:.3}</text>"#, left - 6.0, sy(v) + 4.0);
    }
    let _ =
        write!(s, r#"<text x="{}" y="{}" text-anchor="middle">predicted</text>"#, (left + w - right) / 2.0, h - 12.0);
    let _ = write!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">actual - predicted</text>"#,
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0
    );
    for (x, r) in points {
        let _ = write!(s, r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#36c" fill-opacity="0.5"/>"##, sx(x), sy(r));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_counts_and_labels_are_escaped() {
        let m = confusion(&[0.0, 1.0, 1.0, 1.0], &[0.0, 1.0, 0.0, 1.0], 2);
        assert_eq!(m, vec![vec![1, 0], vec![1, 2]]);
        let svg = confusion_svg(&m, &["<script>".into(), "b&c".into()]);
        assert!(svg.contains("&lt;script&gt;") && svg.contains("b&amp;c") && !svg.contains("<script>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn residual_plot_has_axes_and_points() {
        let svg = residuals_svg(&[1.0, 2.0, 3.0], &[1.5, 2.0, 2.0]);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("predicted") && svg.contains("actual - predicted"));
        // Degenerate input still draws.
        assert!(residuals_svg(&[1.0], &[1.0]).contains("<circle"));
    }
}
