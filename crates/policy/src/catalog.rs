//! The built-in high-risk catalog: registry locations attackers use for persistence, privilege
//! escalation, credential access and defence evasion, each tagged with its ATT&CK technique.
//!
//! Every row of both specification tables is here with its paths written out in full, plus the
//! well-known locations the specification tables leave out. Technique ids, names and tactics are
//! checked in CI against the ATT&CK STIX bundle of [`ATTACK_VERSION`]. Where the design table is
//! wrong it is corrected here and the entry says so (`Cryptography\OID` is T1553.003).
//!
//! Location notation used only in this table: `KEY>VALUE` names a value of a key (value patterns
//! are globs too); `HKCU` means every user's hive (see [`crate::pattern::UserScope::AnyUser`]).

use crate::ops::{Decision, Risk};

/// The ATT&CK release the technique ids, names and tactics were verified against.
pub const ATTACK_VERSION: &str = "18.1";

/// Where a catalog entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A row of the design's "High-Risk Paths" table.
    DesignTable,
    /// A row of the deployment guide's "High-Risk Registry Paths" table.
    GuideTable,
    /// A row of both tables.
    BothTables,
    /// A well-known location beyond the tables.
    Extended,
}

impl Source {
    /// The name shown by `agentsh policy catalog`.
    pub fn name(self) -> &'static str {
        match self {
            Source::DesignTable => "design-table",
            Source::GuideTable => "guide-table",
            Source::BothTables => "design-and-guide-tables",
            Source::Extended => "extended",
        }
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
    /// ATT&CK technique id (`T1547.001`).
    pub technique: &'static str,
    /// ATT&CK technique name in [`ATTACK_VERSION`].
    pub technique_name: &'static str,
    /// The ATT&CK tactic (STIX short name) this location serves.
    pub tactic: &'static str,
    /// What a sandboxed write-class operation gets (deny or approve).
    pub action: Decision,
    pub description: &'static str,
    pub source: Source,
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
    ($id:literal, $risk:ident, $tech:literal, $name:literal, $tactic:expr, $action:ident, $src:ident, $desc:literal, [$($loc:literal),+ $(,)?]) => {
        Entry {
            id: $id,
            locations: &[$($loc),+],
            risk: Risk::$risk,
            technique: $tech,
            technique_name: $name,
            tactic: $tactic,
            action: Decision::$action,
            description: $desc,
            source: Source::$src,
        }
    };
}

