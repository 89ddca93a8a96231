//! The built-in high-risk catalog: registry locations attackers use for persistence, privilege
//! escalation, credential access and defence evasion, each tagged with its ATT&CK technique,
//! the public sources that document it, and what a sandboxed write gets (deny, approve or
//! log-only) with the reason.
//!
//! Every row of both specification tables is here with its paths written out in full, plus the
//! locations used by public attack-emulation and detection sources (Atomic Red Team, Sigma,
//! sysmon-modular, Elastic and Splunk detection rules, the Autoruns locations and Hexacorn's
//! "Beyond good ol' Run key" series). Where a key holds both dangerous and harmless values the
//! entries name the values. Technique ids, names and tactics are checked in CI against the ATT&CK
//! STIX bundle of [`ATTACK_VERSION`]; sources that moved to ATT&CK v19 numbering are mapped back
//! (see docs/catalog.md). Where the design table is wrong it is corrected here and the entry says
//! so (`Cryptography\OID` is T1553.003).
//!
//! Location notation used only in this table: `KEY>VALUE` names a value of a key (value patterns
//! are globs too); `HKCU` means every user's hive (see [`crate::pattern::UserScope::AnyUser`]).

use std::fmt;

use crate::ops::{Decision, Risk};

/// The ATT&CK release the technique ids, names and tactics were verified against.
pub const ATTACK_VERSION: &str = "18.1";

/// Where a catalog entry comes from, relative to the specifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A row of the design's "High-Risk Paths" table.
    DesignTable,
    /// A row of the deployment guide's "High-Risk Registry Paths" table.
    GuideTable,
    /// A row of both tables.
    BothTables,
    /// A location beyond the tables, documented by the entry's sources.
    Extended,
}

impl Origin {
    /// The name shown by `agentsh policy catalog`.
    pub fn name(self) -> &'static str {
        match self {
            Origin::DesignTable => "design-table",
            Origin::GuideTable => "guide-table",
            Origin::BothTables => "design-and-guide-tables",
            Origin::Extended => "extended",
        }
    }
}

/// What a sandboxed write-class operation on an entry's location gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Refused: no legitimate agent tool writes here.
    Deny,
    /// Held for a person: a developer tool might write here.
    Approve,
    /// Decided by the rules and `default_action` as if the entry were absent, but always logged
    /// with the entry's risk and technique.
    LogOnly,
}

impl Action {
    /// The name shown by `agentsh policy catalog` and in docs/catalog.md.
    pub fn name(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Approve => "approve",
            Action::LogOnly => "log-only",
        }
    }

    /// The decision the entry imposes as a floor (`None` for log-only: it imposes none).
    pub fn floor(self) -> Option<Decision> {
        match self {
            Action::Deny => Some(Decision::Deny),
            Action::Approve => Some(Decision::Approve),
            Action::LogOnly => None,
        }
    }

    /// Strictness for ranking matching entries: log-only < approve < deny.
    pub fn strictness(self) -> u8 {
        self.floor().map_or(0, Decision::strictness)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One high-risk location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Stable id; rules refer to it as `builtin:<id>` and `overrides:` lists it.
    pub id: &'static str,
    /// Locations in table notation (see the module documentation).
    pub locations: &'static [&'static str],
    pub risk: Risk,
    /// ATT&CK technique id (`T1547.001`), at sub-technique level where ATT&CK has one.
    pub technique: &'static str,
    /// ATT&CK technique name in [`ATTACK_VERSION`].
    pub technique_name: &'static str,
    /// The ATT&CK tactic (STIX short name) this location serves.
    pub tactic: &'static str,
    /// What a sandboxed write-class operation gets.
    pub action: Action,
    pub description: &'static str,
    /// Why the entry has its action, in one line.
    pub reason: &'static str,
    /// Relation to the specification tables.
    pub origin: Origin,
    /// The public sources documenting the location: `owner/repository path`, or a named page.
    pub sources: &'static [&'static str],
}

/// An ATT&CK enterprise tactic's name and id by its STIX short name (`persistence` →
/// `("Persistence", "TA0003")`), as ATT&CK [`ATTACK_VERSION`] lists them; `None` for a name that
/// is not an enterprise tactic.
pub fn tactic(short_name: &str) -> Option<(&'static str, &'static str)> {
    Some(match short_name {
        "reconnaissance" => ("Reconnaissance", "TA0043"),
        "resource-development" => ("Resource Development", "TA0042"),
        "initial-access" => ("Initial Access", "TA0001"),
        "execution" => ("Execution", "TA0002"),
        "persistence" => ("Persistence", "TA0003"),
        "privilege-escalation" => ("Privilege Escalation", "TA0004"),
        "defense-evasion" => ("Defense Evasion", "TA0005"),
        "credential-access" => ("Credential Access", "TA0006"),
        "discovery" => ("Discovery", "TA0007"),
        "lateral-movement" => ("Lateral Movement", "TA0008"),
        "collection" => ("Collection", "TA0009"),
        "command-and-control" => ("Command and Control", "TA0011"),
        "exfiltration" => ("Exfiltration", "TA0010"),
        "impact" => ("Impact", "TA0040"),
        _ => return None,
    })
}

const P: &str = "persistence";
const DE: &str = "defense-evasion";
const CA: &str = "credential-access";
const PE: &str = "privilege-escalation";

macro_rules! entry {
    ($id:literal, $risk:ident, $tech:literal, $name:literal, $tactic:expr, $action:ident, $origin:ident, $desc:literal, $reason:literal, [$($loc:literal),+ $(,)?], [$($src:literal),+ $(,)?] $(,)?) => {
        Entry {
            id: $id,
            locations: &[$($loc),+],
            risk: Risk::$risk,
            technique: $tech,
            technique_name: $name,
            tactic: $tactic,
            action: Action::$action,
            description: $desc,
            reason: $reason,
            origin: Origin::$origin,
            sources: &[$($src),+],
        }
    };
}

