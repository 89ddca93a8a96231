//! Driver management on Windows: copy and register agentsh.sys with its instance values,
//! FilterLoad/FilterUnload with SeLoadDriverPrivilege, and the `fltmc`-like status.

use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_NOT_ALL_ASSIGNED, GetLastError, HANDLE, LUID,
};
use windows_sys::Win32::Security::{
    AdjustTokenPrivileges, LUID_AND_ATTRIBUTES, LookupPrivilegeValueW, SE_PRIVILEGE_ENABLED,
    TOKEN_ADJUST_PRIVILEGES, TOKEN_PRIVILEGES, TOKEN_QUERY,
};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FilterAggregateStandardInformation, FilterFindClose, FilterFindFirst, FilterFindNext,
    FilterInstanceFindClose, FilterInstanceFindFirst, FilterInstanceFindNext, FilterLoad,
    FilterUnload, InstanceFullInformation,
};
use windows_sys::Win32::System::Services::{SERVICE_DEMAND_START, SERVICE_FILE_SYSTEM_DRIVER};
use windows_sys::Win32::System::SystemInformation::GetSystemDirectoryW;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::port::FilterPort;
use super::registry::{self, Value};
use super::scm::{self, ScmError, ServiceSpec};
use super::security::OsFailure;
use super::util::wide;
use crate::driver::{
    Connection, DEFAULT_ALTITUDE, DEFAULT_INSTANCE, DISPLAY_NAME, DriverStatus, FILTER_NAME,
    FilterRow, IMAGE_NAME, InstanceRow, LOAD_ORDER_GROUP, explain_filter_hresult,
    parse_filter_entry, parse_instance_entry, read_counters,
};
use crate::port::{PORT_NAME, PortError};

/// Driver management failures.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Scm(#[from] ScmError),
    #[error("driver `{FILTER_NAME}`: {step}: {message} (win32 error {code})")]
    Os {
        step: String,
        code: u32,
        message: String,
    },
    /// FilterLoad/FilterUnload failure, already explained.
    #[error("{0}")]
    Filter(String),
}

impl From<OsFailure> for DriverError {
    fn from(f: OsFailure) -> Self {
        DriverError::Os {
            step: f.step,
            code: f.code,
            message: f.message,
        }
    }
}

fn service_key() -> String {
    format!("SYSTEM\\CurrentControlSet\\Services\\{FILTER_NAME}")
}

/// The altitude `driver install` (or the INF) registered for the default instance.
fn installed_altitude() -> Option<String> {
    let instance = format!("{}\\Instances\\{DEFAULT_INSTANCE}", service_key());
    registry::get_string(&instance, "Altitude").ok().flatten()
}

fn drivers_dir() -> Result<PathBuf, OsFailure> {
    let mut buf = [0u16; 520];
    // SAFETY: `buf` is valid for its length in u16 units.
    let n = unsafe { GetSystemDirectoryW(buf.as_mut_ptr(), buf.len() as u32) } as usize;
    if n == 0 || n >= buf.len() {
        return Err(OsFailure::last("GetSystemDirectoryW"));
    }
    Ok(PathBuf::from(String::from_utf16_lossy(&buf[..n])).join("drivers"))
}

/// Copies `sys` to `%SystemRoot%\System32\drivers\agentsh.sys`, registers the kernel service in the
/// FSFilter Activity Monitor group (depends on FltMgr, demand start: the agentsh service, which
/// depends on it, has the SCM start it at boot) and writes the instance values
/// (`Instances\DefaultInstance`, `Instances\AgentSH Instance\Altitude`, `Flags=0`) under the
/// service key and under its `Parameters` subkey. `altitude` (checked by
/// [`crate::driver::parse_altitude`]) is the instance's; the driver reads the same value at
/// DriverEntry for its registry callback.
pub fn install(sys: &Path, altitude: &str) -> Result<PathBuf, DriverError> {
    // The build the kernel reports (REG_SZ CurrentBuildNumber); refused below the import floor.
    let build = registry::get_string(
        "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion",
        "CurrentBuildNumber",
    )?
    .and_then(|b| b.trim().parse::<u32>().ok());
    match build {
        Some(build) => crate::driver::check_build(build).map_err(DriverError::Filter)?,
        None => {
            return Err(DriverError::Filter(
                "the Windows build number (HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\CurrentBuildNumber) is unreadable, so agentsh.sys's import floor cannot be checked".to_owned(),
            ));
        }
    }
    let target = drivers_dir()?.join(IMAGE_NAME);
    std::fs::copy(sys, &target).map_err(|e| DriverError::Os {
        step: format!("copying `{}` to `{}`", sys.display(), target.display()),
        code: e.raw_os_error().unwrap_or(0) as u32,
        message: e.to_string(),
    })?;
    let image = format!("System32\\drivers\\{IMAGE_NAME}");
    scm::create(&ServiceSpec {
        name: FILTER_NAME,
        display_name: DISPLAY_NAME,
        kind: SERVICE_FILE_SYSTEM_DRIVER,
        start: SERVICE_DEMAND_START,
        binary: &image,
        group: Some(LOAD_ORDER_GROUP),
        dependencies: &["FltMgr"],
    })?;
    // Both layouts (see packaging/agentsh.inf): the service key itself, read by the filter
    // manager of builds before Windows 11 24H2, and its Parameters subkey, read from 24H2 on.
    for key in [service_key(), format!("{}\\Parameters", service_key())] {
        registry::set_values(&key, &[("SupportedFeatures", Value::Dword(3))])?;
        registry::set_values(
            &format!("{key}\\Instances"),
            &[("DefaultInstance", Value::Str(DEFAULT_INSTANCE))],
        )?;
        registry::set_values(
            &format!("{key}\\Instances\\{DEFAULT_INSTANCE}"),
            &[
                ("Altitude", Value::Str(altitude)),
                ("Flags", Value::Dword(0)),
            ],
        )?;
    }
    // The driver logs under the same source as the service; its messages are in agentsh.sys.
    crate::imp::eventlog::register_source(Path::new(crate::eventlog::SERVICE_MESSAGE_FILE))
        .map_err(DriverError::Filter)?;
    Ok(target)
}

