//! agentsh.sys management: the names and registry values the driver is installed with, and the
//! `fltmc`-like status report. The Windows calls (copy, SCM registration, FilterLoad/FilterUnload,
//! enumeration) live in the platform module; everything rendered here is testable anywhere.

use std::fmt::Write as _;

#[cfg(windows)]
pub use crate::imp::driver::{install, load, query_status, uninstall, unload};

/// Filter and kernel service name (what `fltmc load agentsh` takes).
pub const FILTER_NAME: &str = "agentsh";
/// Display name registered with the service control manager.
pub const DISPLAY_NAME: &str = "AgentSH registry and file policy filter";
/// Default altitude, in the FSFilter Activity Monitor range (360000-389999) and not allocated by
/// Microsoft to any product (docs/driver.md, "Altitude"); `agentsh driver install --altitude`
/// replaces it. A production deployment uses the altitude Microsoft assigns.
pub const DEFAULT_ALTITUDE: &str = "376300";
/// The altitude range of [`LOAD_ORDER_GROUP`].
pub const ALTITUDE_RANGE: std::ops::RangeInclusive<u32> = 360_000..=389_999;
/// The oldest Windows build agentsh.sys loads on: Windows 10 2004, the first to export
/// `ExAllocatePool2` (driver/imports/floor.txt lists every import with its first build;
/// tests/kernel-emu/import_floor.py keeps this, the list and the INF's decoration equal).
pub const MIN_BUILD: u32 = 19_041;

/// `driver install` refuses a build the driver cannot load on (its imports would not resolve).
pub fn check_build(build: u32) -> Result<(), String> {
    if build >= MIN_BUILD {
        return Ok(());
    }
    Err(format!(
        "Windows build {build} cannot load agentsh.sys: it needs build {MIN_BUILD} (Windows 10 version 2004) or later, whose kernel exports ExAllocatePool2; update Windows (docs/deployment.md, Requirements)"
    ))
}

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
    /// The altitude the installed instance is registered at (`None`: not installed or unreadable).
    pub installed_altitude: Option<String>,
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

    /// The agentsh filter is loaded but has no volume instance: it filters no file operation
    /// (typically another filter holds its altitude on every volume).
    pub fn loaded_without_instances(&self) -> bool {
        self.filters
            .iter()
            .flatten()
            .any(|f| f.name.eq_ignore_ascii_case(FILTER_NAME) && f.instances == 0)
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
            let _ = writeln!(out, "{:<30} {:>12} Instance", "Volume", "Altitude");
            for i in &self.instances {
                let _ = writeln!(out, "{:<30} {:>12} {}", i.volume, i.altitude, i.instance);
            }
        }
        let _ = writeln!(out);
        let loaded = if self.loaded() {
            "loaded"
        } else {
            "not loaded"
        };
        let registered = if self.service_registered {
            "registered"
        } else {
            "not registered (run `agentsh driver install`)"
        };
        let _ = writeln!(
            out,
            "driver:        {FILTER_NAME} {loaded}, service {registered}"
        );
        let signing = match self.test_signing {
            Some(true) => "on (test-signed drivers load)",
            Some(false) => "off (the driver must be production-signed)",
            None => "unknown (boot options unreadable)",
        };
        let _ = writeln!(out, "test signing:  {signing}");
        if let Some(altitude) = &self.installed_altitude {
            let _ = writeln!(out, "altitude:      {altitude} (installed)");
        }
        if self.loaded_without_instances() {
            let _ = writeln!(
                out,
                "instances:     NONE attached: file operations are not filtered (another filter at the same altitude? `fltmc instances`; reinstall with `agentsh driver install --altitude`)"
            );
        }
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
                    "connection:    held by the agentsh service (the port has one client)"
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