/// The catalog, in documentation order.
pub const ENTRIES: &[Entry] = &[
    entry!(
        "run-keys-hklm",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        BothTables,
        "machine-wide Run/RunOnce/RunOnceEx/RunServices keys start programs at boot or logon",
        "no build, test or coding tool needs to start a program at every boot",
        [r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run*"],
        [
            "design: High-Risk Paths table",
            "deployment guide: High-Risk Registry Paths table",
            "redcanaryco/atomic-red-team atomics/T1547.001/T1547.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentversion.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "elastic/detection-rules rules/windows/persistence_run_key_and_startup_broad.toml",
            "splunk/security_content detections/endpoint/registry_keys_used_for_persistence.yml",
            "Sysinternals Autoruns, Logon tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "run-keys-hkcu",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        DesignTable,
        "per-user Run/RunOnce keys start programs at logon",
        "no build, test or coding tool needs to start a program at every logon",
        [r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Run*"],
        [
            "design: High-Risk Paths table",
            "redcanaryco/atomic-red-team atomics/T1547.001/T1547.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentversion.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "elastic/detection-rules rules/windows/persistence_run_key_and_startup_broad.toml",
            "Sysinternals Autoruns, Logon tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "services",
        Critical,
        "T1543.003",
        "Windows Service",
        P,
        Approve,
        BothTables,
        "service keys define programs the service control manager starts",
        "installers of developer tools (databases, emulators) do register services: a person decides",
        [r"HKLM\SYSTEM\CurrentControlSet\Services\*"],
        [
            "design: High-Risk Paths table",
            "deployment guide: High-Risk Registry Paths table",
            "elastic/detection-rules rules/windows/persistence_suspicious_service_created_registry.toml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_creation_service_susp_folder.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_services.xml"
        ]
    ),
    entry!(
        "winlogon",
        Critical,
        "T1547.004",
        "Winlogon Helper DLL",
        P,
        Deny,
        BothTables,
        "Winlogon Shell/Userinit/Notify/VmApplet values run code at every logon",
        "Winlogon is configured by Windows setup and administrators, never by a coding tool",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon*"],
        [
            "design: High-Risk Paths table",
            "deployment guide: High-Risk Registry Paths table",
            "redcanaryco/atomic-red-team atomics/T1547.004/T1547.004.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentversion_nt.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_winlogon_notify_key.yml",
            "Sysinternals Autoruns, Winlogon tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "ifeo",
        Critical,
        "T1546.012",
        "Image File Execution Options Injection",
        PE,
        Deny,
        DesignTable,
        "Image File Execution Options Debugger/GlobalFlag hijack program start",
        "a debugger registered here runs instead of the program: debuggers attach, they do not register",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\*"],
        [
            "design: High-Risk Paths table",
            "redcanaryco/atomic-red-team atomics/T1546.012/T1546.012.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_image_file_exec_options.xml",
            "elastic/detection-rules rules/windows/persistence_evasion_registry_ifeo_injection.toml",
            "splunk/security_content detections/endpoint/registry_keys_used_for_privilege_escalation.yml",
            "Sysinternals Autoruns, Image Hijacks tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "com-inprocserver-hklm",
        High,
        "T1546.015",
        "Component Object Model Hijacking",
        PE,
        Deny,
        DesignTable,
        "machine COM class InprocServer32 redirects a COM object to attacker code",
        "machine-wide COM registration belongs to elevated installers, not to a sandboxed session",
        [r"HKLM\SOFTWARE\Classes\CLSID\*\InprocServer32\*"],
        [
            "design: High-Risk Paths table",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_com_hijack.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_com_hijacking_builtin.yml",
            "splunk/security_content detections/endpoint/windows_com_hijacking_inprocserver32_modification.yml"
        ]
    ),
    entry!(
        "shell-open-command-hklm",
        High,
        "T1546.001",
        "Change Default File Association",
        PE,
        Deny,
        DesignTable,
        "machine file-association commands run a program when a file type is opened",
        "machine-wide file associations belong to elevated installers",
        [
            r"HKLM\SOFTWARE\Classes\*\shell\open\command\*",
            r"HKLM\SOFTWARE\Classes\*\shell\*\command\*"
        ],
        [
            "design: High-Risk Paths table",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_susp_shell_open_keys_modification_patterns.yml"
        ]
    ),
    entry!(
        "windows-defender",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        BothTables,
        "Microsoft Defender settings and policies (disable switches, exclusions, tamper protection)",
        "turning off or excluding from the anti-malware engine is never a coding task",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows Defender\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender*",
            r"HKLM\SOFTWARE\Microsoft\Windows Defender Security Center\*",
            r"HKLM\SOFTWARE\Microsoft\Windows Advanced Threat Protection\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows Advanced Threat Protection\*",
            r"HKLM\SOFTWARE\Microsoft\Microsoft Antimalware\*"
        ],
        [
            "design: High-Risk Paths table",
            "deployment guide: High-Risk Registry Paths table",
            "redcanaryco/atomic-red-team atomics/T1685/T1685.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_windows_defender_tamper.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_defender_exclusions.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_defender_tampering.xml",
            "elastic/detection-rules rules/windows/defense_evasion_defender_disabled_via_registry.toml",
            "splunk/security_content detections/endpoint/disable_defender_antivirus_registry.yml",
            "splunk/security_content detections/endpoint/windows_defender_exclusion_registry_entry.yml"
        ]
    ),
    entry!(
        "lsa",
        Critical,
        "T1003",
        "OS Credential Dumping",
        CA,
        Deny,
        BothTables,
        "LSA configuration (packages, protection, credential caching)",
        "LSA settings decide how credentials are held; no coding tool changes them",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa*"],
        [
            "design: High-Risk Paths table",
            "deployment guide: High-Risk Registry Paths table",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_credential_providers.xml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_authentication_package.xml"
        ]
    ),
    entry!(
        "security-providers",
        Critical,
        "T1547.005",
        "Security Support Provider",
        P,
        Deny,
        DesignTable,
        "security support providers loaded into LSASS",
        "a provider DLL registered here runs inside LSASS",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\*"],
        [
            "design: High-Risk Paths table",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_credential_providers.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentcontrolset.yml"
        ]
    ),
    entry!(
        "policies",
        High,
        "T1112",
        "Modify Registry",
        DE,
        Approve,
        DesignTable,
        "machine policy keys change system behaviour and security settings",
        "policy keys are set by administrators; an installer may set one, so a person decides",
        [
            r"HKLM\SOFTWARE\Policies\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\*"
        ],
        [
            "design: High-Risk Paths table",
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_function_user.yml",
            "splunk/security_content detections/endpoint/windows_disable_windows_group_policy_features_through_registry.yml"
        ]
    ),
    entry!(
        "cryptography-oid",
        Medium,
        "T1553.003",
        "SIP and Trust Provider Hijacking",
        DE,
        Deny,
        DesignTable,
        "signature verification providers (the design table says T1553.004; the technique is T1553.003)",
        "a subject interface package registered here decides whether signatures verify",
        [r"HKLM\SOFTWARE\Microsoft\Cryptography\OID\*"],
        [
            "design: High-Risk Paths table",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_sip_trust_provider_hijacking.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_sip_persistence.yml",
            "elastic/detection-rules rules/windows/defense_evasion_sip_provider_mod.toml"
        ]
    ),
    entry!(
        "enterprise-certificates",
        Medium,
        "T1553.004",
        "Install Root Certificate",
        DE,
        Deny,
        DesignTable,
        "enterprise certificate stores trusted by the machine",
        "machine trust stores are managed by administrators",
        [r"HKLM\SOFTWARE\Microsoft\EnterpriseCertificates\*"],
        [
            "design: High-Risk Paths table",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_root_certs.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_install_root_or_ca_certificat.yml"
        ]
    ),
    entry!(
        "run-keys-policies",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "policy Run lists start programs at logon",
        "policy Run lists are written by Group Policy, never by a tool",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Explorer\Run\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Explorer\Run\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.001/T1547.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_susp_reg_persist_explorer_run.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "Sysinternals Autoruns, Logon tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "terminal-server-install-run",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "Terminal Server install-mode copies of the Run keys start programs at logon",
        "install mode is a Terminal Server administration feature",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Terminal Server\Install\SOFTWARE\Microsoft\Windows\CurrentVersion\Run*"
        ],
        [
            "Sysinternals Autoruns, Logon tab (learn.microsoft.com/sysinternals/downloads/autoruns)",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentversion_nt.yml"
        ]
    ),
    entry!(
        "windows-load-run",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "legacy Windows Load/Run values start programs at logon",
        "legacy autostart values have no use for a coding tool",
        [
            r"HKCU\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows>Load",
            r"HKCU\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows>Run"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "Sysinternals Autoruns, Logon tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "startup-folders",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "redirecting the Startup folder runs its contents at logon",
        "moving the Startup folder only serves to start programs at logon",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders>*Startup",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Shell Folders>*Startup",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders>*Startup",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Shell Folders>*Startup"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.001/T1547.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_susp_user_shell_folders.yml",
            "elastic/detection-rules rules/windows/persistence_evasion_registry_startup_shell_folder_modified.toml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml"
        ]
    ),
    entry!(
        "boot-execute",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "Session Manager BootExecute/SetupExecute/Execute/S0InitialCommand run native programs at boot; KnownDLL search settings; boot verification program",
        "boot-time programs run before any user logs on",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>BootExecute",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>SetupExecute",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>Execute",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>S0InitialCommand",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>ExcludeFromKnownDlls",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>SafeDllSearchMode",
            r"HKLM\SYSTEM\CurrentControlSet\Control\BootVerificationProgram\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.001/T1547.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_session_manager.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "Sysinternals Autoruns, Boot Execute tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "setup-cmdline",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        r"HKLM\SYSTEM\Setup CmdLine/SetupType run a command at the next boot as SYSTEM",
        "only Windows setup uses these values",
        [
            r"HKLM\SYSTEM\Setup>CmdLine",
            r"HKLM\SYSTEM\Setup>SetupType",
            r"HKLM\SYSTEM\Setup\Upgrade\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_common.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_environment_mod.xml"
        ]
    ),
    entry!(
        "command-processor-autorun",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "cmd.exe AutoRun runs a command in every command prompt",
        "a command in AutoRun runs in every cmd.exe, including the sandbox's",
        [
            r"HKLM\SOFTWARE\Microsoft\Command Processor>AutoRun",
            r"HKCU\SOFTWARE\Microsoft\Command Processor>AutoRun"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1546/T1546.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_common.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml"
        ]
    ),
    entry!(
        "rdp-initial-program",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "RDP InitialProgram/StartupPrograms run a program in every remote session",
        "Remote Desktop session programs are server administration",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp>InitialProgram",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\Wds\rdpwd>StartupPrograms",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server>InitialProgram"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.001/T1547.001.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_terminal_service_execution.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentcontrolset.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_terminal_server_tampering.yml"
        ]
    ),
    entry!(
        "accessibility-ats",
        Critical,
        "T1546.008",
        "Accessibility Features",
        PE,
        Deny,
        Extended,
        "assistive technology registrations (StartExe) run at the secure desktop",
        "assistive technologies run on the logon screen as SYSTEM",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Accessibility\ATs\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Accessibility>Configuration",
            r"HKCU\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Accessibility>Configuration"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1546.008/T1546.008.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_susp_atbroker_change.yml"
        ]
    ),
    entry!(
        "authentication-packages",
        Critical,
        "T1547.002",
        "Authentication Package",
        P,
        Deny,
        Extended,
        "authentication packages are loaded by LSASS at boot",
        "a package registered here runs inside LSASS",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>Authentication Packages"],
        [
            "redcanaryco/atomic-red-team atomics/T1547.002/T1547.002.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_authentication_package.xml",
            "elastic/detection-rules rules/windows/privilege_escalation_lsa_auth_package.toml"
        ]
    ),
    entry!(
        "security-packages",
        Critical,
        "T1547.005",
        "Security Support Provider",
        P,
        Deny,
        Extended,
        "security packages are loaded by LSASS",
        "a package registered here runs inside LSASS",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>Security Packages",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\OSConfig>Security Packages"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.005/T1547.005.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_ssp_added_lsa_config.yml",
            "elastic/detection-rules rules/windows/persistence_via_lsa_security_support_provider_registry.toml"
        ]
    ),
    entry!(
        "password-filters",
        Critical,
        "T1556.002",
        "Password Filter DLL",
        CA,
        Deny,
        Extended,
        "notification packages receive every password change in clear text",
        "a password filter sees every new password",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>Notification Packages"],
        [
            "redcanaryco/atomic-red-team atomics/T1556.002/T1556.002.yaml",
            "Sysinternals Autoruns, LSA Providers tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "lsa-extensions",
        Critical,
        "T1547.008",
        "LSASS Driver",
        P,
        Deny,
        Extended,
        "LSA extension DLLs are loaded into LSASS",
        "an extension registered here runs inside LSASS",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\LsaExtensionConfig\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_lsa_extension.yml"
        ]
    ),
    entry!(
        "time-providers",
        Critical,
        "T1547.003",
        "Time Providers",
        P,
        Deny,
        Extended,
        "W32Time loads time provider DLLs into a system service",
        "a time provider DLL runs in a SYSTEM service",
        [r"HKLM\SYSTEM\CurrentControlSet\Services\W32Time\TimeProviders\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1547.003/T1547.003.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_w32time_provider.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_timeproviders_dllname.yml",
            "elastic/detection-rules rules/windows/persistence_time_provider_mod.toml",
            "splunk/security_content detections/endpoint/time_provider_persistence_registry.yml"
        ]
    ),
    entry!(
        "lsass-driver",
        Critical,
        "T1547.008",
        "LSASS Driver",
        P,
        Deny,
        Extended,
        "directory service extension points load DLLs into LSASS",
        "a DLL registered here runs inside LSASS",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\NTDS>DirectoryServiceExtPt",
            r"HKLM\SYSTEM\CurrentControlSet\Services\NTDS>LsaDbExtPt"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.008/T1547.008.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_susp_lsass_dll_load.yml",
            "splunk/security_content detections/endpoint/windows_autostart_execution_lsass_driver_registry_modification.yml"
        ]
    ),
    entry!(
        "port-monitors",
        High,
        "T1547.010",
        "Port Monitors",
        P,
        Deny,
        Extended,
        "print monitors load DLLs into the spooler at boot",
        "a monitor DLL runs in the SYSTEM spooler",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Print\Monitors\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Ports\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.010/T1547.010.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_local_port_monitor.xml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_port_changes.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_add_port_monitor.yml",
            "elastic/detection-rules rules/windows/privilege_escalation_port_monitor_print_processor_abuse.toml",
            "splunk/security_content detections/endpoint/monitor_registry_keys_for_print_monitors.yml"
        ]
    ),
    entry!(
        "print-processors",
        High,
        "T1547.012",
        "Print Processors",
        P,
        Deny,
        Extended,
        "print processors load DLLs into the spooler",
        "a print processor DLL runs in the SYSTEM spooler",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Print\Environments\*\Print Processors\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1547.012/T1547.012.yaml",
            "elastic/detection-rules rules/windows/privilege_escalation_port_monitor_print_processor_abuse.toml",
            "splunk/security_content detections/endpoint/print_processor_registry_autostart.yml"
        ]
    ),
    entry!(
        "print-providers",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "print providers load DLLs into the spooler",
        "a print provider DLL runs in the SYSTEM spooler",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Print\Providers\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentcontrolset.yml",
            "Sysinternals Autoruns, Print Monitors tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "active-setup",
        High,
        "T1547.014",
        "Active Setup",
        P,
        Deny,
        Extended,
        "Active Setup StubPath runs a command at every user's first logon",
        "Active Setup components are registered by elevated installers",
        [
            r"HKLM\SOFTWARE\Microsoft\Active Setup\Installed Components\*",
            r"HKCU\SOFTWARE\Microsoft\Active Setup\Installed Components\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.014/T1547.014.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_runonce_persistence.yml",
            "splunk/security_content detections/endpoint/active_setup_registry_autostart.yml",
            "elastic/detection-rules rules/windows/persistence_registry_uncommon.toml"
        ]
    ),
    entry!(
        "logon-scripts",
        High,
        "T1037.001",
        "Logon Script (Windows)",
        P,
        Deny,
        Extended,
        "the user logon script (UserInitMprLogonScript) runs at every logon",
        "a logon script runs at every logon",
        [r"HKCU\Environment>UserInitMprLogonScript"],
        [
            "redcanaryco/atomic-red-team atomics/T1037.001/T1037.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_logon_scripts_userinitmprlogonscript.yml",
            "splunk/security_content detections/endpoint/logon_script_event_trigger_execution.yml"
        ]
    ),
    entry!(
        "group-policy-scripts",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "Group Policy startup, shutdown, logon and logoff scripts",
        "scripts here run at every boot or logon; Group Policy writes them, never a tool",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Group Policy\Scripts\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Group Policy\Scripts\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows\System\Scripts\*",
            r"HKCU\SOFTWARE\Policies\Microsoft\Windows\System\Scripts\*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_system_scripts.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentversion.yml"
        ]
    ),
    entry!(
        "group-policy-refresh",
        High,
        "T1484.001",
        "Group Policy Modification",
        DE,
        Approve,
        Extended,
        "Group Policy refresh intervals",
        "policy settings are an administrator's; an installer may set one, so a person decides",
        [r"HKLM\SOFTWARE\Policies\Microsoft\Windows\System>GroupPolicyRefreshTime*"],
        ["redcanaryco/atomic-red-team atomics/T1484.001/T1484.001.yaml"]
    ),
    entry!(
        "terminal-services-dll",
        Critical,
        "T1505.005",
        "Terminal Services DLL",
        P,
        Deny,
        Extended,
        "the Remote Desktop service DLL runs as SYSTEM",
        "replacing the Remote Desktop service DLL runs code as SYSTEM",
        [r"HKLM\SYSTEM\CurrentControlSet\Services\TermService\Parameters>ServiceDll"],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_rdp_terminal_service_sensitive_settings.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_terminal_server_tampering.yml"
        ]
    ),
    entry!(
        "rdp-client-addins",
        High,
        "T1547",
        "Boot or Logon Autostart Execution",
        P,
        Deny,
        Extended,
        "Remote Desktop client add-ins load DLLs into mstsc",
        "RDP client plug-ins are installed by administrators",
        [r"HKCU\SOFTWARE\Microsoft\Terminal Server Client\Default\Addins\*"],
        ["redcanaryco/atomic-red-team atomics/T1547/T1547.yaml"]
    ),
    entry!(
        "rdp-plugins",
        High,
        "T1546",
        "Event Triggered Execution",
        P,
        Deny,
        Extended,
        "the Remote Desktop client extension DLL and server virtual-channel plug-ins",
        "RDP plug-in DLLs are installed by administrators",
        [
            r"HKLM\SOFTWARE\Microsoft\Terminal Server Client>ClxDllPath",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\AddIns\*"
        ],
        ["redcanaryco/atomic-red-team atomics/T1546/T1546.yaml"]
    ),
    entry!(
        "winsock-providers",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "Winsock protocol and namespace catalog entries load DLLs into every networking process",
        "layered service providers are installed by elevated networking software",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\WinSock2\Parameters\Protocol_Catalog9\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\WinSock2\Parameters\NameSpace_Catalog5\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_winsock2.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_winsock.xml",
            "Sysinternals Autoruns, Winsock Providers tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "autodial-dll",
        High,
        "T1546",
        "Event Triggered Execution",
        P,
        Deny,
        Extended,
        "the Winsock AutodialDLL is loaded by every process that uses Winsock",
        "one DLL loaded into every networking process",
        [r"HKLM\SYSTEM\CurrentControlSet\Services\WinSock2\Parameters>AutodialDLL"],
        [
            "redcanaryco/atomic-red-team atomics/T1546/T1546.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_autodial_dll.yml"
        ]
    ),
    entry!(
        "credential-providers",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "credential providers and their filters are loaded by LogonUI and see typed credentials",
        "a credential provider runs on the logon screen",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Authentication\Credential Provider*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Authentication\PLAP Providers\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentversion.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_credential_providers.xml",
            "Sysinternals Autoruns, Logon tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "explorer-extensions",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "Explorer shell service objects, execute hooks and shared task schedulers load into explorer.exe at logon",
        "these load a DLL into every Explorer at logon",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\ShellServiceObjectDelayLoad\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\ShellServiceObjectDelayLoad\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\ShellServiceObjects\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\ShellExecuteHooks\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\ShellExecuteHooks\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\SharedTaskScheduler\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_currentversion.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_shell_hijack.xml",
            "Sysinternals Autoruns, Explorer tab (learn.microsoft.com/sysinternals/downloads/autoruns)",
            "Hexacorn, Beyond good ol' Run key series (ShellServiceObjectDelayLoad) (hexacorn.com/blog/2017/01/28/beyond-good-ol-run-key-all-parts)"
        ]
    ),
    entry!(
        "browser-helper-objects",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "Browser Helper Objects and Internet Explorer extensions load into the browser and Explorer",
        "browser helper objects are installed by elevated software",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Browser Helper Objects\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Browser Helper Objects\*",
            r"HKLM\SOFTWARE\Microsoft\Internet Explorer\Extensions\*",
            r"HKCU\SOFTWARE\Microsoft\Internet Explorer\Extensions\*",
            r"HKLM\SOFTWARE\Microsoft\Internet Explorer\Toolbar\*",
            r"HKCU\SOFTWARE\Microsoft\Internet Explorer\UrlSearchHooks\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_wow6432node.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_internet_explorer.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_internet_explorer_extentions_helpers_or_toolbars.xml",
            "Sysinternals Autoruns, Internet Explorer tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "shell-extension-handlers",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Approve,
        Extended,
        "context-menu, drag-and-drop, copy-hook, column and icon-overlay handlers load into Explorer",
        "developer tools (source control, editors, archivers) install shell extensions: a person decides",
        [
            r"HKCU\SOFTWARE\Classes\*\shellex\*",
            r"HKLM\SOFTWARE\Classes\*\shellex\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\ShellIconOverlayIdentifiers\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Shell Extensions\Approved\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Shell Extensions\Approved\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_classes.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_shell_hijack.xml",
            "Sysinternals Autoruns, Explorer tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "shell-command-autostarts",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "shell commands of system objects that Windows runs on its own (Recycle Bin, Feedback Hub)",
        "these verbs belong to Windows itself",
        [
            r"HKCU\SOFTWARE\Classes\CLSID\{645FF040-5081-101B-9F08-00AA002F954E}\shell\*",
            r"HKLM\SOFTWARE\Classes\CLSID\{645FF040-5081-101B-9F08-00AA002F954E}\shell\*",
            r"HKCU\SOFTWARE\Classes\AppXypsaf9f1qserqevf0sws76dx4k9a5206\Shell\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.001/T1547.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_persistence_recycle_bin.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_narrator_feedback_persistance.yml"
        ]
    ),
    entry!(
        "drivers32",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "Drivers32 codec entries load DLLs into every multimedia process",
        "codecs are installed by elevated installers",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Drivers32\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_wow6432node_currentversion.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "Sysinternals Autoruns, Codecs tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "windows-ce-autostart",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "Windows CE Services AutoStart values run programs when a device connects",
        "a legacy autostart no tool needs",
        [r"HKLM\SOFTWARE\Microsoft\Windows CE Services\AutoStart*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_common.yml"
        ]
    ),
    entry!(
        "langbar-addins",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "language bar add-ins are loaded by ctfmon at logon",
        "a DLL loaded at every logon",
        [
            r"HKCU\SOFTWARE\Microsoft\CTF\LangBarAddin\*",
            r"HKLM\SOFTWARE\Microsoft\CTF\LangBarAddin\*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_environment_mod.xml",
            "Hexacorn, Beyond good ol' Run key series (LangBarAddin) (hexacorn.com/blog/2017/01/28/beyond-good-ol-run-key-all-parts)"
        ]
    ),
    entry!(
        "telemetry-controller",
        Critical,
        "T1053.005",
        "Scheduled Task",
        "execution",
        Deny,
        Extended,
        "the compatibility telemetry controller runs the Command of every subkey from its SYSTEM scheduled task",
        "a command here runs as SYSTEM from a built-in task",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\AppCompatFlags\TelemetryController\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_telemetry_persistence.yml",
            "elastic/detection-rules rules/windows/persistence_via_telemetrycontroller_scheduledtask_hijack.toml",
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml"
        ]
    ),
    entry!(
        "scheduled-task-cache",
        Critical,
        "T1053.005",
        "Scheduled Task",
        "execution",
        Deny,
        Extended,
        "the scheduled task cache (creating or hiding tasks by editing it)",
        "tasks are created through the Task Scheduler; editing the cache hides them",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Schedule\TaskCache\*"],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_scheduled_tasks_path.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_taskcache_entry.yml"
        ]
    ),
    entry!(
        "at-jobs",
        High,
        "T1053.002",
        "At",
        "execution",
        Deny,
        Extended,
        "EnableAt re-enables the legacy AT job scheduler",
        "the AT scheduler is deprecated; only an attacker re-enables it",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Schedule\Configuration>EnableAt"],
        [
            "elastic/detection-rules rules/windows/defense_evasion_scheduledjobs_at_protocol_enabled.toml",
            "splunk/security_content detections/endpoint/windows_enable_win32_scheduledjob_via_registry.yml"
        ]
    ),
    entry!(
        "file-association-hkcu",
        High,
        "T1546.001",
        "Change Default File Association",
        PE,
        Approve,
        Extended,
        "per-user file-association commands, extensions and choices",
        "editors and SDKs register file types for the user: a person decides",
        [
            r"HKCU\SOFTWARE\Classes\*\shell\*\command\*",
            r"HKCU\SOFTWARE\Classes\*\shell\open\ddeexec\*",
            r"HKLM\SOFTWARE\Classes\*\shell\open\ddeexec\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\FileExts\*",
            r"HKCU\SOFTWARE\Classes\.*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_susp_shell_open_keys_modification_patterns.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_file_association_exefile.yml"
        ]
    ),
    entry!(
        "screensaver",
        Medium,
        "T1546.002",
        "Screensaver",
        PE,
        Deny,
        Extended,
        "the screensaver program and its lock switch",
        "the screensaver program runs after inactivity; no coding tool sets it",
        [
            r"HKCU\Control Panel\Desktop>SCRNSAVE.EXE",
            r"HKCU\Control Panel\Desktop>ScreenSaveActive",
            r"HKCU\Control Panel\Desktop>ScreenSaverIsSecure",
            r"HKCU\Control Panel\Desktop>ScreenSaveTimeOut",
            r"HKCU\SOFTWARE\Policies\Microsoft\Windows\Control Panel\Desktop\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1546.002/T1546.002.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_modify_screensaver_binary_path.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_environment_mod.xml",
            "splunk/security_content detections/endpoint/screensaver_event_trigger_execution.yml"
        ]
    ),
    entry!(
        "desktop-wallpaper",
        Medium,
        "T1491.001",
        "Internal Defacement",
        "impact",
        LogOnly,
        Extended,
        "the desktop wallpaper (ransomware notes set it)",
        "harmless on its own and set by personalisation tools: logged, not blocked",
        [
            r"HKCU\Control Panel\Desktop>Wallpaper",
            r"HKCU\Control Panel\Desktop>WallpaperStyle"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_desktop_background_change.yml"
        ]
    ),
    entry!(
        "netsh-helpers",
        High,
        "T1546.007",
        "Netsh Helper DLL",
        PE,
        Deny,
        Extended,
        "netsh loads helper DLLs",
        "a helper DLL runs in every netsh",
        [r"HKLM\SOFTWARE\Microsoft\NetSh\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1546.007/T1546.007.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_netsh.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_netsh_helper_dll_potential_persistence.yml",
            "elastic/detection-rules rules/windows/persistence_netsh_helper_dll.toml"
        ]
    ),
    entry!(
        "accessibility-features",
        Critical,
        "T1546.008",
        "Accessibility Features",
        PE,
        Deny,
        Extended,
        "debuggers on accessibility programs give a SYSTEM shell at the logon screen",
        "a debugger on an accessibility program is a logon-screen backdoor",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\sethc.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\utilman.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\osk.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\Magnify.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\Narrator.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\DisplaySwitch.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\AtBroker.exe\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1546.008/T1546.008.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_stickykey_like_backdoor.yml"
        ]
    ),
    entry!(
        "appcert-dlls",
        Critical,
        "T1546.009",
        "AppCert DLLs",
        PE,
        Deny,
        Extended,
        "AppCert DLLs are loaded into every process that creates processes",
        "one DLL loaded into most processes",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\AppCertDlls\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1546.009/T1546.009.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_new_dll_added_to_appcertdlls_registry_key.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_app_path_hijack.xml",
            "elastic/detection-rules rules/windows/persistence_appcertdlls_registry.toml"
        ]
    ),
    entry!(
        "appinit-dlls",
        Critical,
        "T1546.010",
        "AppInit DLLs",
        PE,
        Deny,
        Extended,
        "AppInit DLLs are loaded into every process that loads user32",
        "one DLL loaded into most processes",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows>AppInit_DLLs",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows>LoadAppInit_DLLs"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_new_dll_added_to_appinit_dlls_registry_key.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_dll_injection_at_process_launch.xml",
            "elastic/detection-rules rules/windows/persistence_appinitdlls_registry.toml",
            "Sysinternals Autoruns, AppInit tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "application-shims",
        High,
        "T1546.011",
        "Application Shimming",
        PE,
        Deny,
        Extended,
        "custom shim databases and compatibility layers inject code or lower protections",
        "shims are installed by administrators with sdbinst",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\AppCompatFlags\Custom\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\AppCompatFlags\InstalledSDB\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\AppCompatFlags\Layers\*",
            r"HKCU\SOFTWARE\Microsoft\Windows NT\CurrentVersion\AppCompatFlags\Layers\*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_appc_shim.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_shim_database.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_app_cpmpat_layer_registerapprestart.yml",
            "elastic/detection-rules rules/windows/persistence_app_compat_shim.toml",
            "splunk/security_content detections/endpoint/registry_keys_for_creating_shim_databases.yml"
        ]
    ),
    entry!(
        "silent-process-exit",
        Critical,
        "T1546.012",
        "Image File Execution Options Injection",
        PE,
        Deny,
        Extended,
        "SilentProcessExit MonitorProcess runs a program when another exits",
        "a monitor process here runs whenever the target exits",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\SilentProcessExit\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1546.012/T1546.012.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_globalflags.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_scheduled_tasks_path.xml"
        ]
    ),
    entry!(
        "lsass-exit-dump",
        Critical,
        "T1003.001",
        "LSASS Memory",
        CA,
        Deny,
        Extended,
        "SilentProcessExit settings for lsass.exe dump LSASS memory",
        "dumping LSASS reads every logged-on credential",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\SilentProcessExit\lsass.exe\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_silentprocessexit_lsass.yml"
        ]
    ),
    entry!(
        "wer-localdumps",
        Critical,
        "T1003.001",
        "LSASS Memory",
        CA,
        Deny,
        Extended,
        "Windows Error Reporting LocalDumps settings make crashes (of LSASS too) write full memory dumps",
        "full dumps of system processes expose credentials",
        [r"HKLM\SOFTWARE\Microsoft\Windows\Windows Error Reporting\LocalDumps\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_lsass_usermode_dumping.yml",
            "elastic/detection-rules rules/windows/credential_access_generic_localdumps.toml"
        ]
    ),
    entry!(
        "wer-hangs-debugger",
        High,
        "T1546",
        "Event Triggered Execution",
        P,
        Deny,
        Extended,
        "the Windows Error Reporting Hangs debugger runs when a program hangs",
        "a debugger registered here runs on every hang",
        [r"HKLM\SOFTWARE\Microsoft\Windows\Windows Error Reporting\Hangs>Debugger"],
        [
            "redcanaryco/atomic-red-team atomics/T1546/T1546.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_hangs_debugger_persistence.yml"
        ]
    ),
    entry!(
        "wer-reflect-debugger",
        High,
        "T1546.012",
        "Image File Execution Options Injection",
        P,
        Deny,
        Extended,
        "WerFault ReflectDebugger runs a program when WerFault is started with -pr",
        "a debugger registered here runs from a signed Windows binary",
        [r"HKLM\SOFTWARE\Microsoft\Windows\Windows Error Reporting\Hangs>ReflectDebugger"],
        [
            "elastic/detection-rules rules/windows/persistence_werfault_reflectdebugger.toml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_reflectdebugger.yml"
        ]
    ),
    entry!(
        "wer-ui",
        Medium,
        "T1112",
        "Modify Registry",
        DE,
        Approve,
        Extended,
        "hiding Windows Error Reporting dialogs",
        "CI and test setups switch crash dialogs off: a person decides",
        [
            r"HKCU\SOFTWARE\Microsoft\Windows\Windows Error Reporting>DontShowUI",
            r"HKLM\SOFTWARE\Microsoft\Windows\Windows Error Reporting>DontShowUI"
        ],
        ["redcanaryco/atomic-red-team atomics/T1112/T1112.yaml"]
    ),
    entry!(
        "aedebug",
        Critical,
        "T1546",
        "Event Triggered Execution",
        P,
        Deny,
        Extended,
        "the AeDebug post-mortem debugger runs on every unhandled crash",
        "a post-mortem debugger runs on every crash, of SYSTEM processes too; debuggers are set up by their installers outside the sandbox",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\AeDebug>Debugger",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\AeDebug>Auto"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_aedebug_persistence.yml",
            "Hexacorn, Beyond good ol' Run key series (AeDebug) (hexacorn.com/blog/2017/01/28/beyond-good-ol-run-key-all-parts)"
        ]
    ),
    entry!(
        "dotnet-debugger",
        Critical,
        "T1574",
        "Hijack Execution Flow",
        P,
        Deny,
        Extended,
        "the .NET managed post-mortem debugger runs on every unhandled .NET exception",
        "a debugger registered here runs on every .NET crash",
        [r"HKLM\SOFTWARE\Microsoft\.NETFramework>DbgManagedDebugger"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_dbgmanageddebugger_persistence.yml"
        ]
    ),
    entry!(
        "com-hijacking",
        High,
        "T1546.015",
        "Component Object Model Hijacking",
        PE,
        Deny,
        Extended,
        "per-user COM classes and ProgID mappings, and machine COM server registrations, redirect COM objects",
        "per-user COM servers shadow Windows components for every program of the user",
        [
            r"HKCU\SOFTWARE\Classes\CLSID\*",
            r"HKCU\SOFTWARE\Classes\*\CLSID\*",
            r"HKLM\SOFTWARE\Classes\CLSID\*\LocalServer32\*",
            r"HKLM\SOFTWARE\Classes\CLSID\*\TreatAs\*",
            r"HKLM\SOFTWARE\Classes\CLSID\*\ScriptletURL\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1546.015/T1546.015.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_com_hijack.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_treatas_persistence.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_scrobj_dll.yml",
            "elastic/detection-rules rules/windows/persistence_suspicious_com_hijack_registry.toml",
            "splunk/security_content detections/endpoint/windows_com_hijacking_inprocserver32_modification.yml"
        ]
    ),
    entry!(
        "directshow-filters",
        High,
        "T1546.015",
        "Component Object Model Hijacking",
        PE,
        Deny,
        Extended,
        "DirectShow and Media Foundation filter registrations load DLLs into media players",
        "filters are registered by elevated codec installers",
        [
            r"HKLM\SOFTWARE\Classes\CLSID\{083863F1-70DE-11d0-BD40-00A0C911CE86}\Instance\*",
            r"HKCU\SOFTWARE\Classes\CLSID\{083863F1-70DE-11d0-BD40-00A0C911CE86}\Instance\*",
            r"HKLM\SOFTWARE\Classes\CLSID\{7ED96837-96F0-4812-B211-F13C24117ED3}\Instance\*",
            r"HKCU\SOFTWARE\Classes\CLSID\{7ED96837-96F0-4812-B211-F13C24117ED3}\Instance\*",
            r"HKLM\SOFTWARE\Classes\CLSID\{AC757296-3522-4E11-9862-C17BE5A1767E}\Instance\*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_com_objects.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_wow6432node_classes.yml",
            "Sysinternals Autoruns, Codecs tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "protocol-handlers",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "asynchronous pluggable protocol handlers and filters load into every URL-moniker client",
        "protocol filters are installed by elevated software",
        [
            r"HKLM\SOFTWARE\Classes\PROTOCOLS\Filter\*",
            r"HKLM\SOFTWARE\Classes\PROTOCOLS\Handler\*",
            r"HKCU\SOFTWARE\Classes\PROTOCOLS\Filter\*",
            r"HKCU\SOFTWARE\Classes\PROTOCOLS\Handler\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_common.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_environment_mod.xml",
            "Sysinternals Autoruns, Internet Explorer tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "appx-debugger",
        High,
        "T1546.015",
        "Component Object Model Hijacking",
        PE,
        Deny,
        Extended,
        "a packaged app DebugPath runs a program whenever the app starts",
        "app debuggers are set by Visual Studio outside the sandbox",
        [
            r"HKCU\SOFTWARE\Classes\ActivatableClasses\Package\*\DebugInformation\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\PackagedAppXDebug\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_appx_debugger.yml"
        ]
    ),
    entry!(
        "amsi-com-hijack",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "shadowing the AMSI COM server disables script scanning",
        "shadowing AMSI disables script scanning",
        [r"HKCU\SOFTWARE\Classes\CLSID\{fdb00e52-a214-4aa1-8fba-4357bb0072ec}\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1685/T1685.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_amsi_com_hijack.yml"
        ]
    ),
    entry!(
        "natural-language-dlls",
        High,
        "T1546",
        "Event Triggered Execution",
        P,
        Deny,
        Extended,
        "word breaker and stemmer DLL overrides are loaded by the search indexer",
        "the indexer loads these DLLs as SYSTEM",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\ContentIndex\Language\*>StemmerDLLPathOverride",
            r"HKLM\SYSTEM\CurrentControlSet\Control\ContentIndex\Language\*>WBDLLPathOverride",
            r"HKLM\SYSTEM\CurrentControlSet\Control\ContentIndex\Language\*>StemmerClass",
            r"HKLM\SYSTEM\CurrentControlSet\Control\ContentIndex\Language\*>WBreakerClass"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_natural_language.yml"
        ]
    ),
    entry!(
        "disk-cleanup-handlers",
        High,
        "T1546",
        "Event Triggered Execution",
        P,
        Deny,
        Extended,
        "disk cleanup handlers register COM servers and commands run by cleanmgr",
        "cleanmgr runs from a SYSTEM maintenance task",
        [r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\VolumeCaches\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_add/registry_add_persistence_disk_cleanup_handler_entry.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disk_cleanup_handler_autorun_persistence.yml",
            "Hexacorn, Beyond good ol' Run key series (disk cleanup handlers) (hexacorn.com/blog/2017/01/28/beyond-good-ol-run-key-all-parts)"
        ]
    ),
    entry!(
        "mycomputer-paths",
        High,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "My Computer backup/defrag/cleanup paths run a program from the drive properties dialog",
        "these replace Windows tools with another program",
        [r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\MyComputer\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_mycomputer.yml"
        ]
    ),
    entry!(
        "event-viewer-redirection",
        High,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "Event Viewer help redirection runs a program or opens a URL from Event Viewer",
        "a program here runs from a signed Windows tool",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Event Viewer>MicrosoftRedirectionProgram",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Event Viewer>MicrosoftRedirectionProgramCommandLineParameters",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Event Viewer>MicrosoftRedirectionURL"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_event_viewer_events_asp.yml"
        ]
    ),
    entry!(
        "known-dlls",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "KnownDLLs decide which system DLLs are loaded from where",
        "KnownDLLs are set by Windows",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\KnownDLLs\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_session_manager.yml",
            "Sysinternals Autoruns, KnownDLLs tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "path-interception",
        High,
        "T1574.007",
        "Path Interception by PATH Environment Variable",
        P,
        Approve,
        Extended,
        "the PATH variable decides which program a bare command name runs",
        "SDK and tool installers add to PATH: a person decides",
        [
            r"HKCU\Environment>Path",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment>Path"
        ],
        [
            "elastic/detection-rules rules/windows/privilege_escalation_rogue_windir_environment_var.toml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_suspicious_env_variables.yml"
        ]
    ),
    entry!(
        "cor-profiler",
        High,
        "T1574.012",
        "COR_PROFILER",
        P,
        Deny,
        Extended,
        ".NET profiler variables load a DLL into every .NET process",
        "a profiler DLL loads into every .NET program; profilers are set per process, not machine- or user-wide",
        [
            r"HKCU\Environment>COR_*",
            r"HKCU\Environment>CORECLR_*",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment>COR_*",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment>CORECLR_*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1574.012/T1574.012.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_enabling_cor_profiler_env_variables.yml",
            "splunk/security_content detections/endpoint/net_profiler_uac_bypass.yml"
        ]
    ),
    entry!(
        "environment-windir",
        Critical,
        "T1548.002",
        "Bypass User Account Control",
        PE,
        Deny,
        Extended,
        "redirecting windir/SystemRoot makes auto-elevating tasks (SilentCleanup) run attacker programs",
        "no tool redefines where Windows lives",
        [
            r"HKCU\Environment>windir",
            r"HKCU\Environment>SystemRoot",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment>windir"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_bypass_uac_using_silentcleanup_task.yml",
            "splunk/security_content detections/endpoint/silentcleanup_uac_bypass.yml",
            "elastic/detection-rules rules/windows/privilege_escalation_rogue_windir_environment_var.toml"
        ]
    ),
    entry!(
        "environment-dll-hijack",
        High,
        "T1574.001",
        "DLL",
        P,
        Deny,
        Extended,
        "environment variables that redirect DLL loading of packaged processes",
        "no coding tool sets these",
        [r"HKCU\Environment>APPX_PROCESS"],
        ["redcanaryco/atomic-red-team atomics/T1574.001/T1574.001.yaml"]
    ),
    entry!(
        "service-dll",
        Critical,
        "T1543.003",
        "Windows Service",
        P,
        Deny,
        Extended,
        "a service ServiceDll is loaded into a svchost process as SYSTEM",
        "replacing a service DLL runs code as SYSTEM",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\*\Parameters>ServiceDll",
            r"HKLM\SYSTEM\CurrentControlSet\Services\*>ServiceDll",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Svchost>*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1543.003/T1543.003.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_servicedll_hijack.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml"
        ]
    ),
    entry!(
        "service-image-path",
        Critical,
        "T1574.011",
        "Services Registry Permissions Weakness",
        P,
        Approve,
        Extended,
        "changing an existing service's ImagePath or failure command runs another program as the service",
        "installing a service sets its ImagePath, changing an existing one is privilege escalation: a person decides",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\*>ImagePath",
            r"HKLM\SYSTEM\CurrentControlSet\Services\*>FailureCommand"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1574.011/T1574.011.yaml",
            "elastic/detection-rules rules/windows/privilege_escalation_reg_service_imagepath_mod.toml",
            "splunk/security_content detections/endpoint/reg_exe_manipulating_windows_services_registry_keys.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_powershell_as_service.yml"
        ]
    ),
    entry!(
        "dns-server-plugin",
        Critical,
        "T1574.001",
        "DLL",
        P,
        Deny,
        Extended,
        "the DNS server loads ServerLevelPluginDll as SYSTEM",
        "a DNS server plug-in runs as SYSTEM on a domain controller",
        [r"HKLM\SYSTEM\CurrentControlSet\Services\DNS\Parameters>ServerLevelPluginDll"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_dns_server_level_plugin_dll.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_dns_serverdll_injection.xml"
        ]
    ),
    entry!(
        "dhcp-callout",
        Critical,
        "T1574.001",
        "DLL",
        P,
        Deny,
        Extended,
        "the DHCP server loads callout DLLs as SYSTEM",
        "a DHCP callout runs as SYSTEM",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\DHCPServer\Parameters>CalloutDlls",
            r"HKLM\SYSTEM\CurrentControlSet\Services\DHCPServer\Parameters>CalloutEnabled"
        ],
        ["SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_dhcp_calloutdll.yml"]
    ),
    entry!(
        "msdtc-oci",
        High,
        "T1574.001",
        "DLL",
        P,
        Deny,
        Extended,
        "MSDTC loads the Oracle OCI library path from here",
        "MSDTC runs as Network Service",
        [r"HKLM\SOFTWARE\Microsoft\MSDTC\MTxOCI>OracleOci*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_potential_oci_dll_redirection.yml"
        ]
    ),
    entry!(
        "app-paths",
        High,
        "T1546.012",
        "Image File Execution Options Injection",
        P,
        Approve,
        Extended,
        "App Paths decide which program a name typed in Run or ShellExecute starts",
        "installers of developer tools register App Paths: a person decides",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\App Paths\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\App Paths\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_app_paths.yml",
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_app_path_hijack.xml"
        ]
    ),
    entry!(
        "office-test",
        High,
        "T1137.002",
        "Office Test",
        P,
        Deny,
        Extended,
        "the Office test key loads a DLL into every Office program",
        "a test hook no released tool uses",
        [
            r"HKCU\SOFTWARE\Microsoft\Office test\Special\Perf\*",
            r"HKLM\SOFTWARE\Microsoft\Office test\Special\Perf\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1137.002/T1137.002.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_office_test_regadd.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_office.xml",
            "elastic/detection-rules rules/windows/persistence_msoffice_startup_registry.toml"
        ]
    ),
    entry!(
        "office-addins",
        Medium,
        "T1137.006",
        "Add-ins",
        P,
        Approve,
        Extended,
        "Office COM, VSTO and XLL add-ins load at Office start",
        "Office add-in developers register their add-ins: a person decides",
        [
            r"HKCU\SOFTWARE\Microsoft\Office\*\Addins\*",
            r"HKLM\SOFTWARE\Microsoft\Office\*\Addins\*",
            r"HKCU\SOFTWARE\Microsoft\VSTO\Security\Inclusion\*",
            r"HKCU\SOFTWARE\Microsoft\VSTO\SolutionMetadata\*",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Excel\Options>OPEN*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_office_vsto.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_xll.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_asep_reg_keys_modification_office.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_office.xml"
        ]
    ),
    entry!(
        "office-templates",
        High,
        "T1137.001",
        "Office Template Macros",
        P,
        Deny,
        Extended,
        "the Word global template loads macros into every document",
        "a template here runs macros in every document",
        [r"HKCU\SOFTWARE\Microsoft\Office\*\Word\Options>GlobalDotName"],
        ["olafhartong/sysmon-modular 12_13_14_registry_event/include_office.xml"]
    ),
    entry!(
        "office-startup-path",
        High,
        "T1546",
        "Event Triggered Execution",
        P,
        Deny,
        Extended,
        "the Word startup folder path: add-ins (WLL) in it load into every Word session",
        "redirecting Word's startup folder loads whatever is placed there",
        [r"HKCU\SOFTWARE\Microsoft\Office\*\Word\Options>STARTUP-PATH"],
        ["redcanaryco/atomic-red-team atomics/T1546/T1546.yaml"]
    ),
    entry!(
        "outlook-home-page",
        High,
        "T1137.004",
        "Outlook Home Page",
        P,
        Deny,
        Extended,
        "an Outlook folder home page runs script when the folder opens",
        "folder home pages are a removed feature kept alive only for attackers",
        [
            r"HKCU\SOFTWARE\Microsoft\Office\*\Outlook\WebView\*",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Outlook\Today\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1137.004/T1137.004.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_office.xml",
            "elastic/detection-rules rules/windows/command_and_control_outlook_home_page.toml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_outlook_homepage.yml"
        ]
    ),
    entry!(
        "outlook-vba",
        High,
        "T1137",
        "Office Application Startup",
        P,
        Deny,
        Extended,
        "Outlook macro security level and VBA project loading at start",
        "enabling Outlook macros at start runs VBAProject.OTM in every session",
        [
            r"HKCU\SOFTWARE\Microsoft\Office\*\Outlook\Security>Level",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Outlook>LoadMacroProviderOnBoot"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1137/T1137.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_office_outlook_enable_macro_execution.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_office_outlook_enable_load_macro_provider_on_boot.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_office.xml"
        ]
    ),
    entry!(
        "outlook-rules",
        High,
        "T1137.005",
        "Outlook Rules",
        P,
        Deny,
        Extended,
        "allowing unsafe client mail rules lets rules start programs",
        "mail rules that start programs are an attack surface no tool needs",
        [r"HKCU\SOFTWARE\Microsoft\Office\*\Outlook\Security>EnableUnsafeClientMailRules"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_office_outlook_enable_unsafe_client_mail_rules.yml"
        ]
    ),
    entry!(
        "office-macro-security",
        High,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "Office Trust Center: macro warnings, VBA object model access, Protected View, trusted locations and documents",
        "lowering Office protections is never a coding task",
        [
            r"HKCU\SOFTWARE\Microsoft\Office\*\Security>VBAWarnings",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Security>AccessVBOM",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Security>PythonFunctionWarnings",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Security\ProtectedView\*",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Security\Trusted Locations\*",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Security\Trusted Documents\*",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Common\Security>MacroRuntimeScanScope",
            r"HKLM\SOFTWARE\Policies\Microsoft\Office\*\Security\*",
            r"HKCU\SOFTWARE\Policies\Microsoft\Office\*\Security\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1685/T1685.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_office_security_features.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_office_disable_protected_view_features.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_office_vba_warnings_tamper.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_office_access_vbom_tamper.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_office_trusted_location_uncommon.yml"
        ]
    ),
    entry!(
        "office-dde",
        High,
        "T1559.002",
        "Dynamic Data Exchange",
        "execution",
        Deny,
        Extended,
        "Office DDE switches let documents start programs through DDE",
        "enabling DDE lets a document start programs",
        [
            r"HKCU\SOFTWARE\Microsoft\Office\*\Word\Security>AllowDDE",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Excel\Security>DisableDDEServerLaunch",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Excel\Security>DisableDDEServerLookup"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_office_dde.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_office_enable_dde.yml"
        ]
    ),
    entry!(
        "network-providers",
        Critical,
        "T1556.008",
        "Network Provider DLL",
        CA,
        Deny,
        Extended,
        "network providers receive logon passwords in clear text",
        "a network provider DLL sees every logon password",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\NetworkProvider\Order\*",
            r"HKLM\SYSTEM\CurrentControlSet\Control\NetworkProvider\Order>ProviderOrder",
            r"HKLM\SYSTEM\CurrentControlSet\Services\*\NetworkProvider\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1003/T1003.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_new_network_provider.yml",
            "elastic/detection-rules rules/windows/credential_access_persistence_network_logon_provider_modification.toml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_networking.xml"
        ]
    ),
    entry!(
        "wdigest",
        Critical,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "UseLogonCredential makes WDigest keep clear-text credentials in LSASS (enables T1003.001)",
        "this only serves to expose clear-text passwords",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\WDigest>UseLogonCredential"],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_wdigest_enable_uselogoncredential.yml",
            "splunk/security_content detections/endpoint/enable_wdigest_uselogoncredential_registry.yml",
            "elastic/detection-rules rules/windows/credential_access_mod_wdigest_security_provider.toml"
        ]
    ),
    entry!(
        "lsa-protection",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "LSA protection (RunAsPPL) and Credential Guard switches",
        "turning LSA protection off opens LSASS to dumping",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>RunAsPPL",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>LsaCfgFlags"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1685/T1685.yaml",
            "elastic/detection-rules rules/windows/defense_evasion_lsass_ppl_disabled_registry.toml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_credential_guard_disabled.yml",
            "splunk/security_content detections/endpoint/disabling_windows_local_security_authority_defences_via_registry.yml"
        ]
    ),
    entry!(
        "ntlm-downgrade",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "NTLM compatibility and minimum security settings (downgrade to NTLMv1/LM)",
        "downgrading authentication is never a coding task",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>LmCompatibilityLevel",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\MSV1_0>NtlmMinClientSec",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\MSV1_0>RestrictSendingNTLMTraffic",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>NtlmMinClientSec",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>RestrictSendingNTLMTraffic"
        ],
        [
            "elastic/detection-rules rules/windows/defense_evasion_ntlm_downgrade.toml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_net_ntlm_downgrade.yml"
        ]
    ),
    entry!(
        "lsa-restricted-admin",
        Critical,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "DisableRestrictedAdmin and NoLMHash change how LSA hands out and stores credentials",
        "these weaken credential handling for remote logons",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>DisableRestrictedAdmin",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>NoLMHash"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_lsa_disablerestrictedadmin.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_system_lsa_nolmhash.yml",
            "splunk/security_content detections/endpoint/windows_modify_registry_disable_restricted_admin.yml"
        ]
    ),
    entry!(
        "dsrm-logon",
        Critical,
        "T1556",
        "Modify Authentication Process",
        CA,
        Deny,
        Extended,
        "DsrmAdminLogonBehavior lets the DSRM account log on over the network",
        "a domain controller backdoor",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>DsrmAdminLogonBehavior"],
        ["SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_dsrm_tampering.yml"]
    ),
    entry!(
        "winlogon-credentials",
        Critical,
        "T1552.002",
        "Credentials in Registry",
        CA,
        Deny,
        Extended,
        "Winlogon auto-logon values store a password in the registry",
        "storing a logon password in the registry exposes it",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon>AutoAdminLogon",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon>DefaultPassword",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon>DefaultUserName",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon>DefaultDomainName",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\CurrentVersion\Winlogon>AutoAdminLogon",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\CurrentVersion\Winlogon>DefaultPassword",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\CurrentVersion\Winlogon>DefaultUserName",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\CurrentVersion\Winlogon>DefaultDomainName"
        ],
        [
            "splunk/security_content detections/endpoint/auto_admin_logon_registry_entry.yml",
            "splunk/security_content detections/endpoint/add_defaultuser_and_password_in_registry.yml",
            "redcanaryco/atomic-red-team atomics/T1685/T1685.yaml"
        ]
    ),
    entry!(
        "hidden-users",
        Critical,
        "T1564.002",
        "Hidden Users",
        DE,
        Deny,
        Extended,
        r"Winlogon SpecialAccounts\UserList hides accounts from the logon screen",
        "hiding an account serves only to hide it",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\SpecialAccounts\UserList\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1564.002/T1564.002.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_special_accounts.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml"
        ]
    ),
    entry!(
        "winlogon-multiple-sessions",
        Critical,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "AllowMultipleTSSessions allows parallel remote sessions of one user",
        "a remote-access setting no coding tool changes",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon>AllowMultipleTSSessions"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_winlogon_allow_multiple_tssessions.yml",
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml"
        ]
    ),
    entry!(
        "winlogon-hkcu",
        Critical,
        "T1547.004",
        "Winlogon Helper DLL",
        P,
        Deny,
        Extended,
        "per-user Winlogon Shell/Userinit replace the user's shell at logon",
        "replacing the shell runs a program at every logon",
        [
            r"HKCU\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon>Shell",
            r"HKCU\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon>Userinit",
            r"HKCU\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\Notify\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1547.004/T1547.004.yaml",
            "Sysinternals Autoruns, Winlogon tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "netlogon-password-change",
        Critical,
        "T1098",
        "Account Manipulation",
        P,
        Deny,
        Extended,
        "DisablePasswordChange stops the machine account password from rotating",
        "freezing the machine password keeps stolen credentials valid",
        [r"HKLM\SYSTEM\CurrentControlSet\Services\Netlogon\Parameters>DisablePasswordChange"],
        ["olafhartong/sysmon-modular 12_13_14_registry_event/include_disable_password_change.xml"]
    ),
    entry!(
        "sam-hive",
        Critical,
        "T1003.002",
        "Security Account Manager",
        CA,
        Deny,
        Extended,
        "the SAM hive holds local password hashes (writes and hive exports)",
        "the SAM holds password hashes",
        [r"HKLM\SAM\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_add_local_hidden_user.yml",
            "splunk/security_content detections/endpoint/attempted_credential_dump_from_registry_via_reg_exe.yml"
        ]
    ),
    entry!(
        "security-hive",
        Critical,
        "T1003.004",
        "LSA Secrets",
        CA,
        Deny,
        Extended,
        "the SECURITY hive holds LSA secrets and cached credentials (writes and hive exports)",
        "the SECURITY hive holds LSA secrets",
        [r"HKLM\SECURITY\*"],
        ["splunk/security_content detections/endpoint/extraction_of_registry_hives.yml"]
    ),
    entry!(
        "security-services",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "security product services (Defender, Sense, Sysmon, Security Center)",
        "changing a security service disables monitoring",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\WinDefend\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\Sense\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\WdBoot\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\WdFilter\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\WdNisDrv\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\WdNisSvc\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\MsMpSvc\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\NisSrv\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\wscsvc\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\SecurityHealthService\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\Sysmon*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_disabling_security_services.xml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_sysmon.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_windows_defender_service.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_change_sysmon_driver_altitude.yml",
            "splunk/security_content detections/endpoint/disabling_defender_services.yml"
        ]
    ),
    entry!(
        "security-center",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "Security Center notification and monitoring switches",
        "silencing Security Center hides disabled protection",
        [r"HKLM\SOFTWARE\Microsoft\Security Center\*"],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_defender_tampering.xml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_security_center_tampering.xml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_firewall_tampering.xml"
        ]
    ),
    entry!(
        "amsi",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "AMSI providers and the script-host AMSI switch",
        "turning AMSI off disables script scanning",
        [
            r"HKLM\SOFTWARE\Microsoft\AMSI\*",
            r"HKLM\SOFTWARE\Microsoft\Windows Script\Settings>AmsiEnable",
            r"HKCU\SOFTWARE\Microsoft\Windows Script\Settings>AmsiEnable"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1685/T1685.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_amsi_disable.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_persistence_amsi_providers.yml",
            "elastic/detection-rules rules/windows/defense_evasion_amsienable_key_mod.toml",
            "splunk/security_content detections/endpoint/disable_amsi_through_registry.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_disabling_security_services.xml"
        ]
    ),
    entry!(
        "smartscreen",
        High,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "SmartScreen switches for Explorer, apps and the web",
        "turning SmartScreen off lets unknown downloads run unwarned",
        [
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows\System>EnableSmartScreen",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows\System>ShellSmartScreenLevel",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer>SmartScreenEnabled",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\AppHost>EnableWebContentEvaluation",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\AppHost>PreventOverride",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender\SmartScreen\*"
        ],
        [
            "splunk/security_content detections/endpoint/disable_windows_smartscreen_protection.yml",
            "redcanaryco/atomic-red-team atomics/T1484.001/T1484.001.yaml",
            "splunk/security_content detections/endpoint/windows_impair_defense_override_smartscreen_prompt.yml"
        ]
    ),
    entry!(
        "powershell-logging",
        High,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "machine PowerShell script block, module and transcription logging policies (the user's are under user-policies)",
        "switching PowerShell logging off hides what scripts did",
        [
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows\PowerShell\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\PowerShellCore\*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_powershell_logging_tampering.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_powershell_logging_disabled.yml",
            "elastic/detection-rules rules/windows/defense_evasion_disable_posh_scriptblocklogging.toml",
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml"
        ]
    ),
    entry!(
        "powershell-execution-policy",
        High,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "machine PowerShell execution policy and its policy override",
        "the machine-wide policy is an administrator's decision",
        [
            r"HKLM\SOFTWARE\Microsoft\PowerShell\*\ShellIds\*>ExecutionPolicy",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows\PowerShell>ExecutionPolicy",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows\PowerShell>EnableScripts"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_powershell_logging_tampering.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_powershell_execution_policy.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_powershell_enablescripts_enabled.yml"
        ]
    ),
    entry!(
        "powershell-execution-policy-user",
        Medium,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Approve,
        Extended,
        "the current user's PowerShell execution policy",
        "developers set RemoteSigned for themselves: a person decides",
        [r"HKCU\SOFTWARE\Microsoft\PowerShell\*\ShellIds\*>ExecutionPolicy"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_powershell_execution_policy.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_powershell_enablescripts_enabled.yml",
            "splunk/security_content detections/endpoint/set_default_powershell_execution_policy_to_unrestricted_or_bypass.yml"
        ]
    ),
    entry!(
        "code-integrity",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "Device Guard, HVCI, Credential Guard and the vulnerable driver blocklist",
        "turning code integrity off lets unsigned or vulnerable drivers load",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\DeviceGuard\*",
            r"HKLM\SYSTEM\CurrentControlSet\Control\CI\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows\DeviceGuard\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1685/T1685.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_deviceguard_hypervisorenforcedcodeintegrity_disabled.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_vulnerable_driver_blocklist_disable.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_credential_guard_disabled.yml",
            "splunk/security_content detections/endpoint/windows_impair_defenses_disable_hvci.yml"
        ]
    ),
    entry!(
        "driver-signing",
        Critical,
        "T1553.006",
        "Code Signing Policy Modification",
        DE,
        Deny,
        Extended,
        "driver signing behaviour and test-signing policy",
        "accepting unsigned drivers is never a coding task",
        [
            r"HKCU\SOFTWARE\Policies\Microsoft\Windows NT\Driver Signing\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Driver Signing\*",
            r"HKLM\SOFTWARE\Microsoft\Driver Signing\*"
        ],
        [
            "elastic/detection-rules rules/windows/defense_evasion_code_signing_policy_modification_registry.toml"
        ]
    ),
    entry!(
        "event-log",
        Critical,
        "T1562.002",
        "Disable Windows Event Logging",
        DE,
        Deny,
        Extended,
        "event log service, channel and policy settings",
        "changing event logging hides what happened",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\EventLog\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WINEVT\Channels\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows\EventLog\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1685.001/T1685.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_winevt_logging.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_change_winevt_channelaccess.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_evtx_file_key_tamper.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_eventlog.xml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_integrity_monitoring.xml"
        ]
    ),
    entry!(
        "minint",
        Critical,
        "T1562.002",
        "Disable Windows Event Logging",
        DE,
        Deny,
        Extended,
        "a MiniNt key makes Windows believe it is WinPE and stop writing the Security log",
        "only WinPE has this key",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\MiniNt\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_disable_security_events_logging_adding_reg_key_minint.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_create_minint_key.yml",
            "splunk/security_content detections/endpoint/disable_security_logs_using_minint_registry.yml"
        ]
    ),
    entry!(
        "command-line-auditing",
        High,
        "T1562.003",
        "Impair Command History Logging",
        DE,
        Deny,
        Extended,
        "process command-line auditing switch",
        "switching auditing off hides what ran",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\Audit>ProcessCreationIncludeCmdLine_Enabled"
        ],
        ["redcanaryco/atomic-red-team atomics/T1690/T1690.yaml"]
    ),
    entry!(
        "firewall",
        Critical,
        "T1562.004",
        "Disable or Modify System Firewall",
        DE,
        Deny,
        Extended,
        "Windows Firewall profiles, rules and policies",
        "opening the firewall is an administrator's decision",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1686/T1686.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_defender_firewall.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_windows_firewall.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_firewall_tampering.xml",
            "splunk/security_content detections/endpoint/windows_delete_or_modify_system_firewall.yml"
        ]
    ),
    entry!(
        "etw-indicators",
        High,
        "T1562.006",
        "Indicator Blocking",
        DE,
        Deny,
        Extended,
        "ETW switches: .NET ETW, COMPlus_ETWEnabled, service and RPC tracing",
        "switching ETW off blinds security telemetry",
        [
            r"HKLM\SOFTWARE\Microsoft\.NETFramework>ETWEnabled",
            r"HKCU\Environment>COMPlus_ETW*",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment>COMPlus_ETW*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Tracing\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\Rpc>ExtErrorInformation"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1685/T1685.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_dotnet_ETW_tampering.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_dot_net_etw_tamper.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_services_etw_tamper.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_rpcrt4_etw_tamper.yml",
            "splunk/security_content detections/endpoint/etw_registry_disabled.yml"
        ]
    ),
    entry!(
        "etw-autologger",
        High,
        "T1562.002",
        "Disable Windows Event Logging",
        DE,
        Deny,
        Extended,
        "event log and Defender autologger sessions start the ETW sessions that feed the event logs",
        "stopping an autologger silences a log before anyone can read it",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\WMI\Autologger\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_autologger_sessions.yml",
            "redcanaryco/atomic-red-team atomics/T1685/T1685.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_wmi_implant.xml"
        ]
    ),
    entry!(
        "safe-boot",
        Critical,
        "T1562.009",
        "Safe Mode Boot",
        DE,
        Deny,
        Extended,
        "services registered for safe mode run when security products do not",
        "safe-mode registration only serves to run where defences do not",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\SafeBoot\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1688/T1688.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_add_load_service_in_safe_mode.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_integrity_monitoring.xml"
        ]
    ),
    entry!(
        "uac-bypass",
        Critical,
        "T1548.002",
        "Bypass User Account Control",
        PE,
        Deny,
        Extended,
        "per-user handlers of auto-elevating programs and the UAC switches",
        "these only serve to elevate without a prompt",
        [
            r"HKCU\SOFTWARE\Classes\ms-settings\*",
            r"HKCU\SOFTWARE\Classes\mscfile\*",
            r"HKCU\SOFTWARE\Classes\exefile\shell\*",
            r"HKCU\SOFTWARE\Classes\Folder\shell\open\command\*",
            r"HKCU\SOFTWARE\Classes\AppX82a6gwre4fdg3bt635tn5ctqjf8msdd2\*",
            r"HKCU\SOFTWARE\Classes\Launcher.SystemSettings\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\App Paths\control.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\App Paths\control.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System>EnableLUA",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System>ConsentPromptBehaviorAdmin",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System>PromptOnSecureDesktop",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System>LocalAccountTokenFilterPolicy",
            r"HKLM\SOFTWARE\Microsoft\Security Center>UACDisableNotify"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1548.002/T1548.002.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_bypass_uac.xml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_uac_tampering.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_uac_bypass_eventvwr.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_uac_bypass_sdclt.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_bypass_via_wsreset.yml",
            "splunk/security_content detections/endpoint/sdclt_uac_bypass.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_uac_disable.yml",
            "elastic/detection-rules rules/windows/privilege_escalation_disable_uac_registry.toml",
            "splunk/security_content detections/endpoint/eventvwr_uac_bypass.yml",
            "splunk/security_content detections/endpoint/fodhelper_uac_bypass.yml"
        ]
    ),
    entry!(
        "trust-providers",
        Medium,
        "T1553.003",
        "SIP and Trust Provider Hijacking",
        DE,
        Deny,
        Extended,
        "trust providers decide whether a signature is valid",
        "a trust provider decides what Windows believes is signed",
        [
            r"HKLM\SOFTWARE\Microsoft\Cryptography\Providers\*",
            r"HKLM\SOFTWARE\Microsoft\Cryptography\Offload\*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_sip_trust_provider_hijacking.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_sip_persistence.yml"
        ]
    ),
    entry!(
        "root-certificates",
        High,
        "T1553.004",
        "Install Root Certificate",
        DE,
        Deny,
        Extended,
        "machine trusted root and intermediate certificate stores",
        "machine trust is an administrator's decision",
        [
            r"HKLM\SOFTWARE\Microsoft\SystemCertificates\Root\*",
            r"HKLM\SOFTWARE\Microsoft\SystemCertificates\CA\*",
            r"HKLM\SOFTWARE\Microsoft\SystemCertificates\AuthRoot\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\SystemCertificates\Root\*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_root_certs.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_install_root_or_ca_certificat.yml",
            "elastic/detection-rules rules/windows/defense_evasion_create_mod_root_certificate.toml"
        ]
    ),
    entry!(
        "root-certificates-user",
        High,
        "T1553.004",
        "Install Root Certificate",
        DE,
        Approve,
        Extended,
        "the current user's trusted root store",
        "local development certificates (dotnet dev-certs, mkcert) are trusted here: a person decides",
        [
            r"HKCU\SOFTWARE\Microsoft\SystemCertificates\Root\*",
            r"HKCU\SOFTWARE\Microsoft\SystemCertificates\CA\*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_root_certs.xml",
            "elastic/detection-rules rules/windows/defense_evasion_create_mod_root_certificate.toml"
        ]
    ),
    entry!(
        "mark-of-the-web",
        High,
        "T1553.005",
        "Mark-of-the-Web Bypass",
        DE,
        Deny,
        Extended,
        "attachment manager and file-type risk switches that stop Mark-of-the-Web checks",
        "turning Mark-of-the-Web off lets downloads run unchecked",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Attachments\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Attachments\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Associations\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Associations\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_policies_attachments_tamper.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_policies_associations_tamper.yml"
        ]
    ),
    entry!(
        "security-zones",
        Medium,
        "T1112",
        "Modify Registry",
        DE,
        Approve,
        Extended,
        "Internet zone mappings and protocol defaults",
        "developers add intranet sites to a zone: a person decides",
        [
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings\ZoneMap\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings\ZoneMap\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings\Zones\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_change_security_zones.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_ie_security_zone_protocol_defaults_downgrade.yml"
        ]
    ),
    entry!(
        "proxy-settings",
        Medium,
        "T1112",
        "Modify Registry",
        DE,
        Approve,
        Extended,
        "the user's WinINet proxy settings",
        "developers behind proxies set them: a person decides",
        [
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings>ProxyServer",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings>ProxyEnable",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings>AutoConfigURL",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings>ProxyOverride"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_winsock.xml"
        ]
    ),
    entry!(
        "hidden-files",
        Medium,
        "T1564.001",
        "Hidden Files and Directories",
        DE,
        Approve,
        Extended,
        "Explorer settings that hide files and extensions",
        "developers show hidden files and extensions: a person decides",
        [
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Advanced>Hidden",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Advanced>ShowSuperHidden",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Advanced>HideFileExt",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Advanced>Hidden",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Advanced>ShowSuperHidden"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1564.001/T1564.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_hide_file.yml",
            "splunk/security_content detections/endpoint/disable_show_hidden_files.yml"
        ]
    ),
    entry!(
        "user-policies",
        High,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "per-user policy keys (disabling Task Manager, Run, the registry editor, notifications)",
        "user policies are written by Group Policy, never by a tool",
        [
            r"HKCU\SOFTWARE\Policies\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_function_user.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_hide_function_user.yml",
            "splunk/security_content detections/endpoint/windows_disable_lock_workstation_feature_through_registry.yml",
            "splunk/security_content detections/endpoint/disable_registry_tool.yml"
        ]
    ),
    entry!(
        "notification-suppression",
        Medium,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "switches that hide security and system notifications",
        "hiding notifications hides disabled protection",
        [
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\PushNotifications>ToastEnabled",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\ImmersiveShell>UseActionCenterExperience"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_security_center_notifications.yml",
            "splunk/security_content detections/endpoint/windows_disable_notification_center.yml"
        ]
    ),
    entry!(
        "legal-notice",
        Medium,
        "T1491.001",
        "Internal Defacement",
        "impact",
        Deny,
        Extended,
        "the logon legal notice (ransom notes are placed here)",
        "the logon banner is an administrator's text",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System>LegalNoticeCaption",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System>LegalNoticeText"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1491.001/T1491.001.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_legalnotice_susp_message.yml"
        ]
    ),
    entry!(
        "system-restore",
        High,
        "T1490",
        "Inhibit System Recovery",
        "impact",
        Deny,
        Extended,
        "System Restore switches",
        "switching System Restore off removes recovery points",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\SystemRestore>DisableSR",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\SystemRestore>DisableConfig",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\SystemRestore\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1490/T1490.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_system_restore.yml",
            "splunk/security_content detections/endpoint/disabling_systemrestore_in_registry.yml"
        ]
    ),
    entry!(
        "run-mru",
        High,
        "T1070.003",
        "Clear Command History",
        DE,
        Deny,
        Extended,
        "the Run dialog history (wiped to hide commands, seeded by paste-and-run lures)",
        "a tool has no reason to edit the user's command history",
        [r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\RunMRU\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_delete/registry_delete_runmru.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_potential_clickfix_execution.yml",
            "redcanaryco/atomic-red-team atomics/T1204.002/T1204.002.yaml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_autoruns_and_startup_keys.xml"
        ]
    ),
    entry!(
        "typed-paths",
        High,
        "T1204.004",
        "Malicious Copy and Paste",
        "execution",
        Deny,
        Extended,
        "the Explorer address-bar history, seeded by paste-and-run lures",
        "a tool has no reason to write the user's address-bar history",
        [r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\TypedPaths\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_filefix_typedpath_commands.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_susp_typedpaths_space_characters.yml"
        ]
    ),
    entry!(
        "rdp-history",
        High,
        "T1070",
        "Indicator Removal",
        DE,
        Deny,
        Extended,
        "Remote Desktop client connection history",
        "a tool has no reason to edit remote-connection history",
        [
            r"HKCU\SOFTWARE\Microsoft\Terminal Server Client\Default\*",
            r"HKCU\SOFTWARE\Microsoft\Terminal Server Client\Servers\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_delete/registry_delete_mstsc_history_cleared.yml"
        ]
    ),
    entry!(
        "rdp-client-settings",
        High,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "Remote Desktop client server-authentication override",
        "lowering server authentication exposes remote sessions",
        [r"HKCU\SOFTWARE\Microsoft\Terminal Server Client>AuthenticationLevelOverride"],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "splunk/security_content detections/endpoint/windows_modify_registry_authenticationleveloverride.yml"
        ]
    ),
    entry!(
        "admin-shares",
        High,
        "T1070.005",
        "Network Share Connection Removal",
        DE,
        Deny,
        Extended,
        "automatic administrative shares",
        "removing administrative shares is an administrator's decision",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters>AutoShareWks",
            r"HKLM\SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters>AutoShareServer"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1070.005/T1070.005.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_disable_administrative_share.yml"
        ]
    ),
    entry!(
        "null-session-pipes",
        High,
        "T1021.002",
        "SMB/Windows Admin Shares",
        "lateral-movement",
        Deny,
        Extended,
        "pipes and shares reachable without authentication",
        "anonymous network access is an administrator's decision",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters>NullSessionPipes",
            r"HKLM\SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters>NullSessionShares"
        ],
        [
            "elastic/detection-rules rules/windows/lateral_movement_defense_evasion_lanman_nullsessionpipe_modification.toml"
        ]
    ),
    entry!(
        "prefetch",
        Medium,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "the prefetcher switch (prefetch files are forensic evidence of execution)",
        "switching prefetch off destroys evidence of execution",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management\PrefetchParameters>EnablePrefetcher"
        ],
        ["redcanaryco/atomic-red-team atomics/T1112/T1112.yaml"]
    ),
    entry!(
        "pending-file-renames",
        Critical,
        "T1036.003",
        "Rename Legitimate Utilities",
        DE,
        Deny,
        Extended,
        "PendingFileRenameOperations replace files at the next boot, before protection starts",
        "boot-time file replacement is for installers running elevated",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>PendingFileRenameOperations"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_susp_pendingfilerenameoperations.yml"
        ]
    ),
    entry!(
        "provisioning-commands",
        High,
        "T1218",
        "System Binary Proxy Execution",
        DE,
        Deny,
        Extended,
        "provisioning package commands run through provtool as SYSTEM",
        "provisioning commands are set by device management",
        [r"HKLM\SOFTWARE\Microsoft\Provisioning\Commands\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1218/T1218.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_provisioning_command_abuse.yml"
        ]
    ),
    entry!(
        "wab-dllpath",
        High,
        "T1218",
        "System Binary Proxy Execution",
        DE,
        Deny,
        Extended,
        "the Windows Address Book DLL path is loaded by wab.exe",
        "a DLL here runs from a signed Windows binary",
        [
            r"HKLM\SOFTWARE\Microsoft\WAB\DLLPath\*",
            r"HKCU\SOFTWARE\Microsoft\WAB\DLLPath\*"
        ],
        [
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_address_book.xml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_wab_dllpath_reg_change.yml"
        ]
    ),
    entry!(
        "onedrive-update-config",
        High,
        "T1105",
        "Ingress Tool Transfer",
        "command-and-control",
        Deny,
        Extended,
        "OneDrive standalone updater download URLs",
        "redirecting a signed updater downloads arbitrary files",
        [r"HKCU\SOFTWARE\Microsoft\OneDrive\UpdateOfficeConfig\*"],
        [
            "redcanaryco/atomic-red-team atomics/T1105/T1105.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_lolbin_onedrivestandaloneupdater.yml"
        ]
    ),
    entry!(
        "browser-extensions",
        High,
        "T1176.001",
        "Browser Extensions",
        P,
        Deny,
        Extended,
        "machine-wide browser extension registrations and forced installs",
        "forcing an extension into every browser profile is an administrator's decision",
        [
            r"HKLM\SOFTWARE\Google\Chrome\Extensions\*",
            r"HKLM\SOFTWARE\Policies\Google\Chrome\ExtensionInstallForcelist\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\Edge\ExtensionInstallForcelist\*"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1133/T1133.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_chrome_extension.yml",
            "elastic/detection-rules rules/windows/persistence_registry_uncommon.toml"
        ]
    ),
    entry!(
        "rdp-enablement",
        High,
        "T1021.001",
        "Remote Desktop Protocol",
        "lateral-movement",
        Deny,
        Extended,
        "enabling Remote Desktop, moving its port, dropping network-level authentication or allowing shadowing",
        "opening the machine to remote logons is an administrator's decision",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server>fDenyTSConnections",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp>PortNumber",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp>UserAuthentication",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services>Shadow",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services>fDenyTSConnections"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1021.001/T1021.001.yaml",
            "elastic/detection-rules rules/windows/lateral_movement_rdp_enabled_registry.toml",
            "elastic/detection-rules rules/windows/lateral_movement_evasion_rdp_shadowing.toml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_rdp_terminal_service_sensitive_settings.xml"
        ]
    ),
    entry!(
        "rdp-settings",
        High,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "Remote Desktop session settings: parallel sessions, remote assistance, the security layer, inherited start programs",
        "remote-access settings are an administrator's decision",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server>fSingleSessionPerUser",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server>AllowTSConnections",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server>fAllowToGetHelp",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp>SecurityLayer",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp>fInheritInitialProgram"
        ],
        [
            "redcanaryco/atomic-red-team atomics/T1112/T1112.yaml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_terminal_server_suspicious.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_allow_rdp_remote_assistance_feature.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_rdp_terminal_service_sensitive_settings.xml"
        ]
    ),
    entry!(
        "control-set-select",
        Critical,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "Select decides which control set (services, drivers, LSA) the next boot uses",
        "switching control sets swaps the whole machine configuration",
        [r"HKLM\SYSTEM\Select\*"],
        [
            "Sysinternals Autoruns, Boot Execute tab (learn.microsoft.com/sysinternals/downloads/autoruns)"
        ]
    ),
    entry!(
        "registry-links",
        Critical,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "a registry symbolic link redirects later writes through an allowed key to any other key",
        "a link turns an allowed key into any key",
        ["*>SymbolicLinkValue"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_shell_open_keys_manipulation.yml",
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_uac_bypass_sdclt.yml"
        ]
    ),
    entry!(
        "port-proxy",
        High,
        "T1090.001",
        "Internal Proxy",
        "command-and-control",
        Deny,
        Extended,
        "netsh port proxy forwards connections through the machine",
        "forwarding ports through the machine is an administrator's decision",
        [r"HKLM\SYSTEM\CurrentControlSet\Services\PortProxy\*"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_portproxy_registry_key.yml",
            "elastic/detection-rules rules/windows/command_and_control_port_forwarding_added_registry.toml"
        ]
    ),
    entry!(
        "consent-store-microphone",
        Medium,
        "T1123",
        "Audio Capture",
        "collection",
        LogOnly,
        Extended,
        "microphone use history kept by the capability access manager",
        "Windows writes this history itself; a write by a program only forges it: logged",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\CapabilityAccessManager\ConsentStore\microphone\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\CapabilityAccessManager\ConsentStore\microphone\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_susp_mic_cam_access.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_consent.xml"
        ]
    ),
    entry!(
        "consent-store-webcam",
        Medium,
        "T1125",
        "Video Capture",
        "collection",
        LogOnly,
        Extended,
        "camera use history kept by the capability access manager",
        "Windows writes this history itself; a write by a program only forges it: logged",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\CapabilityAccessManager\ConsentStore\webcam\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\CapabilityAccessManager\ConsentStore\webcam\*"
        ],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_event/registry_event_susp_mic_cam_access.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_windows_consent.xml"
        ]
    ),
    entry!(
        "sysinternals-eula",
        Medium,
        "T1588.002",
        "Tool",
        "resource-development",
        LogOnly,
        Extended,
        "Sysinternals tools record their accepted licence here",
        "developers run Sysinternals tools; renamed copies are worth a log line, not a block",
        [r"HKCU\SOFTWARE\Sysinternals\*>EulaAccepted"],
        [
            "SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_pua_sysinternals_execution_via_eula.yml",
            "olafhartong/sysmon-modular 12_13_14_registry_event/include_sysinternals.xml"
        ]
    ),
    entry!(
        "developer-mode",
        Medium,
        "T1112",
        "Modify Registry",
        DE,
        LogOnly,
        Extended,
        "Windows Developer Mode and sideloading switches",
        "developers turn Developer Mode on; it is logged for review",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\AppModelUnlock>AllowDevelopmentWithoutDevLicense",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\AppModelUnlock>AllowAllTrustedApps"
        ],
        ["SigmaHQ/sigma rules/windows/registry/registry_set/registry_set_turn_on_dev_features.yml"]
    ),
];

