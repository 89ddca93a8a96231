//! Service control manager: install, uninstall, start and stop a service (the agentsh service or the
//! driver's kernel service), and run the current process as a service under the SCM dispatcher.

use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_FAILED_SERVICE_CONTROLLER_CONNECT, ERROR_INVALID_LEVEL, ERROR_SERVICE_ALREADY_RUNNING,
    ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_NOT_ACTIVE, NO_ERROR,
};
use windows_sys::Win32::Security::Authorization::SE_FILE_OBJECT;
use windows_sys::Win32::System::Services::{
    ChangeServiceConfig2W, QUERY_SERVICE_CONFIGW, QueryServiceConfig2W, QueryServiceConfigW,
    SC_ACTION, SC_ACTION_RESTART, SERVICE_CONFIG_DESCRIPTION, SERVICE_CONFIG_FAILURE_ACTIONS,
    SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, SERVICE_CONFIG_SERVICE_SID_INFO, SERVICE_DESCRIPTIONW,
    SERVICE_FAILURE_ACTIONS_FLAG, SERVICE_FAILURE_ACTIONSW, SERVICE_QUERY_CONFIG, SERVICE_SID_INFO,
    SERVICE_SID_TYPE_UNRESTRICTED,
};
use windows_sys::Win32::System::Services::{
    CloseServiceHandle, ControlService, CreateServiceW, DeleteService, ENUM_SERVICE_TYPE,
    OpenSCManagerW, OpenServiceW, QueryServiceStatus, RegisterServiceCtrlHandlerExW, SC_HANDLE,
    SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP,
    SERVICE_ALL_ACCESS, SERVICE_AUTO_START, SERVICE_CONTROL_INTERROGATE, SERVICE_CONTROL_SHUTDOWN,
    SERVICE_CONTROL_STOP, SERVICE_ERROR_NORMAL, SERVICE_QUERY_STATUS, SERVICE_RUNNING,
    SERVICE_START_PENDING, SERVICE_START_TYPE, SERVICE_STATUS, SERVICE_STATUS_HANDLE,
    SERVICE_STOP_PENDING, SERVICE_STOPPED, SERVICE_TABLE_ENTRYW, SERVICE_WIN32_OWN_PROCESS,
    SetServiceStatus, StartServiceCtrlDispatcherW, StartServiceW,
};

use super::security::{self, Parts};
use super::util::{last_error, wide};
use crate::service;

/// Name of the agentsh user-mode service (the kernel service of the driver is `agentsh`).
pub const SERVICE_NAME: &str = "AgentSHService";
/// Its display name.
pub const SERVICE_DISPLAY_NAME: &str = "AgentSH policy service";

/// SCM failures: the step, the service and the Win32 error.
#[derive(Debug, thiserror::Error)]
pub enum ScmError {
    #[error("service `{service}` is not installed (run `agentsh {hint} install` as Administrator)")]
    NotInstalled { service: String, hint: &'static str },
    #[error("service `{service}`: {step}: {message} (win32 error {code})")]
    Os {
        service: String,
        step: String,
        code: u32,
        message: String,
    },
    #[error("service `{service}` did not reach state {wanted} within {seconds} s (state {state})")]
    Timeout {
        service: String,
        wanted: &'static str,
        state: u32,
        seconds: u64,
    },
    /// The process was not started by the SCM (ERROR_FAILED_SERVICE_CONTROLLER_CONNECT).
    #[error("not started by the service control manager")]
    NotAService,
}

struct ScHandle(SC_HANDLE);

impl Drop for ScHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from OpenSCManagerW/OpenServiceW/CreateServiceW; closed once.
        unsafe { CloseServiceHandle(self.0) };
    }
}

fn os(service: &str, step: &str) -> ScmError {
    let (code, message) = last_error();
    ScmError::Os {
        service: service.to_owned(),
        step: step.to_owned(),
        code,
        message,
    }
}

