//! The sandbox on Windows (and under Wine, which has no AppContainer): fallback isolation, full output
//! capture with exit code, cancellation, and clean-up of a crashed predecessor's grants.
#![cfg(windows)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentsh_windows::grants::{Grant, GrantJournal};
use agentsh_windows::sandbox::{
    CancelToken, Isolation, Sandbox, SandboxConfig, SandboxError, SessionRegistrar, SessionStart,
};

/// Lines the child writes to each stream: far more than a pipe buffer, so a parent that reads one
/// stream at a time would deadlock.
const LINES: usize = 40_000;

/// The `sandbox_child` example, built next to this test's directory by `cargo test`.
fn child() -> String {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    dir.join("examples")
        .join("sandbox_child.exe")
        .to_string_lossy()
        .into_owned()
}

fn workspace(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agentsh-sbx-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("workspace");
    dir
}

fn config(tag: &str) -> SandboxConfig {
    let dir = workspace(tag);
    let mut c = SandboxConfig::new(format!("test-{tag}"), &dir, dir.join("journal"));
    c.use_minifilter = false;
    // The fallback (what Wine gets) cannot limit the network, so these tests ask for none.
    c.network = agentsh_windows::network::NetworkAccess::Full;
    c
}

#[test]
fn fallback_captures_all_output_and_the_exit_code() {
    let mut c = config("output");
    c.use_app_container = false;
    let sandbox = Sandbox::create(c, None).expect("create");
    assert_eq!(sandbox.isolation(), Isolation::RestrictedToken);
    assert!(
        sandbox
            .fallback_reason()
            .expect("reason")
            .contains("--no-appcontainer")
    );
    let args = vec!["output".to_owned(), LINES.to_string(), "7".into()];
    let result = sandbox
        .execute(&child(), &args, &CancelToken::new())
        .expect("execute");
    assert_eq!(result.exit_code, 7);
    assert_eq!(result.isolation, Isolation::RestrictedToken);
    assert!(!result.cancelled);
    for (stream, prefix) in [(&result.stdout, "out"), (&result.stderr, "err")] {
        let expected: String = (0..LINES).map(|i| format!("{prefix} {i:06}\n")).collect();
        assert_eq!(
            stream.spill, None,
            "{prefix} stays within the default memory limit"
        );
        assert_eq!(stream.incomplete, None);
        assert_eq!(stream.bytes.len(), expected.len(), "{prefix} length");
        assert!(
            stream.bytes == expected.as_bytes(),
            "{prefix} content differs"
        );
    }
    sandbox.close().expect("close");
}

#[test]
fn output_past_the_memory_limit_is_captured_in_full_in_the_named_spill_file() {
    let mut c = config("spill");
    c.use_app_container = false;
    c.capture.memory_limit = 4096;
    let spill_dir = c.capture.spill_dir.clone();
    let sandbox = Sandbox::create(c, None).expect("create");
    let args = vec!["output".to_owned(), LINES.to_string(), "0".into()];
    let result = sandbox
        .execute(&child(), &args, &CancelToken::new())
        .expect("execute");
    sandbox.close().expect("close");
    for (stream, prefix) in [(&result.stdout, "out"), (&result.stderr, "err")] {
        let expected: String = (0..LINES).map(|i| format!("{prefix} {i:06}\n")).collect();
        assert!(expected.len() > 4096);
        let spill = stream.spill.as_ref().expect("spilled past the limit");
        assert!(spill.starts_with(&spill_dir), "{}", spill.display());
        assert!(
            stream.bytes.is_empty(),
            "{prefix}: memory released once spilled"
        );
        assert_eq!(stream.len, expected.len() as u64, "{prefix} length");
        let on_disk = std::fs::read(spill).expect("spill file");
        assert!(
            on_disk == expected.as_bytes(),
            "{prefix}: spill file differs"
        );
        assert_eq!(stream.incomplete, None);
    }
}

