//! Capture of a sandboxed command's output: each chunk is passed on to the caller as it arrives
//! (streaming), kept in memory up to a limit, and past that limit everything — what was in memory
//! and what follows — goes to a spill file, so the capture is complete but never unbounded in
//! memory. Joining a reader is bounded: a pipe held open by a process outside the job cannot keep
//! agentsh waiting forever; the caller is told instead.
//!
//! The logic is portable and tested with fake readers; the Windows sandbox feeds it its pipes.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// Default in-memory limit per stream: 16 MiB.
pub const DEFAULT_MEMORY_LIMIT: usize = 16 << 20;
/// How long readers may take to reach end of file after the job has been terminated.
pub const DEFAULT_JOIN_GRACE: Duration = Duration::from_secs(5);

/// How output is captured.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Bytes kept in memory per stream before it spills to a file.
    pub memory_limit: usize,
    /// Folder of spill files (created when first needed).
    pub spill_dir: PathBuf,
    /// Pass each chunk to agentsh's own stdout/stderr as it arrives.
    pub stream: bool,
    /// Grace period for the readers after the job was terminated.
    pub join_grace: Duration,
}

impl CaptureConfig {
    pub fn new(spill_dir: PathBuf) -> Self {
        CaptureConfig {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            spill_dir,
            stream: false,
            join_grace: DEFAULT_JOIN_GRACE,
        }
    }
}

/// One stream's capture.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The output, when it stayed within the memory limit; empty once it spilled.
    pub bytes: Vec<u8>,
    /// The file holding the complete output, when it passed the memory limit.
    pub spill: Option<PathBuf>,
    /// Bytes captured in all (memory or file).
    pub len: u64,
    /// Why the capture may lack output: the reader did not reach end of file within the grace
    /// period after the job was terminated (a process outside the job holds the pipe).
    pub incomplete: Option<String>,
}

impl Captured {
    /// The complete output, read back from the spill file when there is one.
    pub fn contents(&self) -> std::io::Result<Vec<u8>> {
        match &self.spill {
            Some(path) => std::fs::read(path),
            None => Ok(self.bytes.clone()),
        }
    }
}

/// Reads `source` to its end (`is_end` decides which errors are the normal end of a pipe), passing
/// each chunk to `tee` and capturing it: in memory up to `limit`, then in full in `spill_path`.
/// A failing `tee` (a closed console) stops the streaming, never the capture.
pub fn pump(
    mut source: impl Read,
    mut tee: Option<Box<dyn Write + Send>>,
    limit: usize,
    spill_path: &Path,
    is_end: impl Fn(&std::io::Error) -> bool,
) -> std::io::Result<Captured> {
    let mut captured = Captured::default();
    let mut spill: Option<BufWriter<File>> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_end(&e) => break,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        if let Some(out) = tee.as_mut()
            && out.write_all(chunk).and_then(|()| out.flush()).is_err()
        {
            tee = None;
        }
        captured.len += n as u64;
        if let Some(file) = spill.as_mut() {
            file.write_all(chunk)
                .map_err(|e| spill_error(spill_path, e))?;
        } else if captured.bytes.len() + n <= limit {
            captured.bytes.extend_from_slice(chunk);
        } else {
            if let Some(dir) = spill_path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| spill_error(spill_path, e))?;
            }
            // Buffered: a command printing line by line would otherwise cost one write per line.
            let mut file = BufWriter::with_capacity(
                256 * 1024,
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(spill_path)
                    .map_err(|e| spill_error(spill_path, e))?,
            );
            file.write_all(&captured.bytes)
                .and_then(|()| file.write_all(chunk))
                .map_err(|e| spill_error(spill_path, e))?;
            captured.bytes = Vec::new();
            captured.spill = Some(spill_path.to_path_buf());
            spill = Some(file);
        }
    }
    if let Some(file) = spill.as_mut() {
        file.flush().map_err(|e| spill_error(spill_path, e))?;
    }
    Ok(captured)
}

fn spill_error(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("output spill file {}: {e}", path.display()),
    )
}

/// A reader running on its own thread, with the channel its result arrives on.
#[derive(Debug)]
pub struct Reader {
    pub thread: JoinHandle<()>,
    result: Receiver<std::io::Result<Captured>>,
}