fn manager(service: &str, access: u32) -> Result<ScHandle, ScmError> {
    // SAFETY: null machine and database names select the local active database.
    let h = unsafe { OpenSCManagerW(null(), null(), access) };
    if h.is_null() {
        return Err(os(service, "OpenSCManagerW"));
    }
    Ok(ScHandle(h))
}

fn open(service: &str, access: u32, hint: &'static str) -> Result<ScHandle, ScmError> {
    let scm = manager(service, SC_MANAGER_CONNECT)?;
    let name = wide(service);
    // SAFETY: `scm` is open and `name` NUL-terminated.
    let h = unsafe { OpenServiceW(scm.0, name.as_ptr(), access) };
    if h.is_null() {
        let (code, message) = last_error();
        if code == ERROR_SERVICE_DOES_NOT_EXIST {
            return Err(ScmError::NotInstalled {
                service: service.to_owned(),
                hint,
            });
        }
        return Err(ScmError::Os {
            service: service.to_owned(),
            step: "OpenServiceW".into(),
            code,
            message,
        });
    }
    Ok(ScHandle(h))
}

/// What to register.
#[derive(Debug)]
pub struct ServiceSpec<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub kind: ENUM_SERVICE_TYPE,
    pub start: SERVICE_START_TYPE,
    /// Image path with arguments (user services) or `System32\drivers\x.sys` (drivers).
    pub binary: &'a str,
    pub group: Option<&'a str>,
    pub dependencies: &'a [&'a str],
}

/// Registers a service; an existing registration is an error naming it.
pub fn create(spec: &ServiceSpec<'_>) -> Result<(), ScmError> {
    let scm = manager(spec.name, SC_MANAGER_ALL_ACCESS)?;
    let name = wide(spec.name);
    let display = wide(spec.display_name);
    let binary = wide(spec.binary);
    let group = spec.group.map(wide);
    // REG_MULTI_SZ-style list: each name NUL-terminated, then a final NUL.
    let mut deps: Vec<u16> = spec.dependencies.iter().flat_map(|d| wide(d)).collect();
    deps.push(0);
    // SAFETY: every string is NUL-terminated and outlives the call.
    let h = unsafe {
        CreateServiceW(
            scm.0,
            name.as_ptr(),
            display.as_ptr(),
            SERVICE_ALL_ACCESS,
            spec.kind,
            spec.start,
            SERVICE_ERROR_NORMAL,
            binary.as_ptr(),
            group.as_ref().map_or(null(), |g| g.as_ptr()),
            null_mut(),
            if spec.dependencies.is_empty() {
                null()
            } else {
                deps.as_ptr()
            },
            null(),
            null(),
        )
    };
    if h.is_null() {
        return Err(os(spec.name, "CreateServiceW"));
    }
    drop(ScHandle(h));
    Ok(())
}

