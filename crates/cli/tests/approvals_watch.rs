//! `agentsh approvals watch` end to end: `agentsh emulator run` plays the driver and a sandboxed
//! process (its command line from the trace's `start` line), `agentsh service run` decides and
//! holds the approval, and the watcher — in a pseudo-terminal driven by a scripted approver, or
//! with `--json` — shows the approval with its context and countdown and answers it; the held
//! operation then completes as answered (the emulator reports the status the process saw).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The sandboxed child asks twice for a service key (the catalog's approval); each is answered
/// by the watcher's approver.
const TRACE: &str = r#"{"process":"agent","operation":"start","pid":4100,"image":"C:\\Tools\\agent\\agent.exe","command_line":"agent.exe --task build"}
{"process":"agent","operation":"register_session","workspace":"C:\\work","app_name":"TestApp"}
{"process":"python","operation":"start","pid":4104,"parent":"agent","image":"C:\\Python311\\python.exe","command_line":"python.exe -c \"import winreg; install()\""}
{"process":"python","operation":"create_key","key":"HKLM\\SYSTEM\\CurrentControlSet\\Services\\evilsvc","label":"first"}
{"process":"python","operation":"create_key","key":"HKLM\\SYSTEM\\CurrentControlSet\\Services\\othersvc","label":"second"}
"#;

/// Kills the child on drop, so a failing assertion does not leave processes behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The emulator replaying [`TRACE`] and the real service, with the emulator's per-operation
/// reports arriving on `reports`.
struct Machine {
    /// Where the policy (`agentsh.yaml`) and its remembered rules live.
    dir: PathBuf,
    api: PathBuf,
    reports: mpsc::Receiver<serde_json::Value>,
    _service: Reaped,
    _emulator: Reaped,
    _dir: tempfile::TempDir,
}

impl Machine {
    fn start() -> Machine {
        Machine::start_with(TRACE, None)
    }

    /// The emulator replaying `trace`, and the service deciding with `policy` (written to
    /// `agentsh.yaml` in the machine's directory; none: the embedded default policy).
    fn start_with(trace_text: &str, policy: Option<&str>) -> Machine {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("agentsh.sock");
        let trace = dir.path().join("trace.jsonl");
        std::fs::write(&trace, trace_text).expect("trace");
        let api = dir.path().join("api").join("api.sock");
        let mut emulator = Command::new(env!("CARGO_BIN_EXE_agentsh"))
            .args(["emulator", "run", "--json", "--wait", "60", "--socket"])
            .arg(&socket)
            .arg("--trace")
            .arg(&trace)
            .arg("--register-through-api")
            .arg("--api-socket")
            .arg(&api)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("agentsh emulator run starts");
        let stdout = emulator.stdout.take().expect("stdout");
        let emulator = Reaped(emulator);
        wait_for("the emulator's socket", Duration::from_secs(20), || {
            socket.exists()
        });
        let mut service = Command::new(env!("CARGO_BIN_EXE_agentsh"));
        service
            .args(["service", "run", "--driver-socket"])
            .arg(&socket)
            .arg("--api-socket")
            .arg(&api);
        if let Some(p) = policy {
            let path = dir.path().join("agentsh.yaml");
            std::fs::write(&path, p).expect("policy");
            service.arg("--policy").arg(path);
        }
        let service = service
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("agentsh service run starts");
        let (tx, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        Machine {
            dir: dir.path().to_owned(),
            api,
            reports,
            _service: Reaped(service),
            _emulator: emulator,
            _dir: dir,
        }
    }

    /// The emulator's report of the operation labelled `label` (it arrives when the process's
    /// operation completed).
    fn report(&self, label: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = self
                .reports
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the operation `{label}` completed"));
            if r["label"] == label {
                return r;
            }
        }
    }
}

/// The watcher in a pseudo-terminal: what it draws, as a terminal shows it, and the keys a
/// person types.
struct Pty {
    master: std::fs::File,
    screen: Arc<Mutex<vt100::Parser>>,
    child: Reaped,
}

