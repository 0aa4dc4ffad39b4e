//! PNG plots of a regularization path, drawn with plotters and an embedded DejaVu font (no
//! system font or font library needed).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
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

/// Matplotlib's "tab10": the colours of the first ten coefficient paths.
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Paths past the first ten are drawn thin in this gray, without a legend entry each.
const REST: RGBColor = RGBColor(200, 200, 200);

/// A λ for a tick label: plain decimals from 0.001 up (three significant digits), otherwise
/// `1e-4` / `3.2e-4`.
fn format_lambda(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        return format!("{v}");
    }
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if (0.001..1000.0).contains(&v) {
        let digits = (2 - v.log10().floor() as i32).clamp(0, 5) as usize;
        trim(format!("{v:.digits$}"))
    } else {
        let e = v.log10().floor() as i32;
        let m = v / 10f64.powi(e);
        let m = if (m - m.round()).abs() < 0.05 {
            format!("{}", m.round() as i64)
        } else {
            format!("{m:.1}")
        };
        format!("{m}e{e}")
    }
}

/// Tick values for a log axis over `[lo, hi]`: decades when it spans three or more (every
/// other one past twelve), otherwise 1-2-5 steps, otherwise finer; at least two ticks.
fn lambda_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let pick = |mults: &[f64], every: i32| -> Vec<f64> {
        (e0..=e1)
            .filter(|e| e.rem_euclid(every) == 0)
            .flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|v| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9))
            .collect()
    };
    let choices: [(&[f64], i32); 4] = [
        (&[1.0], if decades > 12.0 { 2 } else { 1 }),
        (&[1.0, 2.0, 5.0], 1),
        (&[1.0, 1.5, 2.0, 3.0, 5.0, 7.0], 1),
        (&[1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 1),
    ];
    let mut ticks = Vec::new();
    for (i, (mults, every)) in choices.into_iter().enumerate() {
        if i == 0 && decades < 3.0 {
            continue;
        }
        ticks = pick(mults, every);
        if ticks.len() >= 3 {
            break;
        }
    }
    if ticks.len() < 2 {
        ticks = vec![lo, hi];
    }
    ticks
}

