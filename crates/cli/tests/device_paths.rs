//! Drive-letter file rules decide operations that arrive as `\Device\HarddiskVolumeN\…`, end to end
//! through `agentsh emulator run` (which names files as the filter manager does, through its volume
//! table) and the real `agentsh service run` (which reads the same table beside the socket into its
//! volume map): a workspace write is allowed, writes outside it are denied, on a drive-letter volume
//! and on a volume mounted in a folder.
#![cfg(unix)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VOLUMES: &str = "\\Device\\HarddiskVolume3 = C:\\\n\\Device\\HarddiskVolume7 = C:\\work\\mnt\\\n\\Device\\HarddiskVolume4 = D:\\\n";

const TRACE: &str = r#"{"process":"agent","operation":"start","pid":4100,"image":"C:\\Tools\\agent\\agent.exe"}
{"process":"agent","operation":"register_session","workspace":"C:\\work","app_name":"TestApp"}
{"process":"tool","operation":"start","parent":"agent","image":"C:\\Python311\\python.exe"}
{"process":"tool","operation":"write_file","path":"C:\\work\\src\\main.rs","expect":"allow","label":"workspace"}
{"process":"tool","operation":"write_file","path":"C:\\work\\mnt\\data.bin","expect":"allow","label":"folder-mounted volume inside the workspace"}
{"process":"tool","operation":"write_file","path":"C:\\Users\\Public\\x.dll","expect":"deny","label":"outside on C"}
{"process":"tool","operation":"write_file","path":"D:\\work\\x.txt","expect":"deny","label":"same folder name on D"}
{"process":"tool","operation":"write_file","path":"\\Device\\HarddiskVolume9\\work\\x.txt","expect":"deny","label":"unknown volume"}
{"process":"tool","operation":"exit"}
{"process":"agent","operation":"unregister_session"}
"#;

struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn workspace_rules_decide_device_paths_through_the_emulator_and_the_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("agentsh.sock");
    let trace = dir.path().join("trace.jsonl");
    let volumes = dir.path().join("volumes.txt");
    std::fs::write(&trace, TRACE).expect("trace");
    std::fs::write(&volumes, VOLUMES).expect("volumes");
    let events = dir.path().join("events.jsonl");
    let api = dir.path().join("api").join("api.sock");
    let api = api.to_str().expect("utf-8 path").to_owned();

    let emulator = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(["emulator", "run", "--socket"])
        .arg(&socket)
        .arg("--trace")
        .arg(&trace)
        .arg("--volumes")
        .arg(&volumes)
        .args([
            "--wait",
            "20",
            "--register-through-api",
            "--api-socket",
            &api,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agentsh emulator run starts");
    let mut emulator = Reaped(Some(emulator));
    let start = Instant::now();
    while !socket.exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "emulator socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let table = std::fs::read_to_string(dir.path().join("agentsh.sock.volumes"))
        .expect("the emulator wrote its volume table beside the socket");
    assert!(
        table.contains("\\Device\\HarddiskVolume7 = C:\\work\\mnt\\"),
        "{table}"
    );

    let service = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(["service", "run", "--driver-socket"])
        .arg(&socket)
        .args(["--api-socket", &api])
        .arg("--events")
        .arg(&events)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agentsh service run starts");
    let mut service = Reaped(Some(service));

    let mut child = emulator.0.take().expect("emulator");
    let mut stdout = String::new();
    let mut stderr = String::new();
    let err_reader = std::thread::spawn({
        let mut pipe = child.stderr.take().expect("stderr");
        move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        }
    });
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout);
    let status = child.wait().expect("emulator exit status");
    stderr.push_str(&err_reader.join().expect("stderr reader"));
    let mut svc = service.0.take().expect("service");
    let _ = Command::new("kill")
        .args(["-TERM", &svc.id().to_string()])
        .status();
    let _ = svc.wait();
    let mut service_log = String::new();
    if let Some(mut e) = svc.stderr.take() {
        let _ = e.read_to_string(&mut service_log);
    }

    assert!(
        status.success(),
        "every outcome as expected\n{stdout}\n{stderr}\n{service_log}"
    );
    assert!(
        service_log.contains("volume map: 3 volume(s) known by drive letter or mount point"),
        "{service_log}"
    );
    // The kernel side sent device paths, never the trace's drive letters.
    for sent in [
        r"\Device\HarddiskVolume3\work\src\main.rs",
        r"\Device\HarddiskVolume7\data.bin",
        r"\Device\HarddiskVolume3\Users\Public\x.dll",
        r"\Device\HarddiskVolume4\work\x.txt",
    ] {
        assert!(stdout.contains(sent), "{sent} not sent\n{stdout}");
    }
    assert!(!stdout.contains(r"C:\work\src"), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.trim_end().ends_with(" ok"))
            .count(),
        5,
        "{stdout}"
    );
    let log = std::fs::read_to_string(&events).expect("events");
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"file_blocked\""))
            .count(),
        3,
        "{log}"
    );
}