impl Pty {
    fn spawn(args: &[&std::ffi::OsStr]) -> Pty {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let (rows, cols) = (40u16, 180u16);
        rustix::termios::tcsetwinsize(
            &master,
            rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .expect("window size");
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().expect("pty name"))
            .expect("opens the pty's terminal side");
        let child = Command::new(env!("CARGO_BIN_EXE_agentsh"))
            .args(args)
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("agentsh approvals watch starts");
        let master = std::fs::File::from(master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let mut reader = master.try_clone().expect("dup");
        let parser = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    return;
                }
                if let Ok(mut p) = parser.lock() {
                    p.process(&buf[..n]);
                }
            }
        });
        Pty {
            master,
            screen,
            child: Reaped(child),
        }
    }

    fn contents(&self) -> String {
        self.screen
            .lock()
            .map(|p| p.screen().contents())
            .unwrap_or_default()
    }

    /// Waits until the screen shows every one of `texts`; returns the screen.
    fn until(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let shown = self.contents();
            if texts.iter().all(|t| shown.contains(t)) {
                return shown;
            }
            assert!(
                Instant::now() < deadline,
                "the watcher shows {texts:?} within 30 s; it shows:\n{shown}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn key(&mut self, key: &str) {
        self.master.write_all(key.as_bytes()).expect("types");
        self.master.flush().expect("flush");
    }
}

/// The countdown on the screen's `on timeout` line, in seconds.
fn countdown(screen: &str) -> u64 {
    let line = screen
        .lines()
        .find(|l| l.contains("on timeout"))
        .unwrap_or_else(|| panic!("an `on timeout` line in\n{screen}"));
    let after = line.split("denied in ").nth(1).expect("`denied in N s`");
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number of seconds in {line:?}"))
}

#[test]
fn a_person_answers_held_operations_from_the_watchers_screen() {
    let machine = Machine::start();
    let api = machine.api.clone().into_os_string();
    let mut pty = Pty::spawn(&[
        "approvals".as_ref(),
        "watch".as_ref(),
        "--api-socket".as_ref(),
        api.as_os_str(),
    ]);

    // The first approval appears with its context and a countdown that runs.
    let screen = pty.until(&["Services\\evilsvc", "on timeout"]);
    for context in [
        "CreateKey \\REGISTRY\\MACHINE\\SYSTEM\\",
        "process      C:\\Python311\\python.exe (pid 4104)",
        "command line python.exe -c \"import winreg; install()\"",
        "created by   C:\\Tools\\agent\\agent.exe (pid 4100)",
        "app TestApp  workspace C:\\work",
        "rule         builtin:services",
        "T1543.003",
        "catalog",
        "unless answered",
    ] {
        assert!(
            screen.contains(context),
            "{context:?} on the screen:\n{screen}"
        );
    }
    let first = countdown(&screen);
    assert!((5..=30).contains(&first), "{first} s left of 30\n{screen}");
    std::thread::sleep(Duration::from_millis(2100));
    let later = countdown(&pty.contents());
    assert!(
        later < first,
        "the countdown runs: {first} s, then {later} s"
    );

    // `a` allows it once: the held operation succeeds.
    pty.key("a");
    let first_op = machine.report("first");
    assert_eq!(first_op["verdict"], "allow", "{first_op}");
    assert_eq!(first_op["status"], "0x00000000", "{first_op}");
    pty.until(&["allowed once"]);

    // The next one appears; `d` denies it and the operation fails with access denied.
    pty.until(&["Services\\othersvc"]);
    pty.key("d");
    let second = machine.report("second");
    assert_eq!(second["verdict"], "deny", "{second}");
    assert_eq!(second["status"], "0xC0000022", "{second}");
    pty.until(&["denied", "0 waiting"]);

    pty.key("q");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = pty.child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "q quits");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn json_lines_carry_each_approval_opening_and_closing_for_scripts() {
    let machine = Machine::start();
    let mut watcher = Reaped(
        Command::new(env!("CARGO_BIN_EXE_agentsh"))
            .args(["approvals", "watch", "--json", "--api-socket"])
            .arg(&machine.api)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("watch --json starts"),
    );
    let stdout = watcher.0.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("a JSON line, not {line:?}: {e}"));
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| {
        lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{what} within 30 s"))
    };
    // The approval may already wait when the watcher connects (then it is in the snapshot), or
    // open afterwards.
    let line = next("the first line");
    assert_eq!(line["type"], "snapshot", "{line}");
    let mut line = line;
    let a = loop {
        match line["type"].as_str() {
            Some("snapshot") if line["approvals"][0].is_object() => {
                break line["approvals"][0].clone();
            }
            Some("opened") => break line["approval"].clone(),
            _ => line = next("an approval"),
        }
    };
    assert_eq!(a["operation"], "CreateKey");
    assert!(
        a["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("\\Services\\evilsvc")),
        "{a}"
    );
    assert_eq!(a["process_image"], "C:\\Python311\\python.exe");
    assert_eq!(
        a["command_line"],
        "python.exe -c \"import winreg; install()\""
    );
    assert_eq!(
        a["chain"],
        serde_json::json!([{"pid": 4100, "image": "C:\\Tools\\agent\\agent.exe"}])
    );
    assert_eq!(a["app"], "TestApp");
    assert_eq!(a["workspace"], "C:\\work");
    assert_eq!(a["rule"], "builtin:services");
    assert_eq!(a["technique"], "T1543.003");
    assert_eq!(a["on_timeout"], "deny");
    assert!(
        a["description"].as_str().is_some_and(|d| !d.is_empty()),
        "{a}"
    );
    let expires = a["expires_at_ms"].as_u64().expect("expires_at_ms");
    let now = line["now_ms"].as_u64().expect("now_ms");
    assert!(expires > now && expires - now <= 30_000, "{line}");

    // A script answers through `approvals approve`; the stream says how it closed.
    let id = a["id"].as_u64().expect("id").to_string();
    let approve = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(["approvals", "approve", &id, "--session", "--api-socket"])
        .arg(&machine.api)
        .output()
        .expect("approve runs");
    assert!(approve.status.success(), "{approve:?}");
    let mut closed = next("the approval closing");
    while closed["type"] != "closed" {
        closed = next("the approval closing");
    }
    assert_eq!(closed["id"].as_u64().map(|i| i.to_string()), Some(id));
    assert_eq!(closed["outcome"], "allow_session");
    let first = machine.report("first");
    assert_eq!(first["status"], "0x00000000", "{first}");
}

