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

from nertune.data.align import IGNORE_INDEX

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


def position_offset(model: torch.nn.Module) -> int:
    """The position id of a window's first sub-token: 0, or `padding_idx + 1` for RoBERTa-family embeddings,
    which number positions from the padding index when they derive them from the input ids."""
    base = getattr(model, "base_model", model)
    embeddings = getattr(base, "embeddings", None)
    if embeddings is not None and hasattr(embeddings, "create_position_ids_from_input_ids"):
        return int(embeddings.padding_idx) + 1
    return 0


def pack_group(
    features: dict[str, list],
    rows: list[list[int]],
    pad_token_id: int | None,
    device: torch.device,
    mask_dtype: torch.dtype = torch.float32,
    first_position: int = 0,
) -> tuple[list[Placement], dict[str, torch.Tensor]]:
    """One forward pass of `rows` (window indices per row, e.g. from `pack_rows`), padded to the fullest row.

    The attention mask is 4-D (batch, 1, query, key): additive in `mask_dtype` (0 where a sub-token may attend,
    i.e. in the same window, the dtype's minimum elsewhere), or True/False with `mask_dtype=torch.bool`. A row's
    padding forms a window of its own, so no query is left with nothing to attend to. Positions restart at
    `first_position` in every window (`position_offset`). A `labels` feature is packed too, padded with -100."""
    ids = features["input_ids"]
    types = features.get("token_type_ids")
    labels = features.get("labels")
    width = max(sum(len(ids[w]) for w in row) for row in rows)
    input_ids, token_types, positions, segments, row_labels, placements = [], [], [], [], [], []
    for b, row in enumerate(rows):
        packed_ids, packed_types, packed_positions, packed_segments, packed_labels = [], [], [], [], []
        for s, window in enumerate(row):
            placements.append((window, b, len(packed_ids)))
            packed_ids += ids[window]
            packed_types += types[window] if types is not None else [0] * len(ids[window])
            packed_positions += range(first_position, first_position + len(ids[window]))
            packed_segments += [s] * len(ids[window])
            if labels is not None:
                packed_labels += labels[window]
        pad = width - len(packed_ids)
        input_ids.append(packed_ids + [pad_token_id or 0] * pad)
        token_types.append(packed_types + [0] * pad)
        positions.append(packed_positions + [first_position] * pad)
        segments.append(packed_segments + [-1] * pad)
        row_labels.append(packed_labels + [IGNORE_INDEX] * pad)
    segment = torch.tensor(segments, device=device)
    same_window = segment[:, :, None] == segment[:, None, :]
    if mask_dtype == torch.bool:
        mask = same_window
    else:
        blocked = torch.finfo(mask_dtype).min
        mask = torch.zeros(same_window.shape, dtype=mask_dtype, device=device).masked_fill_(~same_window, blocked)
    batch = {
        "input_ids": torch.tensor(input_ids, dtype=torch.long, device=device),
        "attention_mask": mask[:, None],
        "position_ids": torch.tensor(positions, dtype=torch.long, device=device),
    }
    if types is not None:
        batch["token_type_ids"] = torch.tensor(token_types, dtype=torch.long, device=device)
    if labels is not None:
        batch["labels"] = torch.tensor(row_labels, dtype=torch.long, device=device)
    return placements, batch


def packed_batches(
    features: dict[str, list],
    pad_token_id: int | None,
    batch_size: int,
    row_tokens: int,
    device: torch.device,
    mask_dtype: torch.dtype = torch.float32,
) -> Iterator[tuple[list[Placement], dict[str, torch.Tensor]]]:
    """`batch_size` rows of up to `row_tokens` sub-tokens per pass, each row holding several windows
    (`pack_group`: block-diagonal additive mask in `mask_dtype`, the model's)."""
    rows = pack_rows([len(window) for window in features["input_ids"]], row_tokens)
    for first in range(0, len(rows), batch_size):
        yield pack_group(features, rows[first : first + batch_size], pad_token_id, device, mask_dtype)
