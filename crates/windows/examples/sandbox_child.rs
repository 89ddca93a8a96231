//! A command for the sandbox tests to run: `output N CODE` writes N numbered lines to stdout and to
//! stderr (interleaved) and exits with CODE; `sleep SECONDS` sleeps; `touch PATH` creates a file.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["output", lines, code] => {
            let (Ok(lines), Ok(code)) = (lines.parse::<usize>(), code.parse::<u8>()) else {
                eprintln!("sandbox_child: `output` takes a line count and an exit code");
                return ExitCode::from(2);
            };
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            for i in 0..lines {
                if writeln!(out, "out {i:06}")
                    .and_then(|()| writeln!(err, "err {i:06}"))
                    .is_err()
                {
                    return ExitCode::from(3);
                }
            }
            if out.flush().is_err() {
                return ExitCode::from(3);
            }
            ExitCode::from(code)
        }
        ["sleep", seconds] => {
            let Ok(seconds) = seconds.parse::<u64>() else {
                eprintln!("sandbox_child: `sleep` takes seconds");
                return ExitCode::from(2);
            };
            std::thread::sleep(std::time::Duration::from_secs(seconds));
            ExitCode::SUCCESS
        }
        ["touch", path] => match std::fs::write(path, b"ran\n") {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sandbox_child: cannot create `{path}`: {e}");
                ExitCode::from(4)
            }
        },
        _ => {
            eprintln!("usage: sandbox_child output LINES CODE | sleep SECONDS | touch PATH");
            ExitCode::from(2)
        }
    }
}