/// Starts `work` on its own thread.
pub fn spawn(work: impl FnOnce() -> std::io::Result<Captured> + Send + 'static) -> Reader {
    let (tx, rx) = channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    Reader { thread, result: rx }
}

/// Waits for a reader for at most `grace`; if it has not finished, calls `cancel` (on Windows,
/// `CancelSynchronousIo` on the reader's thread) and waits `grace` again. A reader still blocked
/// then is left behind (it holds only its pipe) and the result says the output may be incomplete.
pub fn join_bounded(
    reader: Reader,
    grace: Duration,
    cancel: impl FnOnce(&JoinHandle<()>),
) -> std::io::Result<Captured> {
    let first = reader.result.recv_timeout(grace);
    let outcome = match first {
        Ok(result) => return finish(reader.thread, result),
        Err(RecvTimeoutError::Disconnected) => return Err(panicked()),
        Err(RecvTimeoutError::Timeout) => {
            cancel(&reader.thread);
            reader.result.recv_timeout(grace)
        }
    };
    let why = format!(
        "the pipe stayed open {} s after the command's job was terminated (a process outside the job holds it)",
        grace.as_secs_f64()
    );
    match outcome {
        Ok(result) => {
            let _ = reader.thread.join();
            // The Windows reader counts a cancelled read as the end, so what arrived is kept.
            let mut captured = result?;
            captured.incomplete = Some(format!("{why}; its read was cancelled"));
            Ok(captured)
        }
        Err(RecvTimeoutError::Disconnected) => Err(panicked()),
        Err(RecvTimeoutError::Timeout) => Ok(Captured {
            incomplete: Some(format!(
                "{why}; the read could not be cancelled and was abandoned"
            )),
            ..Captured::default()
        }),
    }
}

fn finish(thread: JoinHandle<()>, result: std::io::Result<Captured>) -> std::io::Result<Captured> {
    let _ = thread.join();
    result
}

