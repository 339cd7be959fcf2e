"""Fuzzing the decoders of the messages that act on an open handle (FLUSH,
READ, WRITE, LOCK, IOCTL, QUERY_DIRECTORY, CHANGE_NOTIFY, QUERY_INFO,
SET_INFO, oplock and lease breaks) and of the FSCTL payloads.

Whatever bytes arrive, a decoder returns a value or raises DecodeError:
never IndexError, struct.error, UnicodeDecodeError, a bare ValueError or a
MemoryError, never reads outside its buffer (it only sees a memoryview of
exactly that size), never allocates what a hostile length claims, and
finishes quickly.
"""

from __future__ import annotations

import ipaddress
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError, info, io, ioctl, lock, query_directory
from smbfs.proto import change_notify as cn
from smbfs.proto import fsctl as fs
from smbfs.proto import oplock_break as ob
from smbfs.proto.codec import SMB2_HEADER_SIZE
from smbfs.proto.fileid import FileId
from smbfs.proto.header import Smb2Header
from smbfs.proto.message import Message

from .fuzzing import FUZZ

FID = FileId(0x1111, 0x2222)
KEY = bytes(range(16))


def frame(m: Message) -> bytes:
    return Smb2Header(m.COMMAND).encode() + m.encode()


Decoder = Callable[[memoryview], Any]

# (name, decoder, a valid encoding to mutate). Message decoders get the whole
# message (header first); structure decoders get their buffer alone.
MESSAGE_SAMPLES: list[tuple[str, Decoder, bytes]] = [
    ("FlushRequest", io.FlushRequest.decode, frame(io.FlushRequest(FID))),
    ("FlushResponse", io.FlushResponse.decode, frame(io.FlushResponse())),
    ("ReadRequest", io.ReadRequest.decode,
     frame(io.ReadRequest(FID, 4096, 0, channel=1, read_channel_info=b"c" * 16))),
    ("ReadResponse", io.ReadResponse.decode, frame(io.ReadResponse(b"d" * 40, 3))),
    ("WriteRequest", io.WriteRequest.decode,
     frame(io.WriteRequest(FID, 7, b"w" * 33, write_channel_info=b"i" * 16))),
    ("WriteResponse", io.WriteResponse.decode, frame(io.WriteResponse(33))),
    ("LockRequest", lock.LockRequest.decode,
     frame(lock.LockRequest(FID, [lock.LockElement(0, 10, 2), lock.LockElement(5, 5, 1)], 0x31))),
    ("LockResponse", lock.LockResponse.decode, frame(lock.LockResponse())),
    ("IoctlRequest", ioctl.IoctlRequest.decode,
     frame(ioctl.IoctlRequest(fs.CtlCode.FSCTL_PIPE_TRANSCEIVE, FID, b"in" * 9))),
    ("IoctlResponse", ioctl.IoctlResponse.decode,
     frame(ioctl.IoctlResponse(fs.CtlCode.FSCTL_PIPE_TRANSCEIVE, FID, b"o" * 20, b"i" * 3))),
    ("QueryDirectoryRequest", query_directory.QueryDirectoryRequest.decode,
     frame(query_directory.QueryDirectoryRequest(0x25, FID, "*.txt"))),
    ("QueryDirectoryResponse", query_directory.QueryDirectoryResponse.decode,
     frame(query_directory.QueryDirectoryResponse(b"e" * 24))),
    ("ChangeNotifyRequest", cn.ChangeNotifyRequest.decode,
     frame(cn.ChangeNotifyRequest(FID, 0xFFF, 1))),
    ("ChangeNotifyResponse", cn.ChangeNotifyResponse.decode,
     frame(cn.ChangeNotifyResponse.from_entries(
         [cn.FileNotifyInformation(4, "old"), cn.FileNotifyInformation(5, "new name")]))),
    ("QueryInfoRequest", info.QueryInfoRequest.decode,
     frame(info.QueryInfoRequest(4, 0, FID, input=info.QueryQuotaInfo(True, True, b"s" * 8)
                                 .encode()))),
    ("QueryInfoResponse", info.QueryInfoResponse.decode,
     frame(info.QueryInfoResponse(b"q" * 24))),
    ("SetInfoRequest", info.SetInfoRequest.decode,
     frame(info.SetInfoRequest(1, 20, FID, b"\x01" * 8))),
    ("SetInfoResponse", info.SetInfoResponse.decode, frame(info.SetInfoResponse())),
    ("decode_break/oplock", ob.decode_break, frame(ob.OplockBreakNotification(1, FID))),
    ("decode_break/lease", ob.decode_break,
     frame(ob.LeaseBreakNotification(KEY, 7, 1, 1, 2))),
    ("decode_break_ack/lease", ob.decode_break_ack,
     frame(ob.LeaseBreakAcknowledgment(KEY, 1))),
    ("decode_break_ack/oplock", ob.decode_break_ack,
     frame(ob.OplockBreakAcknowledgment(0, FID))),
    ("decode_break_response/lease", ob.decode_break_response,
     frame(ob.LeaseBreakResponse(KEY, 1))),
    ("decode_break_response/oplock", ob.decode_break_response,
     frame(ob.OplockBreakResponse(0, FID))),
]

