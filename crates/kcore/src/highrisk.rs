//! The kernel's high-risk set: enough to notify the service about operations of processes outside
//! every session on high-risk keys and values without a blocking query, and to keep critical
//! locations closed while the service is unavailable.
//!
//! The table below is generated from the policy engine's catalog (`crates/policy/src/catalog.rs`,
//! the authority for decisions) by `crates/policy/tests/kernel_coverage.rs`, which fails when the
//! two drift apart and also checks that both classify the same probes alike, value names included.
//!
//! A row is (roots, suffix, value, risk). Every root joined with the suffix is one key pattern in
//! the kernel's form, upper case. In a pattern `*` matches any run of characters including `\`,
//! `%` any run without `\` (one key name, or the rest of one) and `?` one character; a pattern
//! ending in `\*` also matches the key it names. Roots expand the views a key has in the kernel:
//! 64- and 32-bit (`WOW6432Node`) software hives, machine and every user hive
//! (`\REGISTRY\USER\<SID>`, which also covers `.DEFAULT`), the per-user classes hive
//! (`<SID>_Classes`), and every control set. A row with a value pattern names values of the key
//! itself: it matches an operation on exactly that key naming a matching value, and an operation
//! on the key that names no value (creating, deleting or renaming the key, or its default value),
//! because the kernel does not tell those apart.

use alloc::vec::Vec;

/// How severe a high-risk location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    Medium,
    High,
    /// Kept closed to sandboxed writes even while the service is unavailable in fail-open mode.
    Critical,
}

const MACHINE_SOFTWARE: &[&str] = &[
    "\\REGISTRY\\MACHINE\\SOFTWARE",
    "\\REGISTRY\\MACHINE\\SOFTWARE\\WOW6432NODE",
];
const USER_SOFTWARE: &[&str] = &[
    "\\REGISTRY\\USER\\%\\SOFTWARE",
    "\\REGISTRY\\USER\\%\\SOFTWARE\\WOW6432NODE",
];
const MACHINE_CLASSES: &[&str] = &[
    "\\REGISTRY\\MACHINE\\SOFTWARE\\CLASSES",
    "\\REGISTRY\\MACHINE\\SOFTWARE\\CLASSES\\WOW6432NODE",
    "\\REGISTRY\\MACHINE\\SOFTWARE\\WOW6432NODE\\CLASSES",
];
const USER_CLASSES: &[&str] = &[
    "\\REGISTRY\\USER\\%\\SOFTWARE\\CLASSES",
    "\\REGISTRY\\USER\\%\\SOFTWARE\\CLASSES\\WOW6432NODE",
    "\\REGISTRY\\USER\\%_CLASSES",
    "\\REGISTRY\\USER\\%_CLASSES\\WOW6432NODE",
];
const CONTROL_SETS: &[&str] = &[
    "\\REGISTRY\\MACHINE\\SYSTEM\\CONTROLSET%",
    "\\REGISTRY\\MACHINE\\SYSTEM\\CURRENTCONTROLSET",
];
const SYSTEM: &[&str] = &["\\REGISTRY\\MACHINE\\SYSTEM"];
const MACHINE: &[&str] = &["\\REGISTRY\\MACHINE"];
const USER: &[&str] = &["\\REGISTRY\\USER\\%"];

/// One row: every root joined with `suffix` is one key pattern; `value` (if any) names values.
type Row = (
    &'static [&'static str],
    &'static str,
    Option<&'static str>,
    Risk,
);