fn panicked() -> std::io::Error {
    std::io::Error::other("output reader thread panicked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Yields fixed chunks, then end of file.
    struct Chunks(Vec<Vec<u8>>);
    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    /// Records what is streamed to it.
    #[derive(Clone, Default)]
    struct Tee(Arc<Mutex<Vec<Vec<u8>>>>);
    impl Write for Tee {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("ok").push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn chunks(n: usize, size: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![b'a' + (i % 26) as u8; size]).collect()
    }

    #[test]
    fn output_within_the_limit_stays_in_memory_and_streams_chunk_by_chunk() {
        let dir = tempfile::tempdir().expect("ok");
        let spill = dir.path().join("out.log");
        let tee = Tee::default();
        let parts = chunks(3, 10);
        let captured = pump(
            Chunks(parts.clone()),
            Some(Box::new(tee.clone())),
            30,
            &spill,
            |_| false,
        )
        .expect("ok");
        assert_eq!(captured.bytes, parts.concat());
        assert_eq!(captured.len, 30);
        assert_eq!(captured.spill, None);
        assert!(!spill.exists());
        assert_eq!(
            *tee.0.lock().expect("ok"),
            parts,
            "each chunk is passed on as it arrives"
        );
    }

    #[test]
    fn output_past_the_limit_spills_in_full_to_the_named_file() {
        let dir = tempfile::tempdir().expect("ok");
        let spill = dir.path().join("sub").join("out.log");
        let tee = Tee::default();
        let parts = chunks(100, 1000);
        let captured = pump(
            Chunks(parts.clone()),
            Some(Box::new(tee.clone())),
            4096,
            &spill,
            |_| false,
        )
        .expect("ok");
        assert_eq!(captured.spill.as_deref(), Some(spill.as_path()));
        assert!(captured.bytes.is_empty(), "memory is released once spilled");
        assert_eq!(captured.len, 100_000);
        assert_eq!(
            std::fs::read(&spill).expect("ok"),
            parts.concat(),
            "nothing is truncated"
        );
        assert_eq!(captured.contents().expect("ok"), parts.concat());
        assert_eq!(tee.0.lock().expect("ok").concat(), parts.concat());
    }

    #[test]
    fn an_existing_spill_file_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("ok");
        let spill = dir.path().join("out.log");
        std::fs::write(&spill, b"keep").expect("ok");
        let err = pump(Chunks(chunks(2, 10)), None, 5, &spill, |_| false).expect_err("fails");
        assert!(err.to_string().contains("out.log"), "{err}");
        assert_eq!(std::fs::read(&spill).expect("ok"), b"keep");
    }

    #[test]
    fn a_failing_tee_stops_streaming_but_not_capture() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().expect("ok");
        let captured = pump(
            Chunks(chunks(3, 4)),
            Some(Box::new(Closed)),
            100,
            &dir.path().join("x"),
            |_| false,
        )
        .expect("ok");
        assert_eq!(captured.len, 12);
        assert_eq!(captured.bytes, chunks(3, 4).concat());
    }

    #[test]
    fn the_end_of_pipe_error_ends_the_capture_other_errors_fail_it() {
        struct Fails(i32);
        impl Read for Fails {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(self.0))
            }
        }
        let dir = tempfile::tempdir().expect("ok");
        let path = dir.path().join("x");
        let is_end = |e: &std::io::Error| e.raw_os_error() == Some(109);
        assert_eq!(
            pump(Fails(109), None, 10, &path, is_end).expect("ok").len,
            0
        );
        assert!(pump(Fails(5), None, 10, &path, is_end).is_err());
    }

    /// A pipe that a process outside the job keeps open: it gives some output, then blocks until
    /// cancelled (as `CancelSynchronousIo` ends a blocked `ReadFile` with ERROR_OPERATION_ABORTED).
    struct HeldOpen {
        first: Option<Vec<u8>>,
        cancelled: Receiver<()>,
        honour_cancel: bool,
    }
    impl Read for HeldOpen {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if let Some(first) = self.first.take() {
                buf[..first.len()].copy_from_slice(&first);
                return Ok(first.len());
            }
            loop {
                let _ = self.cancelled.recv();
                if self.honour_cancel {
                    return Err(std::io::Error::from_raw_os_error(995));
                }
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }

    fn held_reader(honour_cancel: bool) -> (Reader, std::sync::mpsc::Sender<()>, Arc<Mutex<u32>>) {
        let (tx, rx) = channel();
        let dir = std::env::temp_dir().join(format!("agentsh-capture-{}", std::process::id()));
        let source = HeldOpen {
            first: Some(b"partial".to_vec()),
            cancelled: rx,
            honour_cancel,
        };
        let reader = spawn(move || {
            pump(source, None, 1024, &dir.join("never"), |e| {
                e.raw_os_error() == Some(995)
            })
        });
        (reader, tx, Arc::new(Mutex::new(0)))
    }

    #[test]
    fn a_held_pipe_is_cancelled_after_the_grace_and_reported_with_what_arrived() {
        let (reader, cancel_tx, calls) = held_reader(true);
        let counted = calls.clone();
        let captured = join_bounded(reader, Duration::from_millis(50), move |_| {
            *counted.lock().expect("ok") += 1;
            cancel_tx.send(()).expect("ok");
        })
        .expect("ok");
        assert_eq!(*calls.lock().expect("ok"), 1);
        assert_eq!(captured.bytes, b"partial");
        let why = captured.incomplete.expect("reported");
        assert!(
            why.contains("outside the job") && why.contains("cancelled"),
            "{why}"
        );
    }

    #[test]
    fn a_read_that_ignores_cancellation_is_abandoned_not_waited_for() {
        let (reader, cancel_tx, _) = held_reader(false);
        let captured = join_bounded(reader, Duration::from_millis(50), move |_| {
            cancel_tx.send(()).expect("ok")
        })
        .expect("ok");
        let why = captured.incomplete.expect("reported");
        assert!(why.contains("abandoned"), "{why}");
    }

    #[test]
    fn a_reader_that_finishes_in_time_is_not_cancelled() {
        let reader = spawn(|| {
            Ok(Captured {
                len: 3,
                bytes: b"abc".to_vec(),
                ..Captured::default()
            })
        });
        let captured = join_bounded(reader, Duration::from_secs(5), |_| {
            panic!("must not cancel")
        })
        .expect("ok");
        assert_eq!(captured.bytes, b"abc");
        assert_eq!(captured.incomplete, None);
    }
}
