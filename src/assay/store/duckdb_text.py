"""A trigram sketch index for text search on DuckDB.

DuckDB has no incremental text index (its FTS extension rebuilds from scratch and cannot
be installed offline), so a search for a rare term used to read every input and output:
~1.7 s over 5M spans. Here every insert also writes, per *block* of up to
:data:`BLOCK_SPANS` spans of one project, a bitmap of the hashed byte trigrams of the
lower-cased texts (``span_text_blocks``), and each span records its block
(``spans.text_block``). A search first asks which blocks hold every trigram of the term,
then adds ``text_block IN (…)`` to its filter: DuckDB prunes whole row groups on that
constant list before reading any text.

The sketch only ever rules blocks *out*: a bit can be set by another trigram (a false
positive, the block is read anyway) but a trigram present in a block always has its
bit set, so results are exactly those of the plain ILIKE scan. Spans written before the
index existed have no block (NULL) and are always read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Most spans per block: small enough that a rare term touches few rows, large enough
#: that the block table stays ~1/1000 of the spans.
BLOCK_SPANS = 1024
#: Most text bytes per block, so a block of long texts does not saturate its bitmap.
BLOCK_TEXT_BYTES = 1 << 20
#: Bits in a full-size sketch; a block with less text gets fewer (a power of two >= 512).
MAX_BITS_LOG2 = 16
_MIN_BITS_LOG2 = 9
#: A term with more distinct trigrams is checked on this many (more add little).
MAX_TERM_TRIGRAMS = 24
#: Above this many candidate blocks the term is common: the plain scan is used.
MAX_CANDIDATES = 2000
_MULT = np.uint32(0x9E3779B1)  # Knuth's multiplicative hash constant (odd, 2^32 / phi)

BLOCK_SCHEMA = pa.schema(
    [
        ("block_id", pa.int64()),
        ("project", pa.string()),
        ("min_start", pa.timestamp("us", tz="UTC")),
        ("max_start", pa.timestamp("us", tz="UTC")),
        ("spans", pa.int32()),
        ("sketch", pa.binary()),
    ]
)


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


def blocks(table: pa.Table, first_id: int) -> tuple[pa.Table, pa.Array]:
    """Split a span table into blocks of contiguous rows of one project; return the block
    rows (ids from ``first_id`` on) and each span's block id."""
    n = table.num_rows
    projects = table["project"].to_pylist()
    starts = table["start_time"]
    texts = [_lower_bytes(table[c]) for c in ("input_text", "output_text")]
    # Text bytes of each row (both columns), to close a block before it gets too big.
    row_bytes = np.diff(texts[0][1]) + np.diff(texts[1][1])
    ids = np.empty(n, dtype=np.int64)
    rows: dict[str, list[Any]] = {f.name: [] for f in BLOCK_SCHEMA}
    start = 0
    block = first_id
    while start < n:
        end = start + 1
        size = int(row_bytes[start])
        limit = min(n, start + BLOCK_SPANS)
        while end < limit and projects[end] == projects[start]:
            if size + row_bytes[end] > BLOCK_TEXT_BYTES:
                break
            size += int(row_bytes[end])
            end += 1
        parts = [data[off[start] : off[end]] for data, off in texts]
        # A separator keeps the two columns' bytes from forming a trigram together.
        joined = np.concatenate([parts[0], np.zeros(1, np.uint8), parts[1]])
        window = starts.slice(start, end - start)
        rows["block_id"].append(block)
        rows["project"].append(projects[start])
        rows["min_start"].append(pc.min(window).as_py())
        rows["max_start"].append(pc.max(window).as_py())
        rows["spans"].append(end - start)
        rows["sketch"].append(sketch(joined))
        ids[start:end] = block
        block += 1
        start = end
    return pa.Table.from_pydict(rows, schema=BLOCK_SCHEMA), pa.array(ids)


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
