//! The sandbox on Windows: AppContainer profile, ACL grants recorded in the grant journal, job
//! object, suspended start with session registration, full output capture, and the restricted-token
//! fallback when AppContainer is unavailable.

use std::ffi::c_void;
use std::fs::File;
use std::io::Write;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::sync::Arc;
use std::thread::JoinHandle;

use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, HANDLE, HANDLE_FLAG_INHERIT, SetHandleInformation,
    WAIT_OBJECT_0,
};
use windows_sys::Win32::Security::Authorization::{SE_FILE_OBJECT, SE_REGISTRY_KEY};
use windows_sys::Win32::Security::{SECURITY_CAPABILITIES, SID_AND_ATTRIBUTES};
use windows_sys::Win32::Storage::FileSystem::{
    DELETE, FILE_GENERIC_EXECUTE, FILE_GENERIC_READ, FILE_GENERIC_WRITE,
};
use windows_sys::Win32::System::IO::CancelSynchronousIo;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOBOBJECT_BASIC_UI_RESTRICTIONS,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectBasicUIRestrictions,
    JobObjectExtendedLimitInformation, SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Pipes::CreatePipe;
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, KEY_ALL_ACCESS, REG_OPTION_NON_VOLATILE, RegCloseKey, RegCreateKeyExW,
};
use windows_sys::Win32::System::SystemInformation::GetSystemDirectoryW;
use windows_sys::Win32::System::Threading::{
    CREATE_NO_WINDOW, CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT, CreateProcessAsUserW,
    CreateProcessW, DeleteProcThreadAttributeList, EXTENDED_STARTUPINFO_PRESENT,
    GetExitCodeProcess, InitializeProcThreadAttributeList, LPPROC_THREAD_ATTRIBUTE_LIST,
    PROC_THREAD_ATTRIBUTE_HANDLE_LIST, PROC_THREAD_ATTRIBUTE_SECURITY_CAPABILITIES,
    PROCESS_INFORMATION, ResumeThread, STARTF_USESTDHANDLES, STARTUPINFOEXW, TerminateProcess,
    UpdateProcThreadAttribute, WaitForSingleObject,
};

use super::security::{
    AppContainerApi, LocalSid, OsFailure, Parts, change_dacl, current_user_sid, new_session_sid,
    read_sddl, restricted_low_token, set_low_label,
};
use super::util::{owned, wide};
use crate::capture;
use crate::grants::{Grant, GrantJournal};
use crate::sandbox::{
    CancelToken, ExecResult, Isolation, JOB_LIMIT_FLAGS, JobLimits, SandboxConfig, SandboxError,
    SessionRegistrar, SessionStart, SessionTags, UI_RESTRICTIONS,
};
use crate::secure::LabelState;
use crate::{cmdline, environment};

/// Access of the container to its workspace: read, write, execute, delete.
const WORKSPACE_ACCESS: u32 =
    FILE_GENERIC_READ | FILE_GENERIC_WRITE | FILE_GENERIC_EXECUTE | DELETE;
/// Access of the container to allowed paths: read and execute.
const ALLOWED_ACCESS: u32 = FILE_GENERIC_READ | FILE_GENERIC_EXECUTE;
/// How often a running command checks its cancellation token.
const CANCEL_POLL_MS: u32 = 50;

