"""FPN output levels computed only where the refinement stages read them (inference).

The head samples the FPN through RoIAlign alone, and only boxes smaller than 112 pixels read P2
(spec 4's level rule), yet P2's 3x3 output convolution is about a quarter of R50-FPN's
arithmetic. An :class:`OnDemandLevel` holds a level's input to that convolution; before each
stage pools, :meth:`OnDemandLevel.fill` computes the output on the ``tile x tile`` blocks holding
a row the stage samples that no earlier stage needed, and writes them into the flattened level
table, which holds zeros elsewhere. Every computed pixel is the dense convolution's (the same
weights on the same zero-padded input), so the pooled features equal the dense ones up to float
rounding. ``sparsercnn diagnose reads`` measures which fraction of the tiles a model reads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparsercnn.ops.multilevel_roi_align import FlattenedLevels

DEFAULT_TILE = 16
# Levels with fewer tiles than this stay dense: on small inputs the stages read nearly all of
# them and the bookkeeping costs more than it saves (a 160x160 demo image: P2 is 3x3 tiles,
# all read, 0.79x the dense model's speed on a busy machine).
MIN_TILES = 64


class OnDemandLevel:
    """One FPN level whose output convolution runs tile by tile, on request.

    Args:
        level: index of the level in the flattened table (0: P2).
        merged: ``(B, C, H, W)`` input of the level's output convolution (lateral + top-down).
        conv: the level's 3x3, stride-1, padding-1 output convolution.
        tile: side of the computed blocks, in level pixels.
    """

    def __init__(self, level: int, merged: Tensor, conv: nn.Conv2d, tile: int = DEFAULT_TILE):
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1):
            raise ValueError("OnDemandLevel needs a 3x3 convolution with stride 1 and padding 1")
        self.level = level
        self.conv = conv
        self.tile = tile
        batch, _, height, width = merged.shape
        self.height, self.width = height, width
        self.tiles_y, self.tiles_x = -(-height // tile), -(-width // tile)
        # Zero padding: 1 pixel (the convolution's) and up to whole tiles at the bottom right.
        pad_bottom = 1 + self.tiles_y * tile - height
        pad_right = 1 + self.tiles_x * tile - width
        padded = F.pad(merged, (1, pad_right, 1, pad_bottom))
        # (B, C, tiles_y, tiles_x, tile + 2, tile + 2): overlapping windows, a view.
        self.windows = padded.unfold(2, tile + 2, tile).unfold(3, tile + 2, tile)
        self.done = torch.zeros(batch, self.tiles_y, self.tiles_x, dtype=torch.bool)
        self.device = merged.device

    @staticmethod
    def pays(height: int, width: int, tile: int = DEFAULT_TILE) -> bool:
        """Whether a level of ``height x width`` pixels is large enough to compute on demand."""
        return -(-height // tile) * -(-width // tile) >= MIN_TILES

    @property
    def computed_fraction(self) -> float:
        """Fraction of the level's tiles computed so far."""
        return float(self.done.float().mean())

    def placeholder(self, like: Tensor) -> Tensor:
        """Zeros of the level's output shape ``(B, C_out, H, W)``, dtype and layout of ``like``
        (another output level), to be flattened with the others."""
        batch = self.done.shape[0]
        shape = (batch, self.conv.out_channels, self.height, self.width)
        return like.new_zeros(shape).contiguous(memory_format=torch.channels_last)

    def fill(self, levels: FlattenedLevels, rows: Tensor) -> None:
        """Compute the tiles holding any of ``rows`` not computed yet, into ``levels.table``.

        Args:
            levels: the flattened levels, with this level's placeholder at index ``level``.
            rows: int64 table rows about to be read (any levels; others are ignored).
        """
        start = int(levels.level_starts[self.level])
        count = self.done.shape[0] * self.height * self.width
        local = rows[(rows >= start) & (rows < start + count)] - start
        if local.numel() == 0:
            return
        image, pixel = local // (self.height * self.width), local % (self.height * self.width)
        tile_y = pixel // self.width // self.tile
        tile_x = pixel % self.width // self.tile
        flat = (image * self.tiles_y + tile_y) * self.tiles_x + tile_x
        needed = torch.zeros(self.done.numel(), dtype=torch.bool, device=rows.device)
        needed[flat] = True
        new = needed.cpu() & ~self.done.flatten()
        if not new.any():
            return
        self.done.view(-1)[new] = True
        which = new.nonzero().squeeze(1).to(self.device)
        per_image = self.tiles_y * self.tiles_x
        image = which // per_image
        tile_y, tile_x = which % per_image // self.tiles_x, which % self.tiles_x
        patches = self.windows.permute(0, 2, 3, 1, 4, 5)[image, tile_y, tile_x]  # (n, C, t+2, t+2)
        patches = patches.contiguous(memory_format=torch.channels_last)
        out = F.conv2d(patches, self.conv.weight, self.conv.bias)  # (n, C_out, t, t)
        self._write(levels.table, start, out, image, tile_y, tile_x)

    def _write(
        self, table: Tensor, start: int, out: Tensor, image: Tensor, tile_y: Tensor, tile_x: Tensor
    ) -> None:
        """Copy tile outputs ``(n, C, t, t)`` to their table rows, dropping pixels past the
        level's bottom and right edges."""
        offsets = torch.arange(self.tile, device=out.device)
        y = tile_y[:, None] * self.tile + offsets  # (n, t)
        x = tile_x[:, None] * self.tile + offsets
        rows = start + image[:, None, None] * (self.height * self.width)
        rows = rows + y[:, :, None] * self.width + x[:, None, :]  # (n, t, t)
        inside = (y[:, :, None] < self.height) & (x[:, None, :] < self.width)
        values = out.permute(0, 2, 3, 1)  # (n, t, t, C)
        table[rows[inside]] = values[inside].to(table.dtype)
