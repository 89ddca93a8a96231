//! Load from many simulated processes at once (the reliability runs and the benchmarks): a session
//! root registered through the service, N child processes, each performing its operations in a loop
//! on its own task, every outcome counted and every latency recorded in constant memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::emulator::Emulator;
use crate::latency::LatencyHistogram;
use crate::regpath::{DEFAULT_USER_SID, kernel_key_path};
use crate::replay::SessionRegistrar;
use crate::request::{OperationRequest, Reason, Target, Verdict};
use agentsh_wire::Operation;

/// What a load run does.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent simulated processes (children of one session root).
    pub processes: u32,
    pub ops_per_process: u64,
    /// Keys each process cycles through: a small number gives cache hits after the first round,
    /// `u64::MAX` makes every key distinct (every decision uncached).
    pub distinct_keys: u64,
    pub op: Operation,
    /// Parent key of the generated keys, in trace form (`HKCU\SOFTWARE\TestApp\load`).
    pub key_prefix: String,
    /// Whether the processes join a session (through the registrar) or stay outside it.
    pub in_session: bool,
    pub app_name: String,
    pub workspace: String,
    /// First process id used (root), children follow in steps of 4.
    pub first_pid: u32,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            processes: 8,
            ops_per_process: 1000,
            distinct_keys: u64::MAX,
            op: Operation::SetValue,
            key_prefix: "HKCU\\SOFTWARE\\TestApp\\load".to_owned(),
            in_session: true,
            app_name: "TestApp".to_owned(),
            workspace: "C:\\work".to_owned(),
            first_pid: 20_000,
        }
    }
}

/// Counted outcomes of a load run.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub operations: u64,
    pub allowed: u64,
    pub denied: u64,
    /// Outcomes by the kernel's reason, in [`REASONS`] order.
    pub by_reason: [u64; REASONS.len()],
    pub elapsed: Duration,
    pub latency: LatencyHistogram,
}

/// Every reason, in the order [`LoadReport::by_reason`] counts them.
pub const REASONS: [Reason; Reason::ALL.len()] = Reason::ALL;

impl LoadReport {
    pub fn count(&self, reason: Reason) -> u64 {
        REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.by_reason[i])
    }

    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Adds `other`'s counts, latencies and elapsed time (for figures over several runs).
    pub fn merge(&mut self, other: &LoadReport) {
        self.operations += other.operations;
        self.elapsed += other.elapsed;
        self.allowed += other.allowed;
        self.denied += other.denied;
        for (a, b) in self.by_reason.iter_mut().zip(other.by_reason) {
            *a += b;
        }
        self.latency.merge(&other.latency);
    }
}

/// Runs `spec` against `emulator`; `registrar` registers the session root when `spec.in_session`.
/// The session is unregistered at the end.
pub async fn run_load(
    emulator: &Arc<Emulator>,
    registrar: &dyn SessionRegistrar,
    spec: &LoadSpec,
) -> Result<LoadReport, String> {
    let root = spec.first_pid;
    emulator.process_created(root, 0, "C:\\Tools\\agent\\agent.exe");
    if spec.in_session {
        registrar
            .register(root, &spec.workspace, &spec.app_name)
            .await?;
    }
    let prefix = kernel_key_path(&spec.key_prefix, DEFAULT_USER_SID)?;
    let mut tasks = Vec::new();
    let started = Instant::now();
    for n in 0..spec.processes {
        let pid = root + 4 * (n + 1);
        emulator.process_created(pid, root, "C:\\Python311\\python.exe");
        let emulator = emulator.clone();
        let spec = spec.clone();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            one_process(&emulator, &spec, &prefix, pid).await
        }));
    }
    let mut total = LoadReport::default();
    for task in tasks {
        let part = task
            .await
            .map_err(|e| format!("a simulated process failed: {e}"))?;
        total.merge(&part);
    }
    total.elapsed = started.elapsed();
    for n in 0..spec.processes {
        emulator.process_exited(root + 4 * (n + 1));
    }
    if spec.in_session {
        registrar.unregister(root).await?;
    }
    emulator.process_exited(root);
    Ok(total)
}

async fn one_process(emulator: &Emulator, spec: &LoadSpec, prefix: &str, pid: u32) -> LoadReport {
    let mut report = LoadReport::default();
    let mut key = String::with_capacity(prefix.len() + 32);
    for i in 0..spec.ops_per_process {
        key.clear();
        key.push_str(prefix);
        let slot = if spec.distinct_keys == u64::MAX {
            i
        } else {
            i % spec.distinct_keys.max(1)
        };
        // One subkey per process so processes never share cache entries by accident.
        use std::fmt::Write as _;
        write!(key, "\\p{pid}\\k{slot}").expect("writing to a String cannot fail");
        let request = OperationRequest {
            pid,
            thread_id: pid + 1,
            target: Target::registry(spec.op, &key, "v", None, 1, 4),
        };
        let outcome = emulator.perform(&request).await;
        report.operations += 1;
        match outcome.verdict {
            Verdict::Allow => report.allowed += 1,
            Verdict::Deny => report.denied += 1,
        }
        if let Some(i) = REASONS.iter().position(|r| *r == outcome.reason) {
            report.by_reason[i] += 1;
        }
        report.latency.record(outcome.latency);
    }
    report
}

/// The resident set size of this process in bytes (Linux `/proc/self/status`), for the memory
/// growth check; `None` where that file does not exist.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
