"""Phext memory: scrolls named by coordinates, the phext page table (PPT) and the memory tiers.

* The full table maps a packed coordinate to a :class:`Scroll`.
* In front of it sits a set-associative translation cache (``sets`` x ``ways``, LRU within a set) with
  hit/miss counters; S-pipe accesses go through :meth:`Memory.translate`. The set of a coordinate is
  :func:`ppt_set`: a Fibonacci hash of its Morton key, so coordinate neighbours land in different sets.
* Scrolls are placed in Z-order (Morton order) of their coordinates in a virtual address space, so
  coordinate neighbours are memory neighbours (``Scroll.address``).
* Tiers: ``hot`` (a fixed-size arena that SPREFCH fills, LRU eviction), ``warm`` (RAM, the default)
  and ``cold`` (a memory-mapped backing file that SFLUSH writes back to). Byte counts per tier are kept.
  The backing file is an anonymous temporary file (unlinked as it is created), so no exit path -- normal
  exit, a fault, Ctrl-C, SIGTERM, even SIGKILL -- can leave a ``vtpu-cold-*.bin`` behind.
* A per-run budget (``mem_limit``, default half of physical memory or ``$VTPU_MEM_LIMIT``; the CLI
  flag is ``--mem-limit``) caps the bytes of all live scrolls together; every path that adds a scroll
  (preload, ``--mem``, SALLOC on either engine) goes through :meth:`Memory.add` and is checked before
  the scroll is allocated. See docs/limits.md.
"""

from __future__ import annotations

import bisect
import tempfile
from dataclasses import dataclass, field

import numpy as np

from vtpu_cli.binary import limits
from vtpu_cli.core import buffers, coords
from vtpu_cli.core.errors import VtpuError

GOLDEN64 = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1


def ppt_set(coord: int, sets: int) -> int:
    """Translation-cache set of a packed coordinate: fold the 90-bit Morton key to 64 bits (xor of the
    low 64 bits and the bits above), multiply by 2^64/phi modulo 2^64, and keep the top log2(sets) bits."""
    key = coords.morton_key_packed(coord)
    k64 = (key ^ (key >> 64)) & MASK64
    shift = 64 - (sets.bit_length() - 1)
    return ((k64 * GOLDEN64) & MASK64) >> shift if sets > 1 else 0


SCROLL_ALIGN = 64  # scroll buffers start on a cache line: a 64-byte vector access never splits two lines


def scroll_buffer(size: int, data: bytes | None = None) -> np.ndarray:
    """A zeroed (or `data`-filled) uint8 buffer of `size` bytes whose address is 64-byte aligned."""
    buf = buffers.aligned_zeros(size, SCROLL_ALIGN)
    if data is not None:
        buf[:] = np.frombuffer(data, np.uint8)
    return buf


class MemFault(Exception):
    """A memory error; the engine adds sentron, SIW, pipe and op to the message."""


class MemoryLimitError(MemFault, VtpuError):
    """The run's memory budget would be exceeded. Inside a run (SALLOC) it is a fault like any MemFault;
    while inputs are loaded it is a clean user error (exit 2) telling how to raise the budget."""

    def __init__(self, message: str):
        VtpuError.__init__(
            self,
            message,
            hint=f"raise the budget with --mem-limit SIZE or ${limits.MEM_LIMIT_ENV}=SIZE (docs/limits.md)",
        )


@dataclass
class Scroll:
    coord: int
    buf: np.ndarray  # uint8
    dtype: str = "u8"
    shape: tuple[int, ...] = ()
    align: int = 64
    owner: int = -1  # allocating sentron; -1 = preloaded (shared)
    tier: str = "warm"
    address: int = 0
    cold_offset: int = -1  # where SFLUSH wrote it in the backing file
    dirty: bool = True
    writer: int = -1  # last writing sentron (race detection)
    write_epoch: int = -1

    @property
    def size(self) -> int:
        return int(self.buf.shape[0])