/// A tick value with at most `digits` decimals, trailing zeros dropped, and no "-0".
fn format_tick(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// A glmnet-style coefficient path: one line per series (a weight against λ), λ on a log axis
/// decreasing left to right (λ_max, where every weight is 0, on the left), the first ten series
/// coloured and named in a legend beside the plot (further ones thin gray, counted in the
/// legend), and a vertical dashed line at `selected_lambda`. Every series has one value per
/// λ; λs must be positive.
pub fn coefficient_paths(
    out: &Path,
    title: &str,
    lambdas: &[f64],
    series: &[(String, Vec<f64>)],
    selected_lambda: Option<f64>,
) -> Result<(), InterpretError> {
    register_fonts();
    let err = |e: String| InterpretError::Plot {
        path: out.to_path_buf(),
        reason: e,
    };
    if lambdas.is_empty() {
        return Err(err("no λ to plot".into()));
    }
    if series.is_empty() {
        return Err(err("no coefficient path to plot".into()));
    }
    if let Some(bad) = lambdas.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
        return Err(err(format!("λ = {bad} cannot sit on a log axis")));
    }
    for (name, values) in series {
        if values.len() != lambdas.len() {
            return Err(err(format!(
                "series {name:?} has {} values for {} λs",
                values.len(),
                lambdas.len()
            )));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(err(format!("series {name:?} has a non-finite weight")));
        }
    }
    let selected = match selected_lambda {
        Some(l) if !(l.is_finite() && l > 0.0) => {
            return Err(err(format!("selected λ = {l} is not positive")))
        }
        other => other,
    };
    // x = −log10 λ, so that λ decreases to the right; points in that order.
    let mut order: Vec<usize> = (0..lambdas.len()).collect();
    order.sort_by(|&a, &b| lambdas[b].total_cmp(&lambdas[a]));
    let xs: Vec<f64> = lambdas.iter().map(|l| -l.log10()).collect();
    let (mut x_lo, mut x_hi) = xs
        .iter()
        .chain(selected.map(|l| -l.log10()).as_ref())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    if x_hi - x_lo < 1e-9 {
        x_lo -= 0.5;
        x_hi += 0.5;
    }
    let x_pad = (x_hi - x_lo) * 0.02;
    let (x_lo, x_hi) = (x_lo - x_pad, x_hi + x_pad);
    let (y_min, y_max) = series
        .iter()
        .flat_map(|(_, v)| v.iter())
        .fold((0.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let y_pad = ((y_max - y_min) * 0.06).max(1e-3);
    let (y_lo, y_hi) = (y_min - y_pad, y_max + y_pad);

    let y_digits = (-((y_hi - y_lo) / 8.0).log10().floor()).max(0.0) as usize + 1;

    let root = BitMapBackend::new(out, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (plot_area, legend_area) = root.split_horizontally(760);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("λ (log scale, decreasing →)")
        .y_desc("weight")
        .x_labels(0)
        .disable_x_mesh()
        .y_label_formatter(&|y| format_tick(*y, y_digits))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    // λ ticks at round values of a log axis (plotters would put them at round −log10 λ).
    let tick_style = TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for v in lambda_ticks(10f64.powf(-x_hi), 10f64.powf(-x_lo)) {
        let x = -v.log10();
        chart
            .draw_series(LineSeries::new(vec![(x, y_lo), (x, y_hi)], BLACK.mix(0.08)))
            .map_err(|e| err(e.to_string()))?;
        let (px, py) = chart.backend_coord(&(x, y_lo));
        root.draw(&PathElement::new(vec![(px, py), (px, py + 5)], BLACK))
            .map_err(|e| err(e.to_string()))?;
        root.draw(&Text::new(format_lambda(v), (px, py + 8), tick_style.clone()))
            .map_err(|e| err(e.to_string()))?;
    }
    chart
        .draw_series(LineSeries::new(
            vec![(x_lo, 0.0), (x_hi, 0.0)],
            BLACK.mix(0.35).stroke_width(1),
        ))
        .map_err(|e| err(e.to_string()))?;
    // Gray ones first so the coloured paths lie on top.
    for (i, (_, values)) in series
        .iter()
        .enumerate()
        .skip(TAB10.len())
        .chain(series.iter().enumerate().take(TAB10.len()))
    {
        let (color, width) = if i < TAB10.len() { (TAB10[i], 2) } else { (REST, 1) };
        let line: Vec<(f64, f64)> = order.iter().map(|&k| (xs[k], values[k])).collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(width)))
            .map_err(|e| err(e.to_string()))?;
    }
    if let Some(l) = selected {
        let x = -l.log10();
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x, y_lo), (x, y_hi)],
                7,
                5,
                BLACK.mix(0.7).stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?;
    }

    // The legend, beside the plot: a coloured stroke and the (truncated) name per series.
    let font = ("sans-serif", 14).into_font().color(&BLACK);
    let (lx, mut ly) = (8i32, 52i32);
    let name_room = legend_area.dim_in_pixel().0.saturating_sub(50);
    for (i, (name, _)) in series.iter().enumerate().take(TAB10.len()) {
        legend_area
            .draw(&PathElement::new(
                vec![(lx, ly), (lx + 24, ly)],
                TAB10[i].stroke_width(3),
            ))
            .map_err(|e| err(e.to_string()))?;
        let shown = crate::text::truncate_to_width(name, 14.0, false, name_room);
        legend_area
            .draw(&Text::new(shown, (lx + 32, ly - 8), font.clone()))
            .map_err(|e| err(e.to_string()))?;
        ly += 24;
    }
    if series.len() > TAB10.len() {
        legend_area
            .draw(&PathElement::new(
                vec![(lx, ly), (lx + 24, ly)],
                REST.stroke_width(2),
            ))
            .map_err(|e| err(e.to_string()))?;
        legend_area
            .draw(&Text::new(
                format!("{} more", series.len() - TAB10.len()),
                (lx + 32, ly - 8),
                font.clone(),
            ))
            .map_err(|e| err(e.to_string()))?;
        ly += 24;
    }
    if let Some(l) = selected {
        legend_area
            .draw(&plotters::element::DashedPathElement::new(
                vec![(lx, ly), (lx + 24, ly)],
                6,
                4,
                BLACK.mix(0.7).stroke_width(2),
            ))
            .map_err(|e| err(e.to_string()))?;
        legend_area
            .draw(&Text::new(
                format!("selected λ = {}", format_lambda(l)),
                (lx + 32, ly - 8),
                font,
            ))
            .map_err(|e| err(e.to_string()))?;
    }
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
    #[test]
    fn draws_coefficient_paths_and_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("paths.png");
        let lambdas: Vec<f64> = (0..40).map(|i| 0.5 * 0.85f64.powi(i)).collect();
        let series: Vec<(String, Vec<f64>)> = (0..13)
            .map(|s| {
                let enter = 0.4 / (1.0 + s as f64);
                let sign = if s % 3 == 0 { -1.0 } else { 1.0 };
                let v = lambdas
                    .iter()
                    .map(|&l| sign * (enter - l).max(0.0) * (1.0 + 0.3 * s as f64))
                    .collect();
                (format!("feature {s}"), v)
            })
            .collect();
        coefficient_paths(&out, "class 3", &lambdas, &series, Some(lambdas[25])).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 10_000, "a real picture, not an empty frame");
        assert!(coefficient_paths(&out, "t", &[], &series, None).is_err());
        assert!(coefficient_paths(&out, "t", &lambdas, &[], None).is_err());
        assert!(
            coefficient_paths(&out, "t", &lambdas[..3], &series, None).is_err(),
            "length mismatch"
        );
        let one = vec![("a".to_string(), vec![0.0, 1.0])];
        assert!(
            coefficient_paths(&out, "t", &[1.0, 0.0], &one, None).is_err(),
            "λ = 0 on a log axis"
        );
        assert!(coefficient_paths(&out, "t", &[1.0, 0.5], &one, Some(-1.0)).is_err());
        let nan = vec![("a".to_string(), vec![0.0, f64::NAN])];
        assert!(coefficient_paths(&out, "t", &[1.0, 0.5], &nan, None).is_err());
        // One λ and a selected λ off the path still draw.
        coefficient_paths(&out, "t", &[0.1], &[("a".to_string(), vec![0.3])], Some(0.01)).unwrap();
    }

    #[test]
    fn lambda_labels_are_short() {
        assert_eq!(format_lambda(0.5), "0.5");
        assert_eq!(format_lambda(0.0316), "0.0316");
        assert_eq!(format_lambda(1.0), "1");
        assert_eq!(format_lambda(12.5), "12.5");
        assert_eq!(format_lambda(0.001), "0.001");
        assert_eq!(format_lambda(0.0001), "1e-4");
        assert_eq!(format_lambda(0.00032), "3.2e-4");
        assert_eq!(format_lambda(25000.0), "2.5e4");
        assert_eq!(format_tick(-0.0000001, 2), "0");
        assert_eq!(format_tick(0.25, 2), "0.25");
        assert_eq!(format_tick(-0.4, 2), "-0.4");
        assert_eq!(format_tick(3.0, 1), "3");
        let close = |got: Vec<f64>, want: &[f64]| {
            assert_eq!(got.len(), want.len(), "{got:?}");
            assert!(
                got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-9 * w),
                "{got:?}"
            );
        };
        close(
            lambda_ticks(0.0011, 0.9),
            &[0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
        );
        close(lambda_ticks(1e-5, 2.0), &[1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]);
        close(lambda_ticks(0.11, 0.18), &[0.12, 0.15]);
        assert_eq!(format_lambda(2.0 * 10f64.powi(-3)), "0.002");
        assert_eq!(format_lambda(1.2 * 0.1), "0.12");
    }
}
