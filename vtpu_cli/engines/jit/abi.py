"""The native context block: one declaration of every field the JIT's code and its Python host share.

Each sentron owns one ``CTX_SIZE``-byte block. Native code reads and writes it by byte offset
(``Lowerer.cload``/``cstore``); the host views it through numpy (``CTX_DTYPE`` for named access, or the
``OFF_*`` offsets). Both sides derive from :data:`FIELDS`, so adding a field is one row here.
Fields are laid out in order, each at the next multiple of its alignment; the C-pipe watchdog words
(``blocked``, ``seen``) and statistics sit on their own cache lines because other threads poll them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Field:
    name: str
    dtype: str  # numpy dtype of one element ("<i8", "<u8", "u1")
    count: int = 1
    align: int = 8
    doc: str = ""

    @property
    def size(self) -> int:
        return np.dtype(self.dtype).itemsize * self.count


CSEQ_WORDS = 32  # groups (+1) whose collective sequence numbers a split program carries in the context

FIELDS: tuple[Field, ...] = (
    Field("r", "<i8", 16, doc="scalar registers r0-r15"),
    Field("p", "<u8", 16, doc="coordinate registers p0-p7 (lo, hi words)"),
    Field("flags", "<i8", doc="status flags"),
    Field("sid", "<i8", doc="this sentron's id"),
    Field("scount", "<i8", doc="sentrons in the run"),
    Field("status", "<i8", doc="exit status (ST_*)"),
    Field("pc", "<i8", doc="SIW index of the exit"),
    Field("slot", "<i8", doc="pipe slot of the exit"),
    Field("counted", "<i8", doc="1 when the exit SIW counts as executed"),
    Field("fasthits", "<i8", doc="PPT translations served by the fast path"),
    Field("maxsteps", "<i8", doc="--max-steps, -1 for none"),
    Field("steps_ptr", "<u8", doc="-> shared step counter"),
    Field("abort_ptr", "<u8", doc="-> shared abort word (Ctrl-C, watchdog)"),
    Field("counts_ptr", "<u8", doc="-> per-block execution counts"),
    Field("ppt", "<u8", doc="-> the native PPT (way counts, entries)"),
    Field("slowcb", "<u8", doc="host callback for slow S-pipe ops"),
    Field("readycb", "<u8", doc="host callback for readiness of slow ops"),
    Field("trptr", "<u8", doc="last translation: scroll pointer"),
    Field("trsize", "<u8", doc="last translation: scroll size"),
    Field("tsc0", "<u8", doc="TSC at entry"),
    Field("tsc1", "<u8", doc="TSC at exit"),
    Field("home", "<u8", 2, align=16, doc="home coordinate (lo, hi)"),
    Field("trset", "<u8", doc="last translation: PPT set"),
    Field("tab", "<u8", doc="-> the scroll table"),
    Field("mlen", "<i8", 4, doc="message register lengths"),
    Field("tabmask", "<u8", doc="scroll table slots - 1"),
    Field("ppthits", "<u8", doc="PPT hits"),
    Field("pptmisses", "<u8", doc="PPT misses"),
    Field("v", "u1", 32 * 64, align=64, doc="vector registers v0-v31"),
    Field("m", "u1", 4 * 64, align=64, doc="message registers m0-m3"),
    Field("fleet", "<u8", doc="-> the native fleet block (comm.py)"),
    Field("yield", "<u8", doc="-> sched_yield"),
    Field("blocked", "<i8", align=64, doc="watchdog: 1 while blocked in the C pipe"),
    Field("seen", "<i8", doc="watchdog: progress epoch"),
    Field("cstat", "<i8", 16, align=64, doc="C-pipe statistics (comm.STAT_NAMES)"),
    Field(
        "race",
        "<u8",
        4,
        align=64,
        doc="race detector (several sentrons): -> own clock row, own read row, writer words, read rows",
    ),
    Field(
        "tgen",
        "<u8",
        doc="scroll-table generation this sentron's PPT reflects (several sentrons, a program that edits "
        "the scroll table: refreshed at acquires when the fleet block's generation differs)",
    ),
    # state a split program's region functions hand on to the next one (compile.py, "regions")
    Field("lsteps", "<i8", align=64, doc="steps run so far (a per-sentron --max-steps limit)"),
    Field("cseq", "<i8", CSEQ_WORDS, doc="collective sequence numbers per group (comm.CSEQ)"),
)


def _layout() -> tuple[dict[str, int], int]:
    off, out = 0, {}
    for f in FIELDS:
        off = -(-off // f.align) * f.align
        out[f.name] = off
        off += f.size
    return out, -(-off // 64) * 64


OFFSETS, CTX_SIZE = _layout()
CTX_DTYPE = np.dtype(
    {
        "names": [f.name for f in FIELDS],
        "formats": [(f.dtype, (f.count,)) if f.count > 1 else f.dtype for f in FIELDS],
        "offsets": [OFFSETS[f.name] for f in FIELDS],
        "itemsize": CTX_SIZE,
    }
)

OFF_R, OFF_P, OFF_FLAGS = OFFSETS["r"], OFFSETS["p"], OFFSETS["flags"]
OFF_SID, OFF_SCOUNT, OFF_STATUS = OFFSETS["sid"], OFFSETS["scount"], OFFSETS["status"]
OFF_PC, OFF_SLOT, OFF_COUNTED = OFFSETS["pc"], OFFSETS["slot"], OFFSETS["counted"]
OFF_FASTHITS, OFF_MAXSTEPS = OFFSETS["fasthits"], OFFSETS["maxsteps"]
OFF_STEPS_PTR, OFF_ABORT_PTR, OFF_COUNTS_PTR = (
    OFFSETS["steps_ptr"],
    OFFSETS["abort_ptr"],
    OFFSETS["counts_ptr"],
)
OFF_PPT, OFF_SLOWCB, OFF_READYCB = OFFSETS["ppt"], OFFSETS["slowcb"], OFFSETS["readycb"]
OFF_TRPTR, OFF_TRSIZE, OFF_TRSET = OFFSETS["trptr"], OFFSETS["trsize"], OFFSETS["trset"]
OFF_TSC0, OFF_TSC1, OFF_HOME = OFFSETS["tsc0"], OFFSETS["tsc1"], OFFSETS["home"]
OFF_TAB, OFF_TABMASK, OFF_MLEN = OFFSETS["tab"], OFFSETS["tabmask"], OFFSETS["mlen"]
OFF_PPTHITS, OFF_PPTMISSES = OFFSETS["ppthits"], OFFSETS["pptmisses"]
OFF_V, OFF_M = OFFSETS["v"], OFFSETS["m"]
OFF_FLEET, OFF_YIELD = OFFSETS["fleet"], OFFSETS["yield"]
OFF_BLOCKED, OFF_SEEN, OFF_CSTAT = OFFSETS["blocked"], OFFSETS["seen"], OFFSETS["cstat"]
OFF_RACE, OFF_TGEN = OFFSETS["race"], OFFSETS["tgen"]
OFF_LSTEPS, OFF_CSEQ = OFFSETS["lsteps"], OFFSETS["cseq"]

# exit status codes written to the ``status`` field
ST_OK, ST_FAULT, ST_PYFAULT, ST_LIMIT, ST_DEADLOCK, ST_ABORT, ST_ERROR = 0, 1, 2, 3, 4, 5, 6
ST_REPLAY = 7  # native code cannot report this condition exactly: the engine replays in the interpreter
