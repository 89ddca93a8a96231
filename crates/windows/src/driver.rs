//! agentsh.sys management: the names and registry values the driver is installed with, and the
//! `fltmc`-like status report. The Windows calls (copy, SCM registration, FilterLoad/FilterUnload,
//! enumeration) live in the platform module; everything rendered here is testable anywhere.

use std::fmt::Write as _;

#[cfg(windows)]


/// Filter and kernel service name (what `fltmc load agentsh` takes).
pub const FILTER_NAME: &str = "agentsh";
/// Display name registered with the service control manager.
pub const DISPLAY_NAME: &str = "AgentSH registry and file policy filter";
/// Altitude in the FSFilter Activity Monitor range (360000-389999).
pub const ALTITUDE: &str = "385200";
/// Load order group for that altitude range.
pub const LOAD_ORDER_GROUP: &str = "FSFilter Activity Monitor";
/// Name of the default instance (registry key under `Instances`).
pub const DEFAULT_INSTANCE: &str = "AgentSH Instance";
/// File name of the driver image.
pub const IMAGE_NAME: &str = "agentsh.sys";

/// One filter as `fltmc filters` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRow {
    pub name: String,
    pub instances: u32,
    pub altitude: String,
    pub frame: u32,
}

/// One instance as `fltmc instances` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub volume: String,
    pub altitude: String,
    pub instance: String,
}

/// What the driver reports once connected (fail mode and counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverCounters {
    pub fail_mode: String,
    pub metrics: Vec<(String, u64)>,
}

/// State of the communication port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// This command connected and talked to the driver.
    Connected(DriverCounters),
    /// The port exists but its single client slot is held (normally by the agentsh service).
    HeldByService,
    /// No connection: the reason, already worded for the user.
    Unavailable(String),
}

/// Everything `agentsh driver status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverStatus {
    /// `None` when the filter manager could not be asked (reason in `filters_error`).
    pub filters: Option<Vec<FilterRow>>,
    pub filters_error: Option<String>,
    pub instances: Vec<InstanceRow>,
    /// `Some(true)` when the boot options contain TESTSIGNING; `None` when unreadable.
    pub test_signing: Option<bool>,
    /// The kernel service registration exists.
    pub service_registered: bool,
    pub connection: Connection,
}

impl DriverStatus {
    /// The agentsh filter is in the loaded filters list.
    pub fn loaded(&self) -> bool {
        self.filters
            .iter()
            .flatten()
            .any(|f| f.name.eq_ignore_ascii_case(FILTER_NAME))
    }

    /// Text report: the filter table like `fltmc`, the instances, then signing and connection state.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<30} {:>13} {:>12} {:>5}",
            "Filter Name", "Num Instances", "Altitude", "Frame"
        );
        let _ = writeln!(out, "{:-<30} {:->13} {:->12} {:->5}", "", "", "", "");
        match (&self.filters, &self.filters_error) {
            (Some(rows), _) => {
                for f in rows {
                    let _ = writeln!(
                        out,
                        "{:<30} {:>13} {:>12} {:>5}",
                        f.name, f.instances, f.altitude, f.frame
                    );
                }
            }
            (None, Some(reason)) => {
                let _ = writeln!(out, "(filters unavailable: {reason})");
            }
            (None, None) => {
                let _ = writeln!(out, "(filters unavailable)");
            }
        }
        if !self.instances.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "{:<30} {:>12} {}", "Volume", "Altitude", "Instance");
            for i in &self.instances {
                let _ = writeln!(out, "{:<30} {:>12} {}", i.volume, i.altitude, i.instance);
            }
        }
        let _ = writeln!(out);
        let loaded = if self.loaded() { "loaded" } else { "not loaded" };
        let registered = if self.service_registered {
            "registered"
        } else {
            "not registered (run `agentsh driver install`)"
        };
        let _ = writeln!(out, "driver:        {FILTER_NAME} {loaded}, service {registered}");
        let signing = match self.test_signing {
            Some(true) => "on (test-signed drivers load)",
            Some(false) => "off (the driver must be production-signed)",
            None => "unknown (boot options unreadable)",
        };
        let _ = writeln!(out, "test signing:  {signing}");
        match &self.connection {
            Connection::Connected(c) => {
                let _ = writeln!(out, "connection:    connected");
                let _ = writeln!(out, "fail mode:     {}", c.fail_mode);
                for (name, value) in &c.metrics {
                    let _ = writeln!(out, "  {name:<28} {value}");
                }
            }
            Connection::HeldByService => {
                let _ = writeln!(
                    out,
                    "connection:    held by the agentsh service (fail mode and metrics: ask the service)"
                );
            }
            Connection::Unavailable(reason) => {
                let _ = writeln!(out, "connection:    none: {reason}");
                let _ = writeln!(out, "fail mode:     unknown (driver not reachable)");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(connection: Connection) -> DriverStatus {
        DriverStatus {
            filters: Some(vec![FilterRow {
                name: "AgentSH".into(),
                instances: 3,
                altitude: "385200".into(),
                frame: 0,
            }]),
            filters_error: None,
            instances: vec![InstanceRow {
                volume: r"\Device\HarddiskVolume3".into(),
                altitude: "385200".into(),
                instance: DEFAULT_INSTANCE.into(),
            }],
            test_signing: Some(true),
            service_registered: true,
            connection,
        }
    }

    #[test]
    fn filter_table_matches_fltmc_columns() {
        let text = status(Connection::HeldByService).render();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("Filter Name                    Num Instances     Altitude Frame")
        );
        assert_eq!(
            lines.next(),
            Some("------------------------------ ------------- ------------ -----")
        );
        assert_eq!(
            lines.next(),
            Some("AgentSH                                    3       385200     0")
        );
        assert!(text.contains("driver:        agentsh loaded, service registered"));
        assert!(text.contains("test signing:  on"));
        assert!(text.contains("connection:    held by the agentsh service"));
    }

    #[test]
    fn missing_driver_is_reported_with_the_reason_and_unknown_fail_mode() {
        let mut s = status(Connection::Unavailable("port not found".into()));
        s.filters = None;
        s.filters_error = Some("E_NOTIMPL".into());
        s.service_registered = false;
        let text = s.render();
        assert!(text.contains("(filters unavailable: E_NOTIMPL)"), "{text}");
        assert!(text.contains("agentsh not loaded, service not registered (run `agentsh driver install`)"));
        assert!(text.contains("connection:    none: port not found"));
        assert!(text.contains("fail mode:     unknown"));
        assert!(!s.loaded());
    }

    #[test]
    fn connected_status_lists_fail_mode_and_metrics() {
        let text = status(Connection::Connected(DriverCounters {
            fail_mode: "open".into(),
            metrics: vec![("CacheHitCount".into(), 42)],
        }))
        .render();
        assert!(text.contains("fail mode:     open"));
        assert!(text.contains("  CacheHitCount                42"));
    }
}