@dataclass
class PPTStats:
    hits: int = 0
    misses: int = 0
    prefetches: int = 0
    flushes: int = 0
    flushed_bytes: int = 0
    evictions: int = 0

    @property
    def translations(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.translations if self.translations else 0.0


@dataclass
class Memory:
    sets: int = 64
    ways: int = 4
    hot_bytes: int = 1 << 20
    table: dict[int, Scroll] = field(default_factory=dict)
    stats: PPTStats = field(default_factory=PPTStats)
    mem_limit: int | None = None  # bytes of live scrolls allowed; None = limits.default_memory_budget()

    def __post_init__(self) -> None:
        if self.sets <= 0 or self.sets & (self.sets - 1) or self.ways <= 0:
            raise ValueError("PPT sets must be a power of two and ways positive")
        if self.mem_limit is None:
            self.mem_limit = limits.default_memory_budget()
        if self.mem_limit <= 0:
            raise VtpuError(f"the memory limit must be positive, not {self.mem_limit}")
        self._sizes: dict[int, int] = {}  # coord -> bytes charged to the budget
        self._used = 0
        self.peak_bytes = 0  # the most bytes live at once (reported by tests and the fuzz harness)
        self._cache: list[list[int]] = [[] for _ in range(self.sets)]  # per set: coords, MRU last
        self._order: list[tuple[int, int]] = []  # (morton key, coord) sorted: Z-order placement
        self._hot_lru: list[int] = []
        self._cold = None
        self._cold_path = None
        self._cold_end = 0

    # ------------------------------------------------------------------ translation
    def translate(self, coord: int) -> Scroll:
        """Coordinate -> scroll through the translation cache; faults if there is no such scroll."""
        ways = self._cache[ppt_set(coord, self.sets)]
        if coord in ways:
            self.stats.hits += 1
            if ways[-1] != coord:
                ways.remove(coord)
                ways.append(coord)
            return self.table[coord]
        self.stats.misses += 1
        sc = self.table.get(coord)
        if sc is None:
            raise MemFault(f"no scroll at {coords.format_packed(coord)}")
        ways.append(coord)
        if len(ways) > self.ways:
            del ways[0]
        return sc

    def _invalidate(self, coord: int) -> None:
        ways = self._cache[ppt_set(coord, self.sets)]
        if coord in ways:
            ways.remove(coord)

    # ------------------------------------------------------------------ the budget
    @property
    def used_bytes(self) -> int:
        """Bytes of live scrolls charged to the budget."""
        self._reconcile()
        return self._used

    def _reconcile(self) -> None:
        """Re-derive the charge when a caller edited ``table`` directly (the runner replaces preloaded
        scrolls, the JIT restores snapshots): cheap check, full recount only on a mismatch."""
        if len(self._sizes) != len(self.table):
            self._sizes = {c: sc.size for c, sc in self.table.items()}
            self._used = sum(self._sizes.values())

    def check_budget(self, size: int, what: str) -> None:
        """Raise :class:`MemoryLimitError` if `size` more bytes would exceed the budget."""
        self._reconcile()
        assert self.mem_limit is not None
        if self._used + size > self.mem_limit:
            raise MemoryLimitError(
                f"{what} of {limits.format_size(size)} would exceed the memory budget of "
                f"{limits.format_size(self.mem_limit)} ({limits.format_size(self._used)} in use)"
            )

    # ------------------------------------------------------------------ allocation
    def add(
        self,
        coord: int,
        data: np.ndarray,
        *,
        dtype: str = "u8",
        shape: tuple[int, ...] = (),
        align: int = 64,
        owner: int = -1,
    ) -> Scroll:
        if coord in self.table:
            raise MemFault(f"scroll {coords.format_packed(coord)} is already allocated")
        size = int(data.shape[0])
        self.check_budget(size, f"scroll {coords.format_packed(coord)}")
        sc = Scroll(coord, data, dtype, shape or (size,), align, owner)
        self.table[coord] = sc
        self._sizes[coord] = size
        self._used += size
        self.peak_bytes = max(self.peak_bytes, self._used)
        key = (coords.morton_key_packed(coord), coord)
        at = bisect.bisect_left(self._order, key)
        self._order.insert(at, key)
        self._place(at)
        return sc

    def alloc(self, coord: int, size: int, align: int, owner: int) -> Scroll:
        if size < 0:
            raise MemFault(f"SALLOC size {size} is negative")
        if size > limits.MAX_SCROLL_BYTES:
            raise MemFault(f"SALLOC size {size} exceeds the 2 GiB scroll limit")
        if coord in self.table:
            raise MemFault(f"scroll {coords.format_packed(coord)} is already allocated")
        self.check_budget(size, "SALLOC")  # before the buffer exists
        try:
            buf = scroll_buffer(size)
        except MemoryError:
            raise MemFault(f"out of host memory allocating {size} bytes") from None
        return self.add(coord, buf, align=align, owner=owner)

    def free(self, coord: int) -> None:
        sc = self.table.pop(coord, None)
        if sc is None:
            raise MemFault(f"SFREE of {coords.format_packed(coord)}, which is not allocated")
        self._reconcile()
        self._used -= self._sizes.pop(coord, 0)
        self._invalidate(coord)
        key = (coords.morton_key_packed(coord), coord)
        at = bisect.bisect_left(self._order, key)
        del self._order[at]
        if coord in self._hot_lru:
            self._hot_lru.remove(coord)
        self._place(at)

    def _place(self, start: int = 0) -> None:
        """Assign virtual addresses in Z-order, each scroll aligned to its alignment, from the
        ``start``-th scroll on (those before it keep theirs: a scroll added after the others -- the
        usual order -- is placed in constant time, not by walking every scroll again)."""
        addr = 0
        if start > 0:
            prev = self.table[self._order[start - 1][1]]
            addr = prev.address + prev.size
        for k in range(start, len(self._order)):
            sc = self.table[self._order[k][1]]
            addr = (addr + sc.align - 1) // sc.align * sc.align
            sc.address = addr
            addr += sc.size

    # ------------------------------------------------------------------ tiers
    def prefetch(self, coord: int) -> None:
        sc = self.translate(coord)
        self.stats.prefetches += 1
        if sc.tier == "hot":
            self._hot_lru.remove(coord)
            self._hot_lru.append(coord)
            return
        if sc.size > self.hot_bytes:
            return  # larger than the arena: stays where it is (still counted as a prefetch)
        while self.tier_bytes()["hot"] + sc.size > self.hot_bytes and self._hot_lru:
            victim = self.table[self._hot_lru.pop(0)]
            victim.tier = "warm"
            self.stats.evictions += 1
        sc.tier = "hot"
        self._hot_lru.append(coord)

    def flush(self, coord: int) -> None:
        sc = self.translate(coord)
        if self._cold is None:
            # anonymous (unlinked on creation): nothing to clean up on any exit path
            self._cold = tempfile.TemporaryFile(prefix="vtpu-cold-", suffix=".bin")
            self._cold_path = None
        if sc.cold_offset < 0 or sc.size > getattr(sc, "_cold_cap", 0):
            sc.cold_offset = self._cold_end
            sc._cold_cap = sc.size  # type: ignore[attr-defined]
            self._cold_end += max(sc.size, 1)
        self._cold.seek(sc.cold_offset)
        self._cold.write(sc.buf.tobytes())
        self._cold.flush()
        sc.dirty = False
        if sc.tier != "hot":
            sc.tier = "cold"
            # reading it back from the memory-mapped backing proves the round trip
            if sc.size:
                mm = np.memmap(self._cold, dtype=np.uint8, mode="r+", offset=sc.cold_offset, shape=(sc.size,))
                sc.buf = mm
        self.stats.flushes += 1
        self.stats.flushed_bytes += sc.size

    def tier_bytes(self) -> dict[str, int]:
        out = {"hot": 0, "warm": 0, "cold": 0}
        for sc in self.table.values():
            out[sc.tier] += sc.size
        return out

    def close(self) -> None:
        if self._cold is not None:
            for sc in self.table.values():
                if isinstance(sc.buf, np.memmap):
                    sc.buf = np.array(sc.buf)
            self._cold.close()
            self._cold = None
