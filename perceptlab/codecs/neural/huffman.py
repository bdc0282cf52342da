"""Canonical Huffman coding in pure numpy/Python, for the tunable codec's bitstream.

- Code lengths: Huffman's algorithm (Huffman 1952, "A Method for the Construction of
  Minimum-Redundancy Codes"), limited to :data:`MAX_LENGTH` bits by the procedure of JPEG
  (ITU-T T.81, Annex K.2, Figure K.3 "Adjust_BITS"), which keeps Kraft's sum at exactly 1.
- Codes from lengths: the canonical assignment of DEFLATE (RFC 1951, §3.2.2): shorter codes
  first, and within a length in symbol order, so the lengths alone define the code.
- Decoding is table-driven: one lookup table of 2^L entries (L the longest code) maps the
  next L bits to (symbol, length), so each symbol costs one table read.

Bits are written most-significant first and the last byte is padded with zero bits.

A code table is stored as::

    4 bits        L, the longest code length (0 = an empty code: no symbol can be coded)
    A × w bits    each symbol's code length, w = bit_length(L) bits each (A = alphabet size)

A code with exactly one used symbol is stored with that symbol at length 1 and spends
**zero** bits per symbol: the decoder knows how many symbols to read (or stops at once when
that symbol is the terminator), so there is nothing left to say. Every other code must be
complete (Kraft sum 1), which any Huffman code is; a table that is not is rejected.

Blocks with a termination code (:func:`encode_block` / :func:`decode_block`): the alphabet
gets one extra symbol, ``EOB`` = ``alphabet_size``; a run of zeros at the end of the block
is replaced by one EOB, and a block without trailing zeros needs none (the decoder knows the
block's length). This is the tunable codec's "termination code" (Wu, Huang & Shen 2020,
§3.1 "Entropy encoder"), in the manner of JPEG's end-of-block code (T.81, F.1.2.2).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_LENGTH = 15
"""Longest code length allowed (it must fit the table's 4-bit field)."""


class HuffmanError(ValueError):
    """A code table or a coded stream is invalid or truncated."""


class BitWriter:
    """Collects bits (MSB first) and returns them as bytes padded with zero bits."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._length = 0

    @property
    def bit_length(self) -> int:
        return self._length

    def write(self, value: int, width: int) -> None:
        """Append the ``width`` low bits of ``value``."""
        if width < 0 or value < 0 or value >> width:
            raise HuffmanError(f"{value} does not fit in {width} bits")
        if width:
            shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
            self._append(((value >> shifts) & 1).astype(np.uint8))

    def write_codes(self, codes: np.ndarray, lengths: np.ndarray) -> None:
        """Append codes[i] in lengths[i] bits for every i (vectorised)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        codes = np.asarray(codes, dtype=np.int64)
        total = int(lengths.sum())
        if total == 0:
            return
        owner = np.repeat(np.arange(lengths.size), lengths)
        ends = np.cumsum(lengths)
        # bit j of the output belongs to code owner[j]; its shift is the bits still to come
        shift = ends[owner] - 1 - np.arange(total)
        self._append(((codes[owner] >> shift) & 1).astype(np.uint8))

    def _append(self, bits: np.ndarray) -> None:
        self._parts.append(bits)
        self._length += int(bits.size)

    def to_bytes(self) -> bytes:
        if not self._parts:
            return b""
        return np.packbits(np.concatenate(self._parts)).tobytes()


class BitReader:
    """Reads bits (MSB first) from bytes; the zero bits padding the last byte read as data."""

    def __init__(self, data: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self.position = 0

    @property
    def remaining(self) -> int:
        return int(self.bits.size) - self.position

    def read(self, width: int) -> int:
        if width > self.remaining:
            raise HuffmanError("the coded stream is truncated")
        value = 0
        for bit in self.bits[self.position : self.position + width].tolist():
            value = (value << 1) | bit
        self.position += width
        return value

    def windows(self, width: int, count: int) -> np.ndarray:
        """The value of the ``width`` bits starting at each of the next ``count`` positions
        (bits past the end read as 0), without moving the position."""
        span = self.bits[self.position : self.position + count + width - 1].astype(np.int64)
        span = np.concatenate([span, np.zeros(count + width - 1 - span.size, dtype=np.int64)])
        values = np.zeros(count, dtype=np.int64)
        for offset in range(width):
            values = (values << 1) | span[offset : offset + count]
        return values


def huffman_lengths(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Code lengths of a Huffman code for ``counts`` (0 for unused symbols).

    Ties are broken by the order of the merged groups, so the result is deterministic. A
    single used symbol gets length 1 (see the module docstring: it then costs no bits).
    """
    counts = np.asarray(counts, dtype=np.int64)
    if np.any(counts < 0):
        raise HuffmanError("symbol counts cannot be negative")
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = [int(s) for s in np.flatnonzero(counts)]
    if len(used) == 1:
        lengths[used[0]] = 1
    if len(used) <= 1:
        return lengths
    heap: list[tuple[int, int, list[int]]] = [(int(counts[s]), s, [s]) for s in used]
    heapq.heapify(heap)
    order = counts.size
    while len(heap) > 1:
        weight_a, _, group_a = heapq.heappop(heap)
        weight_b, _, group_b = heapq.heappop(heap)
        for symbol in group_a + group_b:
            lengths[symbol] += 1
        heapq.heappush(heap, (weight_a + weight_b, order, group_a + group_b))
        order += 1
    return lengths


def limit_lengths(
    lengths: np.ndarray, counts: Sequence[int] | np.ndarray, max_length: int = MAX_LENGTH
) -> np.ndarray:
    """Lengths no longer than ``max_length`` bits with the same Kraft sum (T.81 Figure K.3).

    The numbers of codes per length are adjusted as JPEG does (two codes of the longest
    length become one code one bit shorter, and a shorter code is split), then handed out
    again, shortest first, to the symbols in order of decreasing count.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    longest = int(lengths.max(initial=0))
    if longest <= max_length:
        return lengths
    used = int(np.count_nonzero(lengths))
    if used > 1 << max_length:
        raise HuffmanError(f"{used} symbols cannot have codes of at most {max_length} bits")
    bits = np.bincount(lengths[lengths > 0], minlength=longest + 1)
    i = longest
    while i > max_length:
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
        i -= 1
    counts = np.asarray(counts, dtype=np.int64)
    symbols = sorted(np.flatnonzero(lengths).tolist(), key=lambda s: (-int(counts[s]), s))
    limited = np.zeros_like(lengths)
    position = 0
    for length in range(1, max_length + 1):
        for symbol in symbols[position : position + int(bits[length])]:
            limited[symbol] = length
        position += int(bits[length])
    return limited


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code of each symbol from the lengths alone (RFC 1951 §3.2.2)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    longest = int(lengths.max(initial=0))
    bl_count = np.bincount(lengths, minlength=longest + 1)
    bl_count[0] = 0
    next_code = [0] * (longest + 2)
    code = 0
    for bits in range(1, longest + 1):
        code = (code + int(bl_count[bits - 1])) << 1
        next_code[bits] = code
    codes = np.zeros(lengths.size, dtype=np.int64)
    for symbol in range(lengths.size):
        length = int(lengths[symbol])
        if length:
            codes[symbol] = next_code[length]
            next_code[length] += 1
    return codes


@dataclass(frozen=True)
class HuffmanCode:
    """A canonical Huffman code over ``alphabet_size`` symbols, given by its lengths."""

    lengths: np.ndarray

    @property
    def alphabet_size(self) -> int:
        return int(self.lengths.size)

    @property
    def longest(self) -> int:
        return int(self.lengths.max(initial=0))

    @property
    def single(self) -> int | None:
        """The symbol of a one-symbol code (coded in zero bits), else ``None``."""
        used = np.flatnonzero(self.lengths)
        return int(used[0]) if used.size == 1 else None

    @classmethod
    def from_counts(
        cls, counts: Sequence[int] | np.ndarray, max_length: int = MAX_LENGTH
    ) -> HuffmanCode:
        lengths = huffman_lengths(counts)
        return cls(limit_lengths(lengths, counts, max_length))

    @classmethod
    def from_symbols(cls, symbols: np.ndarray, alphabet_size: int) -> HuffmanCode:
        symbols = np.asarray(symbols, dtype=np.int64)
        if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet_size):
            raise HuffmanError(f"a symbol is outside the alphabet 0..{alphabet_size - 1}")
        return cls.from_counts(np.bincount(symbols, minlength=alphabet_size))

    def table_bits(self) -> int:
        """Bits the stored table takes."""
        return 4 + self.alphabet_size * self.longest.bit_length()

    def write(self, writer: BitWriter) -> None:
        """Store the table: 4 bits L, then every length in bit_length(L) bits."""
        longest = self.longest
        if longest > MAX_LENGTH:
            raise HuffmanError(f"code lengths above {MAX_LENGTH} bits cannot be stored")
        writer.write(longest, 4)
        width = longest.bit_length()
        writer.write_codes(self.lengths, np.full(self.alphabet_size, width, dtype=np.int64))

    @classmethod
    def read(cls, reader: BitReader, alphabet_size: int) -> HuffmanCode:
        longest = reader.read(4)
        width = longest.bit_length()
        lengths = np.array([reader.read(width) for _ in range(alphabet_size)], dtype=np.int64)
        code = cls(lengths)
        code.validate()
        return code

    def validate(self) -> None:
        used = self.lengths[self.lengths > 0]
        if used.size and int(used.max()) != self.longest:
            raise HuffmanError("the code table is damaged")
        if self.longest and used.size == 0:
            raise HuffmanError("the code table is damaged (no symbol has a code)")
        if used.size > 1:
            kraft = sum(1 << (self.longest - int(n)) for n in used.tolist())
            if kraft != 1 << self.longest:
                raise HuffmanError("the code table is damaged (not a complete prefix code)")

    def encode(self, symbols: np.ndarray, writer: BitWriter) -> None:
        symbols = np.asarray(symbols, dtype=np.int64).ravel()
        if symbols.size == 0:
            return
        if symbols.min() < 0 or symbols.max() >= self.alphabet_size:
            raise HuffmanError(f"a symbol is outside the alphabet 0..{self.alphabet_size - 1}")
        lengths = self.lengths[symbols]
        if np.any(lengths == 0):
            raise HuffmanError("a symbol has no code in this table")
        if self.single is not None:
            return  # one possible symbol: the count alone says it all
        writer.write_codes(canonical_codes(self.lengths)[symbols], lengths)

    def decode(self, reader: BitReader, count: int, stop: int | None = None) -> np.ndarray:
        """Up to ``count`` symbols; reading ``stop`` ends early (it is not returned)."""
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        single = self.single
        if single is not None:
            if single == stop:
                return np.zeros(0, dtype=np.int64)
            return np.full(count, single, dtype=np.int64)
        longest = self.longest
        if longest == 0:
            raise HuffmanError("symbols were expected but the code is empty")
        symbol_table = np.zeros(1 << longest, dtype=np.int64)
        length_table = np.zeros(1 << longest, dtype=np.int64)
        codes = canonical_codes(self.lengths)
        for symbol in np.flatnonzero(self.lengths).tolist():
            length = int(self.lengths[symbol])
            start = int(codes[symbol]) << (longest - length)
            symbol_table[start : start + (1 << (longest - length))] = symbol
            length_table[start : start + (1 << (longest - length))] = length
        span = min(count * longest, reader.remaining)
        if span <= 0:
            raise HuffmanError("the coded stream is truncated")
        windows = reader.windows(longest, span).tolist()
        symbols_of = symbol_table.tolist()
        lengths_of = length_table.tolist()
        out: list[int] = []
        at = 0
        for _ in range(count):
            if at >= span:
                raise HuffmanError("the coded stream is truncated")
            window = windows[at]
            symbol = symbols_of[window]
            at += lengths_of[window]
            if symbol == stop:
                break
            out.append(symbol)
        if at > reader.remaining:
            raise HuffmanError("the coded stream is truncated")
        reader.position += at
        return np.asarray(out, dtype=np.int64)


def encode_stream(symbols: np.ndarray, alphabet_size: int, writer: BitWriter) -> HuffmanCode:
    """Write the Huffman table of ``symbols`` and then their codes; returns the code."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    code = HuffmanCode.from_symbols(symbols, alphabet_size)
    code.write(writer)
    code.encode(symbols, writer)
    return code


def decode_stream(
    reader: BitReader, count: int, alphabet_size: int, stop: int | None = None
) -> np.ndarray:
    """Read a table and then ``count`` symbols (fewer if ``stop`` is read) from ``reader``."""
    code = HuffmanCode.read(reader, alphabet_size)
    return code.decode(reader, count, stop)


def terminated(symbols: np.ndarray, alphabet_size: int) -> np.ndarray:
    """``symbols`` with its run of trailing zeros replaced by one EOB (= ``alphabet_size``)."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    nonzero = np.flatnonzero(symbols)
    end = int(nonzero[-1]) + 1 if nonzero.size else 0
    if end == symbols.size:
        return symbols
    return np.concatenate([symbols[:end], np.array([alphabet_size], dtype=np.int64)])


def encode_block(symbols: np.ndarray, alphabet_size: int, writer: BitWriter) -> None:
    """Table + codes of a block whose trailing zeros become the termination code EOB.

    The alphabet coded is ``alphabet_size + 1`` symbols (EOB last). An empty block writes
    nothing: its length (known to the decoder) is 0.
    """
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    if symbols.size == 0:
        return
    encode_stream(terminated(symbols, alphabet_size), alphabet_size + 1, writer)


def decode_block(reader: BitReader, count: int, alphabet_size: int) -> np.ndarray:
    """The ``count`` symbols of a block from :func:`encode_block` (zeros after EOB)."""
    out = np.zeros(count, dtype=np.int64)
    if count == 0:
        return out
    values = decode_stream(reader, count, alphabet_size + 1, stop=alphabet_size)
    out[: values.size] = values
    return out


def encode(symbols: np.ndarray, alphabet_size: int) -> bytes:
    """A self-contained stream (table, then codes) of ``symbols`` in 0..alphabet_size−1."""
    writer = BitWriter()
    encode_stream(symbols, alphabet_size, writer)
    return writer.to_bytes()


def decode(data: bytes, count: int, alphabet_size: int) -> np.ndarray:
    """The ``count`` symbols of a stream from :func:`encode`."""
    return decode_stream(BitReader(data), count, alphabet_size)