/// Four held operations of a TestApp session, each answered with a remembering key; after the
/// service reloads, the same four operations again.
const REMEMBER_TRACE: &str = r#"{"process":"agent","operation":"start","pid":4100,"image":"C:\\Tools\\agent\\agent.exe","command_line":"agent.exe"}
{"process":"agent","operation":"register_session","workspace":"C:\\work","app_name":"TestApp"}
{"process":"agent","operation":"set_value","key":"HKCU\\SOFTWARE\\Vendor\\keep","value":"v","value_type":"REG_SZ","data":"x","label":"r"}
{"process":"agent","operation":"set_value","key":"HKCU\\SOFTWARE\\Vendor\\never","value":"v","value_type":"REG_SZ","data":"x","label":"R"}
{"process":"agent","operation":"write_file","path":"C:\\Shared\\everyone.txt","label":"g"}
{"process":"agent","operation":"write_file","path":"C:\\Shared\\nobody.txt","label":"G"}
{"operation":"sleep","ms":3000}
{"process":"agent","operation":"set_value","key":"HKCU\\SOFTWARE\\Vendor\\keep","value":"v","value_type":"REG_SZ","data":"x","label":"r again"}
{"process":"agent","operation":"set_value","key":"HKCU\\SOFTWARE\\Vendor\\never","value":"v","value_type":"REG_SZ","data":"x","label":"R again"}
{"process":"agent","operation":"write_file","path":"C:\\Shared\\everyone.txt","label":"g again"}
{"process":"agent","operation":"write_file","path":"C:\\Shared\\nobody.txt","label":"G again"}
"#;