/// Unloads the filter, deletes its service (and so its instance values) and the image file.
/// The counterpart of the INF's DefaultUninstall (LegacyUninstall=1) for `driver install`.
pub fn uninstall() -> Result<(), DriverError> {
    unload()?;
    scm::delete(FILTER_NAME, "driver")?;
    let target = drivers_dir()?.join(IMAGE_NAME);
    match std::fs::remove_file(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::Os {
            step: format!("deleting `{}`", target.display()),
            code: e.raw_os_error().unwrap_or(0) as u32,
            message: e.to_string(),
        }),
    }
}

/// Enables SeLoadDriverPrivilege in our token (present but disabled for Administrators).
fn enable_load_driver_privilege() -> Result<(), DriverError> {
    let mut token: HANDLE = null_mut();
    // SAFETY: opens our own token; closed below.
    if unsafe {
        OpenProcessToken(
            GetCurrentProcess(),
            TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY,
            &mut token,
        )
    } == 0
    {
        return Err(OsFailure::last("OpenProcessToken").into());
    }
    let name = wide("SeLoadDriverPrivilege");
    let mut luid = LUID {
        LowPart: 0,
        HighPart: 0,
    };
    // SAFETY: `name` is NUL-terminated; `luid` is a valid out-pointer.
    let ok = unsafe { LookupPrivilegeValueW(null(), name.as_ptr(), &mut luid) };
    let result = if ok == 0 {
        Err(OsFailure::last("LookupPrivilegeValueW(SeLoadDriverPrivilege)").into())
    } else {
        let privileges = TOKEN_PRIVILEGES {
            PrivilegeCount: 1,
            Privileges: [LUID_AND_ATTRIBUTES {
                Luid: luid,
                Attributes: SE_PRIVILEGE_ENABLED,
            }],
        };
        // SAFETY: `token` is open with adjust rights; `privileges` is valid.
        let ok = unsafe { AdjustTokenPrivileges(token, 0, &privileges, 0, null_mut(), null_mut()) };
        // SAFETY: reads thread-local state right after the call.
        let last = unsafe { GetLastError() };
        if ok == 0 {
            Err(OsFailure::last("AdjustTokenPrivileges").into())
        } else if last == ERROR_NOT_ALL_ASSIGNED {
            Err(DriverError::Filter(format!(
                "driver `{FILTER_NAME}`: SeLoadDriverPrivilege is not held — run as Administrator"
            )))
        } else {
            Ok(())
        }
    };
    // SAFETY: `token` was opened above and is closed once.
    unsafe { CloseHandle(token) };
    result
}

fn filter_call(
    operation: &str,
    call: unsafe extern "system" fn(*const u16) -> i32,
) -> Result<(), DriverError> {
    enable_load_driver_privilege()?;
    let name = wide(FILTER_NAME);
    // SAFETY: `name` is NUL-terminated; `call` is FilterLoad or FilterUnload.
    let hr = unsafe { call(name.as_ptr()) };
    if hr >= 0 {
        return Ok(());
    }
    let altitude = installed_altitude().unwrap_or_else(|| DEFAULT_ALTITUDE.to_owned());
    match explain_filter_hresult(operation, hr, &altitude) {
        None => Ok(()),
        Some(text) => Err(DriverError::Filter(text)),
    }
}

/// `FilterLoad("agentsh")`; already loaded is success.
pub fn load() -> Result<(), DriverError> {
    filter_call("load", FilterLoad)
}