/// A sandbox between `create` and `close`.
pub struct Sandbox {
    config: SandboxConfig,
    journal: GrantJournal,
    api: Option<AppContainerApi>,
    /// The container SID (AppContainer isolation only).
    container: Option<LocalSid>,
    isolation: Isolation,
    registrar: Option<Arc<dyn SessionRegistrar>>,
    /// What every registration names besides the process: set when the minifilter layer is on.
    session_template: Option<SessionStart>,
    fallback_reason: Option<String>,
    /// Limitations that weaken nothing but restrict the command (e.g. an unwritable workspace).
    warnings: Vec<String>,
    closed: bool,
    /// The journal's grants when they were kept for this workspace (`--keep-grants`): reused,
    /// each written again only if it is no longer in force.
    kept: Vec<Grant>,
    /// `<name>.lock`, open without sharing for the sandbox's lifetime.
    _lock: File,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("name", &self.config.name)
            .field("isolation", &self.isolation)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Sandbox {
    /// Creates the sandbox: undoes what a crashed predecessor of the same name left behind, then
    /// applies AppContainer (or, when it cannot and the configuration allows it, the fallback).
    pub fn create(
        config: SandboxConfig,
        registrar: Option<Arc<dyn SessionRegistrar>>,
    ) -> Result<Self, SandboxError> {
        config.validate()?;
        if config.use_minifilter && registrar.is_none() {
            return Err(SandboxError::NoRegistrar {
                name: config.name.clone(),
                reason: "no running agentsh service was given".into(),
            });
        }
        let session_template = if config.use_minifilter {
            Some(session_template(&config)?)
        } else {
            None
        };
        let journal = GrantJournal::in_dir(&config.journal_dir, &config.name)?;
        // Held until the sandbox is dropped: a second run with this name fails here instead of
        // undoing this run's grants below.
        let lock = journal.lock()?;
        let api = AppContainerApi::load();
        let workspace_path = object_path(&config.workspace).map_err(|f| SandboxError::Os {
            name: config.name.clone(),
            step: f.step,
            code: f.code,
            message: f.message,
        })?;
        let entries = journal.entries()?;
        // Kept grants are reused only for the same paths: one for a path no longer asked for
        // would leave it open, so then everything is undone and made anew.
        let mut wanted = vec![workspace_path.clone()];
        for path in &config.allowed_paths {
            wanted.push(object_path(path).map_err(|f| SandboxError::Os {
                name: config.name.clone(),
                step: f.step,
                code: f.code,
                message: f.message,
            })?);
        }
        let stale = entries.iter().any(|g| match g {
            Grant::File { path, .. } | Grant::Label { path } => {
                !wanted.iter().any(|w| w.eq_ignore_ascii_case(path))
            }
            _ => false,
        });
        let kept =
            if config.keep_grants && !stale && crate::grants::kept_for(&entries, &workspace_path) {
                entries
            } else {
                undo_grants(&config.name, &journal, api.as_ref().ok())?;
                Vec::new()
            };

        let mut sandbox = Sandbox {
            config,
            journal,
            api: None,
            container: None,
            isolation: Isolation::RestrictedToken,
            registrar,
            session_template,
            fallback_reason: None,
            warnings: Vec::new(),
            closed: false,
            kept,
            _lock: lock,
        };
        if sandbox.config.session_only {
            if !sandbox.config.use_minifilter {
                sandbox.closed = true;
                return Err(SandboxError::Path {
                    name: sandbox.config.name.clone(),
                    path: sandbox.config.workspace.display().to_string(),
                    reason: "a session-only sandbox needs the minifilter: it has no other wall"
                        .into(),
                });
            }
            sandbox.isolation = Isolation::SessionOnly;
            return Ok(sandbox);
        }
        let reason = if !sandbox.config.use_app_container {
            "appcontainer disabled by configuration (--no-appcontainer)".to_owned()
        } else {
            match api {
                Ok(api) => match sandbox.apply_app_container(api) {
                    Ok(()) => {
                        sandbox.label_or_warn();
                        sandbox.mark_kept(&workspace_path)?;
                        return Ok(sandbox);
                    }
                    Err(failure) => {
                        // Leave nothing half-applied before deciding what to do.
                        undo_grants(&sandbox.config.name, &sandbox.journal, Some(&api))?;
                        sandbox.kept.clear();
                        sandbox.container = None;
                        format!(
                            "{}: {} (win32 error {})",
                            failure.step, failure.message, failure.code
                        )
                    }
                },
                Err(reason) => reason,
            }
        };
        if let Some(refused) = sandbox.config.fallback_refused() {
            sandbox.closed = true;
            return Err(SandboxError::AppContainerRequired {
                name: sandbox.config.name.clone(),
                reason,
                refused,
            });
        }
        sandbox.label_or_warn();
        sandbox.mark_kept(&workspace_path)?;
        tracing::warn!(
            sandbox = %sandbox.config.name,
            reason = %reason,
            isolation = %Isolation::RestrictedToken,
            "appcontainer not applied; running with the fallback isolation"
        );
        sandbox.fallback_reason = Some(reason);
        Ok(sandbox)
    }

    /// With `--keep-grants`, records that the journal's grants stay after the run for this
    /// workspace (once).
    fn mark_kept(&self, workspace: &str) -> Result<(), SandboxError> {
        if self.config.keep_grants && !crate::grants::kept_for(&self.kept, workspace) {
            self.journal.record(&Grant::Kept {
                workspace: workspace.to_owned(),
            })?;
        }
        Ok(())
    }

    /// Journals and makes `grant` unless it was kept and is still in force
    /// ([`crate::grants::ensure`]).
    fn ensure(
        &self,
        grant: Grant,
        in_force: impl FnOnce() -> Result<bool, OsFailure>,
        make: impl FnOnce() -> Result<(), OsFailure>,
    ) -> Result<(), OsFailure> {
        crate::grants::ensure(
            &self.journal,
            &self.kept,
            &grant,
            in_force,
            make,
            journal_failure,
        )
        .map(drop)
    }

    fn apply_app_container(&mut self, api: AppContainerApi) -> Result<(), OsFailure> {
        let profile = self.config.profile_name();
        let profile_grant = Grant::Profile {
            name: profile.clone(),
        };
        if !self.kept.contains(&profile_grant) {
            self.record(profile_grant)?;
        }
        let (sid, _created) = api.create_or_open(&profile, "agentsh sandbox")?;
        let container = LocalSid::parse(&sid)?;
        self.api = Some(api);

        let workspace = object_path(&self.config.workspace)?;
        self.grant_file(&sid, &container, &workspace, WORKSPACE_ACCESS)?;
        for path in self.config.allowed_paths.clone() {
            let path = object_path(&path)?;
            self.grant_file(&sid, &container, &path, ALLOWED_ACCESS)?;
        }

        // AppContainer processes cannot write HKCU\Software; give the container its own key.
        let subkey = format!("SOFTWARE\\{}", self.config.app_key());
        create_user_key(&subkey)?;
        let key = format!("CURRENT_USER\\{subkey}");
        self.ensure(
            Grant::Registry {
                sid: sid.clone(),
                key: key.clone(),
            },
            || ace_present(&key, SE_REGISTRY_KEY, &sid),
            || {
                change_dacl(
                    &key,
                    SE_REGISTRY_KEY,
                    container.as_psid(),
                    KEY_ALL_ACCESS,
                    true,
                )
            },
        )?;
        // The container runs at Low integrity: an unlabelled key counts as Medium and no-write-up
        // would strip every write right the ACE grants. Label it Low for its subkeys too.
        self.ensure(
            Grant::KeyLabel { key: key.clone() },
            || {
                let label = read_sddl(
                    &key,
                    SE_REGISTRY_KEY,
                    Parts {
                        dacl: false,
                        label: true,
                    },
                )?;
                Ok(crate::secure::label_state(&label) == LabelState::Low)
            },
            || {
                crate::secure::label_app_key(&key, true).map_err(|message| OsFailure {
                    step: format!("labelling `{key}` low integrity"),
                    code: 0,
                    message,
                })
            },
        )?;

        self.container = Some(container);
        self.isolation = Isolation::AppContainer {
            network: self.config.network,
        };
        tracing::info!(sandbox = %self.config.name, profile = %profile, sid = %sid, isolation = %self.isolation, "sandbox created");
        Ok(())
    }

    /// Without a low label a low-integrity command (AppContainer or fallback) cannot write its
    /// workspace: that restricts the command and weakens nothing, so it is reported, not refused.
    fn label_or_warn(&mut self) {
        if let Err(failure) = self.label_workspace_low() {
            let warning = format!(
                "workspace `{}` not labelled low integrity ({}: {}): the command cannot write to it",
                self.config.workspace.display(),
                failure.step,
                failure.message
            );
            tracing::warn!(sandbox = %self.config.name, "{warning}");
            self.warnings.push(warning);
        }
    }

    /// Whether the output of the next commands is passed through as it arrives (the wall
    /// probe's is only captured).
    pub fn set_streaming(&mut self, on: bool) {
        self.config.capture.stream = on;
    }

    /// Limitations reported at creation (each also logged).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Low-integrity processes cannot write to the (implicitly medium) workspace: label it low unless
    /// it already carries an explicit label, and journal that so close undoes it.
    fn label_workspace_low(&self) -> Result<(), OsFailure> {
        let workspace = object_path(&self.config.workspace)?;
        let label = read_sddl(
            &workspace,
            SE_FILE_OBJECT,
            Parts {
                dacl: false,
                label: true,
            },
        )?;
        match crate::secure::label_state(&label) {
            LabelState::None => {}
            LabelState::Low => return Ok(()),
            LabelState::Above(ace) => {
                return Err(OsFailure {
                    step: format!("checking the integrity label of `{workspace}`"),
                    code: 0,
                    message: format!(
                        "it already carries the label {ace}, which a low-integrity process cannot write past; remove it (`icacls <dir> /setintegritylevel (OI)(CI)low`)"
                    ),
                });
            }
        }
        let before = self.journal.entries().map_err(journal_failure)?;
        self.record(Grant::Label {
            path: workspace.clone(),
        })?;
        let applied = set_low_label(&workspace, true);
        if applied.is_err() {
            // Nothing was changed: forget the record so close has nothing to undo.
            self.journal.keep_only(&before).map_err(journal_failure)?;
        }
        applied
    }

    fn grant_file(
        &self,
        sid: &str,
        container: &LocalSid,
        path: &str,
        access: u32,
    ) -> Result<(), OsFailure> {
        self.ensure(
            Grant::File {
                sid: sid.to_owned(),
                path: path.to_owned(),
            },
            || ace_present(path, SE_FILE_OBJECT, sid),
            || change_dacl(path, SE_FILE_OBJECT, container.as_psid(), access, true),
        )
    }

    fn record(&self, grant: Grant) -> Result<(), OsFailure> {
        self.journal.record(&grant).map_err(journal_failure)
    }

    /// The isolation every command of this sandbox runs under.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Why AppContainer is not in force, when it is not.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Runs `program args` in the workspace and returns its exit code and complete output.
    pub fn execute(
        &self,
        program: &str,
        args: &[String],
        cancel: &CancelToken,
    ) -> Result<ExecResult, SandboxError> {
        self.execute_tagged(program, args, cancel, &SessionTags::default())
    }

    /// [`Sandbox::execute`] with what its session registration carries beyond the sandbox's
    /// (the wall check's canary or result).
    pub fn execute_tagged(
        &self,
        program: &str,
        args: &[String],
        cancel: &CancelToken,
        tags: &SessionTags,
    ) -> Result<ExecResult, SandboxError> {
        if self.closed {
            return Err(SandboxError::Closed {
                name: self.config.name.clone(),
            });
        }
        let os = |f: OsFailure| self.os_error(f);
        let (stdout_read, stdout_write) = pipe(ChildEnd::Write).map_err(os)?;
        let (stderr_read, stderr_write) = pipe(ChildEnd::Write).map_err(os)?;
        let (stdin_read, stdin_write) = pipe(ChildEnd::Read).map_err(os)?;
        drop(stdin_write);

        let capabilities: Vec<LocalSid> = match self.isolation {
            Isolation::AppContainer { network } => network
                .capability_sids()
                .iter()
                .map(|s| LocalSid::parse(s))
                .collect::<Result<_, _>>()
                .map_err(os)?,
            Isolation::RestrictedToken | Isolation::SessionOnly => Vec::new(),
        };
        let mut cap_attrs: Vec<SID_AND_ATTRIBUTES> = capabilities
            .iter()
            .map(|c| SID_AND_ATTRIBUTES {
                Sid: c.as_psid(),
                Attributes: SE_GROUP_ENABLED,
            })
            .collect();
        let security = self.container.as_ref().map(|sid| SECURITY_CAPABILITIES {
            AppContainerSid: sid.as_psid(),
            Capabilities: if cap_attrs.is_empty() {
                null_mut()
            } else {
                cap_attrs.as_mut_ptr()
            },
            CapabilityCount: cap_attrs.len() as u32,
            Reserved: 0,
        });
        let inherit: [HANDLE; 3] = [
            stdin_read.as_raw_handle(),
            stdout_write.as_raw_handle(),
            stderr_write.as_raw_handle(),
        ];
        let mut attributes = AttributeList::new(&inherit, security.as_ref()).map_err(os)?;

        // SAFETY: STARTUPINFOEXW is plain data; zero is its initial state before the fields below.
        let mut startup: STARTUPINFOEXW = unsafe { std::mem::zeroed() };
        startup.StartupInfo.cb = size_of::<STARTUPINFOEXW>() as u32;
        startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
        startup.StartupInfo.hStdInput = inherit[0];
        startup.StartupInfo.hStdOutput = inherit[1];
        startup.StartupInfo.hStdError = inherit[2];
        startup.lpAttributeList = attributes.as_mut_ptr();

        // Batch files run through the system's cmd.exe with their arguments escaped for it
        // (crate::cmdline); what cmd cannot carry is refused before anything starts.
        let launch = cmdline::launch(program, args, &system_cmd().map_err(os)?).map_err(|e| {
            SandboxError::Path {
                name: self.config.name.clone(),
                path: program.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let application = launch.application.as_ref().map(wide);
        let application_ptr = application.as_ref().map_or(null(), |a| a.as_ptr());
        let mut command_line = wide(&launch.command_line);
        let directory = wide(&self.config.workspace);
        // A constructed environment (crate::environment): the allow-list, and TEMP/TMP/APPDATA/
        // LOCALAPPDATA in folders of the workspace the command can write.
        let folders = environment::Folders::in_workspace(&self.config.workspace);
        for dir in folders.all() {
            std::fs::create_dir_all(dir).map_err(|e| {
                os(OsFailure {
                    step: format!("creating `{}`", dir.display()),
                    code: e.raw_os_error().unwrap_or(0) as u32,
                    message: e.to_string(),
                })
            })?;
        }
        let env_block = environment::block(&environment::build(
            std::env::vars_os(),
            &self.config.pass_env,
            &folders,
        ));
        let flags = EXTENDED_STARTUPINFO_PRESENT
            | CREATE_SUSPENDED
            | CREATE_UNICODE_ENVIRONMENT
            | CREATE_NO_WINDOW;
        // SAFETY: PROCESS_INFORMATION is plain data filled by the call.
        let mut info: PROCESS_INFORMATION = unsafe { std::mem::zeroed() };
        let ok = match self.isolation {
            Isolation::AppContainer { .. } | Isolation::SessionOnly => {
                // SAFETY: every pointer is valid for the call; the command line buffer is mutable
                // as CreateProcessW requires; handles in the list are inheritable and open.
                unsafe {
                    CreateProcessW(
                        application_ptr,
                        command_line.as_mut_ptr(),
                        null(),
                        null(),
                        1,
                        flags,
                        env_block.as_ptr().cast(),
                        directory.as_ptr(),
                        &startup.StartupInfo,
                        &mut info,
                    )
                }
            }
            Isolation::RestrictedToken => {
                // A fresh SID per session, among the token's restricting SIDs: agentsh.sys
                // reads it from the root's token and recognises brokers impersonating it.
                let session_sid = new_session_sid().map_err(os)?;
                tracing::debug!(sandbox = %self.config.name, sid = %session_sid, "fallback session SID");
                let token = restricted_low_token(&session_sid).map_err(os)?;
                // SAFETY: as above; `token` is a primary token derived from our own.
                unsafe {
                    CreateProcessAsUserW(
                        token.as_raw_handle(),
                        application_ptr,
                        command_line.as_mut_ptr(),
                        null(),
                        null(),
                        1,
                        flags,
                        env_block.as_ptr().cast(),
                        directory.as_ptr(),
                        &startup.StartupInfo,
                        &mut info,
                    )
                }
            }
        };
        if ok == 0 {
            return Err(os(OsFailure::last(format!("starting `{program}`"))));
        }
        let process = owned(info.hProcess).ok_or_else(|| os(OsFailure::last("process handle")))?;
        let thread = owned(info.hThread).ok_or_else(|| os(OsFailure::last("thread handle")))?;
        // Only the child holds the write ends now, so the readers see EOF when it (and its
        // children) exit.
        drop(stdout_write);
        drop(stderr_write);
        drop(stdin_read);
        drop(attributes);

        let job = match job_for(&process, self.config.job_limits) {
            Ok(job) => job,
            Err(f) => {
                kill(&process);
                return Err(os(f));
            }
        };
        let session = match (&self.registrar, &self.session_template) {
            (Some(registrar), Some(template)) => {
                let start = SessionStart {
                    root_pid: info.dwProcessId,
                    canary: tags.canary.clone(),
                    wall_check: tags.wall_check.clone(),
                    ..template.clone()
                };
                match registrar.register(&start) {
                    Ok(id) => Some(id),
                    Err(reason) => {
                        // Still suspended: it has not run a single instruction of the command.
                        kill(&process);
                        return Err(SandboxError::Registration {
                            name: self.config.name.clone(),
                            pid: info.dwProcessId,
                            reason,
                        });
                    }
                }
            }
            _ => None,
        };
        let outcome = self.run_to_exit(&process, &thread, &job, stdout_read, stderr_read, cancel);
        // The session ends however the command did, so the service keeps no stale session.
        if let (Some(id), Some(registrar)) = (&session, &self.registrar)
            && let Err(reason) = registrar.unregister(id)
        {
            tracing::warn!(sandbox = %self.config.name, session = %id, reason = %reason, "session unregistration failed");
        }
        Ok(ExecResult {
            session,
            ..outcome?
        })
    }

    /// Resumes the (registered) process, waits for it while watching `cancel`, and collects its
    /// exit code and output (the session is filled in by the caller).
    fn run_to_exit(
        &self,
        process: &OwnedHandle,
        thread: &OwnedHandle,
        job: &OwnedHandle,
        stdout_read: OwnedHandle,
        stderr_read: OwnedHandle,
        cancel: &CancelToken,
    ) -> Result<ExecResult, SandboxError> {
        let os = |f: OsFailure| self.os_error(f);
        let stdout = self.reader(stdout_read, "stdout");
        let stderr = self.reader(stderr_read, "stderr");
        // SAFETY: `thread` is the suspended main thread of the process we created.
        let resumed = unsafe { ResumeThread(thread.as_raw_handle()) };
        if resumed == u32::MAX {
            let failure = OsFailure::last("ResumeThread");
            kill(process);
            return Err(os(failure));
        }

        let mut cancelled = false;
        loop {
            // SAFETY: waits on a process handle we own.
            let wait = unsafe { WaitForSingleObject(process.as_raw_handle(), CANCEL_POLL_MS) };
            if wait == WAIT_OBJECT_0 {
                break;
            }
            if cancel.is_cancelled() && !cancelled {
                cancelled = true;
                // SAFETY: terminates every process in the job we own.
                unsafe { TerminateJobObject(job.as_raw_handle(), 1) };
            }
        }
        let mut exit_code = 0u32;
        // SAFETY: `process` has exited; `exit_code` is a valid out-pointer.
        let ok = unsafe { GetExitCodeProcess(process.as_raw_handle(), &mut exit_code) };
        if ok == 0 {
            return Err(os(OsFailure::last("GetExitCodeProcess")));
        }
        // Background children of the command end with it, so nothing in the job keeps the pipes
        // open; a process outside the job (a broker) still could, so the joins are bounded.
        // SAFETY: terminates what is left in the job we own.
        unsafe { TerminateJobObject(job.as_raw_handle(), exit_code) };
        let grace = self.config.capture.join_grace;
        let stdout = capture::join_bounded(stdout, grace, cancel_read)
            .map_err(|e| self.io_error("reading stdout", e))?;
        let stderr = capture::join_bounded(stderr, grace, cancel_read)
            .map_err(|e| self.io_error("reading stderr", e))?;
        Ok(ExecResult {
            exit_code,
            stdout,
            stderr,
            isolation: self.isolation,
            session: None,
            cancelled,
        })
    }

    /// Reads a pipe to its end on its own thread, so stdout and stderr drain concurrently and a
    /// child filling one pipe never deadlocks against us waiting on the other; each chunk is
    /// streamed when asked and captured up to the memory limit, then spilled to a file.
    fn reader(&self, handle: OwnedHandle, stream: &'static str) -> capture::Reader {
        let config = &self.config.capture;
        let tee: Option<Box<dyn Write + Send>> = match (config.stream, stream) {
            (false, _) => None,
            (true, "stdout") => Some(Box::new(std::io::stdout())),
            (true, _) => Some(Box::new(std::io::stderr())),
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let spill = config.spill_dir.join(format!(
            "{}-{}-{stamp}.{stream}",
            self.config.name,
            std::process::id()
        ));
        let limit = config.memory_limit;
        capture::spawn(move || capture::pump(File::from(handle), tee, limit, &spill, pipe_ended))
    }

    /// Removes every grant and the profile. Errors name what could not be removed; those grants stay
    /// in the journal and are retried on the next start.
    pub fn close(mut self) -> Result<(), SandboxError> {
        self.closed = true;
        if self.config.keep_grants {
            // Kept for the next run with this name and workspace (`agentsh sandbox reset`).
            return Ok(());
        }
        undo_grants(&self.config.name, &self.journal, self.api.as_ref())
    }

    fn os_error(&self, f: OsFailure) -> SandboxError {
        SandboxError::Os {
            name: self.config.name.clone(),
            step: f.step,
            code: f.code,
            message: f.message,
        }
    }

    fn io_error(&self, step: &str, e: std::io::Error) -> SandboxError {
        SandboxError::Os {
            name: self.config.name.clone(),
            step: step.to_owned(),
            code: e.raw_os_error().unwrap_or(0) as u32,
            message: e.to_string(),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.closed
            && !self.config.keep_grants
            && let Err(e) = undo_grants(&self.config.name, &self.journal, self.api.as_ref())
        {
            tracing::error!(sandbox = %self.config.name, error = %e, "sandbox cleanup failed; grants stay journaled for the next start");
        }
    }
}

fn journal_failure(e: crate::grants::JournalError) -> OsFailure {
    OsFailure {
        step: "grant journal".into(),
        code: 0,
        message: e.to_string(),
    }
}

/// `SE_GROUP_ENABLED` (winnt.h).
const SE_GROUP_ENABLED: u32 = 0x4;

/// Whether `object`'s DACL has an entry for `sid` (a read; nothing is written).
fn ace_present(object: &str, kind: i32, sid: &str) -> Result<bool, OsFailure> {
    let dacl = read_sddl(
        object,
        kind,
        Parts {
            dacl: true,
            label: false,
        },
    )?;
    Ok(dacl
        .to_ascii_uppercase()
        .contains(&format!(";{})", sid.to_ascii_uppercase())))
}

/// `agentsh sandbox reset NAME`: undoes every grant the journal of `name` in `journal_dir` holds,
/// kept ones included, and deletes the journal; returns how many records it held. Refused while
/// a run with that name holds its lock.
pub fn reset(name: &str, journal_dir: &Path) -> Result<usize, SandboxError> {
    let probe = SandboxConfig::new(name, ".", journal_dir.to_owned());
    probe.validate()?;
    let journal = GrantJournal::in_dir(journal_dir, name)?;
    let _lock = journal.lock()?;
    let count = journal
        .entries()?
        .iter()
        .filter(|g| !matches!(g, Grant::Kept { .. }))
        .count();
    let api = AppContainerApi::load();
    undo_grants(name, &journal, api.as_ref().ok())?;
    Ok(count)
}

/// Undoes every journaled grant, newest first; keeps the ones that failed.
fn undo_grants(
    name: &str,
    journal: &GrantJournal,
    api: Option<&AppContainerApi>,
) -> Result<(), SandboxError> {
    let grants = journal.entries()?;
    let mut remaining = Vec::new();
    let mut first_error = None;
    for grant in grants.iter().rev() {
        let outcome = match grant {
            Grant::Kept { .. } => Ok(()),
            Grant::File { sid, path } => revoke(sid, path, SE_FILE_OBJECT),
            Grant::Registry { sid, key } => revoke(sid, key, SE_REGISTRY_KEY),
            Grant::KeyLabel { key } => {
                crate::secure::label_app_key(key, false).map_err(|message| OsFailure {
                    step: format!("removing the label of `{key}`"),
                    code: 0,
                    message,
                })
            }
            Grant::Label { path } => match set_low_label(path, false) {
                Err(f) if f.code == ERROR_FILE_NOT_FOUND || f.code == ERROR_PATH_NOT_FOUND => {
                    Ok(())
                }
                other => other,
            },
            Grant::Profile { name } => match api {
                Some(api) => api.delete(name),
                None => Err(OsFailure {
                    step: format!("deleting profile `{name}`"),
                    code: 0,
                    message: "appcontainer api unavailable".into(),
                }),
            },
        };
        if let Err(f) = outcome {
            first_error.get_or_insert(SandboxError::Os {
                name: name.to_owned(),
                step: format!("cleanup: {}", f.step),
                code: f.code,
                message: f.message,
            });
            remaining.insert(0, grant.clone());
        }
    }
    journal.keep_only(&remaining)?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn revoke(sid: &str, object: &str, kind: i32) -> Result<(), OsFailure> {
    let sid = LocalSid::parse(sid)?;
    match change_dacl(object, kind, sid.as_psid(), 0, false) {
        // The object is gone: nothing left to revoke.
        Err(f) if f.code == ERROR_FILE_NOT_FOUND || f.code == ERROR_PATH_NOT_FOUND => Ok(()),
        other => other,
    }
}

/// The registration fields every command of the sandbox shares (the process id is added per
/// command): the application key, the resolved workspace and the SID of the user the sandboxed
/// processes run as (both isolations derive their token from ours).
fn session_template(config: &SandboxConfig) -> Result<SessionStart, SandboxError> {
    let os = |f: OsFailure| SandboxError::Os {
        name: config.name.clone(),
        step: f.step,
        code: f.code,
        message: f.message,
    };
    let workspace = object_path(&config.workspace).map_err(os)?;
    let user_sid = current_user_sid().map_err(|f| {
        os(OsFailure {
            step: format!("reading this user's sid: {}", f.step),
            ..f
        })
    })?;
    // The minifilter names files by volume device; resolved here, in the user's own context, so
    // the user's `subst` and mapped drives and any links are seen as the file system sees them.
    let workspace_device =
        crate::volumes::nt_path(&config.workspace).map_err(|message| SandboxError::Path {
            name: config.name.clone(),
            path: config.workspace.display().to_string(),
            reason: format!("cannot name it as the minifilter will: {message}"),
        })?;
    Ok(SessionStart {
        root_pid: 0,
        app: config.app_key().to_owned(),
        workspace,
        workspace_device: Some(workspace_device),
        user_sid,
        canary: None,
        wall_check: None,
    })
}

/// `%SystemRoot%\System32\cmd.exe` as the system names it (never found on a search path).
fn system_cmd() -> Result<String, OsFailure> {
    let mut buf = [0u16; 520];
    // SAFETY: `buf` is valid for its length in u16 units.
    let n = unsafe { GetSystemDirectoryW(buf.as_mut_ptr(), buf.len() as u32) } as usize;
    if n == 0 || n >= buf.len() {
        return Err(OsFailure::last("GetSystemDirectoryW"));
    }
    Ok(format!("{}\\cmd.exe", String::from_utf16_lossy(&buf[..n])))
}

/// A path in the form the security APIs take: absolute, without the `\\?\` prefix of
/// `canonicalize` for plain drive paths.
fn object_path(path: &Path) -> Result<String, OsFailure> {
    let full: PathBuf = std::fs::canonicalize(path).map_err(|e| OsFailure {
        step: format!("resolving `{}`", path.display()),
        code: e.raw_os_error().unwrap_or(0) as u32,
        message: e.to_string(),
    })?;
    let text = full.to_string_lossy().into_owned();
    Ok(match text.strip_prefix(r"\\?\") {
        Some(rest) if !rest.starts_with("UNC\\") => rest.to_owned(),
        _ => text,
    })
}

fn create_user_key(subkey: &str) -> Result<(), OsFailure> {
    let wkey = wide(subkey);
    let mut key: HKEY = null_mut();
    // SAFETY: creates or opens the key under HKCU; `key` is closed below.
    let rc = unsafe {
        RegCreateKeyExW(
            HKEY_CURRENT_USER,
            wkey.as_ptr(),
            0,
            null(),
            REG_OPTION_NON_VOLATILE,
            KEY_ALL_ACCESS,
            null(),
            &mut key,
            null_mut(),
        )
    };
    if rc != 0 {
        return Err(OsFailure::code(format!("creating `HKCU\\{subkey}`"), rc));
    }
    // SAFETY: `key` was opened above and is closed once.
    unsafe { RegCloseKey(key) };
    Ok(())
}

/// An anonymous pipe; both ends inheritable-off except where the child needs them (the handle list
/// restricts inheritance to exactly the three standard handles).
/// Which end of a pipe the child gets.
#[derive(Clone, Copy)]
enum ChildEnd {
    Read,
    Write,
}

/// An anonymous pipe whose ends are created non-inheritable; only the child's end is then made
/// inheritable, so our end never leaks into any child, and the child's end reaches this child
/// only through the handle list of its attribute list.
fn pipe(child: ChildEnd) -> Result<(OwnedHandle, OwnedHandle), OsFailure> {
    let mut read: HANDLE = null_mut();
    let mut write: HANDLE = null_mut();
    // SAFETY: out-pointers are valid; NULL attributes make both ends non-inheritable; both
    // handles are owned just below.
    let ok = unsafe { CreatePipe(&mut read, &mut write, null(), 0) };
    if ok == 0 {
        return Err(OsFailure::last("CreatePipe"));
    }
    let read = owned(read).ok_or_else(|| OsFailure::last("CreatePipe"))?;
    let write = owned(write).ok_or_else(|| OsFailure::last("CreatePipe"))?;
    let end = match child {
        ChildEnd::Read => &read,
        ChildEnd::Write => &write,
    };
    // SAFETY: sets the inherit flag on a handle we own.
    let ok = unsafe {
        SetHandleInformation(
            end.as_raw_handle(),
            HANDLE_FLAG_INHERIT,
            HANDLE_FLAG_INHERIT,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last("SetHandleInformation(inherit)"));
    }
    Ok((read, write))
}

/// Ends a reader's blocked `ReadFile` (it then fails with ERROR_OPERATION_ABORTED, which the
/// reader counts as the end of its output).
fn cancel_read(thread: &JoinHandle<()>) {
    // SAFETY: the handle of a live thread we started; a thread with no I/O pending is unaffected.
    unsafe { CancelSynchronousIo(thread.as_raw_handle()) };
}

/// ERROR_BROKEN_PIPE is the normal end of an anonymous pipe; ERROR_OPERATION_ABORTED is a read
/// cancelled by [`cancel_read`].
fn pipe_ended(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(109) | Some(995))
}

fn kill(process: &OwnedHandle) {
    // SAFETY: terminates a process we created and own the handle of.
    unsafe { TerminateProcess(process.as_raw_handle(), 1) };
}

/// A job that kills every process in it when the last handle closes.
fn job_for(process: &OwnedHandle, limits: JobLimits) -> Result<OwnedHandle, OsFailure> {
    let job = new_job(limits)?;
    // SAFETY: both handles are valid and owned; the process is still suspended.
    let ok = unsafe { AssignProcessToJobObject(job.as_raw_handle(), process.as_raw_handle()) };
    if ok == 0 {
        return Err(OsFailure::last("AssignProcessToJobObject"));
    }
    Ok(job)
}

/// A job object with the sandbox's limits and UI restrictions (crate::sandbox::JobLimits).
fn new_job(limits: JobLimits) -> Result<OwnedHandle, OsFailure> {
    // SAFETY: creates an unnamed job object with default security.
    let job = unsafe { CreateJobObjectW(null(), null()) };
    let job = owned(job).ok_or_else(|| OsFailure::last("CreateJobObjectW"))?;
    // SAFETY: plain data; zero means "no limits" before the fields below.
    let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    info.BasicLimitInformation.LimitFlags = JOB_LIMIT_FLAGS;
    info.BasicLimitInformation.ActiveProcessLimit = limits.max_processes;
    info.JobMemoryLimit = usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX);
    // SAFETY: `info` is valid for its size.
    let ok = unsafe {
        SetInformationJobObject(
            job.as_raw_handle(),
            JobObjectExtendedLimitInformation,
            (&info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast::<c_void>(),
            size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last("SetInformationJobObject(limits)"));
    }
    let ui = JOBOBJECT_BASIC_UI_RESTRICTIONS {
        UIRestrictionsClass: UI_RESTRICTIONS,
    };
    // SAFETY: `ui` is valid for its size.
    let ok = unsafe {
        SetInformationJobObject(
            job.as_raw_handle(),
            JobObjectBasicUIRestrictions,
            (&ui as *const JOBOBJECT_BASIC_UI_RESTRICTIONS).cast::<c_void>(),
            size_of::<JOBOBJECT_BASIC_UI_RESTRICTIONS>() as u32,
        )
    };
    if ok == 0 {
        return Err(OsFailure::last("SetInformationJobObject(UI restrictions)"));
    }
    Ok(job)
}

/// PROC_THREAD_ATTRIBUTE_LIST holding the handle list and, for AppContainer, the security
/// capabilities. The values it points to must outlive it; the caller keeps them alive.
struct AttributeList {
    buffer: Vec<usize>,
    handles: Box<[HANDLE]>,
}

impl AttributeList {
    fn new(
        handles: &[HANDLE],
        security: Option<&SECURITY_CAPABILITIES>,
    ) -> Result<Self, OsFailure> {
        let count = 1 + u32::from(security.is_some());
        let mut size = 0usize;
        // SAFETY: a size query with a null list is the documented first call; it "fails" with
        // ERROR_INSUFFICIENT_BUFFER and fills `size`.
        unsafe { InitializeProcThreadAttributeList(null_mut(), count, 0, &mut size) };
        let mut list = AttributeList {
            buffer: vec![0usize; size.div_ceil(size_of::<usize>()).max(1)],
            handles: handles.into(),
        };
        // SAFETY: the buffer is at least `size` bytes and pointer-aligned.
        let ok =
            unsafe { InitializeProcThreadAttributeList(list.as_mut_ptr(), count, 0, &mut size) };
        if ok == 0 {
            return Err(OsFailure::last("InitializeProcThreadAttributeList"));
        }
        // SAFETY: the handle array lives in `list.handles` (boxed, stable) as long as the list.
        let ok = unsafe {
            UpdateProcThreadAttribute(
                list.as_mut_ptr(),
                0,
                PROC_THREAD_ATTRIBUTE_HANDLE_LIST as usize,
                list.handles.as_ptr().cast(),
                size_of_val(&*list.handles),
                null_mut(),
                null(),
            )
        };
        if ok == 0 {
            return Err(OsFailure::last("UpdateProcThreadAttribute(handle list)"));
        }
        if let Some(security) = security {
            // SAFETY: `security` outlives the list (the caller holds it until the process exists).
            let ok = unsafe {
                UpdateProcThreadAttribute(
                    list.as_mut_ptr(),
                    0,
                    PROC_THREAD_ATTRIBUTE_SECURITY_CAPABILITIES as usize,
                    (security as *const SECURITY_CAPABILITIES).cast(),
                    size_of::<SECURITY_CAPABILITIES>(),
                    null_mut(),
                    null(),
                )
            };
            if ok == 0 {
                return Err(OsFailure::last(
                    "UpdateProcThreadAttribute(security capabilities)",
                ));
            }
        }
        Ok(list)
    }

    /// The list, for calls that write it (the buffer is written through, so `&mut self`).
    fn as_mut_ptr(&mut self) -> LPPROC_THREAD_ATTRIBUTE_LIST {
        self.buffer.as_mut_ptr().cast()
    }
}

impl Drop for AttributeList {
    fn drop(&mut self) {
        // SAFETY: the list was initialised in `new` and is deleted once.
        unsafe { DeleteProcThreadAttributeList(self.as_mut_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use windows_sys::Win32::System::JobObjects::QueryInformationJobObject;

    use super::*;

    /// Wine's ntdll exports `wine_get_version`; Windows' does not.
    fn wine() -> bool {
        let name = wide("ntdll.dll");
        // SAFETY: `name` is NUL-terminated; ntdll is loaded in every process.
        let ntdll =
            unsafe { windows_sys::Win32::System::LibraryLoader::GetModuleHandleW(name.as_ptr()) };
        // SAFETY: `ntdll` is a loaded module; the export name is NUL-terminated.
        unsafe {
            windows_sys::Win32::System::LibraryLoader::GetProcAddress(
                ntdll,
                c"wine_get_version".as_ptr().cast(),
            )
        }
        .is_some()
    }

    /// The job object takes the limits (both `SetInformationJobObject` calls succeed, under Wine
    /// too) and, on Windows, reads back with them. Wine 8 accepts job limits but reports none.
    #[test]
    fn the_job_reads_back_with_its_limits_and_ui_restrictions() {
        let limits = JobLimits {
            max_processes: 17,
            max_memory_bytes: 3 << 30,
        };
        let job = new_job(limits).expect("job");
        if wine() {
            return;
        }
        // SAFETY: plain data filled by the query.
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is writable for its size; `job` is open.
        let ok = unsafe {
            QueryInformationJobObject(
                job.as_raw_handle(),
                JobObjectExtendedLimitInformation,
                (&mut info as *mut JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                null_mut(),
            )
        };
        assert_ne!(ok, 0, "{:?}", OsFailure::last("QueryInformationJobObject"));
        assert_eq!(
            info.BasicLimitInformation.LimitFlags & JOB_LIMIT_FLAGS,
            JOB_LIMIT_FLAGS
        );
        assert_eq!(info.BasicLimitInformation.ActiveProcessLimit, 17);
        assert_eq!(info.JobMemoryLimit, 3 << 30);
        let mut ui = JOBOBJECT_BASIC_UI_RESTRICTIONS {
            UIRestrictionsClass: 0,
        };
        // SAFETY: `ui` is writable for its size; `job` is open.
        let ok = unsafe {
            QueryInformationJobObject(
                job.as_raw_handle(),
                JobObjectBasicUIRestrictions,
                (&mut ui as *mut JOBOBJECT_BASIC_UI_RESTRICTIONS).cast(),
                size_of::<JOBOBJECT_BASIC_UI_RESTRICTIONS>() as u32,
                null_mut(),
            )
        };
        assert_ne!(
            ok,
            0,
            "{:?}",
            OsFailure::last("QueryInformationJobObject(UI)")
        );
        assert_eq!(ui.UIRestrictionsClass, UI_RESTRICTIONS);
    }
}
