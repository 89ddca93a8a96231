/* Cross-checks the offsets asserted in src/ffi.rs against mingw-w64's ddk headers.
 * Compiled with -fsyntax-only by scripts/driver.sh; any mismatch is a compile error.
 * (Filter Manager types are not in mingw's headers; their asserts in ffi.rs follow fltKernel.h.) */
#include <ntifs.h>
#include <stddef.h>

#define AT(type, field, off) _Static_assert(offsetof(type, field) == (off), #type "." #field)
#define SIZE(type, n) _Static_assert(sizeof(type) == (n), "sizeof " #type)

SIZE(UNICODE_STRING, 16);
AT(UNICODE_STRING, Buffer, 8);
SIZE(OBJECT_ATTRIBUTES, 48);
AT(OBJECT_ATTRIBUTES, ObjectName, 16);
AT(OBJECT_ATTRIBUTES, Attributes, 24);
AT(REG_SET_VALUE_KEY_INFORMATION, ValueName, 8);
AT(REG_SET_VALUE_KEY_INFORMATION, Type, 20);
AT(REG_SET_VALUE_KEY_INFORMATION, Data, 24);
AT(REG_SET_VALUE_KEY_INFORMATION, DataSize, 32);
AT(REG_DELETE_VALUE_KEY_INFORMATION, ValueName, 8);
AT(REG_RENAME_KEY_INFORMATION, NewName, 8);
AT(REG_QUERY_VALUE_KEY_INFORMATION, ValueName, 8);
AT(REG_CREATE_KEY_INFORMATION, RootObject, 8);
AT(REG_CREATE_KEY_INFORMATION, CreateOptions, 24);
AT(REG_CREATE_KEY_INFORMATION, Class, 32);
AT(REG_CREATE_KEY_INFORMATION, DesiredAccess, 56);
AT(REG_REPLACE_KEY_INFORMATION, OldFileName, 8);
AT(REG_REPLACE_KEY_INFORMATION, NewFileName, 16);
AT(REG_LOAD_KEY_INFORMATION, KeyName, 8);
AT(REG_LOAD_KEY_INFORMATION, SourceFile, 16);
SIZE(PS_CREATE_NOTIFY_INFO, 72);
AT(PS_CREATE_NOTIFY_INFO, ParentProcessId, 16);
AT(PS_CREATE_NOTIFY_INFO, CreatingThreadId, 24);
AT(PS_CREATE_NOTIFY_INFO, ImageFileName, 48);
AT(PS_CREATE_NOTIFY_INFO, CreationStatus, 64);
SIZE(IO_ERROR_LOG_PACKET, 48);
AT(IO_ERROR_LOG_PACKET, ErrorCode, 12);
AT(IO_ERROR_LOG_PACKET, FinalStatus, 20);
AT(IO_ERROR_LOG_PACKET, DeviceOffset, 32);
AT(IO_ERROR_LOG_PACKET, DumpData, 40);
SIZE(IO_SECURITY_CONTEXT, 24);
AT(IO_SECURITY_CONTEXT, DesiredAccess, 16);
AT(FILE_RENAME_INFORMATION, RootDirectory, 8);
AT(FILE_RENAME_INFORMATION, FileNameLength, 16);
AT(FILE_RENAME_INFORMATION, FileName, 20);
SIZE(CLIENT_ID, 16);
