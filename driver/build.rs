//! Makes the ntoskrnl.exe and FLTMGR.SYS import libraries from the .def files and passes the
//! kernel-image link flags (native subsystem, DriverEntry, integrity check, NX, no exports).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dlltool = std::env::var("DLLTOOL").unwrap_or_else(|_| "x86_64-w64-mingw32-dlltool".into());
    for (def, lib) in [
        ("ntoskrnl", "libagentsh_ntoskrnl.a"),
        ("fltmgr", "libagentsh_fltmgr.a"),
    ] {
        let def_path = format!("imports/{def}.def");
        println!("cargo:rerun-if-changed={def_path}");
        let status = Command::new(&dlltool)
            .args(["-d", &def_path, "-l"])
            .arg(out.join(lib))
            .status()
            .unwrap_or_else(|e| panic!("build.rs: cannot run `{dlltool}`: {e}"));
        assert!(
            status.success(),
            "build.rs: `{dlltool}` failed on `{def_path}`"
        );
    }
    println!("cargo:rerun-if-env-changed=DLLTOOL");
    message_table(&out);
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=agentsh_ntoskrnl");
    println!("cargo:rustc-link-lib=static=agentsh_fltmgr");
    // rustc appends the target's user-mode libraries (msvcrt, kernel32, mingw's runtime) to every
    // link. Empty archives of the same names, found first on the search path, make any symbol that
    // would have come from them a link error instead of a silent user-mode import.
    let ar = std::env::var("AR_MINGW").unwrap_or_else(|_| "x86_64-w64-mingw32-ar".into());
    for lib in [
        "libmsvcrt.a",
        "libmingwex.a",
        "libmingw32.a",
        "libkernel32.a",
        "libuser32.a",
        "libgcc.a",
        "libgcc_eh.a",
        "libpthread.a",
        "libssp.a",
        "libssp_nonshared.a",
    ] {
        let path = out.join(lib);
        let _ = std::fs::remove_file(&path);
        let status = Command::new(&ar)
            .arg("rcs")
            .arg(&path)
            .status()
            .unwrap_or_else(|e| panic!("build.rs: cannot run `{ar}`: {e}"));
        assert!(
            status.success(),
            "build.rs: `{ar}` could not create `{lib}`"
        );
    }
    // Named again after every crate (link args come last) so that references from kcore, wire and
    // compiler_builtins resolve to ntoskrnl.exe's exports.
    for lib in ["libagentsh_ntoskrnl.a", "libagentsh_fltmgr.a"] {
        println!("cargo:rustc-link-arg-bins={}", out.join(lib).display());
    }
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-Wl,--subsystem,native",
        "-Wl,--entry,DriverEntry",
        "-Wl,--image-base,0x140000000",
        "-Wl,--dynamicbase",
        "-Wl,--nxcompat",
        "-Wl,--forceinteg",
        "-Wl,--file-alignment,0x200",
        "-Wl,--section-alignment,0x1000",
        "-Wl,--exclude-all-symbols",
        // The kernel ignores these for drivers; they make an emulator give the driver exactly the
        // 24 KB an x64 kernel thread stack has, so a frame that would overflow it fails in tests.
        "-Xlinker",
        "--stack=0x6000,0x6000",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

/// Builds driver/messages.txt into an RT_MESSAGETABLE resource (MESSAGE_RESOURCE_DATA: one block
/// per id, entries UTF-16 with MESSAGE_RESOURCE_UNICODE) and links it into the image.
fn message_table(out: &std::path::Path) {
    println!("cargo:rerun-if-changed=messages.txt");
    let text = std::fs::read_to_string("messages.txt").expect("build.rs: driver/messages.txt");
    let mut messages: Vec<(u32, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, msg) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("build.rs: messages.txt:{}: expected `ID TEXT`", n + 1));
        let id = u32::from_str_radix(id.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| panic!("build.rs: messages.txt:{}: bad id `{id}`", n + 1));
        messages.push((id, format!("{msg}\r\n")));
    }
    messages.sort();
    let header = 4 + 12 * messages.len();
    let mut blocks = Vec::new();
    let mut entries = Vec::new();
    for (id, msg) in &messages {
        let mut units: Vec<u8> = msg.encode_utf16().flat_map(u16::to_le_bytes).collect();
        units.extend_from_slice(&[0, 0]);
        while (units.len() + 4) % 4 != 0 {
            units.push(0);
        }
        let offset = (header + entries.len()) as u32;
        blocks.extend_from_slice(&id.to_le_bytes());
        blocks.extend_from_slice(&id.to_le_bytes());
        blocks.extend_from_slice(&offset.to_le_bytes());
        entries.extend_from_slice(&((units.len() + 4) as u16).to_le_bytes());
        entries.extend_from_slice(&1u16.to_le_bytes()); // MESSAGE_RESOURCE_UNICODE
        entries.extend_from_slice(&units);
    }
    let mut data = (messages.len() as u32).to_le_bytes().to_vec();
    data.extend_from_slice(&blocks);
    data.extend_from_slice(&entries);
    let bin = out.join("messages.bin");
    std::fs::write(&bin, &data).expect("build.rs: writing messages.bin");
    let rc = out.join("messages.rc");
    // 11 = RT_MESSAGETABLE; language 0x409 (English).
    std::fs::write(
        &rc,
        format!(
            "LANGUAGE 0x09, 0x01\n1 11 \"{}\"\n",
            bin.display().to_string().replace('\\', "/")
        ),
    )
    .expect("build.rs: writing messages.rc");
    let windres = std::env::var("WINDRES").unwrap_or_else(|_| "x86_64-w64-mingw32-windres".into());
    let obj = out.join("messages.o");
    let status = Command::new(&windres)
        .arg("-O")
        .arg("coff")
        .arg("-i")
        .arg(&rc)
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("build.rs: cannot run `{windres}`: {e}"));
    assert!(
        status.success(),
        "build.rs: `{windres}` failed on messages.rc"
    );
    println!("cargo:rerun-if-env-changed=WINDRES");
    println!("cargo:rustc-link-arg-bins={}", obj.display());
}
