"""[MS-FSCC] structures: file, directory and file-system information classes,
extended attributes, reparse data and security descriptors.

SMB2 QUERY_INFO / SET_INFO / QUERY_DIRECTORY carry an information-class number
and a raw buffer; the classes here turn that buffer into values and back.
Every decoder raises only :class:`smbfs.proto.DecodeError`.

Section numbers cited in docstrings are those of the current [MS-FSCC] text;
Microsoft renumbers section 2.4 between revisions (FileNetworkOpenInformation
was 2.4.29, is 2.4.33), so the structure name is the stable reference.
"""

from smbfs.proto.fscc.attributes import FileAttributes, FileInformationClass, FsInformationClass
from smbfs.proto.fscc.directory import (
    FileBothDirectoryInformation,
    FileDirectoryInformation,
    FileFullDirectoryInformation,
    FileIdBothDirectoryInformation,
    FileIdFullDirectoryInformation,
    FileNamesInformation,
    decode_directory_buffer,
)
from smbfs.proto.fscc.ea import FileFullEaEntry, FileFullEaInformation, FileGetEaInformation
from smbfs.proto.fscc.file_info import (
    FILE_DISPOSITION_DELETE,
    FILE_DISPOSITION_POSIX_SEMANTICS,
    FileAccessInformation,
    FileAlignmentInformation,
    FileAllInformation,
    FileAllocationInformation,
    FileAttributeTagInformation,
    FileBasicInformation,
    FileDispositionInformation,
    FileDispositionInformationEx,
    FileEaInformation,
    FileEndOfFileInformation,
    FileInternalInformation,
    FileLinkInformation,
    FileModeInformation,
    FileNameInformation,
    FileNetworkOpenInformation,
    FilePositionInformation,
    FileRenameInformation,
    FileStandardInformation,
    FileStreamEntry,
    FileStreamInformation,
)
from smbfs.proto.fscc.filesystem import (
    FileFsAttributeInformation,
    FileFsDeviceInformation,
    FileFsFullSizeInformation,
    FileFsSectorSizeInformation,
    FileFsSizeInformation,
    FileFsVolumeInformation,
    FileSystemAttributes,
)
from smbfs.proto.fscc.reparse import (
    MountPointReparseBuffer,
    ReparseDataBuffer,
    ReparseTag,
    SymbolicLinkReparseBuffer,
    decode_reparse,
)
from smbfs.proto.fscc.security import ACL, SID, Ace, SecurityDescriptor, SecurityInformation
from smbfs.proto.fscc.time import (
    datetime_to_filetime,
    filetime_to_datetime,
    filetime_to_ns,
    ns_to_filetime,
)

__all__ = [
    "ACL",
    "FILE_DISPOSITION_DELETE",
    "FILE_DISPOSITION_POSIX_SEMANTICS",
    "SID",
    "Ace",
    "FileAccessInformation",
    "FileAlignmentInformation",
    "FileAllInformation",
    "FileAllocationInformation",
    "FileAttributeTagInformation",
    "FileAttributes",
    "FileBasicInformation",
    "FileBothDirectoryInformation",
    "FileDirectoryInformation",
    "FileDispositionInformation",
    "FileDispositionInformationEx",
    "FileEaInformation",
    "FileEndOfFileInformation",
    "FileFsAttributeInformation",
    "FileFsDeviceInformation",
    "FileFsFullSizeInformation",
    "FileFsSectorSizeInformation",
    "FileFsSizeInformation",
    "FileFsVolumeInformation",
    "FileFullDirectoryInformation",
    "FileFullEaEntry",
    "FileFullEaInformation",
    "FileGetEaInformation",
    "FileIdBothDirectoryInformation",
    "FileIdFullDirectoryInformation",
    "FileInformationClass",
    "FileInternalInformation",
    "FileLinkInformation",
    "FileModeInformation",
    "FileNameInformation",
    "FileNamesInformation",
    "FileNetworkOpenInformation",
    "FilePositionInformation",
    "FileRenameInformation",
    "FileStandardInformation",
    "FileStreamEntry",
    "FileStreamInformation",
    "FileSystemAttributes",
    "FsInformationClass",
    "MountPointReparseBuffer",
    "ReparseDataBuffer",
    "ReparseTag",
    "SecurityDescriptor",
    "SecurityInformation",
    "SymbolicLinkReparseBuffer",
    "datetime_to_filetime",
    "decode_directory_buffer",
    "decode_reparse",
    "filetime_to_datetime",
    "filetime_to_ns",
    "ns_to_filetime",
]