/// Checks an altitude for `driver install --altitude`: decimal digits with at most one decimal
/// point (the filter manager's altitude syntax), whose integer part lies in [`ALTITUDE_RANGE`] (the
/// load order group the service is registered in). Returns the altitude as written.
pub fn parse_altitude(text: &str) -> Result<String, String> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (text.contains('.') && frac.is_empty()) {
        return Err(format!(
            "altitude `{text}`: expected decimal digits with at most one decimal point, such as `{DEFAULT_ALTITUDE}` or `376300.5`"
        ));
    }
    let value: u32 = int
        .parse()
        .map_err(|_| format!("altitude `{text}`: outside {LOAD_ORDER_GROUP} (360000-389999)"))?;
    if !ALTITUDE_RANGE.contains(&value) {
        return Err(format!(
            "altitude `{text}`: outside {LOAD_ORDER_GROUP} (360000-389999), the load order group agentsh.sys registers in"
        ));
    }
    Ok(text.to_owned())
}

/// What `FilterLoad`/`FilterUnload` failures mean and what to do; `None` for success-like codes
/// (already loaded for load, not loaded for unload). `altitude` is the installed one.
pub fn explain_filter_hresult(operation: &str, hr: i32, altitude: &str) -> Option<String> {
    let code = hr as u32;
    let text = match (operation, code) {
        // ERROR_ALREADY_EXISTS, HRESULT_FROM_WIN32(ERROR_SERVICE_ALREADY_RUNNING).
        ("load", 0x8007_00B7) | ("load", 0x8007_0420) => return None,
        ("unload", 0x801F_0013) => return None,
        (_, 0x8000_4001) | (_, 0x8007_0032) => "the filter manager cannot load filters on this host (Wine has none) — use Windows 10/11".to_owned(),
        (_, 0x8007_0002) => "agentsh.sys is not installed — run `agentsh driver install --sys PATH` first".to_owned(),
        (_, 0x8007_0522) | (_, 0x8007_0005) => "not permitted — run as Administrator (SeLoadDriverPrivilege)".to_owned(),
        (_, 0x8007_0241) => "Windows rejected the driver signature — enable test signing (`bcdedit /set testsigning on`, reboot) or install the attestation-signed package; see docs/deployment.md".to_owned(),
        // fltwinerror.h: ERROR_FLT_INSTANCE_ALTITUDE_COLLISION, ERROR_FLT_INSTANCE_NAME_COLLISION,
        // ERROR_FLT_CONTEXT_ALLOCATION_NOT_FOUND.
        (_, 0x801F_0011) => format!("another filter's instance already sits at altitude {altitude} (ERROR_FLT_INSTANCE_ALTITUDE_COLLISION), so agentsh.sys filters no file operation — `fltmc instances` shows which filter; reinstall with `agentsh driver install --altitude ALTITUDE` at a free altitude and load again"),
        (_, 0x801F_0016) => "the filter manager found no context registration for a context the driver allocated (ERROR_FLT_CONTEXT_ALLOCATION_NOT_FOUND) — a defect of this agentsh.sys build; collect the Event Log entries (docs/deployment.md)".to_owned(),
        (_, 0x801F_0012) => "an instance named `AgentSH Instance` already exists (ERROR_FLT_INSTANCE_NAME_COLLISION) — check `fltmc instances`".to_owned(),
        _ => "unexpected failure".to_owned(),
    };
    Some(format!(
        "driver {operation} `{FILTER_NAME}`: {text} ({code:#010x})"
    ))
}

/// Reads a UTF-16 string at `offset..offset+len` (bytes) of `buf`.
fn utf16_at(buf: &[u8], offset: usize, len: usize) -> Option<String> {
    let bytes = buf.get(offset..offset.checked_add(len)?)?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(String::from_utf16_lossy(&units))
}