/// Technique ids of ATT&CK v19 that some sources already use (Atomic Red Team and Sigma renumbered
/// their defence-impairment techniques in 2026), with the ATT&CK v18.1 technique the catalog
/// records instead: (v19 id, v18.1 id, v18.1 name). Established from the sources' own migration
/// commits, which renamed each v18.1 technique to its v19 id.
pub const ATTACK_V19_TO_V18: &[(&str, &str, &str)] = &[
    ("T1685", "T1562.001", "Disable or Modify Tools"),
    ("T1685", "T1562.006", "Indicator Blocking"),
    ("T1685.001", "T1562.002", "Disable Windows Event Logging"),
    ("T1685.002", "T1562.008", "Disable or Modify Cloud Logs"),
    (
        "T1685.004",
        "T1562.012",
        "Disable or Modify Linux Audit System",
    ),
    ("T1685.005", "T1070.001", "Clear Windows Event Logs"),
    ("T1685.006", "T1070.002", "Clear Linux or Mac System Logs"),
    ("T1686", "T1562.004", "Disable or Modify System Firewall"),
    (
        "T1686.001",
        "T1562.004",
        "Disable or Modify System Firewall",
    ),
    (
        "T1686.003",
        "T1562.004",
        "Disable or Modify System Firewall",
    ),
    ("T1688", "T1562.009", "Safe Mode Boot"),
    ("T1689", "T1562.010", "Downgrade Attack"),
    ("T1690", "T1562.003", "Impair Command History Logging"),
];