#[test]
fn without_allow_fallback_appcontainer_either_applies_or_the_sandbox_refuses() {
    let c = config("required");
    match Sandbox::create(c, None) {
        // Real Windows 8+: AppContainer is in force.
        Ok(sandbox) => {
            assert!(matches!(
                sandbox.isolation(),
                Isolation::AppContainer { .. }
            ));
            assert_eq!(sandbox.fallback_reason(), None);
            sandbox.close().expect("close");
        }
        // Wine: userenv has no CreateAppContainerProfile; the sandbox must refuse, not degrade.
        Err(SandboxError::AppContainerRequired {
            reason, refused, ..
        }) => {
            assert!(reason.contains("CreateAppContainerProfile"), "{reason}");
            assert!(refused.contains("--allow-fallback"), "{refused}");
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn with_allow_fallback_an_unavailable_appcontainer_falls_back_and_says_so() {
    let mut c = config("fallback");
    c.allow_fallback = true;
    let sandbox = Sandbox::create(c, None).expect("create");
    match sandbox.isolation() {
        Isolation::AppContainer { .. } => assert_eq!(sandbox.fallback_reason(), None),
        Isolation::RestrictedToken => {
            let reason = sandbox.fallback_reason().expect("fallback has a reason");
            assert!(reason.contains("userenv.dll"), "{reason}");
        }
        Isolation::SessionOnly => panic!("session-only was not asked for"),
    }
    sandbox.close().expect("close");
}

#[test]
fn minifilter_without_registrar_is_refused() {
    let mut c = config("noreg");
    c.use_minifilter = true;
    let err = Sandbox::create(c, None).expect_err("no registrar");
    assert!(err.to_string().contains("--no-minifilter"), "{err}");
}

/// A registrar standing in for the service: records what it was asked, and can refuse.
#[derive(Debug, Default)]
struct RecordingRegistrar {
    refuse: Option<String>,
    registered: Mutex<Vec<SessionStart>>,
    unregistered: Mutex<Vec<String>>,
}

impl SessionRegistrar for RecordingRegistrar {
    fn register(&self, start: &SessionStart) -> Result<String, String> {
        self.registered.lock().expect("lock").push(start.clone());
        match &self.refuse {
            Some(reason) => Err(reason.clone()),
            None => Ok(format!("sess-{}", start.root_pid)),
        }
    }

    fn unregister(&self, session: &str) -> Result<(), String> {
        self.unregistered
            .lock()
            .expect("lock")
            .push(session.to_owned());
        Ok(())
    }
}

#[test]
fn registered_commands_carry_process_app_workspace_and_user_and_end_their_session() {
    let mut c = config("registered");
    c.use_app_container = false;
    c.use_minifilter = true;
    let ws = std::fs::canonicalize(&c.workspace).expect("workspace");
    let registrar = Arc::new(RecordingRegistrar::default());
    let sandbox = Sandbox::create(c, Some(registrar.clone())).expect("create");
    let args = vec!["output".to_owned(), "2".into(), "9".into()];
    let result = sandbox
        .execute(&child(), &args, &CancelToken::new())
        .expect("execute");
    sandbox.close().expect("close");
    assert_eq!(result.exit_code, 9);
    assert_eq!(result.stdout.bytes, b"out 000000\nout 000001\n");
    let registered = registrar.registered.lock().expect("lock").clone();
    let [start] = registered.as_slice() else {
        panic!("one registration expected: {registered:?}");
    };
    assert_ne!(start.root_pid, 0);
    assert_eq!(start.app, "test-registered");
    let ws_device = agentsh_windows::volumes::nt_path(&ws).expect("device path");
    let ws = ws.to_string_lossy();
    assert_eq!(start.workspace, ws.strip_prefix(r"\\?\").unwrap_or(&ws));
    assert_eq!(start.workspace_device.as_deref(), Some(ws_device.as_str()));
    assert!(ws_device.starts_with(r"\Device\"), "{ws_device}");
    assert!(start.user_sid.starts_with("S-1-5-"), "{}", start.user_sid);
    let id = format!("sess-{}", start.root_pid);
    assert_eq!(result.session.as_deref(), Some(id.as_str()));
    assert_eq!(*registrar.unregistered.lock().expect("lock"), vec![id]);
}

#[test]
fn a_refused_registration_kills_the_process_before_it_runs() {
    let mut c = config("refused");
    c.use_app_container = false;
    c.use_minifilter = true;
    let marker = c.workspace.join("ran.txt");
    let registrar = Arc::new(RecordingRegistrar {
        refuse: Some("service said no".into()),
        ..RecordingRegistrar::default()
    });
    let sandbox = Sandbox::create(c, Some(registrar.clone())).expect("create");
    let args = vec!["touch".to_owned(), marker.to_string_lossy().into_owned()];
    let err = sandbox
        .execute(&child(), &args, &CancelToken::new())
        .expect_err("registration refused");
    sandbox.close().expect("close");
    let text = err.to_string();
    assert!(matches!(err, SandboxError::Registration { .. }), "{err:?}");
    assert!(text.contains("service said no"), "{text}");
    assert!(
        text.contains("the process was killed before it ran"),
        "{text}"
    );
    // Give a process that escaped its suspension time to show itself.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marker.exists(), "the command ran: {}", marker.display());
    assert_eq!(registrar.registered.lock().expect("lock").len(), 1);
    assert!(registrar.unregistered.lock().expect("lock").is_empty());
}

#[test]
fn cancellation_kills_the_command() {
    let mut c = config("cancel");
    c.use_app_container = false;
    let sandbox = Sandbox::create(c, None).expect("create");
    let cancel = CancelToken::new();
    let trigger = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        trigger.cancel();
    });
    let started = Instant::now();
    let args = vec!["sleep".to_owned(), "120".into()];
    let result = sandbox.execute(&child(), &args, &cancel).expect("execute");
    canceller.join().expect("canceller");
    assert!(result.cancelled);
    assert_ne!(result.exit_code, 0);
    // The child sleeps 120 s; returning at all well before that means it was killed.
    assert!(started.elapsed() < Duration::from_secs(60));
    sandbox.close().expect("close");
}

#[test]
fn grants_left_by_a_crash_are_removed_on_next_start() {
    let c = config("crash");
    let target = workspace("crash-target");
    let journal = GrantJournal::in_dir(&c.journal_dir, &c.name).expect("journal");
    // What a crashed run would have left: an ACE for a container SID on a directory.
    journal
        .record(&Grant::File {
            sid: "S-1-15-2-1-2-3-4-5-6-7".into(),
            path: target.to_string_lossy().into_owned(),
        })
        .expect("record");
    let mut c = c;
    c.use_app_container = false;
    let sandbox = Sandbox::create(c, None).expect("create cleans up");
    assert_eq!(journal.entries().expect("entries"), Vec::new());
    sandbox.close().expect("close");
}

#[test]
fn fallback_labels_the_workspace_low_or_says_it_could_not() {
    let mut c = config("label");
    c.use_app_container = false;
    let journal = GrantJournal::in_dir(&c.journal_dir, &c.name).expect("journal");
    let sandbox = Sandbox::create(c, None).expect("create");
    let entries = journal.entries().expect("entries");
    let warnings = sandbox.warnings().join("; ");
    match entries.as_slice() {
        // Windows: the label is applied and journaled.
        [Grant::Label { path }] => {
            assert!(path.contains("agentsh-sbx-label-"), "{path}");
            assert_eq!(warnings, "");
        }
        // Wine refuses label access: nothing journaled, and a warning says what that means.
        [] => assert!(
            warnings.contains("not labelled low integrity") && warnings.contains("cannot write"),
            "{warnings}"
        ),
        other => panic!("unexpected journal {other:?}"),
    }
    sandbox.close().expect("close");
    assert_eq!(journal.entries().expect("entries"), Vec::new());
}

/// `--keep-grants` on a 10,000-file workspace: the security descriptors written at the crate's
/// security interface (`security_descriptor_writes`) on the first and second run, the kept
/// journal between the runs, and `reset` removing it. Under Wine the fallback's label cannot be
/// read, so nothing is written on either run; on Windows the first run writes the label (and,
/// with AppContainer, the ACEs) and the second writes none.
#[test]
fn kept_grants_are_reused_by_the_next_run_and_removed_by_reset() {
    use agentsh_windows::sandbox::{reset, security_descriptor_writes};
    let mut c = config("keep");
    c.use_app_container = false;
    c.keep_grants = true;
    let files = c.workspace.join("tree");
    for d in 0..100 {
        let dir = files.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).expect("dir");
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f:03}.txt")), b"x").expect("file");
        }
    }
    let journal = GrantJournal::in_dir(&c.journal_dir, &c.name).expect("journal");
    let mut counts = Vec::new();
    for _ in 0..2 {
        let before = security_descriptor_writes();
        let sandbox = Sandbox::create(c.clone(), None).expect("create");
        sandbox.close().expect("close");
        counts.push(security_descriptor_writes() - before);
        let entries = journal.entries().expect("entries");
        assert!(
            entries.iter().any(|g| matches!(g, Grant::Kept { .. })),
            "the journal is kept after the run: {entries:?}"
        );
    }
    println!(
        "security descriptors written, 10,000-file workspace with --keep-grants: first run {}, second run {}",
        counts[0], counts[1]
    );
    assert_eq!(counts[1], 0, "the second run writes no security descriptor");
    let removed = reset(&c.name, &c.journal_dir).expect("reset");
    assert_eq!(journal.entries().expect("entries"), Vec::new());
    let labels = usize::from(counts[0] > 0);
    assert_eq!(removed, labels, "reset undoes what the first run made");

    // Without --keep-grants the journal is empty after every run, as before.
    c.keep_grants = false;
    let sandbox = Sandbox::create(c, None).expect("create");
    sandbox.close().expect("close");
    assert_eq!(journal.entries().expect("entries"), Vec::new());
}
