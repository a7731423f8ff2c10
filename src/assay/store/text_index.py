"""A trigram sketch index for text search, for stores without one of their own (DuckDB).

DuckDB has no incremental text index (its FTS extension rebuilds from scratch and cannot
be installed offline), so a search for a rare term used to read every input and output:
~1.7 s over 5M spans. Here every span is written with a *block* number (``text_block``:
up to :data:`BLOCK_SPANS` spans of one project), and each block gets a bitmap of the
hashed byte trigrams of its lower-cased texts (``span_text_blocks``). A search first asks
which blocks hold every trigram of the term, then adds ``text_block IN (…)`` to its
filter: DuckDB prunes whole row groups on that constant list before reading any text.

The sketch only ever rules blocks *out*: a bit can be set by another trigram (a false
positive, the block is read anyway) but a trigram present in a block always has its
bit set, so results are exactly those of the plain ILIKE scan. Spans written before the
index existed have no block (NULL) and are always read, as are blocks not sketched yet.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Most spans per block: small enough that a rare term touches few rows, large enough
#: that the block table stays ~1/1000 of the spans.
BLOCK_SPANS = 1024
#: About the most text bytes per block, so long texts do not saturate a bitmap.
BLOCK_TEXT_BYTES = 1 << 20
#: Bits in a full-size sketch; a block with less text gets fewer (a power of two >= 512).
MAX_BITS_LOG2 = 16
_MIN_BITS_LOG2 = 9
#: A term with more distinct trigrams is checked on this many (more add little).
MAX_TERM_TRIGRAMS = 24
#: Above this many candidate blocks the term is common: the plain scan is used.
MAX_CANDIDATES = 2000
_MULT = np.uint32(0x9E3779B1)  # Knuth's multiplicative hash constant (odd, 2^32 / phi)


def _slots(data: np.ndarray) -> np.ndarray:
    """Each byte trigram of ``data`` hashed to a 16-bit slot (uint32 values < 2^16)."""
    if data.size < 3:
        return np.empty(0, dtype=np.uint32)
    b = data.astype(np.uint32)
    code = (b[:-2] << np.uint32(16)) | (b[1:-1] << np.uint32(8)) | b[2:]
    return (code * _MULT) >> np.uint32(32 - MAX_BITS_LOG2)  # uint32 multiply wraps mod 2^32


def _bits_log2(text_bytes: int) -> int:
    return min(MAX_BITS_LOG2, max(_MIN_BITS_LOG2, int(text_bytes).bit_length()))


def sketch(data: np.ndarray) -> bytes:
    """The bitmap of one block's lower-cased text bytes (big-endian bit order)."""
    k = _bits_log2(data.size)
    bits = np.zeros(1 << k, dtype=bool)
    bits[_slots(data) >> np.uint32(MAX_BITS_LOG2 - k)] = True
    return bytes(np.packbits(bits).tobytes())


def _lower_bytes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Lower-cased UTF-8 bytes of a string column, and each row's end offset in them."""
    arr = pc.utf8_lower(column.combine_chunks())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())  # 64-bit offsets: a batch may exceed 2 GiB of text
    first = arr.offset
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[first : first + len(arr) + 1]
    data_buf = arr.buffers()[2]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    )
    return data, offsets


def assign(table: pa.Table) -> np.ndarray:
    """Each span's block number (0, 1, … in row order): runs of rows of one project, cut
    every :data:`BLOCK_SPANS` spans and about every :data:`BLOCK_TEXT_BYTES` of text."""
    n = table.num_rows
    if n == 0:
        return np.empty(0, dtype=np.int64)
    project = pc.dictionary_encode(table["project"].combine_chunks()).indices
    codes = project.to_numpy(zero_copy_only=False).astype(np.int64)
    new_run = np.diff(codes, prepend=-1) != 0
    run_starts = np.flatnonzero(new_run)
    run = np.cumsum(new_run) - 1
    size = np.zeros(n, dtype=np.int64)
    for c in ("input_text", "output_text"):
        size += pc.fill_null(pc.binary_length(table[c]), 0).to_numpy().astype(np.int64)
    cum = np.cumsum(size)
    before_run = (cum - size)[run_starts][run]  # text bytes before the row's run
    position = np.arange(n) - run_starts[run]
    key = np.stack([run, position // BLOCK_SPANS, (cum - before_run - 1) // BLOCK_TEXT_BYTES])
    changed = np.any(np.diff(key, axis=1, prepend=-1) != 0, axis=0)
    return np.asarray(np.cumsum(changed) - 1, dtype=np.int64)


def sketch_blocks(table: pa.Table, blocks: np.ndarray) -> pa.Table:
    """One row per block of ``table`` (``blocks``: each row's block id, a block's rows
    contiguous): block_id, project, min_start, max_start, spans and the sketch."""
    n = table.num_rows
    first = np.flatnonzero(np.diff(blocks, prepend=blocks[0] - 1)) if n else np.empty(0, int)
    last = np.append(first[1:], n)
    texts = [_lower_bytes(table[c]) for c in ("input_text", "output_text")]
    sketches = []
    for a, b in zip(first, last, strict=True):
        parts = [data[off[a] : off[b]] for data, off in texts]
        # A separator keeps the two columns' bytes from forming a trigram together.
        sketches.append(sketch(np.concatenate([parts[0], np.zeros(1, np.uint8), parts[1]])))
    start = table["start_time"].combine_chunks()
    micros = pc.cast(start, pa.int64()).to_numpy(zero_copy_only=False)
    low = np.minimum.reduceat(micros, first) if n else micros
    high = np.maximum.reduceat(micros, first) if n else micros
    return pa.table(
        {
            "block_id": pa.array(blocks[first], pa.int64()),
            "project": table["project"].take(pa.array(first)),
            # Naive UTC whatever the input: batches from memory carry a time zone, texts
            # read back from the store do not, and one flush may hold both.
            "min_start": pa.array(low, pa.int64()).cast(pa.timestamp("us")),
            "max_start": pa.array(high, pa.int64()).cast(pa.timestamp("us")),
            "spans": pa.array(last - first, pa.int32()),
            "sketch": pa.array(sketches, pa.binary()),
        }
    )


def term_slots(term: str) -> list[int] | None:
    """The 16-bit slots a block must have set to hold ``term``, or None when the term is
    too short (fewer than 3 bytes lower-cased) for the index to say anything."""
    lowered = pc.utf8_lower(pa.array([term])).to_pylist()[0]
    data = np.frombuffer(lowered.encode("utf-8"), dtype=np.uint8)
    if data.size < 3:
        return None
    slots = sorted({int(s) for s in _slots(data)})
    # Spread the checked slots over the term rather than keeping only its start.
    step = max(1, len(slots) // MAX_TERM_TRIGRAMS)
    return slots[::step][:MAX_TERM_TRIGRAMS]


def candidates_sql(slots: list[int]) -> str:
    """A condition on ``span_text_blocks`` that every one of ``slots`` is set.

    A sketch of 2^k bits keeps the top k bits of the 16-bit slot; the slots are integers
    computed here, so they are written into the SQL rather than bound.
    """
    full = 1 << MAX_BITS_LOG2
    return " AND ".join(
        f"get_bit(sketch, ({int(s)} // ({full} // bit_length(sketch)))::INTEGER) = 1"
        for s in slots
    )