/// docs/catalog.md, generated from [`ENTRIES`] (a test keeps the file equal to this text).
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# The high-risk catalog\n\n");
    out.push_str(
        "<!-- Generated from crates/policy/src/catalog.rs by `agentsh_policy::catalog::markdown()`; \
         do not edit. Regenerate: AGENTSH_BLESS=1 cargo test -p agentsh-policy --test docs_sync -->\n\n",
    );
    out.push_str(&format!(
        "{} entries, {} locations. Techniques are ATT&CK v{ATTACK_VERSION}, at sub-technique level \
         where ATT&CK has one, as a cited source tags the location (docs/design-differences.md lists \
         where sources disagree and which one the catalog follows). The same table is printed by \
         `agentsh policy catalog` (`--json` for one object per entry).\n\n",
        ENTRIES.len(),
        ENTRIES.iter().map(|e| e.locations.len()).sum::<usize>()
    ));
    out.push_str(
        "Actions for a sandboxed write-class operation: **deny** where no legitimate agent tool \
         writes the location; **approve** where a developer tool might, so a person decides; \
         **log-only** where the location is worth a record but not a block (the rules and \
         `default_action` decide as if the entry were absent). Reads are never blocked and always \
         logged; processes outside every session are never blocked and always logged.\n\n",
    );
    out.push_str(
        "Location notation: `KEY>VALUE` names a value of a key (value names are globs); `*` matches \
         any run of characters including `\\`; a pattern ending in `\\*` also matches the key it \
         names; `HKCU` means every user's hive.\n\n",
    );
    out.push_str("## ATT&CK v19 numbering in the sources\n\n");
    out.push_str(
        "Atomic Red Team and Sigma already tag some locations with ATT&CK v19 ids. The catalog \
         records the ATT&CK v18.1 technique each one replaced:\n\n| v19 id | v18.1 id | v18.1 name |\n|---|---|---|\n",
    );
    for (v19, v18, name) in ATTACK_V19_TO_V18 {
        out.push_str(&format!("| {v19} | {v18} | {name} |\n"));
    }
    out.push_str("\n## Entries\n\n");
    out.push_str("| id | locations | risk | technique | tactic | action | reason | sources |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    let cell = |s: &str| s.replace('|', "\\|");
    for e in ENTRIES {
        let locations: Vec<String> = e
            .locations
            .iter()
            .map(|l| format!("`{}`", cell(l)))
            .collect();
        let sources: Vec<String> = e.sources.iter().map(|s| cell(s)).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} {} | {} | {} | {} | {} |\n",
            e.id,
            locations.join("<br>"),
            e.risk,
            e.technique,
            cell(e.technique_name),
            e.tactic,
            e.action,
            cell(e.reason),
            sources.join("<br>"),
        ));
    }
    out
}

