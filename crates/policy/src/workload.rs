//! Synthetic policies and queries for the benchmark and for the test that the compiled index and
//! the linear scan decide identically: `n` generated rules of every pattern shape, and a fixed
//! mix of kernel-form queries that hit rules, miss them, and hit the catalog.

use std::fmt::Write;

/// A generated query (kernel-form key, optional value, driver operation name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticQuery {
    pub key: String,
    pub value: Option<String>,
    pub op: &'static str,
}

/// The SID the generated queries' user hive belongs to.
pub const SID: &str = "S-1-5-21-3623811015-3361044348-30300820-1013";
/// The application name the generated session registers.
pub const APP: &str = "TestApp";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so every run measures the same queries.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const DECISIONS: [&str; 3] = ["allow", "deny", "approve"];
const OPS: [&str; 4] = ["[write]", "[read, write]", "[create, delete]", "['*']"];

/// A policy with `n` generated rules (plus a low-priority read catch-all), in guide syntax.
pub fn policy_yaml(n: usize) -> String {
    let mut y = String::from(
        "registry_policy:\n  default_action: deny\n  default_cache_ttl: 30\nregistry_rules:\n",
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..n {
        let priority = (i % 5) as i64 * 10 - 20;
        let decision = DECISIONS[rng.below(3)];
        let ops = OPS[rng.below(OPS.len())];
        let path = match i % 6 {
            0 => format!(r"'HKLM\SOFTWARE\Vendor{i}\Product{}\*'", i % 7),
            1 => format!(r"'HKCU\SOFTWARE\App{i}\Settings*'"),
            2 => format!(
                r"{{ key: 'HKLM\SYSTEM\CurrentControlSet\Services\svc{i}\Parameters', value: 'Val{i}' }}"
            ),
            3 => format!(r"'HKCU\SOFTWARE\Classes\CLSID\{{{i:08X}-0000}}\*\Thing'"),
            4 => format!(r"'HKLM\SOFTWARE\Vendor{i}\v?\*'"),
            _ => format!(r"'HKEY_LOCAL_MACHINE\SOFTWARE\WOW6432Node\Tool{i}'"),
        };
        let _ = write!(
            y,
            "  - name: gen-{i}\n    paths: [{path}]\n    operations: {ops}\n    decision: {decision}\n    priority: {priority}\n"
        );
    }
    y.push_str("  - name: allow-app\n    paths: ['HKCU\\SOFTWARE\\${APP_NAME}\\*']\n    operations: ['*']\n    decision: allow\n");
    y.push_str("  - name: reads\n    paths: ['*']\n    operations: [read]\n    decision: allow\n    priority: -1000\n");
    y
}

/// 512 queries against a policy of `n` generated rules.
pub fn queries(n: usize) -> Vec<SyntheticQuery> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let ops = [
        "SetValue",
        "QueryValue",
        "CreateKey",
        "DeleteKey",
        "DeleteValue",
        "OpenKey",
        "RenameKey",
    ];
    let user = format!(r"\REGISTRY\USER\{SID}");
    (0..512)
        .map(|_| {
            let i = rng.below(n.max(1));
            let op = ops[rng.below(ops.len())];
            let (key, value) = match rng.below(10) {
                0 => (
                    format!(
                        r"\REGISTRY\MACHINE\SOFTWARE\Vendor{i}\Product{}\Config\Deep",
                        i % 7
                    ),
                    None,
                ),
                1 => (
                    format!(r"{user}\Software\App{i}\SettingsBackup"),
                    Some("x".to_owned()),
                ),
                2 => (
                    format!(r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\Services\svc{i}\Parameters"),
                    Some(format!("Val{i}")),
                ),
                3 => (
                    format!(r"{user}_Classes\CLSID\{{{i:08X}-0000}}\Inner\Thing"),
                    None,
                ),
                4 => (format!(r"\REGISTRY\MACHINE\SOFTWARE\Vendor{i}\v2\x"), None),
                5 => (
                    format!(r"\REGISTRY\MACHINE\SOFTWARE\WOW6432Node\Tool{i}"),
                    Some(String::new()),
                ),
                6 => (
                    format!(r"{user}\Software\Microsoft\Windows\CurrentVersion\RunOnce"),
                    Some("evil".to_owned()),
                ),
                7 => (
                    format!(r"{user}\Software\{APP}\config\k{i}"),
                    Some("v".to_owned()),
                ),
                8 => (
                    format!(r"\REGISTRY\MACHINE\SOFTWARE\Unrelated{i}\Path\That\Misses"),
                    None,
                ),
                _ => (
                    format!(r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\Services\NewSvc{i}"),
                    None,
                ),
            };
            SyntheticQuery { key, value, op }
        })
        .collect()
}
