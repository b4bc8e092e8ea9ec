//! Line charts of a run as SVG (plotters' SVG backend only: text is
//! written as SVG `<text>` elements with sizes estimated without font
//! files, so nothing is loaded from the system or downloaded).
//!
//! [`latency_chart`] and [`throughput_chart`] draw the per-second series of
//! a report; [`line_chart`] is the shared drawing.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::receipts::ReceiptSecond;
use crate::stats::SecondSample;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(90, 90, 90),
];

/// Draws `lines` on one chart, 900 x 420, and returns the SVG document.
pub fn line_chart(title: &str, x_desc: &str, y_desc: &str, lines: &[Line]) -> Result<String> {
    let err = |e: &dyn std::fmt::Debug| anyhow!("drawing {title:?}: {e:?}");
    let points = lines.iter().flat_map(|l| l.points.iter());
    let (mut x_max, mut y_max) = (1.0f64, 1.0f64);
    for (x, y) in points {
        if x.is_finite() {
            x_max = x_max.max(*x);
        }
        if y.is_finite() {
            y_max = y_max.max(*y);
        }
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max * 1.1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, line) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> = line
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(line.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        }
        if !lines.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// Accept latency p50 / p99 / max per second, and end-to-end p99 when the
/// run has receipts.
pub fn latency_chart(series: &[SecondSample], receipts: &[ReceiptSecond]) -> Result<String> {
    let at = |s: &SecondSample| s.second as f64;
    let mut lines = vec![
        Line {
            name: "accept p50".into(),
            points: series.iter().map(|s| (at(s), s.p50_ms)).collect(),
        },
        Line {
            name: "accept p99".into(),
            points: series.iter().map(|s| (at(s), s.p99_ms)).collect(),
        },
        Line {
            name: "accept max".into(),
            points: series.iter().map(|s| (at(s), s.max_ms)).collect(),
        },
    ];
    if !receipts.is_empty() {
        lines.push(Line {
            name: "end-to-end p99 (send to provider)".into(),
            points: receipts
                .iter()
                .map(|r| (r.second as f64, r.p99_ms))
                .collect(),
        });
    }
    line_chart(
        "Latency over time",
        "seconds since load start",
        "ms",
        &lines,
    )
}

/// Messages sent, accepted and received by the providers per second, and
/// the target rate.
pub fn throughput_chart(
    series: &[SecondSample],
    receipts: &[ReceiptSecond],
    target_rate: Option<f64>,
) -> Result<String> {
    let per_sec = |n: u64, window: f64| n as f64 / window.max(1e-3);
    let mut lines = vec![
        Line {
            name: "sent/s".into(),
            points: series
                .iter()
                .map(|s| (s.second as f64, per_sec(s.sent_messages, s.window_secs)))
                .collect(),
        },
        Line {
            name: "accepted/s".into(),
            points: series
                .iter()
                .map(|s| (s.second as f64, per_sec(s.accepted_messages, s.window_secs)))
                .collect(),
        },
    ];
    if !receipts.is_empty() {
        lines.push(Line {
            name: "received by providers/s".into(),
            points: receipts
                .iter()
                .map(|r| (r.second as f64, r.received as f64))
                .collect(),
        });
    }
    if let (Some(target), Some(last)) = (target_rate, series.last()) {
        lines.push(Line {
            name: "target".into(),
            points: vec![(0.0, target), (last.second as f64, target)],
        });
    }
    line_chart(
        "Throughput over time",
        "seconds since load start",
        "messages/s",
        &lines,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn well_formed(svg: &str) -> usize {
        let mut reader = quick_xml::Reader::from_str(svg);
        let mut elements = 0;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => return elements,
                Ok(quick_xml::events::Event::Start(_) | quick_xml::events::Event::Empty(_)) => {
                    elements += 1
                }
                Ok(_) => {}
                Err(e) => panic!("not well-formed XML: {e}\n{svg}"),
            }
        }
    }

    fn sample(second: u64, p99: f64) -> SecondSample {
        SecondSample {
            second,
            window_secs: 1.0,
            sent_messages: 100,
            accepted_messages: 99,
            errors: 0,
            in_flight: 1,
            p50_ms: p99 / 3.0,
            p99_ms: p99,
            max_ms: p99 * 2.0,
        }
    }

    #[test]
    fn charts_are_well_formed_svg_with_their_lines_and_labels() {
        let series: Vec<SecondSample> = (1..=10).map(|s| sample(s, s as f64)).collect();
        let receipts = vec![ReceiptSecond {
            second: 2,
            received: 90,
            p50_ms: 3.0,
            p99_ms: 9.0,
        }];
        for svg in [
            latency_chart(&series, &receipts).expect("draws"),
            throughput_chart(&series, &receipts, Some(100.0)).expect("draws"),
        ] {
            assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
            assert!(svg.trim_end().ends_with("</svg>"));
            assert!(well_formed(&svg) > 10);
            assert!(svg.contains("<polyline"), "lines are drawn");
            assert!(svg.contains("<text"), "labels are text elements");
        }
        let latency = latency_chart(&series, &receipts).expect("draws");
        assert!(latency.contains("Latency over time"));
        assert!(latency.contains("accept p99"));
        assert!(latency.contains("end-to-end p99"));
        let throughput = throughput_chart(&series, &[], None).expect("draws");
        assert!(throughput.contains("accepted/s"));
        assert!(!throughput.contains("received by providers"));
    }

    #[test]
    fn an_empty_run_still_draws_axes() {
        let svg = latency_chart(&[], &[]).expect("draws");
        assert!(well_formed(&svg) > 0);
    }
}
