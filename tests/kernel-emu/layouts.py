"""Offsets, sizes and constant values for the emulated kernel, computed at test time by the mingw-w64
cross compiler from headers this project did not write: Wine's ddk headers (Filter Manager,
process notify, I/O structures, NTSTATUS values), mingw-w64's ddk headers (registry callback
structures, REG_NOTIFY_CLASS), and, for the two Filter Manager structures neither declares, their
documented declarations (driver/layout/documented.h). Nothing here is read from ffi.rs.

The values are extracted from the compiler's assembly output: one `const unsigned long long` per
expression, so what the harness packs is what the C compiler lays out."""
import os
import re
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CC = os.environ.get("MINGW_CC", "x86_64-w64-mingw32-gcc")
WINE = os.environ.get("WINE_INCLUDE", "/usr/include/wine/wine")
MINGW_DDK = os.environ.get("MINGW_DDK", "/usr/x86_64-w64-mingw32/include/ddk")

WINE_PRELUDE = ("#include <ntstatus.h>\n#define WIN32_NO_STATUS\n#include <windef.h>\n#include <winternl.h>\n"
                "#include <ddk/ntddk.h>\n#include <ddk/wdm.h>\n#include <ddk/ntifs.h>\n#include <ddk/fltkernel.h>\n"
                "#include <stddef.h>\n")
WINE_FLAGS = ["-nostdinc", "-I", os.path.join(WINE, "windows"), "-I", os.path.join(WINE, "msvcrt")]
MINGW_PRELUDE = "#include <ntifs.h>\n#include <stddef.h>\n"
MINGW_FLAGS = ["-I", MINGW_DDK]
DOC_PRELUDE = '#include <ntifs.h>\n#include <stddef.h>\n#include "documented.h"\n'
DOC_FLAGS = ["-I", MINGW_DDK, "-I", os.path.join(ROOT, "driver", "layout")]


def _fields(ctype, members, prefix=""):
    out = {f"{ctype}.{prefix}{m}": f"offsetof({ctype}, {prefix}{m})" for m in members}
    return out


WINE_EXPRS = {}
for ctype, members in {
    "FLT_CALLBACK_DATA": ["Flags", "Thread", "Iopb", "IoStatus", "RequestorMode"],
    "IO_STATUS_BLOCK": ["Status", "Information"],
    "FLT_IO_PARAMETER_BLOCK": ["IrpFlags", "MajorFunction", "MinorFunction", "OperationFlags",
                               "TargetFileObject", "TargetInstance", "Parameters"],
    "FLT_OPERATION_REGISTRATION": ["MajorFunction", "Flags", "PreOperation", "PostOperation"],
    "FLT_REGISTRATION": ["Size", "Version", "Flags", "OperationRegistration", "FilterUnloadCallback",
                         "InstanceSetupCallback"],
    "IO_SECURITY_CONTEXT": ["DesiredAccess"],
    "PS_CREATE_NOTIFY_INFO": ["Size", "Flags", "ParentProcessId", "CreatingThreadId", "FileObject",
                              "ImageFileName", "CommandLine", "CreationStatus"],
    "CLIENT_ID": ["UniqueProcess", "UniqueThread"],
    "UNICODE_STRING": ["Length", "MaximumLength", "Buffer"],
    "OBJECT_ATTRIBUTES": ["Length", "RootDirectory", "ObjectName", "Attributes", "SecurityDescriptor"],
    "FILE_RENAME_INFORMATION": ["ReplaceIfExists", "RootDirectory", "FileNameLength", "FileName"],
    "FILE_DISPOSITION_INFORMATION": ["DoDeleteFile"],
    "KEY_VALUE_PARTIAL_INFORMATION": ["TitleIndex", "Type", "DataLength", "Data"],
    "SID": ["Revision", "SubAuthorityCount", "IdentifierAuthority", "SubAuthority"],
    "TOKEN_APPCONTAINER_INFORMATION": ["TokenAppContainer"],
    "TOKEN_GROUPS": ["GroupCount", "Groups"],
    "SID_AND_ATTRIBUTES": ["Sid", "Attributes"],
    "OB_CALLBACK_REGISTRATION": ["Version", "OperationRegistrationCount", "Altitude", "RegistrationContext",
                                 "OperationRegistration"],
    "OB_OPERATION_REGISTRATION": ["ObjectType", "Operations", "PreOperation", "PostOperation"],
    "OB_PRE_OPERATION_INFORMATION": ["Operation", "Flags", "Object", "ObjectType", "CallContext", "Parameters"],
    "OB_PRE_CREATE_HANDLE_INFORMATION": ["DesiredAccess", "OriginalDesiredAccess"],
    "OB_PRE_DUPLICATE_HANDLE_INFORMATION": ["DesiredAccess", "OriginalDesiredAccess", "SourceProcess",
                                            "TargetProcess"],
}.items():
    WINE_EXPRS.update(_fields(ctype, members))
    WINE_EXPRS[f"sizeof {ctype}"] = f"sizeof({ctype})"
