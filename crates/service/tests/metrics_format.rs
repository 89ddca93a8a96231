//! The Prometheus text the service serves: every family has `# HELP` and `# TYPE`, counters are
//! named `…_total`, and every driver counter is there once. The rendered text is also written to
//! `<target>/tmp/metrics/agentsh.prom`, which scripts/ci.d/16-metrics.sh checks with an
//! independent linter (`promtool check metrics`).

use std::collections::HashMap;

use agentsh_service::metrics::{Kind, ServiceMetrics, driver_family};
use agentsh_wire::control::{Counter, FailMode, Metrics};

fn rendered() -> String {
    let service = ServiceMetrics::default();
    service.observe_decision(3);
    service.observe_decision(40);
    service.observe_approval(
        agentsh_service::metrics::ApprovalEnd::Allowed,
        std::time::Duration::from_millis(1_500),
    );
    service.observe_approval(
        agentsh_service::metrics::ApprovalEnd::TimedOut,
        std::time::Duration::from_secs(30),
    );
    let mut driver = Metrics::default();
    for (i, c) in Counter::ALL.into_iter().enumerate() {
        driver.set(c, i as u64 + 1);
    }
    service.render(Some(&driver), FailMode::Open, 2, 5)
}

#[test]
fn every_family_has_help_and_type_and_counters_end_in_total() {
    let text = rendered();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("metrics");
    std::fs::create_dir_all(&dir).expect("creates the directory");
    std::fs::write(dir.join("agentsh.prom"), &text).expect("writes");

    let mut help = HashMap::new();
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, h) = rest.split_once(' ').expect("HELP has a text");
            assert!(!h.trim().is_empty(), "{name}: empty help");
            assert!(
                help.insert(name.to_owned(), ()).is_none(),
                "{name}: two HELP lines"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').expect("TYPE has a type");
            assert!(
                types.insert(name.to_owned(), t.to_owned()).is_none(),
                "{name}: two TYPE lines"
            );
        } else {
            let name = line.split(['{', ' ']).next().expect("a sample has a name");
            samples.push(name.to_owned());
        }
    }
    assert!(!samples.is_empty());
    for s in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                s.strip_suffix(suffix)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(s);
        assert!(help.contains_key(family), "{s}: no # HELP");
        let t = types
            .get(family)
            .unwrap_or_else(|| panic!("{s}: no # TYPE"));
        assert_eq!(
            t == "counter",
            family.ends_with("_total"),
            "{family} is a {t}"
        );
    }
    for c in Counter::ALL {
        let (name, kind, _) = driver_family(c);
        let expected = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        assert_eq!(types.get(name).map(String::as_str), Some(expected), "{c:?}");
        assert_eq!(samples.iter().filter(|s| *s == name).count(), 1, "{name}");
    }
}
