//! Bar charts as inline SVG, rendered on the server.
//!
//! The charts are written by hand because they are a few dozen lines of
//! rectangles and text: a plotting crate would add a dependency tree and
//! fonts for output that the browser already draws. Colours come from
//! classes that the stylesheet defines, and every label goes through
//! maud's escaping like the rest of the page.
//!
//! Text widths are estimated at 7 pixels per character of 12-pixel text,
//! because the server cannot measure fonts. Labels longer than their column
//! are cut with an ellipsis, and the full text is in the bar's tooltip.

use maud::{Markup, html};

/// The width of every chart, in SVG user units (pixels at 100% zoom).
const WIDTH: f64 = 720.0;
/// The estimated width of one character of chart text.
const CHAR_WIDTH: f64 = 7.0;
/// The widest label column.
const LABEL_MAX: f64 = 260.0;
/// Space at the right of the longest bar for its value.
const VALUE_SPACE: f64 = 70.0;

/// One bar of a horizontal bar chart.
pub(super) struct Bar {
    /// The label left of the bar.
    pub(super) label: String,
    /// The tooltip, which names the bar in full.
    pub(super) title: String,
    /// The length of the bar; negative and non-finite values draw none.
    pub(super) value: f64,
    /// The text right of the bar.
    pub(super) value_text: String,
}

/// Draws one horizontal bar per item, longest first as given, scaled to
/// the largest value. `title` names the chart for screen readers.
pub(super) fn bars(title: &str, items: &[Bar]) -> Markup {
    const ROW: f64 = 22.0;
    let label_width = label_column(items.iter().map(|bar| bar.label.as_str()));
    let plot = WIDTH - label_width - VALUE_SPACE;
    let largest = items
        .iter()
        .map(|bar| bar.value)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let height = ROW * items.len() as f64 + 8.0;
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height)
            role="img" aria-label=(title) {
            title { (title) }
            @for (i, bar) in items.iter().enumerate() {
                @let y = 4.0 + ROW * i as f64;
                @let length = scaled(bar.value, largest, plot);
                g {
                    title { (bar.title) }
                    text.label x=(label_width - 8.0) y=(y + 15.0) text-anchor="end" {
                        (clip(&bar.label, label_width))
                    }
                    rect.bar x=(label_width) y=(y + 3.0) width=(length) height=(ROW - 6.0) rx="2" {}
                    text.value x=(label_width + length + 6.0) y=(y + 15.0) { (bar.value_text) }
                }
            }
        }
    }
}

/// One series of a grouped bar chart, such as "test MSE".
pub(super) struct Series {
    /// The name in the legend.
    pub(super) name: String,
    /// The CSS class that colours its bars.
    pub(super) class: &'static str,
}

/// One group of a grouped bar chart: a label and one value per series.
pub(super) struct Group {
    /// The label left of the group.
    pub(super) label: String,
    /// One value per series; `None` draws no bar and shows `—`.
    pub(super) values: Vec<Option<f64>>,
}

/// Draws groups of horizontal bars, one bar per series in each group, on
/// one scale from 0 to the largest value, with a legend above.
pub(super) fn grouped_bars(
    title: &str,
    series: &[Series],
    groups: &[Group],
    format: fn(f64) -> String,
) -> Markup {
    const BAR: f64 = 16.0;
    const GAP: f64 = 10.0;
    const LEGEND: f64 = 26.0;
    let label_width = label_column(groups.iter().map(|g| g.label.as_str()));
    let plot = WIDTH - label_width - VALUE_SPACE;
    let largest = groups
        .iter()
        .flat_map(|g| g.values.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let group_height = BAR * series.len() as f64 + GAP;
    let height = LEGEND + group_height * groups.len() as f64;
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height)
            role="img" aria-label=(title) {
            title { (title) }
            @for (i, one) in series.iter().enumerate() {
                @let x = label_width + 160.0 * i as f64;
                rect class=(one.class) x=(x) y="6" width="12" height="12" rx="2" {}
                text.legend x=(x + 18.0) y="16" { (one.name) }
            }
            @for (g, group) in groups.iter().enumerate() {
                @let top = LEGEND + group_height * g as f64;
                text.label x=(label_width - 8.0) y=(top + group_height / 2.0)
                    text-anchor="end" { (clip(&group.label, label_width)) }
                @for (s, one) in series.iter().enumerate() {
                    @let y = top + BAR * s as f64;
                    @let value = group.values.get(s).copied().flatten();
                    @let length = value.map_or(0.0, |v| scaled(v, largest, plot));
                    @let shown = value.map_or_else(|| "—".to_string(), format);
                    g {
                        title { (group.label) ", " (one.name) ": " (shown) }
                        rect class=(one.class) x=(label_width) y=(y + 1.0) width=(length)
                            height=(BAR - 3.0) rx="2" {}
                        text.value x=(label_width + length + 6.0) y=(y + 12.0) { (shown) }
                    }
                }
            }
        }
    }
}