// BEGIN GENERATED TABLE (crates/policy/tests/kernel_coverage.rs; do not edit by hand)
#[rustfmt::skip]
const TABLE: &[Row] = &[
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\RUN*", None, Risk::Critical), // run-keys-hklm
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\RUN*", None, Risk::Critical), // run-keys-hkcu
    (CONTROL_SETS, "SERVICES\\*", None, Risk::Critical), // services
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON*", None, Risk::Critical), // winlogon
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\IMAGE FILE EXECUTION OPTIONS\\*", None, Risk::Critical), // ifeo
    (MACHINE_CLASSES, "CLSID\\*\\INPROCSERVER32\\*", None, Risk::High), // com-inprocserver-hklm
    (MACHINE_CLASSES, "*\\SHELL\\OPEN\\COMMAND\\*", None, Risk::High), // shell-open-command-hklm
    (MACHINE_CLASSES, "*\\SHELL\\*\\COMMAND\\*", None, Risk::High), // shell-open-command-hklm
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS DEFENDER\\*", None, Risk::Critical), // windows-defender
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS DEFENDER*", None, Risk::Critical), // windows-defender
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS DEFENDER SECURITY CENTER\\*", None, Risk::Critical), // windows-defender
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS ADVANCED THREAT PROTECTION\\*", None, Risk::Critical), // windows-defender
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS ADVANCED THREAT PROTECTION\\*", None, Risk::Critical), // windows-defender
    (MACHINE_SOFTWARE, "MICROSOFT\\MICROSOFT ANTIMALWARE\\*", None, Risk::Critical), // windows-defender
    (CONTROL_SETS, "CONTROL\\LSA*", None, Risk::Critical), // lsa
    (CONTROL_SETS, "CONTROL\\SECURITYPROVIDERS\\*", None, Risk::Critical), // security-providers
    (MACHINE_SOFTWARE, "POLICIES\\*", None, Risk::High), // policies
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\*", None, Risk::High), // policies
    (MACHINE_SOFTWARE, "MICROSOFT\\CRYPTOGRAPHY\\OID\\*", None, Risk::Medium), // cryptography-oid
    (MACHINE_SOFTWARE, "MICROSOFT\\ENTERPRISECERTIFICATES\\*", None, Risk::Medium), // enterprise-certificates
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\EXPLORER\\RUN\\*", None, Risk::Critical), // run-keys-policies
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\EXPLORER\\RUN\\*", None, Risk::Critical), // run-keys-policies
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\TERMINAL SERVER\\INSTALL\\SOFTWARE\\MICROSOFT\\WINDOWS\\CURRENTVERSION\\RUN*", None, Risk::Critical), // terminal-server-install-run
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINDOWS", Some("LOAD"), Risk::High), // windows-load-run
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINDOWS", Some("RUN"), Risk::High), // windows-load-run
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\USER SHELL FOLDERS", Some("*STARTUP"), Risk::High), // startup-folders
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\SHELL FOLDERS", Some("*STARTUP"), Risk::High), // startup-folders
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\USER SHELL FOLDERS", Some("*STARTUP"), Risk::High), // startup-folders
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\SHELL FOLDERS", Some("*STARTUP"), Risk::High), // startup-folders
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER", Some("BOOTEXECUTE"), Risk::Critical), // boot-execute
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER", Some("SETUPEXECUTE"), Risk::Critical), // boot-execute
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER", Some("EXECUTE"), Risk::Critical), // boot-execute
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER", Some("S0INITIALCOMMAND"), Risk::Critical), // boot-execute
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER", Some("EXCLUDEFROMKNOWNDLLS"), Risk::Critical), // boot-execute
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER", Some("SAFEDLLSEARCHMODE"), Risk::Critical), // boot-execute
    (CONTROL_SETS, "CONTROL\\BOOTVERIFICATIONPROGRAM\\*", None, Risk::Critical), // boot-execute
    (SYSTEM, "SETUP", Some("CMDLINE"), Risk::Critical), // setup-cmdline
    (SYSTEM, "SETUP", Some("SETUPTYPE"), Risk::Critical), // setup-cmdline
    (SYSTEM, "SETUP\\UPGRADE\\*", None, Risk::Critical), // setup-cmdline
    (MACHINE_SOFTWARE, "MICROSOFT\\COMMAND PROCESSOR", Some("AUTORUN"), Risk::High), // command-processor-autorun
    (USER_SOFTWARE, "MICROSOFT\\COMMAND PROCESSOR", Some("AUTORUN"), Risk::High), // command-processor-autorun
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER\\WINSTATIONS\\RDP-TCP", Some("INITIALPROGRAM"), Risk::High), // rdp-initial-program
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER\\WDS\\RDPWD", Some("STARTUPPROGRAMS"), Risk::High), // rdp-initial-program
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER", Some("INITIALPROGRAM"), Risk::High), // rdp-initial-program
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\ACCESSIBILITY\\ATS\\*", None, Risk::Critical), // accessibility-ats
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\ACCESSIBILITY", Some("CONFIGURATION"), Risk::Critical), // accessibility-ats
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\ACCESSIBILITY", Some("CONFIGURATION"), Risk::Critical), // accessibility-ats
    (CONTROL_SETS, "CONTROL\\LSA", Some("AUTHENTICATION PACKAGES"), Risk::Critical), // authentication-packages
    (CONTROL_SETS, "CONTROL\\LSA", Some("SECURITY PACKAGES"), Risk::Critical), // security-packages
    (CONTROL_SETS, "CONTROL\\LSA\\OSCONFIG", Some("SECURITY PACKAGES"), Risk::Critical), // security-packages
    (CONTROL_SETS, "CONTROL\\LSA", Some("NOTIFICATION PACKAGES"), Risk::Critical), // password-filters
    (CONTROL_SETS, "CONTROL\\LSAEXTENSIONCONFIG\\*", None, Risk::Critical), // lsa-extensions
    (CONTROL_SETS, "SERVICES\\W32TIME\\TIMEPROVIDERS\\*", None, Risk::Critical), // time-providers
    (CONTROL_SETS, "SERVICES\\NTDS", Some("DIRECTORYSERVICEEXTPT"), Risk::Critical), // lsass-driver
    (CONTROL_SETS, "SERVICES\\NTDS", Some("LSADBEXTPT"), Risk::Critical), // lsass-driver
    (CONTROL_SETS, "CONTROL\\PRINT\\MONITORS\\*", None, Risk::High), // port-monitors
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\PORTS\\*", None, Risk::High), // port-monitors
    (CONTROL_SETS, "CONTROL\\PRINT\\ENVIRONMENTS\\*\\PRINT PROCESSORS\\*", None, Risk::High), // print-processors
    (CONTROL_SETS, "CONTROL\\PRINT\\PROVIDERS\\*", None, Risk::High), // print-providers
    (MACHINE_SOFTWARE, "MICROSOFT\\ACTIVE SETUP\\INSTALLED COMPONENTS\\*", None, Risk::High), // active-setup
    (USER_SOFTWARE, "MICROSOFT\\ACTIVE SETUP\\INSTALLED COMPONENTS\\*", None, Risk::High), // active-setup
    (USER, "ENVIRONMENT", Some("USERINITMPRLOGONSCRIPT"), Risk::High), // logon-scripts
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\GROUP POLICY\\SCRIPTS\\*", None, Risk::High), // group-policy-scripts
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\GROUP POLICY\\SCRIPTS\\*", None, Risk::High), // group-policy-scripts
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\SYSTEM\\SCRIPTS\\*", None, Risk::High), // group-policy-scripts
    (USER_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\SYSTEM\\SCRIPTS\\*", None, Risk::High), // group-policy-scripts
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\SYSTEM", Some("GROUPPOLICYREFRESHTIME*"), Risk::High), // group-policy-refresh
    (CONTROL_SETS, "SERVICES\\TERMSERVICE\\PARAMETERS", Some("SERVICEDLL"), Risk::Critical), // terminal-services-dll
    (USER_SOFTWARE, "MICROSOFT\\TERMINAL SERVER CLIENT\\DEFAULT\\ADDINS\\*", None, Risk::High), // rdp-client-addins
    (MACHINE_SOFTWARE, "MICROSOFT\\TERMINAL SERVER CLIENT", Some("CLXDLLPATH"), Risk::High), // rdp-plugins
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER\\ADDINS\\*", None, Risk::High), // rdp-plugins
    (CONTROL_SETS, "SERVICES\\WINSOCK2\\PARAMETERS\\PROTOCOL_CATALOG9\\*", None, Risk::High), // winsock-providers
    (CONTROL_SETS, "SERVICES\\WINSOCK2\\PARAMETERS\\NAMESPACE_CATALOG5\\*", None, Risk::High), // winsock-providers
    (CONTROL_SETS, "SERVICES\\WINSOCK2\\PARAMETERS", Some("AUTODIALDLL"), Risk::High), // autodial-dll
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\AUTHENTICATION\\CREDENTIAL PROVIDER*", None, Risk::Critical), // credential-providers
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\AUTHENTICATION\\PLAP PROVIDERS\\*", None, Risk::Critical), // credential-providers
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\SHELLSERVICEOBJECTDELAYLOAD\\*", None, Risk::High), // explorer-extensions
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\SHELLSERVICEOBJECTDELAYLOAD\\*", None, Risk::High), // explorer-extensions
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\SHELLSERVICEOBJECTS\\*", None, Risk::High), // explorer-extensions
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\SHELLEXECUTEHOOKS\\*", None, Risk::High), // explorer-extensions
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\SHELLEXECUTEHOOKS\\*", None, Risk::High), // explorer-extensions
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\SHAREDTASKSCHEDULER\\*", None, Risk::High), // explorer-extensions
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\BROWSER HELPER OBJECTS\\*", None, Risk::High), // browser-helper-objects
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\BROWSER HELPER OBJECTS\\*", None, Risk::High), // browser-helper-objects
    (MACHINE_SOFTWARE, "MICROSOFT\\INTERNET EXPLORER\\EXTENSIONS\\*", None, Risk::High), // browser-helper-objects
    (USER_SOFTWARE, "MICROSOFT\\INTERNET EXPLORER\\EXTENSIONS\\*", None, Risk::High), // browser-helper-objects
    (MACHINE_SOFTWARE, "MICROSOFT\\INTERNET EXPLORER\\TOOLBAR\\*", None, Risk::High), // browser-helper-objects
    (USER_SOFTWARE, "MICROSOFT\\INTERNET EXPLORER\\URLSEARCHHOOKS\\*", None, Risk::High), // browser-helper-objects
    (USER_CLASSES, "*\\SHELLEX\\*", None, Risk::High), // shell-extension-handlers
    (MACHINE_CLASSES, "*\\SHELLEX\\*", None, Risk::High), // shell-extension-handlers
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\SHELLICONOVERLAYIDENTIFIERS\\*", None, Risk::High), // shell-extension-handlers
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\SHELL EXTENSIONS\\APPROVED\\*", None, Risk::High), // shell-extension-handlers
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\SHELL EXTENSIONS\\APPROVED\\*", None, Risk::High), // shell-extension-handlers
    (USER_CLASSES, "CLSID\\{645FF040-5081-101B-9F08-00AA002F954E}\\SHELL\\*", None, Risk::High), // shell-command-autostarts
    (MACHINE_CLASSES, "CLSID\\{645FF040-5081-101B-9F08-00AA002F954E}\\SHELL\\*", None, Risk::High), // shell-command-autostarts
    (USER_CLASSES, "APPXYPSAF9F1QSERQEVF0SWS76DX4K9A5206\\SHELL\\*", None, Risk::High), // shell-command-autostarts
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\DRIVERS32\\*", None, Risk::High), // drivers32
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS CE SERVICES\\AUTOSTART*", None, Risk::High), // windows-ce-autostart
    (USER_SOFTWARE, "MICROSOFT\\CTF\\LANGBARADDIN\\*", None, Risk::High), // langbar-addins
    (MACHINE_SOFTWARE, "MICROSOFT\\CTF\\LANGBARADDIN\\*", None, Risk::High), // langbar-addins
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\APPCOMPATFLAGS\\TELEMETRYCONTROLLER\\*", None, Risk::Critical), // telemetry-controller
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\SCHEDULE\\TASKCACHE\\*", None, Risk::Critical), // scheduled-task-cache
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\SCHEDULE\\CONFIGURATION", Some("ENABLEAT"), Risk::High), // at-jobs
    (USER_CLASSES, "*\\SHELL\\*\\COMMAND\\*", None, Risk::High), // file-association-hkcu
    (USER_CLASSES, "*\\SHELL\\OPEN\\DDEEXEC\\*", None, Risk::High), // file-association-hkcu
    (MACHINE_CLASSES, "*\\SHELL\\OPEN\\DDEEXEC\\*", None, Risk::High), // file-association-hkcu
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\FILEEXTS\\*", None, Risk::High), // file-association-hkcu
    (USER_CLASSES, ".*", None, Risk::High), // file-association-hkcu
    (USER, "CONTROL PANEL\\DESKTOP", Some("SCRNSAVE.EXE"), Risk::Medium), // screensaver
    (USER, "CONTROL PANEL\\DESKTOP", Some("SCREENSAVEACTIVE"), Risk::Medium), // screensaver
    (USER, "CONTROL PANEL\\DESKTOP", Some("SCREENSAVERISSECURE"), Risk::Medium), // screensaver
    (USER, "CONTROL PANEL\\DESKTOP", Some("SCREENSAVETIMEOUT"), Risk::Medium), // screensaver
    (USER_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\CONTROL PANEL\\DESKTOP\\*", None, Risk::Medium), // screensaver
    (USER, "CONTROL PANEL\\DESKTOP", Some("WALLPAPER"), Risk::Medium), // desktop-wallpaper
    (USER, "CONTROL PANEL\\DESKTOP", Some("WALLPAPERSTYLE"), Risk::Medium), // desktop-wallpaper
    (MACHINE_SOFTWARE, "MICROSOFT\\NETSH\\*", None, Risk::High), // netsh-helpers
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\IMAGE FILE EXECUTION OPTIONS\\SETHC.EXE\\*", None, Risk::Critical), // accessibility-features
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\IMAGE FILE EXECUTION OPTIONS\\UTILMAN.EXE\\*", None, Risk::Critical), // accessibility-features
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\IMAGE FILE EXECUTION OPTIONS\\OSK.EXE\\*", None, Risk::Critical), // accessibility-features
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\IMAGE FILE EXECUTION OPTIONS\\MAGNIFY.EXE\\*", None, Risk::Critical), // accessibility-features
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\IMAGE FILE EXECUTION OPTIONS\\NARRATOR.EXE\\*", None, Risk::Critical), // accessibility-features
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\IMAGE FILE EXECUTION OPTIONS\\DISPLAYSWITCH.EXE\\*", None, Risk::Critical), // accessibility-features
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\IMAGE FILE EXECUTION OPTIONS\\ATBROKER.EXE\\*", None, Risk::Critical), // accessibility-features
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER\\APPCERTDLLS\\*", None, Risk::Critical), // appcert-dlls
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINDOWS", Some("APPINIT_DLLS"), Risk::Critical), // appinit-dlls
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINDOWS", Some("LOADAPPINIT_DLLS"), Risk::Critical), // appinit-dlls
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\APPCOMPATFLAGS\\CUSTOM\\*", None, Risk::High), // application-shims
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\APPCOMPATFLAGS\\INSTALLEDSDB\\*", None, Risk::High), // application-shims
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\APPCOMPATFLAGS\\LAYERS\\*", None, Risk::High), // application-shims
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\APPCOMPATFLAGS\\LAYERS\\*", None, Risk::High), // application-shims
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\SILENTPROCESSEXIT\\*", None, Risk::Critical), // silent-process-exit
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\SILENTPROCESSEXIT\\LSASS.EXE\\*", None, Risk::Critical), // lsass-exit-dump
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\WINDOWS ERROR REPORTING\\LOCALDUMPS\\*", None, Risk::Critical), // wer-localdumps
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\WINDOWS ERROR REPORTING\\HANGS", Some("DEBUGGER"), Risk::High), // wer-hangs-debugger
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\WINDOWS ERROR REPORTING\\HANGS", Some("REFLECTDEBUGGER"), Risk::High), // wer-reflect-debugger
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\WINDOWS ERROR REPORTING", Some("DONTSHOWUI"), Risk::Medium), // wer-ui
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\WINDOWS ERROR REPORTING", Some("DONTSHOWUI"), Risk::Medium), // wer-ui
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\AEDEBUG", Some("DEBUGGER"), Risk::Critical), // aedebug
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\AEDEBUG", Some("AUTO"), Risk::Critical), // aedebug
    (MACHINE_SOFTWARE, "MICROSOFT\\.NETFRAMEWORK", Some("DBGMANAGEDDEBUGGER"), Risk::Critical), // dotnet-debugger
    (USER_CLASSES, "CLSID\\*", None, Risk::High), // com-hijacking
    (USER_CLASSES, "*\\CLSID\\*", None, Risk::High), // com-hijacking
    (MACHINE_CLASSES, "CLSID\\*\\LOCALSERVER32\\*", None, Risk::High), // com-hijacking
    (MACHINE_CLASSES, "CLSID\\*\\TREATAS\\*", None, Risk::High), // com-hijacking
    (MACHINE_CLASSES, "CLSID\\*\\SCRIPTLETURL\\*", None, Risk::High), // com-hijacking
    (MACHINE_CLASSES, "CLSID\\{083863F1-70DE-11D0-BD40-00A0C911CE86}\\INSTANCE\\*", None, Risk::High), // directshow-filters
    (USER_CLASSES, "CLSID\\{083863F1-70DE-11D0-BD40-00A0C911CE86}\\INSTANCE\\*", None, Risk::High), // directshow-filters
    (MACHINE_CLASSES, "CLSID\\{7ED96837-96F0-4812-B211-F13C24117ED3}\\INSTANCE\\*", None, Risk::High), // directshow-filters
    (USER_CLASSES, "CLSID\\{7ED96837-96F0-4812-B211-F13C24117ED3}\\INSTANCE\\*", None, Risk::High), // directshow-filters
    (MACHINE_CLASSES, "CLSID\\{AC757296-3522-4E11-9862-C17BE5A1767E}\\INSTANCE\\*", None, Risk::High), // directshow-filters
    (MACHINE_CLASSES, "PROTOCOLS\\FILTER\\*", None, Risk::High), // protocol-handlers
    (MACHINE_CLASSES, "PROTOCOLS\\HANDLER\\*", None, Risk::High), // protocol-handlers
    (USER_CLASSES, "PROTOCOLS\\FILTER\\*", None, Risk::High), // protocol-handlers
    (USER_CLASSES, "PROTOCOLS\\HANDLER\\*", None, Risk::High), // protocol-handlers
    (USER_CLASSES, "ACTIVATABLECLASSES\\PACKAGE\\*\\DEBUGINFORMATION\\*", None, Risk::High), // appx-debugger
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\PACKAGEDAPPXDEBUG\\*", None, Risk::High), // appx-debugger
    (USER_CLASSES, "CLSID\\{FDB00E52-A214-4AA1-8FBA-4357BB0072EC}\\*", None, Risk::Critical), // amsi-com-hijack
    (CONTROL_SETS, "CONTROL\\CONTENTINDEX\\LANGUAGE\\*", Some("STEMMERDLLPATHOVERRIDE"), Risk::High), // natural-language-dlls
    (CONTROL_SETS, "CONTROL\\CONTENTINDEX\\LANGUAGE\\*", Some("WBDLLPATHOVERRIDE"), Risk::High), // natural-language-dlls
    (CONTROL_SETS, "CONTROL\\CONTENTINDEX\\LANGUAGE\\*", Some("STEMMERCLASS"), Risk::High), // natural-language-dlls
    (CONTROL_SETS, "CONTROL\\CONTENTINDEX\\LANGUAGE\\*", Some("WBREAKERCLASS"), Risk::High), // natural-language-dlls
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\VOLUMECACHES\\*", None, Risk::High), // disk-cleanup-handlers
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\MYCOMPUTER\\*", None, Risk::High), // mycomputer-paths
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\EVENT VIEWER", Some("MICROSOFTREDIRECTIONPROGRAM"), Risk::High), // event-viewer-redirection
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\EVENT VIEWER", Some("MICROSOFTREDIRECTIONPROGRAMCOMMANDLINEPARAMETERS"), Risk::High), // event-viewer-redirection
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\EVENT VIEWER", Some("MICROSOFTREDIRECTIONURL"), Risk::High), // event-viewer-redirection
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER\\KNOWNDLLS\\*", None, Risk::Critical), // known-dlls
    (USER, "ENVIRONMENT", Some("PATH"), Risk::High), // path-interception
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER\\ENVIRONMENT", Some("PATH"), Risk::High), // path-interception
    (USER, "ENVIRONMENT", Some("COR_*"), Risk::High), // cor-profiler
    (USER, "ENVIRONMENT", Some("CORECLR_*"), Risk::High), // cor-profiler
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER\\ENVIRONMENT", Some("COR_*"), Risk::High), // cor-profiler
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER\\ENVIRONMENT", Some("CORECLR_*"), Risk::High), // cor-profiler
    (USER, "ENVIRONMENT", Some("WINDIR"), Risk::Critical), // environment-windir
    (USER, "ENVIRONMENT", Some("SYSTEMROOT"), Risk::Critical), // environment-windir
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER\\ENVIRONMENT", Some("WINDIR"), Risk::Critical), // environment-windir
    (USER, "ENVIRONMENT", Some("APPX_PROCESS"), Risk::High), // environment-dll-hijack
    (CONTROL_SETS, "SERVICES\\*\\PARAMETERS", Some("SERVICEDLL"), Risk::Critical), // service-dll
    (CONTROL_SETS, "SERVICES\\*", Some("SERVICEDLL"), Risk::Critical), // service-dll
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\SVCHOST", Some("*"), Risk::Critical), // service-dll
    (CONTROL_SETS, "SERVICES\\*", Some("IMAGEPATH"), Risk::Critical), // service-image-path
    (CONTROL_SETS, "SERVICES\\*", Some("FAILURECOMMAND"), Risk::Critical), // service-image-path
    (CONTROL_SETS, "SERVICES\\DNS\\PARAMETERS", Some("SERVERLEVELPLUGINDLL"), Risk::Critical), // dns-server-plugin
    (CONTROL_SETS, "SERVICES\\DHCPSERVER\\PARAMETERS", Some("CALLOUTDLLS"), Risk::Critical), // dhcp-callout
    (CONTROL_SETS, "SERVICES\\DHCPSERVER\\PARAMETERS", Some("CALLOUTENABLED"), Risk::Critical), // dhcp-callout
    (MACHINE_SOFTWARE, "MICROSOFT\\MSDTC\\MTXOCI", Some("ORACLEOCI*"), Risk::High), // msdtc-oci
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\APP PATHS\\*", None, Risk::High), // app-paths
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\APP PATHS\\*", None, Risk::High), // app-paths
    (USER_SOFTWARE, "MICROSOFT\\OFFICE TEST\\SPECIAL\\PERF\\*", None, Risk::High), // office-test
    (MACHINE_SOFTWARE, "MICROSOFT\\OFFICE TEST\\SPECIAL\\PERF\\*", None, Risk::High), // office-test
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\ADDINS\\*", None, Risk::Medium), // office-addins
    (MACHINE_SOFTWARE, "MICROSOFT\\OFFICE\\*\\ADDINS\\*", None, Risk::Medium), // office-addins
    (USER_SOFTWARE, "MICROSOFT\\VSTO\\SECURITY\\INCLUSION\\*", None, Risk::Medium), // office-addins
    (USER_SOFTWARE, "MICROSOFT\\VSTO\\SOLUTIONMETADATA\\*", None, Risk::Medium), // office-addins
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\EXCEL\\OPTIONS", Some("OPEN*"), Risk::Medium), // office-addins
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\WORD\\OPTIONS", Some("GLOBALDOTNAME"), Risk::High), // office-templates
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\WORD\\OPTIONS", Some("STARTUP-PATH"), Risk::High), // office-startup-path
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\OUTLOOK\\WEBVIEW\\*", None, Risk::High), // outlook-home-page
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\OUTLOOK\\TODAY\\*", None, Risk::High), // outlook-home-page
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\OUTLOOK\\SECURITY", Some("LEVEL"), Risk::High), // outlook-vba
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\OUTLOOK", Some("LOADMACROPROVIDERONBOOT"), Risk::High), // outlook-vba
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\OUTLOOK\\SECURITY", Some("ENABLEUNSAFECLIENTMAILRULES"), Risk::High), // outlook-rules
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\SECURITY", Some("VBAWARNINGS"), Risk::High), // office-macro-security
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\SECURITY", Some("ACCESSVBOM"), Risk::High), // office-macro-security
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\SECURITY", Some("PYTHONFUNCTIONWARNINGS"), Risk::High), // office-macro-security
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\SECURITY\\PROTECTEDVIEW\\*", None, Risk::High), // office-macro-security
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\SECURITY\\TRUSTED LOCATIONS\\*", None, Risk::High), // office-macro-security
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\SECURITY\\TRUSTED DOCUMENTS\\*", None, Risk::High), // office-macro-security
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\COMMON\\SECURITY", Some("MACRORUNTIMESCANSCOPE"), Risk::High), // office-macro-security
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\OFFICE\\*\\SECURITY\\*", None, Risk::High), // office-macro-security
    (USER_SOFTWARE, "POLICIES\\MICROSOFT\\OFFICE\\*\\SECURITY\\*", None, Risk::High), // office-macro-security
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\WORD\\SECURITY", Some("ALLOWDDE"), Risk::High), // office-dde
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\EXCEL\\SECURITY", Some("DISABLEDDESERVERLAUNCH"), Risk::High), // office-dde
    (USER_SOFTWARE, "MICROSOFT\\OFFICE\\*\\EXCEL\\SECURITY", Some("DISABLEDDESERVERLOOKUP"), Risk::High), // office-dde
    (CONTROL_SETS, "CONTROL\\NETWORKPROVIDER\\ORDER\\*", None, Risk::Critical), // network-providers
    (CONTROL_SETS, "CONTROL\\NETWORKPROVIDER\\ORDER", Some("PROVIDERORDER"), Risk::Critical), // network-providers
    (CONTROL_SETS, "SERVICES\\*\\NETWORKPROVIDER\\*", None, Risk::Critical), // network-providers
    (CONTROL_SETS, "CONTROL\\SECURITYPROVIDERS\\WDIGEST", Some("USELOGONCREDENTIAL"), Risk::Critical), // wdigest
    (CONTROL_SETS, "CONTROL\\LSA", Some("RUNASPPL"), Risk::Critical), // lsa-protection
    (CONTROL_SETS, "CONTROL\\LSA", Some("LSACFGFLAGS"), Risk::Critical), // lsa-protection
    (CONTROL_SETS, "CONTROL\\LSA", Some("LMCOMPATIBILITYLEVEL"), Risk::Critical), // ntlm-downgrade
    (CONTROL_SETS, "CONTROL\\LSA\\MSV1_0", Some("NTLMMINCLIENTSEC"), Risk::Critical), // ntlm-downgrade
    (CONTROL_SETS, "CONTROL\\LSA\\MSV1_0", Some("RESTRICTSENDINGNTLMTRAFFIC"), Risk::Critical), // ntlm-downgrade
    (CONTROL_SETS, "CONTROL\\LSA", Some("NTLMMINCLIENTSEC"), Risk::Critical), // ntlm-downgrade
    (CONTROL_SETS, "CONTROL\\LSA", Some("RESTRICTSENDINGNTLMTRAFFIC"), Risk::Critical), // ntlm-downgrade
    (CONTROL_SETS, "CONTROL\\LSA", Some("DISABLERESTRICTEDADMIN"), Risk::Critical), // lsa-restricted-admin
    (CONTROL_SETS, "CONTROL\\LSA", Some("NOLMHASH"), Risk::Critical), // lsa-restricted-admin
    (CONTROL_SETS, "CONTROL\\LSA", Some("DSRMADMINLOGONBEHAVIOR"), Risk::Critical), // dsrm-logon
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("AUTOADMINLOGON"), Risk::Critical), // winlogon-credentials
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("DEFAULTPASSWORD"), Risk::Critical), // winlogon-credentials
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("DEFAULTUSERNAME"), Risk::Critical), // winlogon-credentials
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("DEFAULTDOMAINNAME"), Risk::Critical), // winlogon-credentials
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("AUTOADMINLOGON"), Risk::Critical), // winlogon-credentials
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("DEFAULTPASSWORD"), Risk::Critical), // winlogon-credentials
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("DEFAULTUSERNAME"), Risk::Critical), // winlogon-credentials
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("DEFAULTDOMAINNAME"), Risk::Critical), // winlogon-credentials
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON\\SPECIALACCOUNTS\\USERLIST\\*", None, Risk::Critical), // hidden-users
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("ALLOWMULTIPLETSSESSIONS"), Risk::Critical), // winlogon-multiple-sessions
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("SHELL"), Risk::Critical), // winlogon-hkcu
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON", Some("USERINIT"), Risk::Critical), // winlogon-hkcu
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON\\NOTIFY\\*", None, Risk::Critical), // winlogon-hkcu
    (CONTROL_SETS, "SERVICES\\NETLOGON\\PARAMETERS", Some("DISABLEPASSWORDCHANGE"), Risk::Critical), // netlogon-password-change
    (MACHINE, "SAM\\*", None, Risk::Critical), // sam-hive
    (MACHINE, "SECURITY\\*", None, Risk::Critical), // security-hive
    (CONTROL_SETS, "SERVICES\\WINDEFEND\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\SENSE\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\WDBOOT\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\WDFILTER\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\WDNISDRV\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\WDNISSVC\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\MSMPSVC\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\NISSRV\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\WSCSVC\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\SECURITYHEALTHSERVICE\\*", None, Risk::Critical), // security-services
    (CONTROL_SETS, "SERVICES\\SYSMON*", None, Risk::Critical), // security-services
    (MACHINE_SOFTWARE, "MICROSOFT\\SECURITY CENTER\\*", None, Risk::Critical), // security-center
    (MACHINE_SOFTWARE, "MICROSOFT\\AMSI\\*", None, Risk::Critical), // amsi
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS SCRIPT\\SETTINGS", Some("AMSIENABLE"), Risk::Critical), // amsi
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS SCRIPT\\SETTINGS", Some("AMSIENABLE"), Risk::Critical), // amsi
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\SYSTEM", Some("ENABLESMARTSCREEN"), Risk::High), // smartscreen
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\SYSTEM", Some("SHELLSMARTSCREENLEVEL"), Risk::High), // smartscreen
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER", Some("SMARTSCREENENABLED"), Risk::High), // smartscreen
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\APPHOST", Some("ENABLEWEBCONTENTEVALUATION"), Risk::High), // smartscreen
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\APPHOST", Some("PREVENTOVERRIDE"), Risk::High), // smartscreen
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS DEFENDER\\SMARTSCREEN\\*", None, Risk::High), // smartscreen
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\POWERSHELL\\*", None, Risk::High), // powershell-logging
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\POWERSHELLCORE\\*", None, Risk::High), // powershell-logging
    (MACHINE_SOFTWARE, "MICROSOFT\\POWERSHELL\\*\\SHELLIDS\\*", Some("EXECUTIONPOLICY"), Risk::High), // powershell-execution-policy
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\POWERSHELL", Some("EXECUTIONPOLICY"), Risk::High), // powershell-execution-policy
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\POWERSHELL", Some("ENABLESCRIPTS"), Risk::High), // powershell-execution-policy
    (USER_SOFTWARE, "MICROSOFT\\POWERSHELL\\*\\SHELLIDS\\*", Some("EXECUTIONPOLICY"), Risk::Medium), // powershell-execution-policy-user
    (CONTROL_SETS, "CONTROL\\DEVICEGUARD\\*", None, Risk::Critical), // code-integrity
    (CONTROL_SETS, "CONTROL\\CI\\*", None, Risk::Critical), // code-integrity
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\DEVICEGUARD\\*", None, Risk::Critical), // code-integrity
    (USER_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS NT\\DRIVER SIGNING\\*", None, Risk::Critical), // driver-signing
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS NT\\DRIVER SIGNING\\*", None, Risk::Critical), // driver-signing
    (MACHINE_SOFTWARE, "MICROSOFT\\DRIVER SIGNING\\*", None, Risk::Critical), // driver-signing
    (CONTROL_SETS, "SERVICES\\EVENTLOG\\*", None, Risk::Critical), // event-log
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\WINEVT\\CHANNELS\\*", None, Risk::Critical), // event-log
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\EVENTLOG\\*", None, Risk::Critical), // event-log
    (CONTROL_SETS, "CONTROL\\MININT\\*", None, Risk::Critical), // minint
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\SYSTEM\\AUDIT", Some("PROCESSCREATIONINCLUDECMDLINE_ENABLED"), Risk::High), // command-line-auditing
    (CONTROL_SETS, "SERVICES\\SHAREDACCESS\\PARAMETERS\\FIREWALLPOLICY\\*", None, Risk::Critical), // firewall
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWSFIREWALL\\*", None, Risk::Critical), // firewall
    (MACHINE_SOFTWARE, "MICROSOFT\\.NETFRAMEWORK", Some("ETWENABLED"), Risk::High), // etw-indicators
    (USER, "ENVIRONMENT", Some("COMPLUS_ETW*"), Risk::High), // etw-indicators
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER\\ENVIRONMENT", Some("COMPLUS_ETW*"), Risk::High), // etw-indicators
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\TRACING\\*", None, Risk::High), // etw-indicators
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\RPC", Some("EXTERRORINFORMATION"), Risk::High), // etw-indicators
    (CONTROL_SETS, "CONTROL\\WMI\\AUTOLOGGER\\*", None, Risk::High), // etw-autologger
    (CONTROL_SETS, "CONTROL\\SAFEBOOT\\*", None, Risk::Critical), // safe-boot
    (USER_CLASSES, "MS-SETTINGS\\*", None, Risk::Critical), // uac-bypass
    (USER_CLASSES, "MSCFILE\\*", None, Risk::Critical), // uac-bypass
    (USER_CLASSES, "EXEFILE\\SHELL\\*", None, Risk::Critical), // uac-bypass
    (USER_CLASSES, "FOLDER\\SHELL\\OPEN\\COMMAND\\*", None, Risk::Critical), // uac-bypass
    (USER_CLASSES, "APPX82A6GWRE4FDG3BT635TN5CTQJF8MSDD2\\*", None, Risk::Critical), // uac-bypass
    (USER_CLASSES, "LAUNCHER.SYSTEMSETTINGS\\*", None, Risk::Critical), // uac-bypass
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\APP PATHS\\CONTROL.EXE\\*", None, Risk::Critical), // uac-bypass
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\APP PATHS\\CONTROL.EXE\\*", None, Risk::Critical), // uac-bypass
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\SYSTEM", Some("ENABLELUA"), Risk::Critical), // uac-bypass
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\SYSTEM", Some("CONSENTPROMPTBEHAVIORADMIN"), Risk::Critical), // uac-bypass
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\SYSTEM", Some("PROMPTONSECUREDESKTOP"), Risk::Critical), // uac-bypass
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\SYSTEM", Some("LOCALACCOUNTTOKENFILTERPOLICY"), Risk::Critical), // uac-bypass
    (MACHINE_SOFTWARE, "MICROSOFT\\SECURITY CENTER", Some("UACDISABLENOTIFY"), Risk::Critical), // uac-bypass
    (MACHINE_SOFTWARE, "MICROSOFT\\CRYPTOGRAPHY\\PROVIDERS\\*", None, Risk::Medium), // trust-providers
    (MACHINE_SOFTWARE, "MICROSOFT\\CRYPTOGRAPHY\\OFFLOAD\\*", None, Risk::Medium), // trust-providers
    (MACHINE_SOFTWARE, "MICROSOFT\\SYSTEMCERTIFICATES\\ROOT\\*", None, Risk::High), // root-certificates
    (MACHINE_SOFTWARE, "MICROSOFT\\SYSTEMCERTIFICATES\\CA\\*", None, Risk::High), // root-certificates
    (MACHINE_SOFTWARE, "MICROSOFT\\SYSTEMCERTIFICATES\\AUTHROOT\\*", None, Risk::High), // root-certificates
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\SYSTEMCERTIFICATES\\ROOT\\*", None, Risk::High), // root-certificates
    (USER_SOFTWARE, "MICROSOFT\\SYSTEMCERTIFICATES\\ROOT\\*", None, Risk::High), // root-certificates-user
    (USER_SOFTWARE, "MICROSOFT\\SYSTEMCERTIFICATES\\CA\\*", None, Risk::High), // root-certificates-user
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\ATTACHMENTS\\*", None, Risk::High), // mark-of-the-web
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\ATTACHMENTS\\*", None, Risk::High), // mark-of-the-web
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\ASSOCIATIONS\\*", None, Risk::High), // mark-of-the-web
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\ASSOCIATIONS\\*", None, Risk::High), // mark-of-the-web
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\INTERNET SETTINGS\\ZONEMAP\\*", None, Risk::Medium), // security-zones
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\INTERNET SETTINGS\\ZONEMAP\\*", None, Risk::Medium), // security-zones
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\INTERNET SETTINGS\\ZONES\\*", None, Risk::Medium), // security-zones
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\INTERNET SETTINGS", Some("PROXYSERVER"), Risk::Medium), // proxy-settings
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\INTERNET SETTINGS", Some("PROXYENABLE"), Risk::Medium), // proxy-settings
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\INTERNET SETTINGS", Some("AUTOCONFIGURL"), Risk::Medium), // proxy-settings
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\INTERNET SETTINGS", Some("PROXYOVERRIDE"), Risk::Medium), // proxy-settings
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\ADVANCED", Some("HIDDEN"), Risk::Medium), // hidden-files
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\ADVANCED", Some("SHOWSUPERHIDDEN"), Risk::Medium), // hidden-files
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\ADVANCED", Some("HIDEFILEEXT"), Risk::Medium), // hidden-files
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\ADVANCED", Some("HIDDEN"), Risk::Medium), // hidden-files
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\ADVANCED", Some("SHOWSUPERHIDDEN"), Risk::Medium), // hidden-files
    (USER_SOFTWARE, "POLICIES\\*", None, Risk::High), // user-policies
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\*", None, Risk::High), // user-policies
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\PUSHNOTIFICATIONS", Some("TOASTENABLED"), Risk::Medium), // notification-suppression
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\IMMERSIVESHELL", Some("USEACTIONCENTEREXPERIENCE"), Risk::Medium), // notification-suppression
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\SYSTEM", Some("LEGALNOTICECAPTION"), Risk::Medium), // legal-notice
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\SYSTEM", Some("LEGALNOTICETEXT"), Risk::Medium), // legal-notice
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\SYSTEMRESTORE", Some("DISABLESR"), Risk::High), // system-restore
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\SYSTEMRESTORE", Some("DISABLECONFIG"), Risk::High), // system-restore
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS NT\\SYSTEMRESTORE\\*", None, Risk::High), // system-restore
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\RUNMRU\\*", None, Risk::High), // run-mru
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\TYPEDPATHS\\*", None, Risk::High), // typed-paths
    (USER_SOFTWARE, "MICROSOFT\\TERMINAL SERVER CLIENT\\DEFAULT\\*", None, Risk::High), // rdp-history
    (USER_SOFTWARE, "MICROSOFT\\TERMINAL SERVER CLIENT\\SERVERS\\*", None, Risk::High), // rdp-history
    (USER_SOFTWARE, "MICROSOFT\\TERMINAL SERVER CLIENT", Some("AUTHENTICATIONLEVELOVERRIDE"), Risk::High), // rdp-client-settings
    (CONTROL_SETS, "SERVICES\\LANMANSERVER\\PARAMETERS", Some("AUTOSHAREWKS"), Risk::High), // admin-shares
    (CONTROL_SETS, "SERVICES\\LANMANSERVER\\PARAMETERS", Some("AUTOSHARESERVER"), Risk::High), // admin-shares
    (CONTROL_SETS, "SERVICES\\LANMANSERVER\\PARAMETERS", Some("NULLSESSIONPIPES"), Risk::High), // null-session-pipes
    (CONTROL_SETS, "SERVICES\\LANMANSERVER\\PARAMETERS", Some("NULLSESSIONSHARES"), Risk::High), // null-session-pipes
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER\\MEMORY MANAGEMENT\\PREFETCHPARAMETERS", Some("ENABLEPREFETCHER"), Risk::Medium), // prefetch
    (CONTROL_SETS, "CONTROL\\SESSION MANAGER", Some("PENDINGFILERENAMEOPERATIONS"), Risk::Critical), // pending-file-renames
    (MACHINE_SOFTWARE, "MICROSOFT\\PROVISIONING\\COMMANDS\\*", None, Risk::High), // provisioning-commands
    (MACHINE_SOFTWARE, "MICROSOFT\\WAB\\DLLPATH\\*", None, Risk::High), // wab-dllpath
    (USER_SOFTWARE, "MICROSOFT\\WAB\\DLLPATH\\*", None, Risk::High), // wab-dllpath
    (USER_SOFTWARE, "MICROSOFT\\ONEDRIVE\\UPDATEOFFICECONFIG\\*", None, Risk::High), // onedrive-update-config
    (MACHINE_SOFTWARE, "GOOGLE\\CHROME\\EXTENSIONS\\*", None, Risk::High), // browser-extensions
    (MACHINE_SOFTWARE, "POLICIES\\GOOGLE\\CHROME\\EXTENSIONINSTALLFORCELIST\\*", None, Risk::High), // browser-extensions
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\EDGE\\EXTENSIONINSTALLFORCELIST\\*", None, Risk::High), // browser-extensions
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER", Some("FDENYTSCONNECTIONS"), Risk::High), // rdp-enablement
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER\\WINSTATIONS\\RDP-TCP", Some("PORTNUMBER"), Risk::High), // rdp-enablement
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER\\WINSTATIONS\\RDP-TCP", Some("USERAUTHENTICATION"), Risk::High), // rdp-enablement
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS NT\\TERMINAL SERVICES", Some("SHADOW"), Risk::High), // rdp-enablement
    (MACHINE_SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS NT\\TERMINAL SERVICES", Some("FDENYTSCONNECTIONS"), Risk::High), // rdp-enablement
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER", Some("FSINGLESESSIONPERUSER"), Risk::High), // rdp-settings
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER", Some("ALLOWTSCONNECTIONS"), Risk::High), // rdp-settings
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER", Some("FALLOWTOGETHELP"), Risk::High), // rdp-settings
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER\\WINSTATIONS\\RDP-TCP", Some("SECURITYLAYER"), Risk::High), // rdp-settings
    (CONTROL_SETS, "CONTROL\\TERMINAL SERVER\\WINSTATIONS\\RDP-TCP", Some("FINHERITINITIALPROGRAM"), Risk::High), // rdp-settings
    (SYSTEM, "SELECT\\*", None, Risk::Critical), // control-set-select
    (CONTROL_SETS, "SERVICES\\PORTPROXY\\*", None, Risk::High), // port-proxy
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\CAPABILITYACCESSMANAGER\\CONSENTSTORE\\MICROPHONE\\*", None, Risk::Medium), // consent-store-microphone
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\CAPABILITYACCESSMANAGER\\CONSENTSTORE\\MICROPHONE\\*", None, Risk::Medium), // consent-store-microphone
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\CAPABILITYACCESSMANAGER\\CONSENTSTORE\\WEBCAM\\*", None, Risk::Medium), // consent-store-webcam
    (USER_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\CAPABILITYACCESSMANAGER\\CONSENTSTORE\\WEBCAM\\*", None, Risk::Medium), // consent-store-webcam
    (USER_SOFTWARE, "SYSINTERNALS\\*", Some("EULAACCEPTED"), Risk::Medium), // sysinternals-eula
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\APPMODELUNLOCK", Some("ALLOWDEVELOPMENTWITHOUTDEVLICENSE"), Risk::Medium), // developer-mode
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\APPMODELUNLOCK", Some("ALLOWALLTRUSTEDAPPS"), Risk::Medium), // developer-mode
];
// END GENERATED TABLE

/// One path component of a pattern's literal head.
#[derive(Debug, Clone)]
enum Seg {
    /// Upper-case text without wildcards.
    Lit(Vec<u16>),
    /// One component matched by [`glob`] (contains `%` or `?`, never `*`).
    Glob(Vec<u16>),
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The whole components before the first one containing `*`.
    head: Vec<Seg>,
    /// The rest of the key pattern (may be empty), matched by [`glob`] against the rest of the key.
    tail: Vec<u16>,
    /// The location ended in `\*`: the key itself and everything beneath it.
    subtree: bool,
    /// Value-name pattern, upper case.
    value: Option<Vec<u16>>,
    risk: Risk,
}

/// Patterns filed by the last literal component of their head and its position, so a lookup
/// only tries the patterns whose head can match the key.
#[derive(Debug, Clone)]
struct Bucket {
    /// Position of the component in the key.
    depth: u8,
    /// The component, upper case.
    key: Vec<u16>,
    /// Indexes into the pattern list.
    patterns: Vec<u16>,
}

/// The compiled high-risk set.
#[derive(Debug, Clone)]
pub struct HighRiskSet {
    patterns: Vec<Pattern>,
    /// Sorted by (depth, key).
    buckets: Vec<Bucket>,
}

/// Keys deeper than this many components are classified by their first components only (the
/// deepest pattern head is far shorter).
const MAX_COMPONENTS: usize = 64;

impl Default for HighRiskSet {
    fn default() -> Self {
        Self::builtin()
    }
}

impl HighRiskSet {
    /// The built-in set.
    pub fn builtin() -> Self {
        match Self::try_builtin() {
            Some(set) => set,
            // What an infallible allocation does when memory runs out.
            None => alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<u16>()),
        }
    }

    /// The built-in set, or `None` when memory runs out while building it (the driver's
    /// `DriverEntry` then fails to load instead of bug-checking).
    pub fn try_builtin() -> Option<Self> {
        let mut patterns: Vec<Pattern> = Vec::new();
        for (roots, suffix, value, risk) in TABLE {
            for root in *roots {
                let pattern = try_compile(root, suffix, *value, *risk)?;
                patterns.try_reserve(1).ok()?;
                patterns.push(pattern);
            }
        }
        let mut buckets: Vec<Bucket> = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let (depth, key) = p.anchor()?;
            let at = match buckets
                .binary_search_by(|b| (b.depth, b.key.as_slice()).cmp(&(depth, key.as_slice())))
            {
                Ok(at) => at,
                Err(at) => {
                    buckets.try_reserve(1).ok()?;
                    buckets.insert(
                        at,
                        Bucket {
                            depth,
                            key,
                            patterns: Vec::new(),
                        },
                    );
                    at
                }
            };
            let ids = &mut buckets[at].patterns;
            ids.try_reserve(1).ok()?;
            // The table is far below 65,536 patterns (a test checks it).
            ids.push(u16::try_from(i).ok()?);
        }
        Some(HighRiskSet { patterns, buckets })
    }

    /// Number of expanded patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The highest risk of the key patterns matching `key` (kernel form, any case), if any.
    /// Value-level rows are not considered: see [`HighRiskSet::classify_op`].
    pub fn classify(&self, key: &[u16]) -> Option<Risk> {
        self.best(key, None)
    }

    /// The risk of writing a value with this name under any key.
    pub fn classify_value(&self, name: &[u16]) -> Option<Risk> {
        VALUES
            .iter()
            .filter(|(v, _)| agentsh_winstr::eq_ignore_case_str(name, v))
            .map(|(_, r)| *r)
            .max()
    }

    /// The risk of an operation on `key` naming the value `name` (empty: no value, or the
    /// default value).
    pub fn classify_op(&self, key: &[u16], name: &[u16]) -> Option<Risk> {
        self.best(key, Some(name)).max(self.classify_value(name))
    }

    fn best(&self, key: &[u16], name: Option<&[u16]>) -> Option<Risk> {
        // Component spans (start, end) of the key.
        let mut spans = [(0usize, 0usize); MAX_COMPONENTS];
        let mut n = 0;
        let mut start = 0;
        for (i, &u) in key
            .iter()
            .chain(core::iter::once(&u16::from(b'\\')))
            .enumerate()
        {
            if u == u16::from(b'\\') {
                if i > start && n < MAX_COMPONENTS {
                    spans[n] = (start, i);
                    n += 1;
                }
                start = i + 1;
            }
        }
        let key = Key {
            text: key,
            spans: &spans[..n],
        };
        let mut best: Option<Risk> = None;
        for (depth, &(s, e)) in key.spans.iter().enumerate() {
            let comp = &key.text[s..e];
            let Ok(at) = self.buckets.binary_search_by(|b| {
                usize::from(b.depth)
                    .cmp(&depth)
                    .then_with(|| cmp_upper(&b.key, comp))
            }) else {
                continue;
            };
            for &i in &self.buckets[at].patterns {
                let p = &self.patterns[usize::from(i)];
                if best.is_some_and(|b| b >= p.risk) {
                    continue;
                }
                if p.matches(&key, name) {
                    best = Some(p.risk);
                }
            }
        }
        best
    }
}