/// The catalog, in documentation order.
pub const ENTRIES: &[Entry] = &[
    // Rows of the specification tables.
    entry!(
        "run-keys-hklm",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        BothTables,
        "machine-wide Run/RunOnce/RunOnceEx/RunServices keys start programs at boot or logon",
        [r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run*"]
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
        [r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Run*"]
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
        [r"HKLM\SYSTEM\CurrentControlSet\Services\*"]
    ),
    entry!(
        "winlogon",
        Critical,
        "T1547.004",
        "Winlogon Helper DLL",
        P,
        Deny,
        BothTables,
        "Winlogon Shell/Userinit/Notify values run code at every logon",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon*"]
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
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\*"]
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
        [r"HKLM\SOFTWARE\Classes\CLSID\*\InprocServer32\*"]
    ),
    entry!(
        "shell-open-command-hklm",
        High,
        "T1546.001",
        "Change Default File Association",
        PE,
        Deny,
        DesignTable,
        "machine file-association open command runs a program when a file type is opened",
        [r"HKLM\SOFTWARE\Classes\*\shell\open\command\*"]
    ),
    entry!(
        "windows-defender",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        BothTables,
        "Microsoft Defender settings and policies (disable switches, exclusions)",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows Defender\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender*"
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
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa*"]
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
        [r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\*"]
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
        [
            r"HKLM\SOFTWARE\Policies\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\*"
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
        [r"HKLM\SOFTWARE\Microsoft\Cryptography\OID\*"]
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
        [r"HKLM\SOFTWARE\Microsoft\EnterpriseCertificates\*"]
    ),
    // Well-known locations beyond the tables.
    entry!(
        "run-keys-policies",
        Critical,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "policy Run lists start programs at logon",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Explorer\Run\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Explorer\Run\*"
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
        [
            r"HKCU\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows>Load",
            r"HKCU\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows>Run"
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
        [
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders>*Startup",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Shell Folders>*Startup",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders>*Startup",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Shell Folders>*Startup"
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
        "Session Manager BootExecute/SetupExecute run native programs at boot; KnownDLL search settings",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>BootExecute",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>SetupExecute",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>ExcludeFromKnownDlls",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager>SafeDllSearchMode"
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
        [
            r"HKLM\SOFTWARE\Microsoft\Command Processor>AutoRun",
            r"HKCU\SOFTWARE\Microsoft\Command Processor>AutoRun"
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
        "RDP InitialProgram runs a program in every remote session",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp>InitialProgram"
        ]
    ),
    entry!(
        "accessibility-ats",
        High,
        "T1547.001",
        "Registry Run Keys / Startup Folder",
        P,
        Deny,
        Extended,
        "assistive technology StartExe runs at the logon screen",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Accessibility\ATs\*"]
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
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>Authentication Packages"]
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
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>Security Packages",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\OSConfig>Security Packages"
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
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa>Notification Packages"]
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
        [r"HKLM\SYSTEM\CurrentControlSet\Services\W32Time\TimeProviders\*"]
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
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\NTDS>DirectoryServiceExtPt",
            r"HKLM\SYSTEM\CurrentControlSet\Services\NTDS>LsaDbExtPt"
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
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Print\Monitors\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Ports\*"
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
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Print\Environments\*\Print Processors\*"]
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
        [r"HKLM\SOFTWARE\Microsoft\Active Setup\Installed Components\*"]
    ),
    entry!(
        "logon-scripts",
        High,
        "T1037.001",
        "Logon Script (Windows)",
        P,
        Deny,
        Extended,
        "logon scripts run at every logon",
        [
            r"HKCU\Environment>UserInitMprLogonScript",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Group Policy\Scripts\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Group Policy\Scripts\*"
        ]
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
        [r"HKLM\SYSTEM\CurrentControlSet\Services\TermService\Parameters>ServiceDll"]
    ),
    entry!(
        "scheduled-task-cache",
        Critical,
        "T1053.005",
        "Scheduled Task",
        P,
        Deny,
        Extended,
        "the scheduled task cache (creating or hiding tasks by editing it)",
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Schedule\TaskCache\*"]
    ),
    entry!(
        "file-association-hkcu",
        High,
        "T1546.001",
        "Change Default File Association",
        PE,
        Deny,
        Extended,
        "per-user file-association commands and choices",
        [
            r"HKCU\SOFTWARE\Classes\*\shell\open\command\*",
            r"HKCU\SOFTWARE\Classes\*\shell\open\ddeexec\*",
            r"HKLM\SOFTWARE\Classes\*\shell\open\ddeexec\*",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\FileExts\*"
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
        "the screensaver program runs after user inactivity",
        [
            r"HKCU\Control Panel\Desktop>SCRNSAVE.EXE",
            r"HKCU\SOFTWARE\Policies\Microsoft\Windows\Control Panel\Desktop\*"
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
        [r"HKLM\SOFTWARE\Microsoft\NetSh\*"]
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
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\sethc.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\utilman.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\osk.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\Magnify.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\Narrator.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\DisplaySwitch.exe\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\AtBroker.exe\*"
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
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\AppCertDlls\*"]
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
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows>AppInit_DLLs",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows>LoadAppInit_DLLs"
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
        "custom shim databases inject code into programs",
        [
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\AppCompatFlags\Custom\*",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\AppCompatFlags\InstalledSDB\*"
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
        [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\SilentProcessExit\*"]
    ),
    entry!(
        "com-hijacking",
        High,
        "T1546.015",
        "Component Object Model Hijacking",
        PE,
        Deny,
        Extended,
        "COM server registrations in machine and per-user classes redirect COM objects",
        [
            r"HKCU\SOFTWARE\Classes\CLSID\*\InprocServer32\*",
            r"HKCU\SOFTWARE\Classes\CLSID\*\LocalServer32\*",
            r"HKCU\SOFTWARE\Classes\CLSID\*\TreatAs\*",
            r"HKCU\SOFTWARE\Classes\CLSID\*\ScriptletURL\*",
            r"HKLM\SOFTWARE\Classes\CLSID\*\LocalServer32\*",
            r"HKLM\SOFTWARE\Classes\CLSID\*\TreatAs\*",
            r"HKLM\SOFTWARE\Classes\CLSID\*\ScriptletURL\*"
        ]
    ),
    entry!(
        "known-dlls",
        Critical,
        "T1574.001",
        "DLL",
        P,
        Deny,
        Extended,
        "KnownDLLs decide which system DLLs are loaded from where",
        [r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\KnownDLLs\*"]
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
        [
            r"HKCU\Environment>Path",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment>Path"
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
        [
            r"HKCU\Environment>COR_*",
            r"HKCU\Environment>CORECLR_*",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment>COR_*",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment>CORECLR_*"
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
        [
            r"HKCU\SOFTWARE\Microsoft\Office test\Special\Perf\*",
            r"HKLM\SOFTWARE\Microsoft\Office test\Special\Perf\*"
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
        "Office add-ins load at Office start",
        [
            r"HKCU\SOFTWARE\Microsoft\Office\*\Addins\*",
            r"HKLM\SOFTWARE\Microsoft\Office\*\Addins\*"
        ]
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
        [
            r"HKCU\SOFTWARE\Microsoft\Office\*\Outlook\WebView\*",
            r"HKCU\SOFTWARE\Microsoft\Office\*\Outlook\Today\*"
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
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\NetworkProvider\Order\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\*\NetworkProvider>ProviderPath"
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
        [r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\WDigest>UseLogonCredential"]
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
        [r"HKLM\SAM\*"]
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
        [r"HKLM\SECURITY\*"]
    ),
    entry!(
        "security-services",
        Critical,
        "T1562.001",
        "Disable or Modify Tools",
        DE,
        Deny,
        Extended,
        "security product services (Defender, Sense, Sysmon): changing them disables monitoring",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\WinDefend\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\Sense\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\WdBoot\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\WdFilter\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\WdNisDrv\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\WdNisSvc\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\SecurityHealthService\*",
            r"HKLM\SYSTEM\CurrentControlSet\Services\Sysmon*"
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
        [
            r"HKLM\SOFTWARE\Microsoft\AMSI\*",
            r"HKLM\SOFTWARE\Microsoft\Windows Script\Settings>AmsiEnable",
            r"HKCU\SOFTWARE\Microsoft\Windows Script\Settings>AmsiEnable"
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
        "PowerShell script block, module and transcription logging policies",
        [
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows\PowerShell\*",
            r"HKCU\SOFTWARE\Policies\Microsoft\Windows\PowerShell\*"
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
        "event log service and channel settings",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\EventLog\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WINEVT\Channels\*"
        ]
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
        [
            r"HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\*"
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
        ".NET ETW switch and autologger sessions feed security telemetry",
        [
            r"HKLM\SOFTWARE\Microsoft\.NETFramework>ETWEnabled",
            r"HKLM\SYSTEM\CurrentControlSet\Control\WMI\Autologger\*"
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
        [r"HKLM\SYSTEM\CurrentControlSet\Control\SafeBoot\*"]
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
        [
            r"HKCU\SOFTWARE\Classes\ms-settings\shell\open\command\*",
            r"HKCU\SOFTWARE\Classes\mscfile\shell\open\command\*",
            r"HKCU\SOFTWARE\Classes\exefile\shell\runas\command\*",
            r"HKCU\SOFTWARE\Classes\Folder\shell\open\command\*",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System>EnableLUA",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System>ConsentPromptBehaviorAdmin",
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System>LocalAccountTokenFilterPolicy"
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
        [r"HKLM\SOFTWARE\Microsoft\Cryptography\Providers\Trust\*"]
    ),
    entry!(
        "root-certificates",
        High,
        "T1553.004",
        "Install Root Certificate",
        DE,
        Deny,
        Extended,
        "trusted root and intermediate certificate stores",
        [
            r"HKLM\SOFTWARE\Microsoft\SystemCertificates\Root\*",
            r"HKLM\SOFTWARE\Microsoft\SystemCertificates\CA\*",
            r"HKCU\SOFTWARE\Microsoft\SystemCertificates\Root\*",
            r"HKLM\SOFTWARE\Policies\Microsoft\SystemCertificates\Root\*"
        ]
    ),
    entry!(
        "hidden-files",
        Medium,
        "T1564.001",
        "Hidden Files and Directories",
        DE,
        Deny,
        Extended,
        "Explorer settings that hide files and extensions",
        [
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Advanced>Hidden",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Advanced>ShowSuperHidden",
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Advanced>HideFileExt"
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
        "enabling Remote Desktop or moving its port opens the machine to remote logons",
        [
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server>fDenyTSConnections",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server>fSingleSessionPerUser",
            r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp>PortNumber"
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
        [r"HKLM\SYSTEM\Select\*"]
    ),
    entry!(
        "registry-links",
        High,
        "T1112",
        "Modify Registry",
        DE,
        Deny,
        Extended,
        "a registry symbolic link redirects later writes through an allowed key to any other key",
        [r"*>SymbolicLinkValue"]
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
        [r"HKLM\SYSTEM\CurrentControlSet\Services\PortProxy\*"]
    ),
];

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
    fn only_deny_and_approve_are_catalog_actions() {
        for e in ENTRIES {
            assert_ne!(e.action, Decision::Allow, "{}", e.id);
        }
    }

    #[test]
    fn regression_cryptography_oid_is_sip_hijacking_not_root_certificate() {
        let e = entry("cryptography-oid").expect("entry exists");
        assert_eq!(e.technique, "T1553.003");
    }
}
