//! Service control manager: install, uninstall, start and stop a service (the agentsh service or the
//! driver's kernel service), and run the current process as a service under the SCM dispatcher.

use std::path::Path;
use std::ptr::{null, null_mut};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_FAILED_SERVICE_CONTROLLER_CONNECT, ERROR_SERVICE_ALREADY_RUNNING,
    ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_NOT_ACTIVE, NO_ERROR,
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

use super::util::{last_error, wide};

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

/// Registers the agentsh service: own process, automatic start, `"<exe>" service run`.
pub fn install_agentsh_service(exe: &Path) -> Result<(), ScmError> {
    let binary = format!("\"{}\" service run", exe.display());
    create(&ServiceSpec {
        name: SERVICE_NAME,
        display_name: SERVICE_DISPLAY_NAME,
        kind: SERVICE_WIN32_OWN_PROCESS,
        start: SERVICE_AUTO_START,
        binary: &binary,
        group: None,
        dependencies: &[],
    })
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
}

static DISPATCH: OnceLock<Dispatch> = OnceLock::new();

fn report(state: u32, exit_code: u32) {
    let Some(d) = DISPATCH.get() else { return };
    let Ok(handle) = d.handle.lock() else { return };
    if *handle == 0 {
        return;
    }
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: if state == SERVICE_RUNNING {
            SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN
        } else {
            0
        },
        dwWin32ExitCode: exit_code,
        dwServiceSpecificExitCode: 0,
        dwCheckPoint: 0,
        dwWaitHint: if state == SERVICE_RUNNING || state == SERVICE_STOPPED {
            0
        } else {
            10_000
        },
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
    report(SERVICE_START_PENDING, NO_ERROR);
    report(SERVICE_RUNNING, NO_ERROR);
    let result = (d.body)(d.stop.clone());
    // ERROR_SERVICE_SPECIFIC_ERROR makes the SCM log a failure.
    report(
        SERVICE_STOPPED,
        if result.is_ok() { NO_ERROR } else { 1066 },
    );
    if let Ok(mut outcome) = d.outcome.lock() {
        *outcome = Some(result);
    }
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
        code: 1066,
        message,
    })
}
