"""[MS-FSCC] decoders and encoders against a real Samba server.

The round-trip tests prove self-consistency; these prove the layouts match
what a real server sends and accepts: every information class smbfs uses is
queried (or set) through the client and checked against the file on disk.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from smb_trees import tree_on, unique

from smbfs.client.errors import SMBError
from smbfs.proto.create import AccessMask, CreateDisposition, CreateOptions
from smbfs.proto.fscc import ea, filesystem, security
from smbfs.proto.fscc import file_info as fi
from smbfs.proto.fscc.attributes import FileAttributes
from smbfs.proto.fscc.attributes import FileInformationClass as FIC
from smbfs.proto.fscc.directory import DIRECTORY_CLASSES, FileNamesInformation
from smbfs.proto.fscc.time import filetime_to_ns, ns_to_filetime
from smbfs.proto.info import InfoType
from smbfs.proto.ntstatus import NTStatus

ALL_ACCESS = (
    AccessMask.FILE_READ_DATA | AccessMask.FILE_WRITE_DATA | AccessMask.FILE_APPEND_DATA
    | AccessMask.FILE_READ_ATTRIBUTES | AccessMask.FILE_WRITE_ATTRIBUTES
    | AccessMask.FILE_READ_EA | AccessMask.FILE_WRITE_EA | AccessMask.READ_CONTROL
    | AccessMask.DELETE | AccessMask.SYNCHRONIZE
)
DIR_OPEN: dict[str, Any] = dict(
    desired_access=AccessMask.FILE_LIST_DIRECTORY | AccessMask.FILE_READ_ATTRIBUTES
    | AccessMask.READ_CONTROL | AccessMask.SYNCHRONIZE,
    options=CreateOptions.FILE_DIRECTORY_FILE,
)
UNSUPPORTED = {
    NTStatus.STATUS_NOT_SUPPORTED, NTStatus.STATUS_INVALID_INFO_CLASS,
    NTStatus.STATUS_INVALID_PARAMETER, NTStatus.STATUS_NOT_IMPLEMENTED,
    NTStatus.STATUS_EAS_NOT_SUPPORTED, NTStatus.STATUS_INVALID_DEVICE_REQUEST,
}


async def test_file_information_classes(samba: Any) -> None:
    name = unique("fi")
    disk = samba.share_path("share") / name
    mtime_ns = 1_234_567_890_123_456_700  # a whole number of 100 ns ticks
    async with tree_on(samba) as tree:
        async with await tree.create(name, desired_access=ALL_ACCESS,
                                     disposition=CreateDisposition.FILE_CREATE) as h:
            await h.write(0, b"x" * 5000)
            basic_in = fi.FileBasicInformation(0, 0, ns_to_filetime(mtime_ns), 0, 0)
            await h.set_info(FIC.FileBasicInformation, basic_in.encode())
            st = os.stat(disk)

            basic = fi.FileBasicInformation.decode(await h.query_info(FIC.FileBasicInformation))
            assert filetime_to_ns(basic.last_write_time) == mtime_ns == st.st_mtime_ns
            assert filetime_to_ns(basic.last_access_time) == st.st_atime_ns // 100 * 100
            assert basic.file_attributes & FileAttributes.FILE_ATTRIBUTE_DIRECTORY == 0

            std = fi.FileStandardInformation.decode(await h.query_info(FIC.FileStandardInformation))
            assert std.end_of_file == 5000 and std.number_of_links == 1
            assert not std.directory and not std.delete_pending

            internal = fi.FileInternalInformation.decode(
                await h.query_info(FIC.FileInternalInformation))
            assert internal.index_number != 0

            net = fi.FileNetworkOpenInformation.decode(
                await h.query_info(FIC.FileNetworkOpenInformation))
            assert (net.last_write_time, net.end_of_file) == (basic.last_write_time, 5000)
            assert net.allocation_size == std.allocation_size

            everything = await h.query_all_information()
            assert everything.basic == basic
            assert everything.standard == std
            assert everything.internal == internal
            assert everything.name.file_name.endswith(name)

            tag = fi.FileAttributeTagInformation.decode(
                await h.query_info(FIC.FileAttributeTagInformation))
            assert tag.file_attributes == basic.file_attributes and tag.reparse_tag == 0

            streams = fi.FileStreamInformation.decode(
                await h.query_info(FIC.FileStreamInformation))
            assert [(s.stream_name, s.stream_size) for s in streams.entries] == [("::$DATA", 5000)]

            pos = fi.FilePositionInformation.decode(
                await h.query_info(FIC.FilePositionInformation))
            assert pos.current_byte_offset >= 0
            for cls in (fi.FileModeInformation, fi.FileAlignmentInformation,
                        fi.FileAccessInformation, fi.FileEaInformation):
                cls.decode(await h.query_info(cls.INFO_CLASS))

            await h.set_info(FIC.FileEndOfFileInformation, fi.FileEndOfFileInformation(10).encode())
            assert os.stat(disk).st_size == 10
            await h.set_info(FIC.FileAllocationInformation,
                             fi.FileAllocationInformation(0).encode())
            assert os.stat(disk).st_size == 0  # allocation below EOF truncates

            # Rename (SMB2 form), then a hard link, then delete on close.
            new = unique("renamed")
            await h.set_info(FIC.FileRenameInformation, fi.FileRenameInformation(new).encode())
            assert not disk.exists() and (disk.parent / new).exists()
            link = unique("link")
            await h.set_info(FIC.FileLinkInformation, fi.FileLinkInformation(link).encode())
            assert os.stat(disk.parent / link).st_ino == os.stat(disk.parent / new).st_ino
            std = fi.FileStandardInformation.decode(await h.query_info(FIC.FileStandardInformation))
            assert std.number_of_links == 2
            await h.set_info(FIC.FileDispositionInformation, fi.FileDispositionInformation().encode())
        assert not (disk.parent / new).exists()
        (disk.parent / link).unlink()


async def test_disposition_ex(samba: Any) -> None:
    name = unique("dx")
    disk = samba.share_path("share") / name
    async with tree_on(samba) as tree:
        async with await tree.create(name, desired_access=ALL_ACCESS,
                                     disposition=CreateDisposition.FILE_CREATE) as h:
            flags = fi.FILE_DISPOSITION_DELETE | fi.FILE_DISPOSITION_POSIX_SEMANTICS
            try:
                await h.set_info(FIC.FileDispositionInformationEx,
                                 fi.FileDispositionInformationEx(flags).encode())
            except SMBError as e:
                assert e.status in UNSUPPORTED
                await h.set_info(FIC.FileDispositionInformation,
                                 fi.FileDispositionInformation().encode())
    assert not disk.exists()


async def test_directory_classes(samba: Any) -> None:
    d = unique("dir")
    path = samba.share_path("share") / d
    path.mkdir()
    sizes = {f"file-{i:02d}-{'y' * i}": i * 7 for i in range(25)}
    for n, size in sizes.items():
        (path / n).write_bytes(b"z" * size)
    (path / "sub").mkdir()
    expected = set(sizes) | {"sub", ".", ".."}
    async with tree_on(samba) as tree, await tree.create(d, **DIR_OPEN) as h:
        for info_class, cls in DIRECTORY_CLASSES.items():
            entries = [e async for e in h.query_directory(info_class=info_class,
                                                         output_buffer_length=2048)]
            assert all(type(e) is cls for e in entries)
            assert {e.file_name for e in entries} == expected, cls.__name__
            for e in entries:
                if isinstance(e, FileNamesInformation):
                    continue
                if e.file_name in sizes:
                    assert e.end_of_file == sizes[e.file_name]
                    assert filetime_to_ns(e.last_write_time) == os.stat(
                        path / e.file_name).st_mtime_ns // 100 * 100
                if e.file_name == "sub":
                    assert e.file_attributes & FileAttributes.FILE_ATTRIBUTE_DIRECTORY
        # The FileId in a listing is the file's FileInternalInformation.
        ids = {e.file_name: e.file_id async for e in h.query_directory()}  # type: ignore[union-attr]
        async with await tree.create(f"{d}\\file-03-yyy",
                                     desired_access=AccessMask.FILE_READ_ATTRIBUTES) as f:
            internal = fi.FileInternalInformation.decode(
                await f.query_info(FIC.FileInternalInformation))
        assert ids["file-03-yyy"] == internal.index_number


async def test_filesystem_classes(samba: Any) -> None:
    vfs = os.statvfs(samba.share_path("share"))
    async with tree_on(samba) as tree, await tree.create("", **DIR_OPEN) as h:
        async def q(cls: Any) -> Any:
            return cls.decode(await h.query_info(cls.INFO_CLASS,
                                                 info_type=InfoType.SMB2_0_INFO_FILESYSTEM))

        attr = await q(filesystem.FileFsAttributeInformation)
        assert attr.file_system_name and attr.maximum_component_name_length > 0
        assert attr.file_system_attributes & filesystem.FileSystemAttributes.FILE_CASE_PRESERVED_NAMES
        full = await q(filesystem.FileFsFullSizeInformation)
        size = await q(filesystem.FileFsSizeInformation)
        unit = full.sectors_per_allocation_unit * full.bytes_per_sector
        assert unit > 0 and size.total_allocation_units == full.total_allocation_units
        assert abs(full.total_allocation_units * unit - vfs.f_blocks * vfs.f_frsize) <= unit
        vol = await q(filesystem.FileFsVolumeInformation)
        assert isinstance(vol.volume_label, str)
        dev = await q(filesystem.FileFsDeviceInformation)
        assert dev.device_type == filesystem.DeviceType.FILE_DEVICE_DISK
        try:
            sector = await q(filesystem.FileFsSectorSizeInformation)
            assert sector.logical_bytes_per_sector > 0
        except SMBError as e:
            assert e.status in UNSUPPORTED


async def test_security_descriptor(samba: Any) -> None:
    name = unique("sd")
    async with tree_on(samba) as tree:
        async with await tree.create(name, desired_access=ALL_ACCESS,
                                     disposition=CreateDisposition.FILE_CREATE) as h:
            what = (security.SecurityInformation.OWNER_SECURITY_INFORMATION
                    | security.SecurityInformation.GROUP_SECURITY_INFORMATION
                    | security.SecurityInformation.DACL_SECURITY_INFORMATION)
            raw = await h.query_info(0, info_type=InfoType.SMB2_0_INFO_SECURITY,
                                     additional_information=what)
            sd = security.SecurityDescriptor.decode(raw)
            assert sd.owner is not None and str(sd.owner).startswith("S-1-")
            assert sd.group is not None
            assert sd.dacl is not None and sd.dacl.aces
            assert security.SecurityDescriptor.decode(sd.encode()) == sd
            # The owner ACE is there: Samba maps the Unix owner's mode bits.
            assert any(a.sid == sd.owner for a in sd.dacl.aces)
            await h.set_info(FIC.FileDispositionInformation, fi.FileDispositionInformation().encode())


async def test_extended_attributes(samba: Any) -> None:
    name = unique("ea")
    async with tree_on(samba) as tree:
        async with await tree.create(name, desired_access=ALL_ACCESS,
                                     disposition=CreateDisposition.FILE_CREATE) as h:
            eas = ea.FileFullEaInformation([
                ea.FileFullEaEntry(b"SMBFS.ONE", b"first value"),
                ea.FileFullEaEntry(b"SMBFS.TWO", bytes(range(256)) * 3),
            ])
            try:
                await h.set_info(FIC.FileFullEaInformation, eas.encode())
            except SMBError as e:
                assert e.status in UNSUPPORTED
                pytest.skip(f"share without EA support: {e}")
            got = ea.FileFullEaInformation.decode(await h.query_info(FIC.FileFullEaInformation))
            # Windows EA names are case-insensitive; Samba reports them upper-cased.
            assert {k.upper(): v for k, v in got.as_dict().items()} == eas.as_dict()
            size = fi.FileEaInformation.decode(await h.query_info(FIC.FileEaInformation))
            assert size.ea_size > 0
            # Ask for one name with a FILE_GET_EA_INFORMATION list. Samba 4.17
            # accepts the list but answers with every EA, so only check that
            # the asked-for one is there.
            one = ea.FileFullEaInformation.decode(await h.query_info(
                FIC.FileFullEaInformation,
                input=ea.FileGetEaInformation([b"SMBFS.TWO"]).encode()))
            assert (b"SMBFS.TWO", bytes(range(256)) * 3) in [
                (e.name.upper(), e.value) for e in one.entries]
            # An empty value deletes the EA.
            await h.set_info(FIC.FileFullEaInformation, ea.FileFullEaInformation(
                [ea.FileFullEaEntry(b"SMBFS.ONE")]).encode())
            got = ea.FileFullEaInformation.decode(await h.query_info(FIC.FileFullEaInformation))
            assert [e.name.upper() for e in got.entries] == [b"SMBFS.TWO"]
            await h.set_info(FIC.FileDispositionInformation, fi.FileDispositionInformation().encode())
