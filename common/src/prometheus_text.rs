//! OpenMetrics text (what `prometheus-client` writes) as Prometheus text format 0.0.4, so one
//! scrape can carry the agent's own metrics and Envoy's `/stats/prometheus`, which is 0.0.4 and
//! cannot become OpenMetrics without renaming Envoy's counters (OpenMetrics wants every counter
//! sample to end in `_total`; many of Envoy's do not).
//!
//! Samples keep their names, so a series is the same whichever format serves it: a counter's
//! family is named after its `_total` sample, as 0.0.4 has it; an info metric becomes a gauge
//! named after its `_info` sample; `# UNIT`, exemplars and `# EOF` have no 0.0.4 form and go.

/// The 0.0.4 form of `openmetrics`.
pub fn from_openmetrics(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP comes before its TYPE, which may rename it.
    let mut help: Option<(&str, &str)> = None;
    let flush = |help: &mut Option<(&str, &str)>, out: &mut String| {
        if let Some((name, text)) = help.take() {
            line(out, &["# HELP ", name, " ", &unescape_quotes(text)]);
        }
    };
    for l in openmetrics.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = l.strip_prefix("# HELP ") {
            flush(&mut help, &mut out);
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (family, kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "counter" | "histogram" | "summary" => (name.to_owned(), kind),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some((helped, text)) = help.take() {
                if helped == name {
                    line(&mut out, &["# HELP ", &family, " ", &unescape_quotes(text)]);
                } else {
                    help = Some((helped, text));
                    flush(&mut help, &mut out);
                }
            }
            line(&mut out, &["# TYPE ", &family, " ", kind]);
            continue;
        }
        flush(&mut help, &mut out);
        // An exemplar follows ` # ` after the value; 0.0.4 has none.
        let sample = match l.split_once(" # ") {
            Some((sample, _)) if !l.starts_with('#') => sample,
            _ => l,
        };
        line(&mut out, &[sample]);
    }
    flush(&mut help, &mut out);
    out
}

fn line(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
    out.push('\n');
}

/// OpenMetrics escapes `"` in HELP text; 0.0.4 escapes only `\` and newlines there.
fn unescape_quotes(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains("\\\"") {
        text.replace("\\\"", "\"").into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{
        encoding::text::encode,
        metrics::{
            counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info,
        },
        registry::Registry,
    };

    use super::from_openmetrics;

    #[test]
    fn counters_are_named_after_their_total_and_the_rest_keeps_its_shape() {
        let mut registry = Registry::with_prefix("legate_agent");
        let pushes = Family::<[(&str, &str); 1], Counter>::default();
        pushes.get_or_create(&[("type", "cluster")]).inc_by(3);
        registry.register("xds_pushes", "Responses sent, by \"type\"", pushes);
        let connected = Gauge::<i64>::default();
        connected.set(2);
        registry.register("connected", "Streams open", connected);
        let build = Histogram::new([0.1]);
        build.observe(0.05);
        registry.register("build_seconds", "Build time", build);
        registry.register("build", "About the build", Info::new([("version", "1.0")]));
        let mut openmetrics = String::new();
        encode(&mut openmetrics, &registry).unwrap();

        assert_eq!(
            from_openmetrics(&openmetrics),
            "# HELP legate_agent_xds_pushes_total Responses sent, by \"type\".\n\
             # TYPE legate_agent_xds_pushes_total counter\n\
             legate_agent_xds_pushes_total{type=\"cluster\"} 3\n\
             # HELP legate_agent_connected Streams open.\n\
             # TYPE legate_agent_connected gauge\n\
             legate_agent_connected 2\n\
             # HELP legate_agent_build_seconds Build time.\n\
             # TYPE legate_agent_build_seconds histogram\n\
             legate_agent_build_seconds_sum 0.05\n\
             legate_agent_build_seconds_count 1\n\
             legate_agent_build_seconds_bucket{le=\"0.1\"} 1\n\
             legate_agent_build_seconds_bucket{le=\"+Inf\"} 1\n\
             # HELP legate_agent_build_info About the build.\n\
             # TYPE legate_agent_build_info gauge\n\
             legate_agent_build_info{version=\"1.0\"} 1\n"
        );
    }

    #[test]
    fn exemplars_units_and_the_end_marker_have_no_0_0_4_form() {
        let openmetrics = "# HELP a_seconds A.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\n\
                           a_seconds 1 # {trace=\"x\"} 1\n# EOF\n";
        assert_eq!(
            from_openmetrics(openmetrics),
            "# HELP a_seconds A.\n# TYPE a_seconds gauge\na_seconds 1\n"
        );
    }
}
