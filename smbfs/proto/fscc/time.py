"""FILETIME <-> Unix time ([MS-DTYP] 2.3.3 FILETIME, [MS-FSCC] 2.1.1).

A FILETIME counts 100-nanosecond intervals since 1601-01-01 UTC. Conversions
use exact integer arithmetic (never float): a timestamp set through
``utimensat`` must come back bit-identical from the server when it falls on
a 100 ns boundary. The value 0 means "not set" in both directions; in SET_INFO
([MS-FSCC] 2.4 FileBasicInformation) -1 and -2 are the special "stop/resume
automatic updates" values, exposed as constants.
"""

from __future__ import annotations

import datetime as _dt
from typing import Final

# 100 ns intervals between 1601-01-01 and 1970-01-01 (369 years, 89 leap days).
FILETIME_UNIX_EPOCH: Final = 116_444_736_000_000_000
NS_PER_FILETIME_TICK: Final = 100

FILETIME_NOT_SET: Final = 0
# [MS-FSCC] FileBasicInformation: -1 stops the server updating this time
# automatically for the rest of the handle's life, -2 resumes it.
FILETIME_DISABLE_UPDATE: Final = -1
FILETIME_ENABLE_UPDATE: Final = -2

_UNIX_EPOCH_DT: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def filetime_to_ns(ft: int) -> int | None:
    """Unix nanoseconds for a FILETIME, or None when ``ft`` is 0 (not set)."""
    if ft == FILETIME_NOT_SET:
        return None
    return (ft - FILETIME_UNIX_EPOCH) * NS_PER_FILETIME_TICK


def ns_to_filetime(ns: int | None) -> int:
    """FILETIME for Unix nanoseconds (None -> 0, "not set"); sub-100 ns parts
    are truncated toward the past, like the server's own clock resolution."""
    if ns is None:
        return FILETIME_NOT_SET
    return ns // NS_PER_FILETIME_TICK + FILETIME_UNIX_EPOCH


def filetime_to_datetime(ft: int) -> _dt.datetime | None:
    """An aware UTC datetime (microsecond precision: the sub-microsecond
    remainder is dropped, as datetime cannot hold it), or None for 0."""
    if ft == FILETIME_NOT_SET:
        return None
    ticks = ft - FILETIME_UNIX_EPOCH
    return _UNIX_EPOCH_DT + _dt.timedelta(microseconds=ticks // 10)


def datetime_to_filetime(when: _dt.datetime | None) -> int:
    """FILETIME for an aware datetime (naive ones are taken as UTC)."""
    if when is None:
        return FILETIME_NOT_SET
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    delta = when - _UNIX_EPOCH_DT
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros * 10 + FILETIME_UNIX_EPOCH
