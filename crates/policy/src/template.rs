//! Approval and notification message templates (`Agent wants to modify service: {{.Path}}`),
//! parsed and checked at load time so an unknown placeholder is an error, not empty text.

use std::fmt::Write;

/// A placeholder a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Path,
    ValueName,
    Operation,
    ProcessName,
    ProcessId,
    Rule,
}

impl Field {
    /// Every placeholder with its spelling.
    pub const ALL: [(Field, &'static str); 6] = [
        (Field::Path, "Path"),
        (Field::ValueName, "ValueName"),
        (Field::Operation, "Operation"),
        (Field::ProcessName, "ProcessName"),
        (Field::ProcessId, "ProcessID"),
        (Field::Rule, "Rule"),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct TemplateValues<'a> {
    pub path: &'a str,
    pub value_name: &'a str,
    pub operation: &'a str,
    pub process_name: &'a str,
    pub process_id: u32,
    pub rule: &'a str,
}

impl Template {
    /// Parses `{{.Name}}` placeholders; anything else between `{{` and `}}` is an error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err("unterminated placeholder: `{{` without `}}`".to_owned());
            };
            let name = after[..end].trim();
            let field = name
                .strip_prefix('.')
                .and_then(|n| Field::ALL.iter().find(|(_, s)| *s == n))
                .map(|(f, _)| *f)
                .ok_or_else(|| {
                    format!(
                        "unknown placeholder `{{{{{name}}}}}` (known: {{{{.Path}}}}, {{{{.ValueName}}}}, {{{{.Operation}}}}, {{{{.ProcessName}}}}, {{{{.ProcessID}}}}, {{{{.Rule}}}})"
                    )
                })?;
            pieces.push(Piece::Field(field));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template { pieces })
    }

    /// Renders the template.
    pub fn render(&self, v: &TemplateValues<'_>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(Field::Path) => out.push_str(v.path),
                Piece::Field(Field::ValueName) => out.push_str(v.value_name),
                Piece::Field(Field::Operation) => out.push_str(v.operation),
                Piece::Field(Field::ProcessName) => out.push_str(v.process_name),
                Piece::Field(Field::ProcessId) => {
                    let _ = write!(out, "{}", v.process_id);
                }
                Piece::Field(Field::Rule) => out.push_str(v.rule),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder() {
        let t = Template::parse(
            "{{.ProcessName}} ({{.ProcessID}}) wants to {{.Operation}} {{.Path}} value {{ .ValueName }} [{{.Rule}}]",
        )
        .expect("valid template");
        let s = t.render(&TemplateValues {
            path: r"HKLM\X",
            value_name: "V",
            operation: "write",
            process_name: "python.exe",
            process_id: 42,
            rule: "r",
        });
        assert_eq!(s, r"python.exe (42) wants to write HKLM\X value V [r]");
    }

    #[test]
    fn unknown_or_unterminated_placeholders_are_errors() {
        assert!(Template::parse("{{.Pth}}").is_err_and(|e| e.contains("`{{.Pth}}`")));
        assert!(Template::parse("{{.Path").is_err());
    }
}