WINE_EXPRS.update(_fields("FLT_PARAMETERS", ["SecurityContext", "Options"], "Create."))
WINE_EXPRS.update(_fields("FLT_PARAMETERS", ["Length", "FileInformationClass", "ParentOfTarget", "InfoBuffer"],
                          "SetFileInformation."))
WINE_EXPRS.update(_fields("FLT_PARAMETERS", ["SyncType", "PageProtection"], "AcquireForSectionSynchronization."))
WINE_EXPRS.update(_fields("FLT_PARAMETERS", ["SecurityInformation", "SecurityDescriptor"], "SetSecurity."))
WINE_EXPRS.update(_fields("FLT_PARAMETERS", ["Length"], "Write."))
WINE_EXPRS["sizeof FLT_PARAMETERS"] = "sizeof(FLT_PARAMETERS)"
for name in ["STATUS_SUCCESS", "STATUS_TIMEOUT", "STATUS_PORT_DISCONNECTED", "STATUS_THREAD_IS_TERMINATING",
             "STATUS_ACCESS_DENIED", "STATUS_INSUFFICIENT_RESOURCES", "STATUS_USER_APC", "STATUS_ALERTED",
             "STATUS_CANCELLED", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_INVALID_PARAMETER",
             "STATUS_NO_MEMORY", "STATUS_ACCESS_VIOLATION", "STATUS_BUFFER_TOO_SMALL",
             "STATUS_BUFFER_OVERFLOW"]:
    WINE_EXPRS[name] = f"(unsigned int)({name})"
for name in ["IRP_MJ_CREATE", "IRP_MJ_WRITE", "IRP_MJ_SET_INFORMATION", "IRP_MJ_SET_SECURITY",
             "FLT_PREOP_SUCCESS_NO_CALLBACK", "FLT_PREOP_COMPLETE", "FLT_FSTYPE_NTFS", "FLT_FSTYPE_REFS",
             "FLT_FSTYPE_FAT", "FileRenameInformation", "FileLinkInformation", "FileDispositionInformation",
             "FileEndOfFileInformation", "FileAllocationInformation", "FileBasicInformation",
             "SyncTypeCreateSection", "SyncTypeOther", "FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO",
             "OBJ_CASE_INSENSITIVE", "OBJ_KERNEL_HANDLE", "KernelMode", "UserMode",
             "KeyValuePartialInformation", "REG_SZ", "REG_DWORD", "FLT_FSTYPE_EXFAT", "FLT_FSTYPE_MUP",
             "FLT_FSTYPE_CDFS", "FLT_FSTYPE_NPFS", "FLT_FSTYPE_RAW", "OB_FLT_REGISTRATION_VERSION",
             "PROCESS_VM_WRITE", "PROCESS_VM_OPERATION", "PROCESS_CREATE_THREAD", "PROCESS_DUP_HANDLE",
             "PROCESS_VM_READ", "PROCESS_QUERY_LIMITED_INFORMATION", "PROCESS_TERMINATE", "PROCESS_ALL_ACCESS",
             "THREAD_SET_CONTEXT", "THREAD_SUSPEND_RESUME", "THREAD_GET_CONTEXT", "THREAD_ALL_ACCESS",
             "TokenAppContainerSid", "TokenUser", "SecurityIdentification", "SecurityImpersonation",
             "SecurityDelegation", "TokenRestrictedSids", "SE_GROUP_MANDATORY", "SE_GROUP_ENABLED_BY_DEFAULT",
             "SE_GROUP_ENABLED"]:
    WINE_EXPRS[name] = f"(unsigned int)({name})"

MINGW_EXPRS = {}
for ctype, members in {
    "REG_SET_VALUE_KEY_INFORMATION": ["Object", "ValueName", "Type", "Data", "DataSize"],
    "REG_DELETE_VALUE_KEY_INFORMATION": ["Object", "ValueName"],
    "REG_QUERY_VALUE_KEY_INFORMATION": ["Object", "ValueName"],
    "REG_CREATE_KEY_INFORMATION": ["CompleteName", "RootObject", "DesiredAccess"],
    "REG_DELETE_KEY_INFORMATION": ["Object"],
    "REG_SET_INFORMATION_KEY_INFORMATION": ["Object", "KeySetInformationClass"],
    "REG_UNLOAD_KEY_INFORMATION": ["Object"],
    "REG_SAVE_KEY_INFORMATION": ["Object"],
    "REG_QUERY_KEY_INFORMATION": ["Object"],
    "IO_ERROR_LOG_PACKET": ["StringOffset", "NumberOfStrings", "ErrorCode", "FinalStatus"],
}.items():
    MINGW_EXPRS.update(_fields(ctype, members))
    MINGW_EXPRS[f"sizeof {ctype}"] = f"sizeof({ctype})"
