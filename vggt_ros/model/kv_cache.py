"""Key/value caches for streaming attention: preallocated flat buffers, an anchor and a window.

Keys arrive already LayerNormed and rotated (RoPE positions are spatial only, the same in every
frame), so attention over the cache is order-free: a frame's tokens may sit anywhere in the
buffer. Eviction therefore fills the hole of the evicted frame by moving one frame (the last
placed) into it rather than shifting the whole window, and frames may hold different numbers of
tokens (e.g. merged frames), at the cost of a shift when no frame fits the hole exactly.

Each frame is a transaction: `new_frame()` remembers how to undo itself (the evicted frame is
copied to a one-frame backup buffer), `commit()` forgets that, `rollback()` restores the cache
exactly as it was before `new_frame()`. A session whose step fails part-way thus loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class _Span:
    """Tokens [start, start + length) of the buffers belong to one frame."""

    start: int
    length: int


@dataclass
class _Undo:
    """How to return to the state before the open frame's `new_frame()`."""

    spans: list[tuple[int, int]]
    size: int
    evicted: tuple[int, int] | None = None  # (start, length) the backup goes back to
    moved: tuple[int, int, int] | None = None  # (src, dst, count) that reverses the eviction's move


class LayerKVCache:
    """Keys and values of one attention layer over a stream of frames (batch 1).

    Buffers are [heads, capacity, head_dim]; the valid tokens are the prefix [0, num_tokens), each
    frame owning one contiguous span, and attention reads only that prefix (no padding, no mask).
    `window` = W keeps the first frame (the anchor) and the W - 1 most recent ones, the newest
    included: `new_frame()` evicts before the new frame is added. With a window the buffers are
    allocated once, for W frames of the first frame's size, and so is the backup of one evicted
    frame, as the window fills; without one they grow by doubling and nothing is evicted.
    """

    def __init__(self, window: int | None = None) -> None:
        if window is not None and window < 2:
            raise ValueError(
                f'window must be at least 2 (the anchor and the current frame), got {window}'
            )
        self.window = window
        self._keys: Tensor | None = None
        self._values: Tensor | None = None
        self._backup: tuple[Tensor, Tensor] | None = None
        self._spans: list[_Span] = []
        self._size = 0
        self._undo: _Undo | None = None

    @property
    def num_frames(self) -> int:
        return len(self._spans)

    @property
    def num_tokens(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return 0 if self._keys is None else self._keys.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes of the key/value buffers, used or not (the backup is `backup_nbytes`)."""
        return 0 if self._keys is None else self._keys.nbytes + self._values.nbytes

    @property
    def backup_nbytes(self) -> int:
        """Bytes kept to undo an eviction: one frame's keys and values, once the window fills."""
        return 0 if self._backup is None else sum(buffer.nbytes for buffer in self._backup)

    @property
    def spans(self) -> list[tuple[int, int]]:
        """(start, length) of each cached frame's tokens, in arrival order (anchor first)."""
        return [(span.start, span.length) for span in self._spans]

    @property
    def keys(self) -> Tensor:
        """Valid keys [heads, num_tokens, head_dim] (a view into the buffer)."""
        return self._keys[:, : self._size]

    @property
    def values(self) -> Tensor:
        return self._values[:, : self._size]

    def reset(self) -> None:
        """Forget all frames; the buffers stay allocated for the next stream."""
        self._spans.clear()
        self._size = 0
        self._undo = None

    def new_frame(self) -> None:
        """Open the next frame's span; if the window is full, evict the oldest non-anchor frame.

        The previous frame, if still open, is committed. Nothing changes if this raises.
        """
        undo = _Undo(self.spans, self._size)
        if self.window is not None and len(self._spans) == self.window - 1:
            self._reserve_backup(max(span.length for span in self._spans))
        elif self.window is not None and len(self._spans) == self.window:
            self._evict_oldest(undo)
        self._spans.append(_Span(self._size, 0))
        self._undo = undo

    def commit(self) -> None:
        """Keep the open frame: its undo record is dropped."""
        self._undo = None

    def rollback(self) -> None:
        """Undo everything since the last `new_frame()` (a no-op after `commit()`): drop the open
        frame's tokens and put the evicted frame back where it was. It allocates no tensor, so it
        cannot fail for lack of memory; a reallocation by `extend()` kept the prefix it needs."""
        undo, self._undo = self._undo, None
        if undo is None:
            return
        if undo.moved is not None:
            self._move(*undo.moved)
        if undo.evicted is not None:
            start, length = undo.evicted
            for buffer, backup in zip((self._keys, self._values), self._backup, strict=True):
                buffer[:, start : start + length] = backup[:, :length]
        self._spans = [_Span(start, length) for start, length in undo.spans]
        self._size = undo.size

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append k, v [1, heads, n, head_dim] to the open frame; return all valid keys and values.

        Keys are stored in the values' dtype: under autocast v is the low-precision qkv output,
        which is also what SDPA would cast the fp32 normalised keys to.
        """
        if not self._spans:
            raise RuntimeError('extend() before new_frame()')
        start, end = self._size, self._size + k.shape[2]
        self._reserve(end, v)
        self._keys[:, start:end] = k[0]
        self._values[:, start:end] = v[0]
        self._size = end
        self._spans[-1].length += end - start
        return self._keys[None, :, :end], self._values[None, :, :end]

    def _reserve(self, tokens: int, like: Tensor) -> None:
        if tokens <= self.capacity:
            return
        if self._keys is None:
            capacity = tokens * (self.window or 1)
        else:
            capacity = max(tokens, 2 * self.capacity)
        _, heads, _, head_dim = like.shape
        keys, values = (like.new_empty(heads, capacity, head_dim) for _ in range(2))
        if self._size:
            keys[:, : self._size] = self.keys
            values[:, : self._size] = self.values
        self._keys, self._values = keys, values

    def _reserve_backup(self, tokens: int) -> None:
        """Room to copy an evicted frame of `tokens` tokens. Sized by the largest frame as the
        window fills (a stream's frames share one size, merged ones are smaller), so in a session
        it is allocated once, before the first eviction."""
        if self._keys is None:
            return
        backup = self._backup
        if backup is not None and backup[0].shape[1] >= tokens:
            return
        heads, _, head_dim = self._keys.shape
        self._backup = tuple(self._keys.new_empty(heads, tokens, head_dim) for _ in range(2))

    def _evict_oldest(self, undo: _Undo) -> None:
        """Drop the oldest frame but the anchor, after copying it to the backup; fill its hole
        with the last-placed frame when that fits exactly (one frame copied), else shift
        everything after the hole. `undo` learns how to reverse both."""
        gone = self._spans[1]
        hole_end = gone.start + gone.length
        self._reserve_backup(gone.length)
        if gone.length:
            for buffer, backup in zip((self._keys, self._values), self._backup, strict=True):
                backup[:, : gone.length] = buffer[:, gone.start : hole_end]
            undo.evicted = (gone.start, gone.length)
        if hole_end < self._size:
            last = max(self._spans, key=lambda span: span.start)
            if last.length == gone.length:
                self._move(last.start, gone.start, gone.length)
                undo.moved = (gone.start, last.start, gone.length)
                last.start = gone.start
            else:
                self._move(hole_end, gone.start, self._size - hole_end)
                undo.moved = (gone.start, hole_end, self._size - hole_end)
                for span in self._spans:
                    if span.start > gone.start:
                        span.start -= gone.length
        del self._spans[1]
        self._size -= gone.length

    def _move(self, src: int, dst: int, count: int) -> None:
        """Copy tokens [src, src + count) to [dst, dst + count) in both buffers, without
        allocating: overlapping ranges go in chunks of |src - dst|, in the order that reads each
        token before it is overwritten."""
        step = abs(src - dst)
        if not step:
            return
        offsets = range(0, count, step)
        for offset in offsets if dst < src else reversed(offsets):
            length = min(step, count - offset)
            for buffer in (self._keys, self._values):
                buffer[:, dst + offset : dst + offset + length] = buffer[
                    :, src + offset : src + offset + length
                ]


class KVCache:
    """The caches of a stack of attention layers that see the same frames (e.g. global blocks)."""

    def __init__(self, num_layers: int, window: int | None = None) -> None:
        self.layers = [LayerKVCache(window) for _ in range(num_layers)]

    def __getitem__(self, index: int) -> LayerKVCache:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def num_frames(self) -> int:
        return self.layers[0].num_frames

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers)

    @property
    def backup_nbytes(self) -> int:
        return sum(layer.backup_nbytes for layer in self.layers)

    def new_frame(self) -> None:
        for layer in self.layers:
            layer.new_frame()

    def commit(self) -> None:
        for layer in self.layers:
            layer.commit()

    def rollback(self) -> None:
        """Every layer back to before its last new_frame(), including layers never extended."""
        for layer in self.layers:
            layer.rollback()

    def reset(self) -> None:
        for layer in self.layers:
            layer.reset()