/// Draws a horizontal scale from `min` to `max` with a marker at `value`
/// (clamped to the scale) and a tick at each whole number.
pub(super) fn scale(title: &str, value: f64, min: f64, max: f64) -> Markup {
    const HEIGHT: f64 = 54.0;
    const MARGIN: f64 = 20.0;
    let width = 360.0;
    let plot = width - 2.0 * MARGIN;
    let at = |x: f64| MARGIN + plot * ((x - min) / (max - min)).clamp(0.0, 1.0);
    let ticks: Vec<f64> = if max - min <= 20.0 {
        (min.ceil() as i64..=max.floor() as i64)
            .map(|t| t as f64)
            .collect()
    } else {
        vec![min, max]
    };
    html! {
        svg.scale viewBox={ "0 0 " (width) " " (HEIGHT) } width=(width) height=(HEIGHT)
            role="img" aria-label=(title) {
            title { (title) }
            rect.track x=(MARGIN) y="18" width=(plot) height="8" rx="4" {}
            rect.fill x=(MARGIN) y="18" width=(at(value) - MARGIN) height="8" rx="4" {}
            @for tick in &ticks {
                text.tick x=(at(*tick)) y="46" text-anchor="middle" { (super::format::number(*tick)) }
            }
            circle.marker cx=(at(value)) cy="22" r="8" {}
        }
    }
}

/// Returns the width of the label column for these labels.
fn label_column<'a>(labels: impl Iterator<Item = &'a str>) -> f64 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(0);
    (longest as f64 * CHAR_WIDTH + 16.0).clamp(60.0, LABEL_MAX)
}

/// Returns the length of a bar of `value` on a scale whose largest value
/// fills `plot`.
fn scaled(value: f64, largest: f64, plot: f64) -> f64 {
    if largest > 0.0 && value.is_finite() && value > 0.0 {
        (value / largest * plot).max(1.0)
    } else {
        0.0
    }
}

/// Cuts a label to fit a column of `width`.
fn clip(label: &str, width: f64) -> String {
    let fits = ((width - 16.0) / CHAR_WIDTH).max(4.0) as usize;
    if label.chars().count() <= fits {
        label.to_string()
    } else {
        let mut short: String = label.chars().take(fits - 1).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_largest() {
        let svg = bars(
            "importance",
            &[
                Bar {
                    label: "a".into(),
                    title: "a".into(),
                    value: 2.0,
                    value_text: "2".into(),
                },
                Bar {
                    label: "b".into(),
                    title: "b".into(),
                    value: 1.0,
                    value_text: "1".into(),
                },
            ],
        )
        .into_string();
        let plot = WIDTH - 60.0 - VALUE_SPACE;
        assert!(svg.contains(&format!("width=\"{plot}\"")), "{svg}");
        assert!(svg.contains(&format!("width=\"{}\"", plot / 2.0)), "{svg}");
    }

    #[test]
    fn labels_are_escaped_and_clipped() {
        let label = "<script>alert(1)</script>".repeat(20);
        let svg = bars(
            "t",
            &[Bar {
                title: label.clone(),
                label,
                value: 1.0,
                value_text: "1".into(),
            }],
        )
        .into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains('…'));
    }

    #[test]
    fn zero_and_nan_draw_no_bar() {
        assert_eq!(scaled(0.0, 5.0, 100.0), 0.0);
        assert_eq!(scaled(f64::NAN, 5.0, 100.0), 0.0);
        assert_eq!(scaled(1.0, 0.0, 100.0), 0.0);
    }
}