#[test]
fn remembering_keys_keep_answers_as_rules_for_the_app_or_for_every_app() {
    let policy = agentsh_policy::DEFAULT_POLICY_YAML
        .replacen(
            "  rules:\n",
            "  rules:\n    - name: ask-vendor\n      paths: ['HKCU\\SOFTWARE\\Vendor\\*']\n      operations: ['*']\n      action: approve\n",
            1,
        )
        .replacen(
            "file_policy:\n  default_action: deny\n  default_cache_ttl: 30\n  rules:\n",
            "file_policy:\n  default_action: deny\n  default_cache_ttl: 30\n  rules:\n    - name: ask-shared\n      paths: ['C:\\Shared\\*']\n      operations: ['*']\n      action: approve\n",
            1,
        );
    agentsh_policy::Policy::from_str(&policy, "agentsh.yaml").unwrap_or_else(|e| panic!("{e}"));
    let machine = Machine::start_with(REMEMBER_TRACE, Some(&policy));
    let api = machine.api.clone().into_os_string();
    let mut pty = Pty::spawn(&[
        "approvals".as_ref(),
        "watch".as_ref(),
        "--api-socket".as_ref(),
        api.as_os_str(),
    ]);
    pty.until(&[
        "r/R allow/deny, remember for the app",
        "g/G allow/deny, remember for all apps",
    ]);
    for (key, target, label, verdict, done) in [
        (
            "r",
            "Vendor\\keep",
            "r",
            "allow",
            "allowed and remembered as a rule for its app",
        ),
        (
            "R",
            "Vendor\\never",
            "R",
            "deny",
            "denied and remembered as a rule for its app",
        ),
        (
            "g",
            "Shared\\everyone.txt",
            "g",
            "allow",
            "allowed and remembered as a rule for every app",
        ),
        (
            "G",
            "Shared\\nobody.txt",
            "G",
            "deny",
            "denied and remembered as a rule for every app",
        ),
    ] {
        pty.until(&[target, "on timeout"]);
        pty.key(key);
        let report = machine.report(label);
        assert_eq!(report["verdict"], verdict, "{key}: {report}");
        assert_eq!(report["reason"], "approval", "{key}: {report}");
        pty.until(&[done]);
    }

    // The rules written: the exact key (the session user's hive as HKCU) or the file in its
    // drive-letter form, for TestApp only (r, R) or for every app (g, G).
    let overlay = std::fs::read_to_string(machine.dir.join("agentsh.remembered.yaml"))
        .expect("remembered rules written");
    let parsed = agentsh_policy::load::parse_overlay(&overlay, "agentsh.remembered.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{overlay}"));
    let registry: Vec<_> = parsed
        .registry
        .iter()
        .map(|r| {
            (
                r.paths[0].text.clone(),
                r.paths[0].value.clone(),
                r.decision.to_string(),
                r.apps.clone(),
            )
        })
        .collect();
    let app = Some(vec!["TestApp".to_owned()]);
    assert_eq!(
        registry,
        [
            (
                "HKCU\\SOFTWARE\\VENDOR\\KEEP".to_owned(),
                Some("v".to_owned()),
                "allow".to_owned(),
                app.clone()
            ),
            (
                "HKCU\\SOFTWARE\\VENDOR\\NEVER".to_owned(),
                Some("v".to_owned()),
                "deny".to_owned(),
                app
            ),
        ],
        "{overlay}"
    );
    let files: Vec<_> = parsed
        .files
        .iter()
        .map(|r| {
            (
                r.paths[0].text.clone(),
                r.decision.to_string(),
                r.apps.clone(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            (
                "C:\\SHARED\\EVERYONE.TXT".to_owned(),
                "allow".to_owned(),
                None
            ),
            ("C:\\SHARED\\NOBODY.TXT".to_owned(), "deny".to_owned(), None),
        ],
        "{overlay}"
    );

    // Once the service has reloaded, the same operations are decided by those rules: nobody
    // is asked.
    for (label, verdict) in [
        ("r again", "allow"),
        ("R again", "deny"),
        ("g again", "allow"),
        ("G again", "deny"),
    ] {
        let report = machine.report(label);
        assert_eq!(report["verdict"], verdict, "{label}: {report}");
        assert_eq!(report["reason"], "service", "{label}: {report}");
    }
    pty.key("q");
}
