"""Windows (rows of sub-token ids from `align.encode_examples`) grouped into the model inputs of forward passes.

- `padded_batches`: one window per row, `batch_size` windows sorted by length, padded to the longest.
- `packed_batches`: several windows per row, up to `row_tokens` sub-tokens, `batch_size` rows per pass.
  Each window keeps its own positions (0, 1, ...) and a block-diagonal attention mask keeps windows from
  seeing each other, so the model computes what it would for the window alone, without padding it to its
  neighbours' length. That pays where few windows of mixed lengths come at once (a server's batch of
  concurrent requests: `padding_share` is high); over a whole sorted file, padding is already small and
  attending over long rows costs more. `cheapest_row_tokens` picks the row length of a packing: long rows
  leave less room unused, short ones attend over fewer masked sub-tokens. Only models whose outputs match
  the padded ones take it (`TorchBackend` checks): e.g. RoBERTa derives positions from padding and would not.

Both yield `(placements, inputs)`: a placement `(window, row, offset)` says where a window's sub-tokens
start in the batch, so `logits[row, offset : offset + length]` are that window's.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.nn.utils.rnn import pad_sequence

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# A packed row's cost per sub-token grows with its width (every sub-token attends over the whole row, masked
# or not): as 1 + width / ATTENTION_WIDTH. Fitted on the CPU; `make bench`'s serving check measures it.
ATTENTION_WIDTH = 400

Placement = tuple[int, int, int]  # (window index, row of the batch, first position in that row)


def padded_batches(
    features: dict[str, list], pad_token_id: int | None, batch_size: int, device: torch.device
) -> Iterator[tuple[list[Placement], dict[str, torch.Tensor]]]:
    """One window per row. Windows are sorted by length, so a batch pads only to its own longest window;
    right padding, as in training: positions keep their index and the mask hides the pad."""
    rows = features["input_ids"]
    keys = [k for k in MODEL_INPUTS if k in features]
    pad_values = {"input_ids": pad_token_id or 0, "attention_mask": 0, "token_type_ids": 0}
    order = sorted(range(len(rows)), key=lambda r: len(rows[r]))
    for first in range(0, len(order), batch_size):
        batch_rows = order[first : first + batch_size]
        batch = {
            key: pad_sequence(
                [torch.tensor(features[key][r], dtype=torch.long) for r in batch_rows],
                batch_first=True,
                padding_value=pad_values[key],
            ).to(device)
            for key in keys
        }
        yield [(r, b, 0) for b, r in enumerate(batch_rows)], batch


def padding_share(lengths: list[int], batch_size: int) -> float:
    """The share of padding `padded_batches` would add to these window lengths (0.25: a quarter more)."""
    ordered = sorted(lengths)
    padded = sum(
        len(ordered[i : i + batch_size]) * ordered[i : i + batch_size][-1] for i in range(0, len(ordered), batch_size)
    )
    return padded / max(1, sum(ordered)) - 1


def pack_rows(lengths: list[int], row_tokens: int) -> list[list[int]]:
    """Window indices per row, first-fit decreasing: each window, longest first, goes into the first row
    with room for it (a window longer than `row_tokens` gets a row of its own)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for window in sorted(range(len(lengths)), key=lambda w: -lengths[w]):
        for r, free in enumerate(room):
            if lengths[window] <= free:
                rows[r].append(window)
                room[r] -= lengths[window]
                break
        else:
            rows.append([window])
            room.append(row_tokens - lengths[window])
    return rows


def packed_shapes(lengths: list[int], row_tokens: int, batch_size: int) -> list[tuple[int, int]]:
    """(rows, width) of every pass `packed_batches` makes of windows of these lengths in rows of `row_tokens`."""
    fills = [sum(lengths[w] for w in row) for row in pack_rows(lengths, row_tokens)]
    passes = [fills[first : first + batch_size] for first in range(0, len(fills), batch_size)]
    return [(len(rows), max(rows)) for rows in passes]


def cheapest_row_tokens(lengths: list[int], max_row_tokens: int, batch_size: int) -> int:
    """The row length, a multiple of 8 from the longest window up to `max_row_tokens`, whose packed passes
    cost least (rows x width x (1 + width / ATTENTION_WIDTH), summed): long rows leave less room unused,
    short rows attend over fewer masked sub-tokens."""
    longest = min(max(lengths), max_row_tokens)
    candidates = {*range(-(-longest // 8) * 8, max_row_tokens, 8), max_row_tokens}

    def cost(row_tokens: int) -> float:
        shapes = packed_shapes(lengths, row_tokens, batch_size)
        return sum(rows * width * (1 + width / ATTENTION_WIDTH) for rows, width in shapes)

    return min(sorted(candidates), key=cost)


def packed_batches(
    features: dict[str, list],
    pad_token_id: int | None,
    batch_size: int,
    row_tokens: int,
    device: torch.device,
    mask_dtype: torch.dtype = torch.float32,
) -> Iterator[tuple[list[Placement], dict[str, torch.Tensor]]]:
    """`batch_size` rows of up to `row_tokens` sub-tokens per pass, each row holding several windows.

    The attention mask is 4-D and additive (batch, 1, query, key) in `mask_dtype` (the model's): 0 where a
    sub-token may attend (same window), the dtype's minimum elsewhere. A row's padding forms a window of
    its own, so no query is left with nothing to attend to."""
    ids = features["input_ids"]
    types = features.get("token_type_ids")
    rows = pack_rows([len(window) for window in ids], row_tokens)
    blocked = torch.finfo(mask_dtype).min
    for first in range(0, len(rows), batch_size):
        group = rows[first : first + batch_size]
        width = max(sum(len(ids[w]) for w in row) for row in group)
        input_ids, token_types, positions, segments, placements = [], [], [], [], []
        for b, row in enumerate(group):
            row_ids, row_types, row_positions, row_segments = [], [], [], []
            for s, window in enumerate(row):
                placements.append((window, b, len(row_ids)))
                row_ids += ids[window]
                row_types += types[window] if types is not None else [0] * len(ids[window])
                row_positions += range(len(ids[window]))
                row_segments += [s] * len(ids[window])
            pad = width - len(row_ids)
            input_ids.append(row_ids + [pad_token_id or 0] * pad)
            token_types.append(row_types + [0] * pad)
            positions.append(row_positions + [0] * pad)
            segments.append(row_segments + [-1] * pad)
        segment = torch.tensor(segments, device=device)
        same_window = segment[:, :, None] == segment[:, None, :]
        mask = torch.zeros(same_window.shape, dtype=mask_dtype, device=device).masked_fill_(~same_window, blocked)
        batch = {
            "input_ids": torch.tensor(input_ids, dtype=torch.long, device=device),
            "attention_mask": mask[:, None],
            "position_ids": torch.tensor(positions, dtype=torch.long, device=device),
        }
        if types is not None:
            batch["token_type_ids"] = torch.tensor(token_types, dtype=torch.long, device=device)
        yield placements, batch
