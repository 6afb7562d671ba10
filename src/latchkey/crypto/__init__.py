"""The one crypto boundary: the only package that imports ``cryptography``.

Rule: every decryption failure collapses to one opaque error; nothing here logs.
"""

from latchkey.crypto.aead import InvalidCiphertext

__all__ = ["InvalidCiphertext"]
