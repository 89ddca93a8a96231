//! The trace format: JSON lines naming a simulated process and one thing it does (start, exit,
//! a registry or file operation, a session registration), parsed with errors that say line and field.
//!
//! The schema is documented in docs/emulator.md; the driver's emulated-kernel tests replay the same
//! files, so every field is checked strictly and unknown fields are errors.

use std::time::Duration;

use agentsh_wire::{FileOperation, Operation};
use serde_json::{Map, Value};

/// One parsed trace: its lines in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub lines: Vec<TraceLine>,
}

/// One step of a trace, with the line it came from (1-based) for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    pub line: usize,
    /// The simulated process's name in this trace; absent only for `sleep`.
    pub process: Option<String>,
    pub action: Action,
    /// The outcome the kernel must report; checked by the runner when present.
    pub expect: Option<Expect>,
    /// Free text carried into reports (a scenario name).
    pub label: Option<String>,
}

/// What a trace line makes the simulated process do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The process starts; `parent` names the creating process (the kernel tracks the creator, which
    /// cannot be forged, so that is what the trace names).
    Start {
        pid: Option<u32>,
        parent: Option<String>,
        image: String,
        user_sid: Option<String>,
        /// The command line the process was started with, as Windows would hold it for the
        /// process (what an approval shows).
        command_line: Option<String>,
    },
    Exit,
    /// Make the process the root of a sandbox session (through the service's local API).
    RegisterSession {
        workspace: String,
        app_name: String,
    },
    UnregisterSession,
    Registry(RegistryAccess),
    File(FileAccess),
    Sleep(Duration),
}

/// A registry operation as the configuration manager would present it to the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAccess {
    pub op: Operation,
    /// The key as written in the trace (`HKCU\...`, `HKLM\...` or kernel form `\REGISTRY\...`).
    pub key: String,
    /// The value name; empty is the key's default value.
    pub value: String,
    /// The new key name of a `rename_key`.
    pub new_name: Option<String>,
    pub value_type: u32,
    pub data_size: u32,
}

/// A file operation as the minifilter would present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAccess {
    pub op: FileOperation,
    pub path: String,
    pub new_path: Option<String>,
}

/// The outcome a trace line expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Allow,
    Deny,
}

/// Registry operations by their trace names, in the driver's vocabulary ([`Operation`]).
pub const REGISTRY_OPS: [(&str, Operation); 14] = [
    ("query_value", Operation::QueryValue),
    ("set_value", Operation::SetValue),
    ("delete_value", Operation::DeleteValue),
    ("create_key", Operation::CreateKey),
    ("delete_key", Operation::DeleteKey),
    ("enum_keys", Operation::EnumKeys),
    ("enum_values", Operation::EnumValues),
    ("open_key", Operation::OpenKey),
    ("rename_key", Operation::RenameKey),
    ("save_key", Operation::SaveKey),
    ("restore_key", Operation::RestoreKey),
    ("replace_key", Operation::ReplaceKey),
    ("load_key", Operation::LoadKey),
    ("set_key_security", Operation::SetKeySecurity),
];

/// File operations by their trace names ([`FileOperation`]).
pub const FILE_OPS: [(&str, FileOperation); 6] = [
    ("read_file", FileOperation::Read),
    ("write_file", FileOperation::Write),
    ("create_file", FileOperation::Create),
    ("delete_file", FileOperation::Delete),
    ("rename_file", FileOperation::Rename),
    ("hard_link_file", FileOperation::HardLink),
];

/// The trace name of a registry operation.
pub fn registry_op_name(op: Operation) -> &'static str {
    REGISTRY_OPS
        .iter()
        .find(|(_, o)| *o == op)
        .map_or("?", |(n, _)| n)
}

/// The trace name of a file operation.
pub fn file_op_name(op: FileOperation) -> &'static str {
    FILE_OPS
        .iter()
        .find(|(_, o)| *o == op)
        .map_or("?", |(n, _)| n)
}

fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

const LIFECYCLE: &[&str] = &[
    "start",
    "exit",
    "register_session",
    "unregister_session",
    "sleep",
];

/// A trace that cannot be parsed: which source, line and field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {}{message}", field.map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct TraceError {
    pub source_name: String,
    pub line: usize,
    pub field: Option<&'static str>,
    pub message: String,
}