impl HighRiskSet {
    /// Whether `key` is in a credential store: the SAM and SECURITY hives (the latter holds the
    /// LSA secrets). Reads there are reported even for processes outside every session.
    pub fn is_credential_store(&self, key: &[u16]) -> bool {
        Self::is_credential_store_name(key)
    }

    fn is_credential_store_name(key: &[u16]) -> bool {
        let mut segments = key
            .split(|&u| u == u16::from(b'\\'))
            .filter(|s| !s.is_empty());
        let (Some(a), Some(b), Some(c)) = (segments.next(), segments.next(), segments.next())
        else {
            return false;
        };
        agentsh_winstr::eq_ignore_case_str(a, "REGISTRY")
            && agentsh_winstr::eq_ignore_case_str(b, "MACHINE")
            && is_credential_hive(c)
    }
}

/// Whether an open's name may reach `\REGISTRY\MACHINE\SAM` or `...\SECURITY` without knowing
/// its root key: an absolute name is checked exactly; a relative one only by its first segment
/// being one of the two hive names (as in `RegOpenKeyEx(HKLM, "SAM")`). The driver asks for the
/// root key's name only when this holds, so other opens of unsandboxed processes cost no name
/// query.
pub fn may_name_credential_store(complete: &[u16]) -> bool {
    if complete.first() == Some(&u16::from(b'\\')) {
        return HighRiskSet::is_credential_store_name(complete);
    }
    complete
        .split(|&u| u == u16::from(b'\\'))
        .find(|s| !s.is_empty())
        .is_some_and(is_credential_hive)
}