_DFS = fs.RespGetDfsReferral(10, [
    fs.DfsReferral(3, 1, 0, 600, "\\d\\r", "\\d\\r", "\\s\\r"),
    fs.DfsReferral(3, 0, 2, 600, special_name="DOM", expanded_names=["dc1", "dc2"]),
])
_DFS_V1 = fs.RespGetDfsReferral(2, [fs.DfsReferral(1, network_address="\\s\\x"),
                                    fs.DfsReferral(2, 0, 0, 5, "\\a", "\\b", "\\c")])

STRUCT_SAMPLES: list[tuple[str, Decoder, bytes]] = [
    ("FileId", FileId.decode, FID.encode()),
    ("LockElement", lock.LockElement.decode, lock.LockElement(1, 2, 3).encode()),
    ("QueryQuotaInfo", info.QueryQuotaInfo.decode,
     info.QueryQuotaInfo(False, True, b"", b"sid-bytes!").encode()),
    ("notify chain", cn.decode_notify_information,
     cn.encode_notify_information([cn.FileNotifyInformation(1, "a"),
                                   cn.FileNotifyInformation(2, "bb")])),
    ("VNI request", fs.ValidateNegotiateInfoRequest.decode,
     fs.ValidateNegotiateInfoRequest(1, uuid.UUID(int=5), 1, [0x300, 0x302]).encode()),
    ("VNI response", fs.ValidateNegotiateInfoResponse.decode,
     fs.ValidateNegotiateInfoResponse(1, uuid.UUID(int=5), 1, 0x302).encode()),
    ("interfaces", fs.decode_network_interfaces, fs.encode_network_interfaces([
        fs.NetworkInterfaceInfo.for_address(1, 1, 10, ipaddress.ip_address("10.0.0.1")),
        fs.NetworkInterfaceInfo.for_address(2, 2, 10, ipaddress.ip_address("::1"))])),
    ("resiliency", fs.NetworkResiliencyRequest.decode,
     fs.NetworkResiliencyRequest(1000).encode()),
    ("resume key", fs.SrvRequestResumeKey.decode, fs.SrvRequestResumeKey(b"k" * 24).encode()),
    ("copychunk copy", fs.SrvCopychunkCopy.decode,
     fs.SrvCopychunkCopy(b"k" * 24, [fs.SrvCopychunk(1, 2, 3)]).encode()),
    ("copychunk response", fs.SrvCopychunkResponse.decode,
     fs.SrvCopychunkResponse(1, 2, 3).encode()),
    ("set sparse", fs.FileSetSparseBuffer.decode, fs.FileSetSparseBuffer().encode()),
    ("zero data", fs.FileZeroDataInformation.decode, fs.FileZeroDataInformation(1, 2).encode()),
    ("allocated ranges", fs.decode_allocated_ranges,
     fs.encode_allocated_ranges([fs.FileAllocatedRangeBuffer(0, 1)])),
    ("duplicate extents", fs.DuplicateExtentsData.decode,
     fs.DuplicateExtentsData(FID, 1, 2, 3).encode()),
    ("snapshots", fs.SrvSnapshotArray.decode,
     fs.SrvSnapshotArray.build(["@GMT-2024.01.02-03.04.05"]).encode()),
    ("dfs request", fs.ReqGetDfsReferral.decode, fs.ReqGetDfsReferral("\\a\\b").encode()),
    ("dfs response v3", fs.RespGetDfsReferral.decode, _DFS.encode()),
    ("dfs response v1/v2", fs.RespGetDfsReferral.decode, _DFS_V1.encode()),
]

ALL = MESSAGE_SAMPLES + STRUCT_SAMPLES
IDS = [name for name, _d, _s in ALL]
TIME_LIMIT = 2.0  # seconds for one decode: generous for a loaded 2-core box


def decode_only_decode_error(decoder: Decoder, data: bytes) -> None:
    """Run ``decoder`` on an exact-size buffer; only DecodeError may escape."""
    buf = memoryview(bytes(data))
    start = time.perf_counter()
    try:
        decoder(buf)
    except DecodeError:
        pass
    assert time.perf_counter() - start < TIME_LIMIT