for name in ["RegNtPreDeleteKey", "RegNtPreSetValueKey", "RegNtPreDeleteValueKey", "RegNtPreSetInformationKey",
             "RegNtPreRenameKey", "RegNtPreQueryKey", "RegNtPreQueryValueKey", "RegNtPreQueryMultipleValueKey",
             "RegNtPreCreateKeyEx", "RegNtPreOpenKeyEx", "RegNtPreLoadKey", "RegNtPreUnLoadKey",
             "RegNtPreSetKeySecurity", "RegNtPreSaveKey", "RegNtPreReplaceKey", "RegNtPostQueryKeyName",
             "STATUS_FLT_DO_NOT_ATTACH", "STATUS_FLT_INVALID_NAME_REQUEST", "OB_OPERATION_HANDLE_CREATE",
             "OB_OPERATION_HANDLE_DUPLICATE"]:
    MINGW_EXPRS[name] = f"(unsigned int)({name})"

DOC_EXPRS = {}
DOC_EXPRS.update(_fields("FLT_RELATED_OBJECTS", ["Size", "Filter", "Volume", "Instance", "FileObject"]))
DOC_EXPRS["sizeof FLT_RELATED_OBJECTS"] = "sizeof(FLT_RELATED_OBJECTS)"
DOC_EXPRS.update(_fields("FLT_FILE_NAME_INFORMATION", ["Size", "Format", "Name"]))
DOC_EXPRS["sizeof FLT_FILE_NAME_INFORMATION"] = "sizeof(FLT_FILE_NAME_INFORMATION)"


def _evaluate(prelude, flags, exprs, workdir, tag):
    names = list(exprs)
    src = prelude + "".join(
        f"const unsigned long long agentsh_v{i} = (unsigned long long)({exprs[n]});\n" for i, n in enumerate(names))
    path = os.path.join(workdir, f"offsets-{tag}.c")
    with open(path, "w") as f:
        f.write(src)
    r = subprocess.run([CC, "-S", "-O0", "-o", "-", *flags, path], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"kernel-emu: computing {tag} offsets failed:\n{r.stderr[-3000:]}")
    values = {}
    for m in re.finditer(r"^agentsh_v(\d+):\s*\n\s*\.(quad|space|zero)\s+(-?\d+)", r.stdout, re.M):
        value = int(m.group(3)) if m.group(2) == "quad" else 0
        values[names[int(m.group(1))]] = value & 0xFFFFFFFFFFFFFFFF
    missing = [n for n in names if n not in values]
    if missing:
        raise SystemExit(f"kernel-emu: no value for {missing[:5]} in the {tag} assembly")
    return values


def compute():
    with tempfile.TemporaryDirectory(prefix="agentsh-offsets-") as work:
        table = {}
        table.update(_evaluate(WINE_PRELUDE, WINE_FLAGS, WINE_EXPRS, work, "wine"))
        table.update(_evaluate(MINGW_PRELUDE, MINGW_FLAGS, MINGW_EXPRS, work, "mingw"))
        table.update(_evaluate(DOC_PRELUDE, DOC_FLAGS, DOC_EXPRS, work, "documented"))
    # REG_NOTIFY_CLASS: RegNtPreSaveMergedKey follows RegNtPostQueryKeyName in the WDK's documented
    # enum (neither mingw's nor Wine's headers go that far).
    table["RegNtPreSaveMergedKey"] = table["RegNtPostQueryKeyName"] + 1
    # IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION is ((UCHAR)-1) in fltKernel.h (not in Wine's copy).
    table["IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION"] = 0xFF
    return table


L = compute()


class Struct:
    """A zeroed buffer of a C structure's size, filled by member name (`put("Iopb", 8, value)`)."""

    def __init__(self, ctype, size=None):
        self.ctype = ctype
        self.buf = bytearray(size if size is not None else L[f"sizeof {ctype}"])

    def put(self, member, width, value, base=0):
        off = base + L[f"{self.ctype}.{member}"]
        self.buf[off:off + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        return self

    def bytes(self):
        return bytes(self.buf)


if __name__ == "__main__":
    for k in sorted(L):
        print(f"{k} = {L[k]:#x}")