fn is_credential_hive(segment: &[u16]) -> bool {
    agentsh_winstr::eq_ignore_case_str(segment, "SAM")
        || agentsh_winstr::eq_ignore_case_str(segment, "SECURITY")
}

/// A key split into components.
struct Key<'a> {
    text: &'a [u16],
    spans: &'a [(usize, usize)],
}

/// Orders an upper-case bucket key against a key component of any case.
fn cmp_upper(upper: &[u16], text: &[u16]) -> core::cmp::Ordering {
    upper
        .iter()
        .copied()
        .cmp(text.iter().map(|&u| agentsh_winstr::upcase_unit(u)))
}

/// Upper-case UTF-16 of a table string, or `None` when memory runs out.
fn try_units(s: &str) -> Option<Vec<u16>> {
    let mut v = Vec::new();
    v.try_reserve_exact(s.len()).ok()?;
    v.extend(s.encode_utf16());
    Some(v)
}

/// Compiles `root\suffix` (and the value pattern), or `None` when memory runs out.
fn try_compile(root: &str, suffix: &str, value: Option<&str>, risk: Risk) -> Option<Pattern> {
    let (suffix, subtree) = match suffix.strip_suffix("\\*") {
        Some(s) => (s, true),
        None if suffix == "*" => ("", true),
        None => (suffix, false),
    };
    let mut head = Vec::new();
    let mut tail: Vec<u16> = Vec::new();
    let mut in_tail = false;
    for c in root
        .split('\\')
        .chain(suffix.split('\\'))
        .filter(|c| !c.is_empty())
    {
        if !in_tail && c.contains('*') {
            in_tail = true;
        }
        if in_tail {
            if !tail.is_empty() {
                tail.try_reserve(1).ok()?;
                tail.push(u16::from(b'\\'));
            }
            let u = try_units(c)?;
            tail.try_reserve(u.len()).ok()?;
            tail.extend(u);
        } else {
            let u = try_units(c)?;
            head.try_reserve(1).ok()?;
            head.push(if c.contains(['%', '?']) {
                Seg::Glob(u)
            } else {
                Seg::Lit(u)
            });
        }
    }
    let value = match value {
        Some(v) => Some(try_units(v)?),
        None => None,
    };
    Some(Pattern {
        head,
        tail,
        subtree,
        value,
        risk,
    })
}

