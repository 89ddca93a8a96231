/* Filter Manager structures that neither mingw-w64's nor Wine's headers declare, transcribed from
 * their documented declarations (Microsoft Learn, fltkernel.h reference):
 *   FLT_RELATED_OBJECTS:
 *     https://learn.microsoft.com/windows-hardware/drivers/ddi/fltkernel/ns-fltkernel-_flt_related_objects
 *   FLT_FILE_NAME_INFORMATION:
 *     https://learn.microsoft.com/windows-hardware/drivers/ddi/fltkernel/ns-fltkernel-_flt_file_name_information
 * Only what this file declares is checked against them; a real WDK build is the stronger check. */
#ifndef AGENTSH_DOCUMENTED_H
#define AGENTSH_DOCUMENTED_H

typedef struct _FLT_RELATED_OBJECTS {
  const USHORT Size;
  const USHORT TransactionContext;
  const PVOID Filter;          /* PFLT_FILTER */
  const PVOID Volume;          /* PFLT_VOLUME */
  const PVOID Instance;        /* PFLT_INSTANCE */
  const PVOID FileObject;      /* PFILE_OBJECT */
  const PVOID Transaction;     /* PKTRANSACTION */
} FLT_RELATED_OBJECTS;

typedef struct _FLT_FILE_NAME_INFORMATION {
  USHORT Size;
  USHORT NamesParsed;          /* FLT_FILE_NAME_PARSED_FLAGS */
  ULONG Format;                /* FLT_FILE_NAME_OPTIONS */
  UNICODE_STRING Name;
  UNICODE_STRING Volume;
  UNICODE_STRING Share;
  UNICODE_STRING Extension;
  UNICODE_STRING Stream;
  UNICODE_STRING FinalComponent;
  UNICODE_STRING ParentDir;
} FLT_FILE_NAME_INFORMATION;

#endif