/// Named registry value types accepted in `value_type` (a number is accepted too).
const VALUE_TYPES: &[(&str, u32)] = &[
    ("REG_NONE", 0),
    ("REG_SZ", 1),
    ("REG_EXPAND_SZ", 2),
    ("REG_BINARY", 3),
    ("REG_DWORD", 4),
    ("REG_DWORD_BIG_ENDIAN", 5),
    ("REG_LINK", 6),
    ("REG_MULTI_SZ", 7),
    ("REG_QWORD", 11),
];

impl Trace {
    /// Parses JSON lines; blank lines and lines starting with `#` are skipped. `source_name` is used
    /// in error messages (usually the file name).
    pub fn parse(source_name: &str, text: &str) -> Result<Trace, TraceError> {
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut cx = LineCx {
                source_name,
                line: index + 1,
            };
            lines.push(cx.parse(trimmed)?);
        }
        Ok(Trace { lines })
    }
}

struct LineCx<'a> {
    source_name: &'a str,
    line: usize,
}

impl LineCx<'_> {
    fn err(&self, field: Option<&'static str>, message: impl Into<String>) -> TraceError {
        TraceError {
            source_name: self.source_name.to_owned(),
            line: self.line,
            field,
            message: message.into(),
        }
    }

    fn parse(&mut self, text: &str) -> Result<TraceLine, TraceError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| self.err(None, format!("not valid JSON: {e}")))?;
        let Value::Object(mut obj) = value else {
            return Err(self.err(None, "expected a JSON object"));
        };
        let operation = self
            .take_str(&mut obj, "operation")?
            .ok_or_else(|| self.err(Some("operation"), "missing"))?;
        let process = self.take_str(&mut obj, "process")?;
        let expect = match self.take_str(&mut obj, "expect")?.as_deref() {
            None => None,
            Some("allow") => Some(Expect::Allow),
            Some("deny") => Some(Expect::Deny),
            Some(other) => {
                return Err(self.err(
                    Some("expect"),
                    format!("unknown outcome `{other}` (expected allow or deny)"),
                ));
            }
        };
        let label = self.take_str(&mut obj, "label")?;
        let action = self.action(&operation, &mut obj)?;
        if process.is_none() && !matches!(action, Action::Sleep(_)) {
            return Err(self.err(Some("process"), "missing"));
        }
        if expect.is_some() && !matches!(action, Action::Registry(_) | Action::File(_)) {
            return Err(self.err(
                Some("expect"),
                format!("only registry and file operations have an outcome, not `{operation}`"),
            ));
        }
        if let Some(extra) = obj.keys().next() {
            return Err(self.err(
                None,
                format!("unknown field `{extra}` for operation `{operation}`"),
            ));
        }
        Ok(TraceLine {
            line: self.line,
            process,
            action,
            expect,
            label,
        })
    }

    fn action(
        &mut self,
        operation: &str,
        obj: &mut Map<String, Value>,
    ) -> Result<Action, TraceError> {
        if let Some(op) = lookup(&REGISTRY_OPS, operation) {
            let key = match self.take_name(obj, "key", "key_units")? {
                Some(n) if !n.is_empty() => n,
                Some(_) => return Err(self.err(Some("key"), "is empty")),
                None => return Err(self.err(Some("key"), "missing")),
            };
            let value = self
                .take_name(obj, "value", "value_units")?
                .unwrap_or_default();
            let new_name = self.take_name(obj, "new_name", "new_name_units")?;
            match (op, &new_name) {
                (Operation::RenameKey, None) => {
                    return Err(self.err(Some("new_name"), "missing (rename_key needs it)"));
                }
                (Operation::RenameKey, Some(_)) | (_, None) => {}
                (_, Some(_)) => {
                    return Err(self.err(Some("new_name"), "only rename_key has a new name"));
                }
            }
            let value_type = self.value_type(obj)?;
            let data = self.take_str(obj, "data")?;
            let data_size = match (self.take_u32(obj, "data_size")?, data) {
                (Some(_), Some(_)) => {
                    return Err(self.err(Some("data_size"), "give either `data` or `data_size`"));
                }
                (Some(n), None) => n,
                // REG_SZ data as the API would pass it: UTF-16 units plus the terminator.
                (None, Some(s)) => u32::try_from((s.encode_utf16().count() + 1) * 2)
                    .map_err(|_| self.err(Some("data"), "too long"))?,
                (None, None) => 0,
            };
            return Ok(Action::Registry(RegistryAccess {
                op,
                key,
                value,
                new_name,
                value_type,
                data_size,
            }));
        }
        if let Some(op) = lookup(&FILE_OPS, operation) {
            let path = match self.take_name(obj, "path", "path_units")? {
                Some(n) if !n.is_empty() => n,
                Some(_) => return Err(self.err(Some("path"), "is empty")),
                None => return Err(self.err(Some("path"), "missing")),
            };
            let new_path = self.take_name(obj, "new_path", "new_path_units")?;
            // A rename and a hard link name two paths: the file and its new name or link.
            let two_paths = matches!(op, FileOperation::Rename | FileOperation::HardLink);
            if two_paths != new_path.is_some() {
                return Err(self.err(
                    Some("new_path"),
                    if two_paths {
                        "missing (rename_file and hard_link_file need it)"
                    } else {
                        "only rename_file and hard_link_file have a new path"
                    },
                ));
            }
            return Ok(Action::File(FileAccess { op, path, new_path }));
        }
        match operation {
            "start" => Ok(Action::Start {
                pid: self.take_u32(obj, "pid")?,
                parent: self.take_str(obj, "parent")?,
                image: self.required_str(obj, "image")?,
                user_sid: self.take_str(obj, "user_sid")?,
                command_line: self.take_str(obj, "command_line")?,
            }),
            "exit" => Ok(Action::Exit),
            "register_session" => Ok(Action::RegisterSession {
                workspace: self.required_str(obj, "workspace")?,
                app_name: self.required_str(obj, "app_name")?,
            }),
            "unregister_session" => Ok(Action::UnregisterSession),
            "sleep" => {
                let ms = self
                    .take_u32(obj, "ms")?
                    .ok_or_else(|| self.err(Some("ms"), "missing"))?;
                Ok(Action::Sleep(Duration::from_millis(u64::from(ms))))
            }
            other => {
                let known: Vec<&str> = REGISTRY_OPS
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(FILE_OPS.iter().map(|(n, _)| *n))
                    .chain(LIFECYCLE.iter().copied())
                    .collect();
                Err(self.err(
                    Some("operation"),
                    format!(
                        "unknown operation `{other}` (expected one of {})",
                        known.join(", ")
                    ),
                ))
            }
        }
    }

    fn take_str(
        &self,
        obj: &mut Map<String, Value>,
        field: &'static str,
    ) -> Result<Option<String>, TraceError> {
        match obj.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                if s.chars().any(|c| c == '\0') {
                    return Err(self.err(Some(field), "contains a NUL character"));
                }
                Ok(Some(s))
            }
            Some(other) => {
                Err(self.err(Some(field), format!("expected a string, found `{other}`")))
            }
        }
    }

    /// A name given either as a string (`field`) or as UTF-16 code units (`units_field`, an
    /// array of numbers 0..=65535), which can spell what a JSON string cannot: unpaired
    /// surrogates and NULs. The result is name text (`agentsh_winstr::name`), which maps back to
    /// exactly those units.
    fn take_name(
        &self,
        obj: &mut Map<String, Value>,
        field: &'static str,
        units_field: &'static str,
    ) -> Result<Option<String>, TraceError> {
        let text = self.take_str(obj, field)?;
        let units = match obj.remove(units_field) {
            None | Some(Value::Null) => return Ok(text),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| {
                            self.err(
                                Some(units_field),
                                format!("`{v}` is not a UTF-16 code unit (0..=65535)"),
                            )
                        })
                })
                .collect::<Result<Vec<u16>, _>>()?,
            Some(other) => {
                return Err(self.err(
                    Some(units_field),
                    format!("expected an array of code units, found `{other}`"),
                ));
            }
        };
        if text.is_some() {
            return Err(self.err(
                Some(units_field),
                format!("give either `{field}` or `{units_field}`"),
            ));
        }
        Ok(Some(agentsh_winstr::name::decode(&units).collect()))
    }

    fn required_str(
        &self,
        obj: &mut Map<String, Value>,
        field: &'static str,
    ) -> Result<String, TraceError> {
        match self.take_str(obj, field)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(self.err(Some(field), "is empty")),
            None => Err(self.err(Some(field), "missing")),
        }
    }

    fn take_u32(
        &self,
        obj: &mut Map<String, Value>,
        field: &'static str,
    ) -> Result<Option<u32>, TraceError> {
        match obj.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.err(Some(field), format!("`{n}` is not in 0..=4294967295"))),
            Some(other) => {
                Err(self.err(Some(field), format!("expected a number, found `{other}`")))
            }
        }
    }

    fn value_type(&self, obj: &mut Map<String, Value>) -> Result<u32, TraceError> {
        match obj.get("value_type") {
            Some(Value::String(_)) => {
                let name = self.take_str(obj, "value_type")?.unwrap_or_default();
                VALUE_TYPES
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                    .map(|(_, code)| *code)
                    .ok_or_else(|| {
                        let names: Vec<&str> = VALUE_TYPES.iter().map(|(n, _)| *n).collect();
                        self.err(
                            Some("value_type"),
                            format!(
                                "unknown type `{name}` (expected a number or one of {})",
                                names.join(", ")
                            ),
                        )
                    })
            }
            _ => Ok(self.take_u32(obj, "value_type")?.unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(text: &str, expected: &str) {
        match Trace::parse("t.jsonl", text) {
            Ok(t) => panic!("expected error `{expected}`, parsed {t:?}"),
            Err(e) => assert_eq!(e.to_string(), expected),
        }
    }

    #[test]
    fn names_can_be_given_as_code_units() {
        let t = Trace::parse(
            "t.jsonl",
            r#"{"process":"py","operation":"set_value","key":"HKCU\\Run","value_units":[55296,85,0,120]}
{"process":"py","operation":"rename_file","path_units":[67,58,92,56320],"new_path":"C:\\b"}"#,
        )
        .expect("parses");
        let Action::Registry(r) = &t.lines[0].action else {
            panic!("a registry line");
        };
        assert_eq!(
            agentsh_winstr::name::units(&r.value).collect::<Vec<_>>(),
            [0xD800, 85, 0, 120]
        );
        let Action::File(f) = &t.lines[1].action else {
            panic!("a file line");
        };
        assert_eq!(
            agentsh_winstr::name::units(&f.path).collect::<Vec<_>>(),
            [67, 58, 92, 0xDC00]
        );
        check_err(
            r#"{"process":"p","operation":"set_value","key":"HKCU\\Run","value":"v","value_units":[1]}"#,
            "t.jsonl:1: field `value_units`: give either `value` or `value_units`",
        );
        check_err(
            r#"{"process":"p","operation":"set_value","key":"HKCU\\Run","value_units":[65536]}"#,
            "t.jsonl:1: field `value_units`: `65536` is not a UTF-16 code unit (0..=65535)",
        );
        check_err(
            r#"{"process":"p","operation":"set_value","key_units":[]}"#,
            "t.jsonl:1: field `key`: is empty",
        );
    }

    #[test]
    fn parses_every_kind_of_line() {
        let text = r#"
# a comment
{"process":"agent","operation":"start","pid":4100,"image":"C:\\agent.exe"}
{"process":"agent","operation":"register_session","workspace":"C:\\work","app_name":"TestApp"}
{"process":"py","operation":"start","parent":"agent","image":"C:\\py.exe","user_sid":"S-1-5-21-1-2-3-1001"}
{"process":"py","operation":"set_value","key":"HKCU\\Run","value":"x","value_type":"REG_SZ","data":"ab","expect":"deny","label":"run key"}
{"process":"py","operation":"rename_key","key":"HKCU\\A","new_name":"B","expect":"allow"}
{"process":"py","operation":"write_file","path":"C:\\work\\a.txt"}
{"operation":"sleep","ms":5}
{"process":"py","operation":"exit"}
"#;
        let trace = Trace::parse("t.jsonl", text).expect("parses");
        assert_eq!(trace.lines.len(), 8);
        assert_eq!(trace.lines[0].line, 3);
        assert_eq!(
            trace.lines[3].action,
            Action::Registry(RegistryAccess {
                op: Operation::SetValue,
                key: "HKCU\\Run".into(),
                value: "x".into(),
                new_name: None,
                value_type: 1,
                data_size: 6,
            })
        );
        assert_eq!(trace.lines[3].expect, Some(Expect::Deny));
        assert_eq!(trace.lines[3].label.as_deref(), Some("run key"));
        assert_eq!(
            trace.lines[6].action,
            Action::Sleep(Duration::from_millis(5))
        );
        assert_eq!(trace.lines[6].process, None);
    }

    #[test]
    fn errors_name_line_and_field() {
        check_err(
            "\n{\"process\":\"p\",\"operation\":\"set_valu\",\"key\":\"K\"}",
            "t.jsonl:2: field `operation`: unknown operation `set_valu` (expected one of query_value, set_value, delete_value, create_key, delete_key, enum_keys, enum_values, open_key, rename_key, save_key, restore_key, replace_key, load_key, set_key_security, read_file, write_file, create_file, delete_file, rename_file, hard_link_file, start, exit, register_session, unregister_session, sleep)",
        );
        check_err(
            r#"{"process":"p","operation":"set_value"}"#,
            "t.jsonl:1: field `key`: missing",
        );
        check_err(
            r#"{"process":"p","operation":"set_value","key":""}"#,
            "t.jsonl:1: field `key`: is empty",
        );
        check_err(
            r#"{"process":"p","operation":"set_value","key":"K","expect":"maybe"}"#,
            "t.jsonl:1: field `expect`: unknown outcome `maybe` (expected allow or deny)",
        );
        check_err(
            r#"{"process":"p","operation":"set_value","key":"K","colour":1}"#,
            "t.jsonl:1: unknown field `colour` for operation `set_value`",
        );
        check_err(
            r#"{"process":7,"operation":"exit"}"#,
            "t.jsonl:1: field `process`: expected a string, found `7`",
        );
        check_err(
            r#"{"process":"p","operation":"start","image":"i","pid":-1}"#,
            "t.jsonl:1: field `pid`: `-1` is not in 0..=4294967295",
        );
        check_err(
            r#"{"process":"p","operation":"rename_key","key":"K"}"#,
            "t.jsonl:1: field `new_name`: missing (rename_key needs it)",
        );
        check_err(
            r#"{"process":"p","operation":"set_value","key":"K","new_name":"x"}"#,
            "t.jsonl:1: field `new_name`: only rename_key has a new name",
        );
        check_err(
            r#"{"process":"p","operation":"hard_link_file","path":"C:\\a"}"#,
            "t.jsonl:1: field `new_path`: missing (rename_file and hard_link_file need it)",
        );
        check_err(
            r#"{"process":"p","operation":"write_file","path":"C:\\a","new_path":"C:\\b"}"#,
            "t.jsonl:1: field `new_path`: only rename_file and hard_link_file have a new path",
        );
        let link = Trace::parse(
            "t.jsonl",
            r#"{"process":"p","operation":"hard_link_file","path":"C:\\a","new_path":"C:\\b"}"#,
        )
        .expect("a hard link names its new link");
        assert_eq!(
            link.lines[0].action,
            Action::File(FileAccess {
                op: FileOperation::HardLink,
                path: "C:\\a".into(),
                new_path: Some("C:\\b".into()),
            })
        );
        check_err(
            r#"{"process":"p","operation":"set_value","key":"K","value_type":"REG_WORD"}"#,
            "t.jsonl:1: field `value_type`: unknown type `REG_WORD` (expected a number or one of REG_NONE, REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_LINK, REG_MULTI_SZ, REG_QWORD)",
        );
        check_err(
            r#"{"process":"p","operation":"exit","expect":"allow"}"#,
            "t.jsonl:1: field `expect`: only registry and file operations have an outcome, not `exit`",
        );
        check_err(
            r#"{"operation":"exit"}"#,
            "t.jsonl:1: field `process`: missing",
        );
        check_err(
            r#"{"process":"p","operation":"set_value","key":"K\u0000"}"#,
            "t.jsonl:1: field `key`: contains a NUL character",
        );
        check_err("[1]", "t.jsonl:1: expected a JSON object");
        check_err(
            "{",
            "t.jsonl:1: not valid JSON: EOF while parsing an object at line 1 column 1",
        );
    }
}