@pytest.mark.parametrize(("name", "decoder", "sample"), ALL, ids=IDS)
def test_valid_sample_decodes(name: str, decoder: Decoder, sample: bytes) -> None:
    decoder(memoryview(sample))


@pytest.mark.parametrize(("name", "decoder", "sample"), ALL, ids=IDS)
def test_truncated_at_every_length(name: str, decoder: Decoder, sample: bytes) -> None:
    for n in range(len(sample)):
        decode_only_decode_error(decoder, sample[:n])


@pytest.mark.parametrize(("name", "decoder", "sample"), ALL, ids=IDS)
def test_every_byte_flipped(name: str, decoder: Decoder, sample: bytes) -> None:
    for i in range(len(sample)):
        for x in (0x01, 0x80, 0xFF):
            bad = bytearray(sample)
            bad[i] ^= x
            decode_only_decode_error(decoder, bytes(bad))


@pytest.mark.parametrize(("name", "decoder", "sample"), ALL, ids=IDS)
def test_huge_lengths_do_not_allocate(name: str, decoder: Decoder, sample: bytes) -> None:
    """Any 2- or 4-byte field set to all ones (a length claiming 64 KiB or
    4 GiB, an offset far outside) allocates nothing near that size."""
    tracemalloc.start()
    try:
        for width in (2, 4):
            for i in range(len(sample) - width + 1):
                bad = bytearray(sample)
                bad[i:i + width] = b"\xff" * width
                tracemalloc.reset_peak()
                decode_only_decode_error(decoder, bytes(bad))
                _cur, peak = tracemalloc.get_traced_memory()
                assert peak < 1 << 20, f"{name}: {peak} bytes at offset {i}"
    finally:
        tracemalloc.stop()


@FUZZ
@given(idx=st.integers(0, len(MESSAGE_SAMPLES) - 1), body=st.binary(max_size=300),
       header=st.binary(min_size=SMB2_HEADER_SIZE, max_size=SMB2_HEADER_SIZE),
       keep_size=st.booleans())
def test_random_message_bodies(idx: int, body: bytes, header: bytes, keep_size: bool) -> None:
    """Random bodies, half of them behind the right StructureSize so that the
    fuzzing reaches past that first check."""
    _name, decoder, sample = MESSAGE_SAMPLES[idx]
    if keep_size:
        body = sample[SMB2_HEADER_SIZE:SMB2_HEADER_SIZE + 2] + body
    decode_only_decode_error(decoder, header + body)


@FUZZ
@given(idx=st.integers(0, len(STRUCT_SAMPLES) - 1), data=st.binary(max_size=400))
def test_random_structures(idx: int, data: bytes) -> None:
    _name, decoder, _s = STRUCT_SAMPLES[idx]
    decode_only_decode_error(decoder, data)


@FUZZ
@given(idx=st.integers(0, len(ALL) - 1), data=st.data())
def test_mutated_samples(idx: int, data: st.DataObject) -> None:
    """Several random overwrites, insertions and deletions of a valid encoding."""
    _name, decoder, sample = ALL[idx]
    buf = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["set", "insert", "delete", "word"]))
        pos = data.draw(st.integers(0, len(buf)))
        if op == "set" and pos < len(buf):
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[pos:pos + data.draw(st.integers(1, 8))]
        else:
            word = data.draw(st.sampled_from([0, 1, 0x7FFF, 0x8000, 0xFFFF, 0xFFFFFFFF,
                                              0x80000000, SMB2_HEADER_SIZE - 1]))
            buf[pos:pos + 4] = word.to_bytes(4, "little")
    decode_only_decode_error(decoder, bytes(buf))


def test_decoders_never_see_past_their_buffer() -> None:
    """Messages arrive as slices of a larger receive buffer (compounds): an
    offset that points past the slice must fail even though the bytes exist
    in the underlying buffer."""
    for _name, decoder, sample in MESSAGE_SAMPLES:
        big = bytearray(sample + b"\xaa" * 4096)
        window = memoryview(big)[:len(sample)]
        decoder(window)  # the valid sample still decodes from the window
        for i in range(SMB2_HEADER_SIZE, len(sample) - 3):
            bad = bytearray(big)
            bad[i:i + 4] = (len(sample) + 8).to_bytes(4, "little")
            try:
                res = decoder(memoryview(bad)[:len(sample)])
            except DecodeError:
                continue
            for value in getattr(res, "__dict__", {}).values():
                if isinstance(value, memoryview):
                    assert b"\xaa" not in bytes(value)
