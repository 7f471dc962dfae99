"""Volcengine CallBackInfo field crypto, shared by the adapter (decrypts pushes) and the emulator (encrypts them).

AES-128-CBC with IV = key, PKCS#7-style padding, standard base64 (https://www.volcengine.com/docs/6973/1209428,
CertH5ConfigInit ``callback_info``).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def callback_key_bytes(text: str) -> bytes:
    """The 128-bit callback key from its configured form: ``hex:<32 hex>``, ``base64:<…>`` or 16 raw characters.

    The error names the form, never the value.
    """
    if text.startswith("hex:"):
        try:
            key = bytes.fromhex(text[4:])
        except ValueError:
            raise ValueError("callback_key: hex: must be followed by 32 hexadecimal digits") from None
    elif text.startswith("base64:"):
        try:
            key = base64.b64decode(text[7:], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("callback_key: base64: must be followed by standard base64") from None
    else:
        key = text.encode("utf-8")
    if len(key) != 16:
        raise ValueError("callback_key must be 128 bits: 16 raw characters, hex:<32 digits> or base64:<16 bytes>")
    return key


def encrypt_field(key: bytes, plain: bytes) -> str:
    """The vendor's field encryption: AES-128-CBC, IV = key, PKCS#7-style padding, standard base64."""
    pad = 16 - len(plain) % 16
    enc = Cipher(algorithms.AES(key), modes.CBC(key)).encryptor()
    return base64.b64encode(enc.update(plain + bytes([pad]) * pad) + enc.finalize()).decode()