impl Pattern {
    /// The bucket the pattern is filed in: its last literal head component and its position.
    /// `None` only when memory runs out (every head starts with the literal `REGISTRY`).
    fn anchor(&self) -> Option<(u8, Vec<u16>)> {
        let (i, l) = self
            .head
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, s)| match s {
                Seg::Lit(l) => Some((i, l)),
                Seg::Glob(_) => None,
            })?;
        let mut key = Vec::new();
        key.try_reserve_exact(l.len()).ok()?;
        key.extend_from_slice(l);
        // Heads are a few components long.
        Some((u8::try_from(i).ok()?, key))
    }

    fn matches(&self, key: &Key<'_>, name: Option<&[u16]>) -> bool {
        let comps = key.spans;
        if comps.len() < self.head.len() {
            return false;
        }
        let head_ok = self.head.iter().zip(comps).all(|(s, &(a, b))| {
            let c = &key.text[a..b];
            match s {
                Seg::Lit(l) => l.len() == c.len() && cmp_upper(l, c).is_eq(),
                Seg::Glob(g) => glob(g, c),
            }
        });
        if !head_ok {
            return false;
        }
        let key_ok = match comps.get(self.head.len()) {
            // The key is the head itself.
            None => self.tail.is_empty() || self.tail.iter().all(|&u| u == u16::from(b'*')),
            Some(&(first, _)) => {
                let rest = &key.text[first..];
                if self.tail.is_empty() {
                    self.subtree
                } else {
                    glob(&self.tail, rest) || (self.subtree && glob_then_subkey(&self.tail, rest))
                }
            }
        };
        if !key_ok {
            return false;
        }
        match (&self.value, name) {
            // Key-level row.
            (None, _) => true,
            // Value-level rows never make a key high-risk on their own.
            (Some(_), None) => false,
            (Some(_), Some([])) => true,
            (Some(v), Some(n)) => glob(v, n),
        }
    }
}

