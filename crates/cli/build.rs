//! Embeds the Event Log message table (packaging/agentsh.mc) into agentsh.exe for Windows targets, so
//! Event Viewer shows text for the "AgentSH" source. Other targets build nothing here.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let mc = PathBuf::from("../../packaging/agentsh.mc");
    println!("cargo::rerun-if-changed={}", mc.display());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        println!("cargo::error=OUT_DIR is not set");
        return;
    };
    let run = |tool: &str, args: &[&std::ffi::OsStr]| -> bool {
        match Command::new(tool).args(args).current_dir(&out).status() {
            Ok(status) if status.success() => true,
            Ok(status) => {
                println!(
                    "cargo::error=`{tool}` failed ({status}) building the event message table"
                );
                false
            }
            Err(e) => {
                println!(
                    "cargo::error=`{tool}` not runnable ({e}): install gcc-mingw-w64-x86-64 (scripts/windows.sh install)"
                );
                false
            }
        }
    };
    let Ok(mc) = mc.canonicalize() else {
        println!("cargo::error=`{}` not found", mc.display());
        return;
    };
    // windmc writes agentsh.rc, agentsh.h and MSG00409.bin into OUT_DIR.
    if !run("x86_64-w64-mingw32-windmc", &[mc.as_os_str()]) {
        return;
    }
    let object = out.join("agentsh-messages.o");
    if !run(
        "x86_64-w64-mingw32-windres",
        &[
            "agentsh.rc".as_ref(),
            "-O".as_ref(),
            "coff".as_ref(),
            "-o".as_ref(),
            object.as_os_str(),
        ],
    ) {
        return;
    }
    println!("cargo::rustc-link-arg-bins={}", object.display());
}
