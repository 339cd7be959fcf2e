"""SMB2/3 cryptography, sans-IO: key derivation, preauth integrity hash,
signing and encryption ([MS-SMB2] 3.1.4). Only the ``cryptography``
package is used. No function here logs, and no object shows key bytes in
its repr.
"""

from smbfs.proto.constants import Cipher, SigningAlgorithm
from smbfs.proto.crypto.encryption import (
    Encryptor,
    IntegrityError,
    NonceGenerator,
    decrypt,
    encrypt,
    parse_transform_header,
)
from smbfs.proto.crypto.kdf import (
    SessionKeys,
    derive_session_keys,
    derive_signing_key,
    kdf_counter_hmac_sha256,
    sp800_108_hmac_sha256,
)
from smbfs.proto.crypto.preauth import PreauthHash
from smbfs.proto.crypto.signing import Signer, signing_algorithm_for

__all__ = [
    "Cipher",
    "Encryptor",
    "IntegrityError",
    "NonceGenerator",
    "PreauthHash",
    "SessionKeys",
    "Signer",
    "SigningAlgorithm",
    "decrypt",
    "derive_session_keys",
    "derive_signing_key",
    "encrypt",
    "kdf_counter_hmac_sha256",
    "parse_transform_header",
    "signing_algorithm_for",
    "sp800_108_hmac_sha256",
]