/// `FilterUnload("agentsh")`; not loaded is success.
pub fn unload() -> Result<(), DriverError> {
    filter_call("unload", FilterUnload)
}

fn hresult_text(hr: i32) -> String {
    match hr as u32 {
        0x8000_4001 => "the filter manager is not available here (E_NOTIMPL; Wine has none)".into(),
        0x8007_0005 => "access denied — run as Administrator (0x80070005)".into(),
        code => format!("filter enumeration failed ({code:#010x})"),
    }
}

/// `HRESULT_FROM_WIN32(ERROR_NO_MORE_ITEMS)`.
const HR_NO_MORE_ITEMS: i32 = 0x8007_0103_u32 as i32;

fn list_filters() -> Result<Vec<FilterRow>, String> {
    let mut rows = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut returned = 0u32;
    let mut find: HANDLE = null_mut();
    // SAFETY: `buf` is valid for its length; `find` receives a search handle closed below.
    let hr = unsafe {
        FilterFindFirst(
            FilterAggregateStandardInformation,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            &mut returned,
            &mut find,
        )
    };
    if hr == HR_NO_MORE_ITEMS {
        return Ok(rows);
    }
    if hr < 0 {
        return Err(hresult_text(hr));
    }
    loop {
        if let Some(row) = parse_filter_entry(&buf[..(returned as usize).min(buf.len())]) {
            rows.push(row);
        }
        // SAFETY: `find` is the open search handle; `buf` is valid for its length.
        let hr = unsafe {
            FilterFindNext(
                find,
                FilterAggregateStandardInformation,
                buf.as_mut_ptr().cast(),
                buf.len() as u32,
                &mut returned,
            )
        };
        if hr < 0 {
            break;
        }
    }
    // SAFETY: closes the search handle once.
    unsafe { FilterFindClose(find) };
    Ok(rows)
}

fn list_instances() -> Vec<InstanceRow> {
    let mut rows = Vec::new();
    let name = wide(FILTER_NAME);
    let mut buf = vec![0u8; 4096];
    let mut returned = 0u32;
    let mut find: HANDLE = null_mut();
    // SAFETY: as for filters: valid buffer, search handle closed below.
    let hr = unsafe {
        FilterInstanceFindFirst(
            name.as_ptr(),
            InstanceFullInformation,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            &mut returned,
            &mut find,
        )
    };
    if hr < 0 {
        return rows;
    }
    loop {
        if let Some(row) = parse_instance_entry(&buf[..(returned as usize).min(buf.len())]) {
            rows.push(row);
        }
        // SAFETY: `find` is open; `buf` is valid for its length.
        let hr = unsafe {
            FilterInstanceFindNext(
                find,
                InstanceFullInformation,
                buf.as_mut_ptr().cast(),
                buf.len() as u32,
                &mut returned,
            )
        };
        if hr < 0 {
            break;
        }
    }
    // SAFETY: closes the search handle once.
    unsafe { FilterInstanceFindClose(find) };
    rows
}

/// Gathers everything `agentsh driver status` shows. Never fails: each part reports its own reason.
pub fn query_status() -> DriverStatus {
    let (filters, filters_error) = match list_filters() {
        Ok(rows) => (Some(rows), None),
        Err(reason) => (None, Some(reason)),
    };
    let test_signing =
        registry::get_string("SYSTEM\\CurrentControlSet\\Control", "SystemStartOptions")
            .ok()
            .map(|v| {
                v.unwrap_or_default()
                    .to_ascii_uppercase()
                    .contains("TESTSIGNING")
            });
    // The registration is the service key; a deleted service can linger in the SCM until its last
    // handle closes, so the SCM's view is not asked.
    let service_registered = registry::get_string(&service_key(), "ImagePath")
        .ok()
        .flatten()
        .is_some();
    let connection = match FilterPort::connect(PORT_NAME, &[]) {
        Ok(port) => {
            match read_counters(|input, output| port.send(input, output).map_err(|e| e.to_string()))
            {
                Ok(counters) => Connection::Connected(counters),
                Err(reason) => Connection::Unavailable(reason),
            }
        }
        Err(PortError::Busy { .. }) => Connection::HeldByService,
        Err(e) => Connection::Unavailable(e.to_string()),
    };
    // Instances exist only for a loaded filter; asking otherwise is pointless, and Wine's fltlib
    // does not even implement the instance enumeration.
    let loaded = filters
        .iter()
        .flatten()
        .any(|f| f.name.eq_ignore_ascii_case(FILTER_NAME));
    DriverStatus {
        filters,
        filters_error,
        instances: if loaded { list_instances() } else { Vec::new() },
        test_signing,
        service_registered,
        installed_altitude: installed_altitude(),
        connection,
    }
}
