//! packaging/agentsh.inf, parsed: the two layouts of Microsoft's current minifilter samples
//! (`Parameters\Instances` in the driver store for builds 25952 and later, the legacy `Instances`
//! in System32\drivers for builds 19041 to 25951), `LegacyUninstall=1` on the only
//! DefaultUninstall, and the values `agentsh driver install` writes.

use std::collections::BTreeMap;

use agentsh_windows::driver::{DEFAULT_ALTITUDE, DEFAULT_INSTANCE, FILTER_NAME, LOAD_ORDER_GROUP};

const INF: &str = include_str!("../../../packaging/agentsh.inf");

/// Sections (lower-case names) to their lines, comments and blank lines removed.
fn sections() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for raw in INF.lines() {
        let line = strip_comment(raw).trim().to_owned();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.to_ascii_lowercase();
            assert!(!out.contains_key(&name), "section [{name}] appears twice");
            out.insert(name.clone(), Vec::new());
            current = Some(name);
            continue;
        }
        let section = current.clone().expect("every line is inside a section");
        out.get_mut(&section).expect("section").push(line);
    }
    out
}

/// The line without its `;` comment (a `;` inside quotes is text).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// `key = value` of a section, unquoted.
fn value(s: &BTreeMap<String, Vec<String>>, section: &str, key: &str) -> String {
    s.get(&section.to_ascii_lowercase())
        .unwrap_or_else(|| panic!("no section [{section}]"))
        .iter()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("[{section}] has no `{key}`"))
}

/// `%Name%` tokens replaced from [Strings].
fn expand(s: &BTreeMap<String, Vec<String>>, text: &str) -> String {
    let mut out = String::new();
    let mut parts = text.split('%');
    out.push_str(parts.next().unwrap_or_default());
    let mut inside = true;
    for p in parts {
        if inside
            && !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
            && !p.chars().all(|c| c.is_ascii_digit())
        {
            out.push_str(&value(s, "Strings", p));
        } else if inside {
            out.push('%');
            out.push_str(p);
            out.push('%');
        } else {
            out.push_str(p);
        }
        inside = !inside;
    }
    out
}

/// The AddReg lines of a registry section as (subkey, value name, value), expanded and unquoted.
fn add_reg(s: &BTreeMap<String, Vec<String>>, section: &str) -> Vec<(String, String, String)> {
    s.get(&section.to_ascii_lowercase())
        .unwrap_or_else(|| panic!("no section [{section}]"))
        .iter()
        .map(|l| {
            let f: Vec<String> = l
                .split(',')
                .map(|x| expand(s, x.trim()).replace('"', ""))
                .collect();
            assert_eq!(f[0], "HKR", "{l}");
            (f[1].clone(), f[2].clone(), f[4].clone())
        })
        .collect()
}

struct Layout {
    install: &'static str,
    dirid: &'static str,
    values_under: &'static str,
}

const LAYOUTS: [Layout; 2] = [
    Layout {
        install: "DefaultInstall.NTamd64.10.0...25952",
        dirid: "13",
        values_under: "Parameters\\",
    },
    Layout {
        install: "DefaultInstall.NTamd64.10.0...19041",
        dirid: "12",
        values_under: "",
    },
];

#[test]
fn each_build_range_gets_its_own_layout() {
    let s = sections();
    for l in LAYOUTS {
        let copy = value(&s, l.install, "CopyFiles");
        assert_eq!(
            value(&s, "DestinationDirs", &copy),
            l.dirid,
            "{}",
            l.install
        );
        let add_service = value(&s, &format!("{}.Services", l.install), "AddService");
        let f: Vec<&str> = add_service.split(',').collect();
        assert_eq!(expand(&s, f[0]), FILTER_NAME);
        let service = f[2].trim();
        assert_eq!(
            value(&s, service, "ServiceBinary"),
            format!("%{}%\\agentsh.sys", l.dirid)
        );
        assert_eq!(value(&s, service, "ServiceType"), "2");
        assert_eq!(value(&s, service, "Dependencies"), "FltMgr");
        assert_eq!(value(&s, service, "LoadOrderGroup"), LOAD_ORDER_GROUP);
        let regs = add_reg(&s, &value(&s, service, "AddReg"));
        let p = l.values_under;
        let want = [
            (
                p.trim_end_matches('\\').to_owned(),
                "SupportedFeatures".to_owned(),
                "0x3".to_owned(),
            ),
            (
                format!("{p}Instances"),
                "DefaultInstance".into(),
                DEFAULT_INSTANCE.into(),
            ),
            (
                format!("{p}Instances\\{DEFAULT_INSTANCE}"),
                "Altitude".into(),
                DEFAULT_ALTITUDE.into(),
            ),
            (
                format!("{p}Instances\\{DEFAULT_INSTANCE}"),
                "Flags".into(),
                "0x0".into(),
            ),
        ];
        assert_eq!(regs, want, "{}", l.install);
    }
    // Only the two decorations: nothing undecorated that an older build would install.
    let installs: Vec<&String> = s
        .keys()
        .filter(|k| k.starts_with("defaultinstall") && !k.ends_with(".services"))
        .collect();
    assert_eq!(
        installs,
        [
            "defaultinstall.ntamd64.10.0...19041",
            "defaultinstall.ntamd64.10.0...25952"
        ]
    );
}

#[test]
fn the_only_default_uninstall_is_a_legacy_uninstall() {
    let s = sections();
    let uninstalls: Vec<&String> = s
        .keys()
        .filter(|k| k.starts_with("defaultuninstall") && !k.ends_with(".services"))
        .collect();
    assert_eq!(uninstalls, ["defaultuninstall.ntamd64.10.0...19041"]);
    let section = "DefaultUninstall.NTamd64.10.0...19041";
    assert_eq!(value(&s, section, "LegacyUninstall"), "1");
    let del = value(&s, section, "DelFiles");
    assert_eq!(value(&s, "DestinationDirs", &del), "12");
    assert_eq!(
        value(&s, &format!("{section}.Services"), "DelService"),
        "%ServiceName%,0x200"
    );
}

#[test]
fn the_package_is_a_locked_down_activity_monitor() {
    let s = sections();
    assert_eq!(value(&s, "Version", "Class"), "ActivityMonitor");
    assert_eq!(
        value(&s, "Version", "ClassGuid"),
        "{b86dff51-a31e-4bac-b3cf-e8cfe75c9fc2}"
    );
    assert_eq!(value(&s, "Version", "PnpLockdown"), "1");
    assert_eq!(value(&s, "Version", "CatalogFile"), "agentsh.cat");
}