/// Looks an entry up by id.
pub fn entry(id: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.id == id)
}

/// Splits a table location into key pattern and optional value pattern.
pub(crate) fn split_location(loc: &str) -> (&str, Option<&str>) {
    match loc.split_once('>') {
        Some((k, v)) => (k, Some(v)),
        None => (loc, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{self, UserScope};

    #[test]
    fn ids_are_unique_and_every_location_compiles() {
        let mut ids: Vec<&str> = ENTRIES.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "duplicate catalog id");
        for e in ENTRIES {
            for loc in e.locations {
                let (key, value) = split_location(loc);
                assert!(
                    pattern::registry_key(key, UserScope::AnyUser).is_ok(),
                    "{}: {loc}",
                    e.id
                );
                if let Some(v) = value {
                    assert!(pattern::value_name(v).is_ok(), "{}: {loc}", e.id);
                }
            }
        }
    }

    #[test]
    fn every_entry_names_its_sources_and_the_reason_for_its_action() {
        for e in ENTRIES {
            assert!(!e.sources.is_empty(), "{}: no source", e.id);
            assert!(
                !e.reason.is_empty() && !e.reason.contains('\n'),
                "{}: the reason is one line",
                e.id
            );
            for s in e.sources {
                assert!(!s.trim().is_empty(), "{}: empty source", e.id);
            }
        }
    }

    #[test]
    fn log_only_imposes_no_floor_and_ranks_below_approve() {
        assert_eq!(Action::LogOnly.floor(), None);
        assert!(Action::LogOnly.strictness() < Action::Approve.strictness());
        assert!(Action::Approve.strictness() < Action::Deny.strictness());
        assert_eq!(Action::Deny.floor(), Some(Decision::Deny));
    }

    #[test]
    fn regression_cryptography_oid_is_sip_hijacking_not_root_certificate() {
        let e = entry("cryptography-oid").expect("entry exists");
        assert_eq!(e.technique, "T1553.003");
    }
}
