//! PNG plots of a regularization path, drawn with plotters and an embedded DejaVu font (no
//! system font or font library needed).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::InterpretError;

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Both calls only fail on bytes that are not a font, and these are DejaVu Sans.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// One λ of the path as the accuracy plot sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathPoint {
    /// Mean nonzero weights per class.
    pub features_per_class: f64,
    pub val: Option<f64>,
    pub test: Option<f64>,
}

/// Accuracy against features per class along the path (the paper's Figure 4a), log-scaled x,
/// the selected layer marked and, when given, the dense layer's test accuracy as a line.
pub fn accuracy_vs_features(
    out: &Path,
    title: &str,
    points: &[PathPoint],
    selected: Option<usize>,
    dense_test: Option<f64>,
) -> Result<(), InterpretError> {
    register_fonts();
    let err = |e: String| InterpretError::Plot {
        path: out.to_path_buf(),
        reason: e,
    };
    // λ_max has no features: it cannot sit on a log axis.
    let shown: Vec<(usize, &PathPoint)> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.features_per_class > 0.0)
        .collect();
    if shown.is_empty() {
        return Err(err("no λ of the path uses any feature".into()));
    }
    let x_max = shown
        .iter()
        .map(|(_, p)| p.features_per_class)
        .fold(1.0, f64::max)
        * 1.5;
    let x_min = shown
        .iter()
        .map(|(_, p)| p.features_per_class)
        .fold(f64::INFINITY, f64::min)
        .min(1.0)
        * 0.8;
    let ys = shown
        .iter()
        .flat_map(|(_, p)| [p.val, p.test])
        .flatten()
        .chain(dense_test);
    let y_min = ys.clone().fold(1.0, f64::min);
    let y_max = ys.fold(0.0, f64::max);
    let pad = ((y_max - y_min) * 0.08).max(0.01);
    let (y_lo, y_hi) = ((y_min - pad).max(0.0), (y_max + pad).min(1.0));

    let root = BitMapBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(60)
        .build_cartesian_2d((x_min..x_max).log_scale(), y_lo..y_hi)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("features per class (mean nonzero weights per class, log scale)")
        .y_desc("accuracy")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;

    let series = [("validation", BLUE, true), ("test", RED, false)];
    for (name, color, is_val) in series {
        let line: Vec<(f64, f64)> = shown
            .iter()
            .filter_map(|(_, p)| if is_val { p.val } else { p.test }.map(|y| (p.features_per_class, y)))
            .collect();
        if line.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 2, color.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    if let Some(dense) = dense_test {
        chart
            .draw_series(LineSeries::new(
                vec![(x_min, dense), (x_max, dense)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?
            .label(format!("dense layer, test {dense:.3}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    }
    if let Some(p) = selected
        .and_then(|i| points.get(i))
        .filter(|p| p.features_per_class > 0.0)
    {
        if let Some(y) = p.test.or(p.val) {
            chart
                .draw_series(std::iter::once(TriangleMarker::new(
                    (p.features_per_class, y),
                    9,
                    GREEN.filled(),
                )))
                .map_err(|e| err(e.to_string()))?
                .label(format!("selected: {:.1} features/class", p.features_per_class))
                .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, GREEN.filled()));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_and_rejects_an_empty_path() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("acc.png");
        let points: Vec<PathPoint> = (0..20)
            .map(|i| PathPoint {
                features_per_class: if i == 0 { 0.0 } else { (i as f64).powf(2.0) },
                val: Some(0.5 + 0.02 * i as f64),
                test: Some(0.48 + 0.02 * i as f64),
            })
            .collect();
        accuracy_vs_features(&out, "test path", &points, Some(5), Some(0.9)).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 5_000, "a real picture, not an empty frame");
        let none = [PathPoint {
            features_per_class: 0.0,
            val: Some(0.5),
            test: None,
        }];
        assert!(accuracy_vs_features(&out, "t", &none, None, None).is_err());
    }
}
