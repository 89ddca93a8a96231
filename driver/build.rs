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
