//! The kernel's compact high-risk set (crates/kcore) must cover every catalog location, in every
//! view the kernel reports, so that the kernel notifies about every high-risk operation of a
//! process outside the sandbox; and the catalog's critical entries must be critical there too,
//! because that is what keeps them closed while the service is unavailable in fail-open mode.

use agentsh_kcore::highrisk::{HighRiskSet, Risk as KernelRisk};
use agentsh_policy::Risk;
use agentsh_policy::catalog::ENTRIES;

const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

/// Every kernel spelling of a table location, with globs filled in with a sample name.
fn kernel_forms(location: &str) -> Vec<String> {
    let key = location
        .split('>')
        .next()
        .unwrap_or(location)
        .replace('*', "Sample");
    let key = key.trim_end_matches("\\Sample").to_string();
    let mut out = Vec::new();
    if let Some(rest) = key.strip_prefix("HKLM\\") {
        for cs in ["ControlSet001", "ControlSet002"] {
            let rest = rest.replace("CurrentControlSet", cs);
            out.push(format!("\\REGISTRY\\MACHINE\\{rest}"));
            if let Some(sw) = rest.strip_prefix("SOFTWARE\\") {
                out.push(format!("\\REGISTRY\\MACHINE\\SOFTWARE\\WOW6432Node\\{sw}"));
            }
        }
    } else if let Some(rest) = key.strip_prefix("HKCU\\") {
        out.push(format!("\\REGISTRY\\USER\\{SID}\\{rest}"));
        if let Some(classes) = rest.strip_prefix("SOFTWARE\\Classes\\") {
            out.push(format!("\\REGISTRY\\USER\\{SID}_Classes\\{classes}"));
        }
    } else {
        panic!("unexpected hive in `{location}`");
    }
    out
}

#[test]
fn every_catalog_location_is_in_the_kernels_high_risk_set() {
    let set = HighRiskSet::builtin();
    let mut missing = Vec::new();
    for entry in ENTRIES {
        for location in entry.locations {
            if let Some(value) = location.strip_prefix("*>") {
                // A value name dangerous under any key: the kernel checks the name itself.
                let units: Vec<u16> = value.encode_utf16().collect();
                if set.classify_value(&units).is_none() {
                    missing.push(format!("{}: value `{value}` under any key", entry.id));
                }
                continue;
            }
            for key in kernel_forms(location) {
                let units: Vec<u16> = key.encode_utf16().collect();
                match set.classify(&units) {
                    None => missing.push(format!("{}: {key}", entry.id)),
                    Some(r) if entry.risk == Risk::Critical && r != KernelRisk::Critical => missing
                        .push(format!(
                            "{}: {key} is critical in the catalog, {r:?} in the kernel",
                            entry.id
                        )),
                    Some(_) => {}
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not covered by crates/kcore/src/highrisk.rs:\n{}",
        missing.join("\n")
    );
}
