"""Constants shared by many message modules, named as in [MS-SMB2] 2.2.

Constants used by a single message live beside that message.
"""

from __future__ import annotations

import enum


class Dialect(enum.IntEnum):
    """[MS-SMB2] 2.2.3 Dialects."""

    SMB2_0_2 = 0x0202
    SMB2_1 = 0x0210
    SMB3_0 = 0x0300
    SMB3_0_2 = 0x0302
    SMB3_1_1 = 0x0311
    SMB2_WILDCARD = 0x02FF

    @property
    def is_smb3(self) -> bool:
        return self >= Dialect.SMB3_0 and self != Dialect.SMB2_WILDCARD


class Command(enum.IntEnum):
    """[MS-SMB2] 2.2.1.2 Command."""

    SMB2_NEGOTIATE = 0x0000
    SMB2_SESSION_SETUP = 0x0001
    SMB2_LOGOFF = 0x0002
    SMB2_TREE_CONNECT = 0x0003
    SMB2_TREE_DISCONNECT = 0x0004
    SMB2_CREATE = 0x0005
    SMB2_CLOSE = 0x0006
    SMB2_FLUSH = 0x0007
    SMB2_READ = 0x0008
    SMB2_WRITE = 0x0009
    SMB2_LOCK = 0x000A
    SMB2_IOCTL = 0x000B
    SMB2_CANCEL = 0x000C
    SMB2_ECHO = 0x000D
    SMB2_QUERY_DIRECTORY = 0x000E
    SMB2_CHANGE_NOTIFY = 0x000F
    SMB2_QUERY_INFO = 0x0010
    SMB2_SET_INFO = 0x0011
    SMB2_OPLOCK_BREAK = 0x0012


class HeaderFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.1.2 Flags."""

    SMB2_FLAGS_SERVER_TO_REDIR = 0x00000001
    SMB2_FLAGS_ASYNC_COMMAND = 0x00000002
    SMB2_FLAGS_RELATED_OPERATIONS = 0x00000004
    SMB2_FLAGS_SIGNED = 0x00000008
    SMB2_FLAGS_PRIORITY_MASK = 0x00000070
    SMB2_FLAGS_DFS_OPERATIONS = 0x10000000
    SMB2_FLAGS_REPLAY_OPERATION = 0x20000000


class GlobalCapabilities(enum.IntFlag):
    """[MS-SMB2] 2.2.3 / 2.2.4 Capabilities."""

    SMB2_GLOBAL_CAP_DFS = 0x00000001
    SMB2_GLOBAL_CAP_LEASING = 0x00000002
    SMB2_GLOBAL_CAP_LARGE_MTU = 0x00000004
    SMB2_GLOBAL_CAP_MULTI_CHANNEL = 0x00000008
    SMB2_GLOBAL_CAP_PERSISTENT_HANDLES = 0x00000010
    SMB2_GLOBAL_CAP_DIRECTORY_LEASING = 0x00000020
    SMB2_GLOBAL_CAP_ENCRYPTION = 0x00000040
    SMB2_GLOBAL_CAP_NOTIFICATIONS = 0x00000080


class SecurityMode(enum.IntFlag):
    """[MS-SMB2] 2.2.3 SecurityMode."""

    SMB2_NEGOTIATE_SIGNING_ENABLED = 0x0001
    SMB2_NEGOTIATE_SIGNING_REQUIRED = 0x0002



class Cipher(enum.IntEnum):
    """[MS-SMB2] 2.2.3.1.2 SMB2_ENCRYPTION_CAPABILITIES Ciphers.

    Shared by the negotiate context and the crypto layer, hence here."""

    AES_128_CCM = 0x0001
    AES_128_GCM = 0x0002
    AES_256_CCM = 0x0003
    AES_256_GCM = 0x0004

    @property
    def key_size(self) -> int:
        return 32 if self in (Cipher.AES_256_CCM, Cipher.AES_256_GCM) else 16

    @property
    def nonce_size(self) -> int:
        """AES_CCM_Nonce is 11 bytes, AES_GCM_Nonce 12 ([MS-SMB2] 2.2.41)."""
        return 12 if self in (Cipher.AES_128_GCM, Cipher.AES_256_GCM) else 11

    @property
    def is_gcm(self) -> bool:
        return self in (Cipher.AES_128_GCM, Cipher.AES_256_GCM)


class SigningAlgorithm(enum.IntEnum):
    """[MS-SMB2] 2.2.3.1.7 SMB2_SIGNING_CAPABILITIES SigningAlgorithms.

    Shared by the negotiate context and the crypto layer, hence here."""

    HMAC_SHA256 = 0x0000
    AES_CMAC = 0x0001
    AES_GMAC = 0x0002

# A FileId whose both halves are all ones: "the file of the previous request"
# in a related compound ([MS-SMB2] 3.2.4.1.4).
RELATED_FILE_ID = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