/// Stops (if running) and deletes a service; an absent service is not an error.
pub fn delete(service: &str, hint: &'static str) -> Result<(), ScmError> {
    match stop(service, hint) {
        Ok(()) | Err(ScmError::NotInstalled { .. }) => {}
        Err(e) => return Err(e),
    }
    let h = match open(service, SERVICE_ALL_ACCESS, hint) {
        Ok(h) => h,
        Err(ScmError::NotInstalled { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    // SAFETY: `h` is open with DELETE access (SERVICE_ALL_ACCESS).
    if unsafe { DeleteService(h.0) } == 0 {
        return Err(os(service, "DeleteService"));
    }
    Ok(())
}

/// Current state (SERVICE_RUNNING, SERVICE_STOPPED, ...).
pub fn state(service: &str, hint: &'static str) -> Result<u32, ScmError> {
    let h = open(service, SERVICE_QUERY_STATUS, hint)?;
    // SAFETY: SERVICE_STATUS is plain data filled by the call.
    let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
    // SAFETY: `h` is open with query access; `status` is a valid out-pointer.
    if unsafe { QueryServiceStatus(h.0, &mut status) } == 0 {
        return Err(os(service, "QueryServiceStatus"));
    }
    Ok(status.dwCurrentState)
}

fn wait_for(
    service: &str,
    hint: &'static str,
    wanted: u32,
    label: &'static str,
) -> Result<(), ScmError> {
    let limit = Duration::from_secs(30);
    let started = Instant::now();
    loop {
        let now = state(service, hint)?;
        if now == wanted {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(ScmError::Timeout {
                service: service.to_owned(),
                wanted: label,
                state: now,
                seconds: limit.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts a service and waits until it runs; already running is fine.
pub fn start(service: &str, hint: &'static str) -> Result<(), ScmError> {
    let h = open(service, SERVICE_ALL_ACCESS, hint)?;
    // SAFETY: `h` is open with start access; no arguments are passed.
    if unsafe { StartServiceW(h.0, 0, null()) } == 0 {
        let (code, message) = last_error();
        if code != ERROR_SERVICE_ALREADY_RUNNING {
            return Err(ScmError::Os {
                service: service.to_owned(),
                step: "StartServiceW".into(),
                code,
                message,
            });
        }
    }
    wait_for(service, hint, SERVICE_RUNNING, "running")
}

/// Asks a service to stop and waits until it has; not running is fine.
pub fn stop(service: &str, hint: &'static str) -> Result<(), ScmError> {
    let h = open(service, SERVICE_ALL_ACCESS, hint)?;
    // SAFETY: SERVICE_STATUS is plain data filled by the call.
    let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
    // SAFETY: `h` is open with stop access; `status` is a valid out-pointer.
    if unsafe { ControlService(h.0, SERVICE_CONTROL_STOP, &mut status) } == 0 {
        let (code, message) = last_error();
        if code == ERROR_SERVICE_NOT_ACTIVE {
            return Ok(());
        }
        return Err(ScmError::Os {
            service: service.to_owned(),
            step: "ControlService(stop)".into(),
            code,
            message,
        });
    }
    wait_for(service, hint, SERVICE_STOPPED, "stopped")
}

/// Installs the agentsh service: copies `source` to `%ProgramFiles%\agentsh\agentsh.exe` (a folder
/// only SYSTEM and Administrators may write, [`service::INSTALL_DIR_SDDL`]), registers that copy
/// (own process, automatic start, depending on the driver's kernel service), and sets its
/// description, failure recovery ([`service::RECOVERY`]) and an unrestricted service SID. Returns
/// the installed binary's path (the Event Log source's message file too) and the settings this
/// SCM does not know (`ERROR_INVALID_LEVEL`), which the caller must report.
pub fn install_agentsh_service(source: &Path) -> Result<(PathBuf, Vec<String>), ScmError> {
    let fail = |step: String, e: std::io::Error| ScmError::Os {
        service: SERVICE_NAME.into(),
        step,
        code: e.raw_os_error().unwrap_or(0) as u32,
        message: e.to_string(),
    };
    let program_files = std::env::var_os("ProgramW6432")
        .or_else(|| std::env::var_os("ProgramFiles"))
        .map(PathBuf::from)
        .ok_or_else(|| ScmError::Os {
            service: SERVICE_NAME.into(),
            step: "finding %ProgramFiles%".into(),
            code: 0,
            message: "neither ProgramW6432 nor ProgramFiles is set".into(),
        })?;
    let installed = service::install_path(&program_files);
    let folder = installed.parent().unwrap_or(&program_files).to_path_buf();
    std::fs::create_dir_all(&folder)
        .map_err(|e| fail(format!("creating `{}`", folder.display()), e))?;
    protect_install_folder(&folder)?;
    let same = std::fs::canonicalize(source).ok() == std::fs::canonicalize(&installed).ok();
    if !same {
        std::fs::copy(source, &installed).map_err(|e| {
            fail(
                format!(
                    "copying `{}` to `{}` (stop the running service first to upgrade)",
                    source.display(),
                    installed.display()
                ),
                e,
            )
        })?;
    }
    let binary = service::image_path(&installed);
    create(&ServiceSpec {
        name: SERVICE_NAME,
        display_name: SERVICE_DISPLAY_NAME,
        kind: SERVICE_WIN32_OWN_PROCESS,
        start: SERVICE_AUTO_START,
        binary: &binary,
        group: None,
        dependencies: service::DEPENDENCIES,
    })?;
    match configure_agentsh_service() {
        Ok(unsupported) => Ok((installed, unsupported)),
        Err(e) => {
            // A service without its recovery settings is not what was asked for: take it away.
            let _ = delete(SERVICE_NAME, "service");
            Err(e)
        }
    }
}

/// Gives the install folder its protected, admin-only DACL (inherited by the binary).
pub fn protect_install_folder(folder: &Path) -> Result<(), ScmError> {
    security::apply_sddl(
        &folder.display().to_string(),
        SE_FILE_OBJECT,
        service::INSTALL_DIR_SDDL,
        Parts {
            dacl: true,
            label: false,
        },
    )
    .map_err(|f| ScmError::Os {
        service: SERVICE_NAME.into(),
        step: f.step,
        code: f.code,
        message: f.message,
    })
}

/// Description, failure recovery (also for failures that are not crashes) and service SID of
/// the installed agentsh service. The description and the failure actions must be applied; the
/// non-crash flag and the service SID are returned as warnings when the SCM does not know their
/// level (`ERROR_INVALID_LEVEL`, e.g. Wine), and fail otherwise.
pub fn configure_agentsh_service() -> Result<Vec<String>, ScmError> {
    let h = open(SERVICE_NAME, SERVICE_ALL_ACCESS, "service")?;
    let mut description = wide(service::DESCRIPTION);
    let info = SERVICE_DESCRIPTIONW {
        lpDescription: description.as_mut_ptr(),
    };
    change_config2(&h, SERVICE_CONFIG_DESCRIPTION, &info, "description")?;
    let r = service::RECOVERY;
    let mut actions = r.restart_delays_ms.map(|delay| SC_ACTION {
        Type: SC_ACTION_RESTART,
        Delay: delay,
    });
    let failure = SERVICE_FAILURE_ACTIONSW {
        dwResetPeriod: r.reset_period_secs,
        lpRebootMsg: null_mut(),
        lpCommand: null_mut(),
        cActions: actions.len() as u32,
        lpsaActions: actions.as_mut_ptr(),
    };
    change_config2(
        &h,
        SERVICE_CONFIG_FAILURE_ACTIONS,
        &failure,
        "failure actions",
    )?;
    let mut unsupported = Vec::new();
    let mut optional = |result: Result<(), ScmError>, consequence: &str| match result {
        Err(ScmError::Os { code, step, .. }) if code == ERROR_INVALID_LEVEL => {
            unsupported.push(format!(
                "{step} is not supported by this service control manager: {consequence}"
            ));
            Ok(())
        }
        other => other,
    };
    let flag = SERVICE_FAILURE_ACTIONS_FLAG {
        fFailureActionsOnNonCrashFailures: i32::from(r.on_non_crash_failures),
    };
    optional(
        change_config2(
            &h,
            SERVICE_CONFIG_FAILURE_ACTIONS_FLAG,
            &flag,
            "failure actions on non-crash failures",
        ),
        "the service is restarted after a crash but not after it stops with an error (e.g. the driver never came up)",
    )?;
    let sid = SERVICE_SID_INFO {
        dwServiceSidType: SERVICE_SID_TYPE_UNRESTRICTED,
    };
    optional(
        change_config2(&h, SERVICE_CONFIG_SERVICE_SID_INFO, &sid, "service SID"),
        "objects cannot be granted to the service by its own SID",
    )?;
    Ok(unsupported)
}

fn change_config2<T>(h: &ScHandle, level: u32, info: &T, what: &str) -> Result<(), ScmError> {
    // SAFETY: `h` is an open service handle with SERVICE_CHANGE_CONFIG; `info` is the structure
    // `level` names and lives (with what it points to) for the call.
    let ok = unsafe { ChangeServiceConfig2W(h.0, level, (info as *const T).cast()) };
    if ok == 0 {
        return Err(os(SERVICE_NAME, &format!("ChangeServiceConfig2W({what})")));
    }
    Ok(())
}

/// What the SCM holds for the agentsh service, read back (for tests and `service install`'s
/// report): image path, start type, dependencies, failure actions' reset period and delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledConfig {
    pub binary: String,
    pub start_type: u32,
    pub dependencies: Vec<String>,
    /// The failure actions' reset period and restart delays; `None` when this SCM cannot report
    /// them (`ERROR_INVALID_LEVEL`: Wine stores them but does not answer the query).
    pub recovery: Option<(u32, Vec<u32>)>,
    pub description: String,
}

/// Reads the agentsh service's configuration back from the SCM.
pub fn installed_config() -> Result<InstalledConfig, ScmError> {
    let h = open(SERVICE_NAME, SERVICE_QUERY_CONFIG, "service")?;
    let mut needed = 0u32;
    // SAFETY: a size query with an empty buffer; `needed` receives the size.
    unsafe { QueryServiceConfigW(h.0, null_mut(), 0, &mut needed) };
    let mut buf = vec![0u64; (needed as usize).div_ceil(8).max(1)];
    // SAFETY: `buf` is 8-byte aligned and at least `needed` bytes long.
    let ok = unsafe {
        QueryServiceConfigW(
            h.0,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut needed,
        )
    };
    if ok == 0 {
        return Err(os(SERVICE_NAME, "QueryServiceConfigW"));
    }
    // SAFETY: the call filled `buf` with a QUERY_SERVICE_CONFIGW and the strings it points to.
    let config = unsafe { &*(buf.as_ptr() as *const QUERY_SERVICE_CONFIGW) };
    // SAFETY: the strings point into `buf`, NUL-terminated (dependencies double-NUL-terminated).
    let binary = unsafe { read_wide(config.lpBinaryPathName) };
    let mut dependencies = Vec::new();
    let mut p = config.lpDependencies;
    while !p.is_null() {
        // SAFETY: `p` points at the next string of the double-NUL-terminated list in `buf`.
        let name = unsafe { read_wide(p) };
        if name.is_empty() {
            break;
        }
        // SAFETY: the next string starts after this one's terminator, still inside `buf`.
        p = unsafe { p.add(name.encode_utf16().count() + 1) };
        dependencies.push(name);
    }
    let recovery = match query_config2(&h, SERVICE_CONFIG_FAILURE_ACTIONS) {
        Ok(failure) => {
            // SAFETY: the buffer holds a SERVICE_FAILURE_ACTIONSW and the actions it points to.
            let fa = unsafe { &*(failure.as_ptr() as *const SERVICE_FAILURE_ACTIONSW) };
            let delays = if fa.lpsaActions.is_null() {
                Vec::new()
            } else {
                // SAFETY: `cActions` actions follow in the buffer.
                unsafe { std::slice::from_raw_parts(fa.lpsaActions, fa.cActions as usize) }
                    .iter()
                    .filter(|a| a.Type == SC_ACTION_RESTART)
                    .map(|a| a.Delay)
                    .collect()
            };
            Some((fa.dwResetPeriod, delays))
        }
        Err(ScmError::Os { code, .. }) if code == ERROR_INVALID_LEVEL => None,
        Err(e) => return Err(e),
    };
    let descr = query_config2(&h, SERVICE_CONFIG_DESCRIPTION)?;
    // SAFETY: the buffer holds a SERVICE_DESCRIPTIONW whose string lies inside it (or is NULL).
    let description =
        unsafe { read_wide((*(descr.as_ptr() as *const SERVICE_DESCRIPTIONW)).lpDescription) };
    Ok(InstalledConfig {
        binary,
        start_type: config.dwStartType,
        dependencies,
        recovery,
        description,
    })
}

fn query_config2(h: &ScHandle, level: u32) -> Result<Vec<u64>, ScmError> {
    let mut needed = 0u32;
    // SAFETY: a size query with an empty buffer; `needed` receives the size.
    unsafe { QueryServiceConfig2W(h.0, level, null_mut(), 0, &mut needed) };
    let mut buf = vec![0u64; (needed as usize).div_ceil(8).max(4)];
    // SAFETY: `buf` is 8-byte aligned and at least `needed` bytes long.
    let ok = unsafe {
        QueryServiceConfig2W(
            h.0,
            level,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut needed,
        )
    };
    if ok == 0 {
        return Err(os(SERVICE_NAME, &format!("QueryServiceConfig2W({level})")));
    }
    Ok(buf)
}

/// A NUL-terminated UTF-16 string; empty for NULL.
///
/// # Safety
/// `p` is NULL or points at a NUL-terminated UTF-16 string.
unsafe fn read_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut n = 0usize;
    // SAFETY: the caller guarantees a terminator; reading stops there.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` units before the terminator are valid.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Set by the SCM control handler; the service body waits on it.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<(Mutex<bool>, Condvar)>);

impl StopSignal {
    /// Asks the body to stop.
    pub fn stop(&self) {
        let (flag, cvar) = &*self.0;
        if let Ok(mut stopped) = flag.lock() {
            *stopped = true;
            cvar.notify_all();
        }
    }

    /// Waits up to `timeout`; true once a stop was requested.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (flag, cvar) = &*self.0;
        let Ok(guard) = flag.lock() else { return true };
        match cvar.wait_timeout_while(guard, timeout, |stopped| !*stopped) {
            Ok((guard, _)) => *guard,
            Err(_) => true,
        }
    }
}

type Body = Box<dyn Fn(StopSignal) -> Result<(), String> + Send + Sync>;

struct Dispatch {
    body: Body,
    stop: StopSignal,
    handle: Mutex<usize>,
    outcome: Mutex<Option<Result<(), String>>>,
    /// `dwCheckPoint` of the pending state, raised at every progress report.
    checkpoint: AtomicU32,
}

/// Service-specific exit code of a body that failed (`dwServiceSpecificExitCode` with
/// `ERROR_SERVICE_SPECIFIC_ERROR`).
pub const EXIT_BODY_FAILED: u32 = 1;
/// ERROR_SERVICE_SPECIFIC_ERROR.
const ERROR_SERVICE_SPECIFIC_ERROR: u32 = 1066;

static DISPATCH: OnceLock<Dispatch> = OnceLock::new();

fn report(state: u32, exit_code: u32) {
    let Some(d) = DISPATCH.get() else { return };
    let Ok(handle) = d.handle.lock() else { return };
    if *handle == 0 {
        return;
    }
    let pending = state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING;
    let checkpoint = if pending {
        d.checkpoint.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        0
    };
    let (win32, specific) = if exit_code == 0 {
        (NO_ERROR, 0)
    } else {
        (ERROR_SERVICE_SPECIFIC_ERROR, exit_code)
    };
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: if state == SERVICE_RUNNING {
            SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN
        } else {
            0
        },
        dwWin32ExitCode: win32,
        dwServiceSpecificExitCode: specific,
        dwCheckPoint: checkpoint,
        dwWaitHint: if pending { 10_000 } else { 0 },
    };
    // SAFETY: the handle came from RegisterServiceCtrlHandlerExW; `status` is valid.
    unsafe { SetServiceStatus(*handle as SERVICE_STATUS_HANDLE, &status) };
}

unsafe extern "system" fn control_handler(
    control: u32,
    _: u32,
    _: *mut core::ffi::c_void,
    _: *mut core::ffi::c_void,
) -> u32 {
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            report(SERVICE_STOP_PENDING, NO_ERROR);
            if let Some(d) = DISPATCH.get() {
                d.stop.stop();
            }
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        // ERROR_CALL_NOT_IMPLEMENTED for controls we do not accept.
        _ => 120,
    }
}

unsafe extern "system" fn service_main(_: u32, _: *mut *mut u16) {
    let Some(d) = DISPATCH.get() else { return };
    let name = wide(SERVICE_NAME);
    // SAFETY: `name` is NUL-terminated; the handler is a 'static function.
    let handle =
        unsafe { RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(control_handler), null()) };
    if handle.is_null() {
        if let Ok(mut outcome) = d.outcome.lock() {
            let (code, text) = last_error();
            *outcome = Some(Err(format!(
                "RegisterServiceCtrlHandlerExW: {text} (win32 error {code})"
            )));
        }
        return;
    }
    if let Ok(mut h) = d.handle.lock() {
        *h = handle as usize;
    }
    // START_PENDING until the body says it serves ([`report_running`]); it raises the
    // checkpoint while it waits for the driver ([`report_start_progress`]).
    report(SERVICE_START_PENDING, NO_ERROR);
    let result = (d.body)(d.stop.clone());
    let exit = if result.is_ok() { 0 } else { EXIT_BODY_FAILED };
    // The outcome is stored before SERVICE_STOPPED: once the SCM sees STOPPED, the dispatcher may
    // return and `run_as_service` reads it. A non-zero exit (ERROR_SERVICE_SPECIFIC_ERROR) makes
    // the SCM log the failure and apply the recovery actions.
    if let Ok(mut outcome) = d.outcome.lock() {
        *outcome = Some(result);
    }
    report(SERVICE_STOPPED, exit);
}

/// Tells the SCM the service now serves (`SERVICE_RUNNING`, stop and shutdown accepted). Does
/// nothing when the process is not running under the SCM.
pub fn report_running() {
    report(SERVICE_RUNNING, NO_ERROR);
}

/// Tells the SCM the start is still progressing (`SERVICE_START_PENDING` with the next
/// checkpoint), while the body waits for the driver. Does nothing outside the SCM.
pub fn report_start_progress() {
    report(SERVICE_START_PENDING, NO_ERROR);
}

/// Runs `body` as the agentsh service under the SCM dispatcher. Returns [`ScmError::NotAService`]
/// at once when the process was started from a console, so the caller can run `body` directly.
pub fn run_as_service(
    body: impl Fn(StopSignal) -> Result<(), String> + Send + Sync + 'static,
) -> Result<(), ScmError> {
    let installed = DISPATCH.set(Dispatch {
        body: Box::new(body),
        stop: StopSignal::default(),
        handle: Mutex::new(0),
        outcome: Mutex::new(None),
        checkpoint: AtomicU32::new(0),
    });
    if installed.is_err() {
        return Err(ScmError::Os {
            service: SERVICE_NAME.into(),
            step: "dispatcher already ran in this process".into(),
            code: 0,
            message: String::new(),
        });
    }
    let mut name = wide(SERVICE_NAME);
    let table = [
        SERVICE_TABLE_ENTRYW {
            lpServiceName: name.as_mut_ptr(),
            lpServiceProc: Some(service_main),
        },
        SERVICE_TABLE_ENTRYW {
            lpServiceName: null_mut(),
            lpServiceProc: None,
        },
    ];
    // SAFETY: the table is NULL-terminated and lives until the dispatcher returns.
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } == 0 {
        let (code, message) = last_error();
        if code == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT {
            return Err(ScmError::NotAService);
        }
        return Err(ScmError::Os {
            service: SERVICE_NAME.into(),
            step: "StartServiceCtrlDispatcherW".into(),
            code,
            message,
        });
    }
    let outcome = DISPATCH
        .get()
        .and_then(|d| d.outcome.lock().ok().and_then(|mut o| o.take()))
        .unwrap_or(Ok(()));
    outcome.map_err(|message| ScmError::Os {
        service: SERVICE_NAME.into(),
        step: "service body".into(),
        code: ERROR_SERVICE_SPECIFIC_ERROR,
        message,
    })
}
