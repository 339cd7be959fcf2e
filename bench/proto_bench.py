#!/usr/bin/env python3
"""Micro-benchmark of the smbfs.proto hot paths (not a test; nothing asserts).

Run: .venv/bin/python bench/proto_bench.py [--quick]

Prints
  1. SMB2 header encode/decode per second;
  2. sign+verify MB/s on 1 MiB messages for HMAC-SHA256, AES-CMAC, AES-GMAC,
     next to the bare ``cryptography`` calls on the same bytes, and the ratio
     (our time / bare time: 1.00 means no overhead);
  3. encrypt+decrypt MB/s on 1 MiB messages for the four ciphers, same form;
  4. decode of a 1 MiB READ response (the data must come back as a view,
     not a copy).

Each figure is the best of several timed rounds, so a busy shared machine
skews it less. The default run takes ~20 s, --quick a few seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import cmac, hashes, hmac
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM

from smbfs.proto.constants import Command, HeaderFlags
from smbfs.proto.crypto import (
    Cipher,
    Encryptor,
    NonceGenerator,
    Signer,
    SigningAlgorithm,
)
from smbfs.proto.header import Smb2Header

MIB = 1 << 20


def best_rate(fn: Callable[[], object], budget: float, rounds: int = 5) -> float:
    """Calls per second: best of ``rounds`` rounds, each ~``budget/rounds`` s."""
    fn()  # warm up
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-9)
    per_round = max(1, int(budget / rounds / one))
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        best = max(best, per_round / (time.perf_counter() - t0))
    return best


def bench_header(budget: float) -> None:
    hdr = Smb2Header(command=Command.SMB2_READ, message_id=12345, credit_charge=16,
                     credits=256, session_id=0x100000000025, tree_id=7,
                     flags=HeaderFlags.SMB2_FLAGS_SIGNED)
    buf = bytearray(64)
    wire = hdr.encode()
    enc = best_rate(lambda: hdr.encode_into(buf), budget)
    dec = best_rate(lambda: Smb2Header.decode(wire), budget)
    print("1. SMB2 header")
    print(f"   encode_into  {enc / 1e6:6.2f} M/s")
    print(f"   decode       {dec / 1e6:6.2f} M/s")


def bench_signing(budget: float) -> None:
    print("2. sign + verify, 1 MiB message   (MB/s of message bytes; ratio = ours/bare time)")
    key = os.urandom(16)
    hdr = Smb2Header(command=Command.SMB2_WRITE, message_id=99, session_id=5,
                     flags=HeaderFlags.SMB2_FLAGS_SIGNED).encode()
    payload = os.urandom(MIB - 64)
    message = bytearray(hdr + payload)
    parts: list[bytearray | memoryview] = [bytearray(hdr), memoryview(payload)]
    nonce = bytes(12)

    def bare_for(alg: SigningAlgorithm) -> Callable[[], object]:
        if alg == SigningAlgorithm.HMAC_SHA256:
            def run() -> object:
                for _ in range(2):
                    m = hmac.HMAC(key, hashes.SHA256())
                    m.update(message)
                    m.finalize()
                return None
        elif alg == SigningAlgorithm.AES_CMAC:
            def run() -> object:
                for _ in range(2):
                    c = cmac.CMAC(algorithms.AES(key))
                    c.update(cast(bytes, message))  # takes any buffer at run time
                    c.finalize()
                return None
        else:
            gcm = AESGCM(key)

            def run() -> object:
                gcm.encrypt(nonce, b"", message)
                return gcm.encrypt(nonce, b"", message)
        return run

    print(f"   {'algorithm':12} {'ours 1 buf':>11} {'ours parts':>11} {'bare':>9} {'ratio':>6}")
    for alg in SigningAlgorithm:
        signer = Signer(alg, key)

        def ours_one(s: Signer = signer) -> object:
            s.sign(message)
            return s.verify(message)

        def ours_parts(s: Signer = signer) -> object:
            s.sign(parts)
            return s.verify(parts)

        r_one = best_rate(ours_one, budget) * MIB / 1e6
        r_parts = best_rate(ours_parts, budget) * MIB / 1e6
        r_bare = best_rate(bare_for(alg), budget) * MIB / 1e6
        print(f"   {alg.name:12} {r_one:9.0f}   {r_parts:9.0f}   {r_bare:7.0f}   {r_bare / r_one:5.2f}")


def bench_encryption(budget: float) -> None:
    print("3. encrypt + decrypt, 1 MiB message (MB/s; ratio = ours/bare time)")
    message = os.urandom(MIB)
    parts: list[bytes | memoryview] = [message[:64], memoryview(message)[64:]]
    aad = os.urandom(32)
    print(f"   {'cipher':12} {'ours':>9} {'bare':>9} {'ratio':>6}")
    for cipher in Cipher:
        key = os.urandom(cipher.key_size)
        enc = Encryptor(cipher, key)
        nonces = NonceGenerator(cipher)
        bare_aead = AESGCM(key) if cipher.is_gcm else AESCCM(key)
        nonce = nonces()

        def ours(e: Encryptor = enc, n: NonceGenerator = nonces) -> object:
            return e.decrypt(e.encrypt_message(parts, 5, n()))

        def bare(a: AESGCM | AESCCM = bare_aead, nn: bytes = nonce) -> object:
            return a.decrypt(nn, a.encrypt(nn, message, aad), aad)

        r_ours = best_rate(ours, budget) * MIB / 1e6
        r_bare = best_rate(bare, budget) * MIB / 1e6
        print(f"   {cipher.name:12} {r_ours:7.0f}   {r_bare:7.0f}   {r_bare / r_ours:5.2f}")


def bench_read_response(budget: float) -> None:
    print("4. READ response decode, 1 MiB payload")
    from smbfs.proto.io import ReadResponse

    hdr = Smb2Header(command=Command.SMB2_READ, message_id=1,
                     flags=HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR).encode()
    body = b"".join(bytes(p) for p in ReadResponse(data=os.urandom(MIB)).encode_parts())
    msg = memoryview(hdr + body)
    decoded = ReadResponse.decode(msg)
    data = decoded.data
    zero_copy = isinstance(data, memoryview) and data.obj is msg.obj
    rate = best_rate(lambda: ReadResponse.decode(msg), budget)
    print(f"   {rate / 1e3:8.1f} k decodes/s  = {rate * MIB / 1e9:8.1f} GB/s of payload;"
          f" data is a view into the message: {zero_copy}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter rounds (a few seconds)")
    args = parser.parse_args()
    budget = 0.12 if args.quick else 0.5
    t0 = time.perf_counter()
    bench_header(budget)
    bench_signing(budget)
    bench_encryption(budget)
    bench_read_response(budget)
    print(f"(total {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