/// Whether `text` is a key the pattern matches followed by `\` and more.
fn glob_then_subkey(pat: &[u16], text: &[u16]) -> bool {
    text.iter()
        .enumerate()
        .filter(|&(_, &u)| u == u16::from(b'\\'))
        .any(|(i, _)| glob(pat, &text[..i]))
}

/// Value names that are dangerous under any key: `SymbolicLinkValue` turns a key into a registry
/// symbolic link, redirecting whoever opens it.
const VALUES: &[(&str, Risk)] = &[("SYMBOLICLINKVALUE", Risk::Critical)];

/// Matches `text` against `pat`: `*` any run, `%` any run without `\`, `?` one unit, everything
/// else case-insensitively (the pattern is upper case).
fn glob(pat: &[u16], text: &[u16]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` or `%` seen: its pattern position, the text position it stands at, and whether
    // it may cross `\`.
    let mut star: Option<(usize, usize, bool)> = None;
    let star_u = u16::from(b'*');
    let run_u = u16::from(b'%');
    let backslash = u16::from(b'\\');
    // Whatever follows the last `*` or `%` must end the text: checking that first rejects most
    // keys at once instead of retrying the star at every position (a component pattern such as
    // `%_CLASSES` is tried against every user SID).
    if let Some(last) = pat.iter().rposition(|&u| u == star_u || u == run_u) {
        let tail = &pat[last + 1..];
        if tail.len() > text.len()
            || !tail
                .iter()
                .zip(&text[text.len() - tail.len()..])
                .all(|(&p, &u)| p == u16::from(b'?') || p == agentsh_winstr::upcase_unit(u))
        {
            return false;
        }
    }
    while t < text.len() {
        if p < pat.len() && (pat[p] == star_u || pat[p] == run_u) {
            star = Some((p, t, pat[p] == star_u));
            p += 1;
        } else if p < pat.len()
            && (pat[p] == u16::from(b'?') || pat[p] == agentsh_winstr::upcase_unit(text[t]))
        {
            p += 1;
            t += 1;
        } else if let Some((sp, st, crosses)) = star {
            if !crosses && text[st] == backslash {
                return false;
            }
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1, crosses));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&u| u == star_u || u == run_u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn glob_runs_cross_separators_only_for_star() {
        assert!(glob(&u("A\\*\\C"), &u("a\\x\\y\\c")));
        assert!(!glob(&u("A\\%\\C"), &u("a\\x\\y\\c")));
        assert!(glob(&u("A\\%\\C"), &u("a\\x\\c")));
        assert!(glob(&u("CONTROLSET%"), &u("ControlSet001")));
        assert!(!glob(&u("CONTROLSET%"), &u("ControlSet001\\Services")));
        assert!(glob(&u("%_CLASSES"), &u("S-1-5-21-1_Classes")));
        assert!(glob(&u("RUN*"), &u("RunOnce\\x")));
    }

    #[test]
    fn every_pattern_fits_the_bucket_index() {
        let set = HighRiskSet::builtin();
        assert!(set.len() < usize::from(u16::MAX));
        let filed: usize = set.buckets.iter().map(|b| b.patterns.len()).sum();
        assert_eq!(filed, set.len());
        // Every pattern has a literal head component to be filed under (at least `REGISTRY`).
        assert!(
            set.patterns
                .iter()
                .all(|p| matches!(p.head.first(), Some(Seg::Lit(_))))
        );
    }
}
