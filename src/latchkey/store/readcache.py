"""What a database's reads returned, remembered until a write may have changed it.

Two kinds of entries:

- **General** (``cached``): valid until the next write that changed a row, any row. Every value
  that may depend on several tables (an authorization decision, a caller's policies) is one.
- **Per key** (``cached_for_key``): the rows of one KMS key (its record, its material). Valid
  until a write that may have changed that key's rows: a write names the keys it touches
  (``changed(keys)``), and a write that names none (``changed(None)``) may have touched any.
  So a new key, a grant or a session credential leaves the other 100,000 keys cached.

A *generation* counts the writes that changed rows; a value is remembered with the generation
taken *before* its read, so a write that lands between the read and the remembering still
makes it stale. Values are shared by every caller: they must be immutable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")
GENERAL_SIZE = 4096  # entries per general cache, unless the caller asks for more
# Keys remembered as written since the last write that named none (about 100 bytes each);
# beyond it, every key's entries go at once. Twice the key caches' size: making 100,000 keys
# in a row must not empty the cache of the first 65,536.
KEY_WRITES_KEPT = 262_144


class ReadCache:
    def __init__(self) -> None:
        self.generation = 0  # writes that changed a row
        self._keys_generation = 0  # writes that may have changed any key's rows
        self._key_writes: dict[str, int] = {}  # key -> generation of its last write
        self._caches: dict[str, dict[Hashable, tuple[Any, ...]]] = {}
        self._lock = threading.Lock()  # inserts and evictions (readers never take it)

    def changed(self, keys: Collection[str] | None) -> None:
        """A write changed rows: of the KMS keys ``keys`` only (``()``: of no key), or of
        anything (``None``)."""
        self.generation += 1
        if keys is None or len(self._key_writes) + len(keys) > KEY_WRITES_KEPT:
            self._keys_generation += 1
            self._key_writes.clear()
            return
        for key_id in keys:
            self._key_writes[key_id] = self.generation

    def cached(
        self, name: str, key: Hashable, load: Callable[[], T], *, size: int = GENERAL_SIZE
    ) -> T:
        """``load()``'s value, remembered until the next write that changes a row."""
        generation = self.generation  # before the read
        hit = self._caches.get(name, {}).get(key)
        if hit is not None and hit[0] == generation:
            return cast(T, hit[1])
        value = load()
        self._remember(name, key, (generation, value), size)
        return value

    def key_mark(self) -> tuple[int, int]:
        """What a per-key entry read from now on is remembered with (take it before the
        read)."""
        return self._keys_generation, self.generation

    def cached_for_key(
        self, name: str, key_id: str, key: Hashable, load: Callable[[], T], *, size: int
    ) -> T:
        """``load()``'s value (a read of key ``key_id``'s rows only), remembered until a write
        that may have changed that key."""
        mark = self.key_mark()
        hit = self._caches.get(name, {}).get(key)
        if hit is not None and self._fresh(key_id, hit):
            return cast(T, hit[2])
        value = load()
        self.seed(name, key, value, mark, size=size)
        return value

    def seed(
        self, name: str, key: Hashable, value: object, mark: tuple[int, int], *, size: int
    ) -> None:
        """Remember a per-key value read along with another (``mark``: ``key_mark()`` taken
        before the read)."""
        self._remember(name, key, (*mark, value), size)

    def _fresh(self, key_id: str, entry: tuple[Any, ...]) -> bool:
        keys_generation: int = entry[0]
        generation: int = entry[1]
        return keys_generation == self._keys_generation and (
            self._key_writes.get(key_id, 0) <= generation
        )

    def _remember(self, name: str, key: Hashable, entry: tuple[Any, ...], size: int) -> None:
        with self._lock:
            cache = self._caches.setdefault(name, {})
            cache.pop(key, None)  # re-inserted below: a renewed entry is the newest
            while len(cache) >= size:
                del cache[next(iter(cache))]
            cache[key] = entry