fn u16_at(buf: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes(
        buf.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// `FLTFL_ASI_IS_MINIFILTER` in FILTER_AGGREGATE_STANDARD_INFORMATION.Flags.
const FLTFL_ASI_IS_MINIFILTER: u32 = 1;

/// Parses one `FILTER_AGGREGATE_STANDARD_INFORMATION` (FilterFindFirst/Next,
/// FilterAggregateStandardInformation). Layout: NextEntryOffset u32 @0, Flags u32 @4, then for a
/// minifilter: Flags u32 @8, FrameID u32 @12, NumberOfInstances u32 @16, FilterNameLength u16 @20,
/// FilterNameBufferOffset u16 @22, FilterAltitudeLength u16 @24, FilterAltitudeBufferOffset u16 @26;
/// for a legacy filter: Flags u32 @8, FilterNameLength u16 @12, FilterNameBufferOffset u16 @14,
/// FilterAltitudeLength u16 @16, FilterAltitudeBufferOffset u16 @18. Offsets are from the entry.
pub fn parse_filter_entry(buf: &[u8]) -> Option<FilterRow> {
    if u32_at(buf, 4)? & FLTFL_ASI_IS_MINIFILTER != 0 {
        Some(FilterRow {
            frame: u32_at(buf, 12)?,
            instances: u32_at(buf, 16)?,
            name: utf16_at(buf, u16_at(buf, 22)?, u16_at(buf, 20)?)?,
            altitude: utf16_at(buf, u16_at(buf, 26)?, u16_at(buf, 24)?)?,
        })
    } else {
        Some(FilterRow {
            frame: 0,
            instances: 0,
            name: utf16_at(buf, u16_at(buf, 14)?, u16_at(buf, 12)?)?,
            altitude: utf16_at(buf, u16_at(buf, 18)?, u16_at(buf, 16)?)?,
        })
    }
}

/// Parses one `INSTANCE_FULL_INFORMATION` (FilterInstanceFindFirst/Next, InstanceFullInformation):
/// NextEntryOffset u32 @0, then (length u16, offset u16) pairs for InstanceName @4, Altitude @8,
/// VolumeName @12, FilterName @16. Offsets are from the entry.
pub fn parse_instance_entry(buf: &[u8]) -> Option<InstanceRow> {
    let field = |at: usize| utf16_at(buf, u16_at(buf, at + 2)?, u16_at(buf, at)?);
    Some(InstanceRow {
        instance: field(4)?,
        altitude: field(8)?,
        volume: field(12)?,
    })
}

/// A `FilterSendMessage`: request bytes in, answer bytes written, answer length returned.
pub trait SendMessage: FnMut(&[u8], &mut [u8]) -> Result<usize, String> {}
impl<F: FnMut(&[u8], &mut [u8]) -> Result<usize, String>> SendMessage for F {}

fn exchange(
    send: &mut impl SendMessage,
    message: agentsh_wire::control::ControlRepr,
    out_len: usize,
) -> Result<agentsh_wire::control::SendResult, String> {
    let mut request = vec![0u8; message.buffer_len()];
    message
        .emit(&mut request)
        .map_err(|e| format!("encoding {:?}: {e:?}", message.message_type()))?;
    let mut answer = vec![0u8; out_len];
    let n = send(&request, &mut answer)?;
    agentsh_wire::control::SendResult::decode(message.message_type(), &answer[..n.min(out_len)])
        .map_err(|e| {
            format!(
                "driver answer to {:?} malformed: {e:?}",
                message.message_type()
            )
        })
}

/// The version handshake every connection starts with.
pub fn hello(send: &mut impl SendMessage) -> Result<(), String> {
    use agentsh_wire::control::{ControlRepr, SendResult, SendStatus, len};
    let answer = exchange(
        send,
        ControlRepr::Hello {
            protocol_version: agentsh_wire::PROTOCOL_VERSION,
        },
        len::HELLO_RESULT,
    )?;
    match answer {
        SendResult::Hello {
            status: SendStatus::Ok,
            ..
        } => Ok(()),
        SendResult::Hello { kernel_version, .. } => Err(format!(
            "driver speaks protocol {kernel_version}, this agentsh speaks {}: install matching versions",
            agentsh_wire::PROTOCOL_VERSION
        )),
        other => Err(format!("handshake refused: {:?}", other.status())),
    }
}

/// Excludes the connected process from interception (WinFsp coexistence: a file system served by
/// this process is then never counted twice). The driver takes the process id from the connection.
pub fn exclude_self(send: &mut impl SendMessage) -> Result<(), String> {
    use agentsh_wire::control::{ControlRepr, SendStatus, len};
    let answer = exchange(send, ControlRepr::ExcludeSelf, len::SEND_RESULT_HEADER)?;
    match answer.status() {
        SendStatus::Ok => Ok(()),
        status => Err(format!("ExcludeSelf refused: {status:?}")),
    }
}

/// Handshake, then one GetMetrics over `send`: the driver's fail mode and every counter, named as
/// in `agentsh_wire::control::Counter`.
pub fn read_counters(mut send: impl SendMessage) -> Result<DriverCounters, String> {
    use agentsh_wire::control::{ControlRepr, Counter, SendResult, len};
    hello(&mut send)?;
    match exchange(&mut send, ControlRepr::GetMetrics, len::METRICS_RESULT)? {
        SendResult::Metrics(m) => Ok(DriverCounters {
            fail_mode: match m.get(Counter::FailMode) {
                0 => "open".into(),
                1 => "closed".into(),
                other => format!("unknown ({other})"),
            },
            metrics: Counter::ALL
                .iter()
                .map(|c| (c.name().to_owned(), m.get(*c)))
                .collect(),
        }),
        other => Err(format!("GetMetrics answered {:?}", other.status())),
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
            installed_altitude: Some("385200".into()),
            connection,
        }
    }

    #[test]
    fn a_loaded_filter_without_instances_is_reported() {
        let mut s = status(Connection::HeldByService);
        let text = s.render();
        assert!(text.contains("altitude:      385200 (installed)"), "{text}");
        assert!(!text.contains("NONE attached"), "{text}");
        assert!(!s.loaded_without_instances());
        s.filters.as_mut().expect("rows")[0].instances = 0;
        s.instances.clear();
        assert!(s.loaded_without_instances());
        let text = s.render();
        assert!(
            text.contains("instances:     NONE attached: file operations are not filtered"),
            "{text}"
        );
        // Not loaded at all is a different report ("not loaded"), not a missing instance.
        s.filters = Some(Vec::new());
        assert!(!s.loaded_without_instances());
    }

    #[test]
    fn install_refuses_builds_below_the_import_floor() {
        assert_eq!(check_build(19_041), Ok(()));
        assert_eq!(check_build(26_100), Ok(()));
        for old in [17_763, 14_393, 18_363, 19_040] {
            let err = check_build(old).expect_err("refused");
            assert!(
                err.contains(&format!("Windows build {old} cannot load agentsh.sys")),
                "{err}"
            );
            assert!(
                err.contains("19041") && err.contains("ExAllocatePool2"),
                "{err}"
            );
        }
    }

    #[test]
    fn install_altitudes_are_checked() {
        assert_eq!(parse_altitude("376300"), Ok("376300".to_owned()));
        assert_eq!(parse_altitude("376300.25"), Ok("376300.25".to_owned()));
        assert_eq!(parse_altitude("360000"), Ok("360000".to_owned()));
        assert_eq!(parse_altitude("389999.9"), Ok("389999.9".to_owned()));
        for bad in [
            "", ".5", "376300.", "37a300", "3763.0.1", "-376300", "+376300", " 376300",
        ] {
            let err = parse_altitude(bad).expect_err(bad);
            assert!(err.contains("decimal digits"), "{bad}: {err}");
        }
        for out in ["359999.9", "390000", "385200000000000000000"] {
            let err = parse_altitude(out).expect_err(out);
            assert!(
                err.contains("FSFilter Activity Monitor (360000-389999)"),
                "{out}: {err}"
            );
        }
        assert!(parse_altitude(DEFAULT_ALTITUDE).is_ok());
    }

    /// The default is not Process Monitor's (385200, the design's value) nor any other allocation
    /// near it in Microsoft's allocated-altitudes list (FSFilter Activity Monitor entries between
    /// minispy's 370000 and CbSampleDrv's 380000 bracket the unallocated gap it sits in).
    #[test]
    fn default_altitude_is_not_process_monitors() {
        assert_ne!(DEFAULT_ALTITUDE, "385200");
        let value: u32 = DEFAULT_ALTITUDE.parse().expect("integer altitude");
        assert!((371_101..380_000).contains(&value), "{value}");
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
        assert!(
            text.contains(
                "agentsh not loaded, service not registered (run `agentsh driver install`)"
            )
        );
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

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn minifilter_entry_is_read_from_the_documented_offsets() {
        // FILTER_AGGREGATE_STANDARD_INFORMATION, minifilter variant, strings after the 28-byte head.
        let name = utf16("AgentSH");
        let altitude = utf16("385200");
        let mut buf = vec![0u8; 28];
        buf[4..8].copy_from_slice(&1u32.to_le_bytes());
        buf[12..16].copy_from_slice(&0u32.to_le_bytes());
        buf[16..20].copy_from_slice(&3u32.to_le_bytes());
        buf[20..22].copy_from_slice(&(name.len() as u16).to_le_bytes());
        buf[22..24].copy_from_slice(&28u16.to_le_bytes());
        buf[24..26].copy_from_slice(&(altitude.len() as u16).to_le_bytes());
        buf[26..28].copy_from_slice(&((28 + name.len()) as u16).to_le_bytes());
        buf.extend_from_slice(&name);
        buf.extend_from_slice(&altitude);
        let row = parse_filter_entry(&buf).expect("entry");
        assert_eq!(
            row,
            FilterRow {
                name: "AgentSH".into(),
                instances: 3,
                altitude: "385200".into(),
                frame: 0
            }
        );
        // A name offset beyond the buffer is refused, not read.
        buf[22..24].copy_from_slice(&500u16.to_le_bytes());
        assert_eq!(parse_filter_entry(&buf), None);
    }

    #[test]
    fn instance_entry_is_read_from_the_documented_offsets() {
        let strings = [
            utf16(DEFAULT_INSTANCE),
            utf16("385200"),
            utf16(r"\Device\HarddiskVolume3"),
            utf16("agentsh"),
        ];
        let mut buf = vec![0u8; 20];
        let mut offset = 20usize;
        for (i, s) in strings.iter().enumerate() {
            let at = 4 + 4 * i;
            buf[at..at + 2].copy_from_slice(&(s.len() as u16).to_le_bytes());
            buf[at + 2..at + 4].copy_from_slice(&(offset as u16).to_le_bytes());
            offset += s.len();
        }
        for s in &strings {
            buf.extend_from_slice(s);
        }
        let row = parse_instance_entry(&buf).expect("entry");
        assert_eq!(row.instance, DEFAULT_INSTANCE);
        assert_eq!(row.altitude, "385200");
        assert_eq!(row.volume, r"\Device\HarddiskVolume3");
    }

    #[test]
    fn counters_come_from_hello_then_get_metrics() {
        use agentsh_wire::control::{Counter, Metrics, SendResult, SendStatus};
        let mut metrics = Metrics::default();
        metrics.set(Counter::FailMode, 1);
        metrics.set(Counter::CacheHitCount, 9);
        let mut calls = Vec::new();
        let counters = read_counters(|request, out| {
            // Message type is the first u16 of every request (Hello = first, GetMetrics = second).
            calls.push(u16::from_le_bytes([request[0], request[1]]));
            let answer = if calls.len() == 1 {
                SendResult::Hello {
                    status: SendStatus::Ok,
                    kernel_version: agentsh_wire::PROTOCOL_VERSION,
                }
            } else {
                SendResult::Metrics(metrics)
            };
            answer.emit(out).map_err(|e| format!("{e:?}"))?;
            Ok(answer.buffer_len())
        })
        .expect("counters");
        assert_eq!(calls.len(), 2);
        assert_eq!(counters.fail_mode, "closed");
        assert!(counters.metrics.contains(&("CacheHitCount".to_owned(), 9)));
    }

    #[test]
    fn protocol_mismatch_names_both_versions() {
        use agentsh_wire::control::{SendResult, SendStatus};
        let err = read_counters(|_, out| {
            let answer = SendResult::Hello {
                status: SendStatus::VersionMismatch,
                kernel_version: 99,
            };
            answer.emit(out).map_err(|e| format!("{e:?}"))?;
            Ok(answer.buffer_len())
        })
        .expect_err("mismatch");
        assert!(err.contains("protocol 99"), "{err}");
    }

    #[test]
    fn exclude_self_reports_a_refusal() {
        use agentsh_wire::MessageType;
        use agentsh_wire::control::{SendResult, SendStatus};
        let mut send = |_: &[u8], out: &mut [u8]| {
            let answer = SendResult::Status {
                message_type: MessageType::ExcludeSelf,
                status: SendStatus::HandshakeRequired,
            };
            answer.emit(out).map_err(|e| format!("{e:?}"))?;
            Ok(answer.buffer_len())
        };
        let err = exclude_self(&mut send).expect_err("refused");
        assert_eq!(err, "ExcludeSelf refused: HandshakeRequired");
    }

    #[test]
    fn filter_load_failures_say_what_to_do() {
        let check = |op: &str, code: u32, needle: &str| {
            let text = explain_filter_hresult(op, code as i32, "376300.5").expect("an error");
            assert!(text.contains(needle), "{op} {code:#x}: {text}");
            assert!(text.starts_with(&format!("driver {op} `agentsh`: ")));
        };
        check("load", 0x8000_4001, "cannot load filters on this host");
        check("load", 0x8007_0032, "Wine has none");
        check("load", 0x8007_0002, "agentsh driver install");
        check("load", 0x8007_0522, "Administrator");
        check("load", 0x8007_0241, "testsigning");
        check("unload", 0x8007_0057, "unexpected failure (0x80070057)");
        check("load", 0x801F_0011, "ERROR_FLT_INSTANCE_ALTITUDE_COLLISION");
        check("load", 0x801F_0011, "altitude 376300.5 ");
        check("load", 0x801F_0011, "filters no file operation");
        check("load", 0x801F_0011, "driver install --altitude");
        check(
            "load",
            0x801F_0016,
            "ERROR_FLT_CONTEXT_ALLOCATION_NOT_FOUND",
        );
        check("load", 0x801F_0012, "ERROR_FLT_INSTANCE_NAME_COLLISION");
        assert_eq!(
            explain_filter_hresult("load", 0x8007_00B7_u32 as i32, "1"),
            None
        );
        assert_eq!(
            explain_filter_hresult("load", 0x8007_0420_u32 as i32, "1"),
            None
        );
        assert_eq!(
            explain_filter_hresult("unload", 0x801F_0013_u32 as i32, "1"),
            None
        );
    }
}

#[cfg(test)]
mod inf_tests {
    use super::*;

    const INF: &str = include_str!("../../../packaging/agentsh.inf");

    fn string(name: &str) -> String {
        INF.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"')
                    .to_owned()
            })
            .unwrap_or_else(|| panic!("agentsh.inf has no `{name}`"))
    }

    #[test]
    fn inf_matches_what_driver_install_registers() {
        assert_eq!(string("Instance1.Altitude"), DEFAULT_ALTITUDE);
        assert_eq!(string("Instance1.Name"), DEFAULT_INSTANCE);
        assert_eq!(string("DefaultInstance"), DEFAULT_INSTANCE);
        assert_eq!(string("ServiceName"), FILTER_NAME);
        assert_eq!(string("ServiceDisplayName"), DISPLAY_NAME);
        assert_eq!(string("LoadOrderGroup"), LOAD_ORDER_GROUP);
        assert_eq!(string("Dependencies"), "FltMgr");
    }
}
