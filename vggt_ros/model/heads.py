"""Heads on the aggregator's tokens: camera pose (from camera tokens), DPT maps (from patch tokens).

Both run in fp32. The camera head attends across frames, so like the global blocks it runs either
over a whole causal sequence (mask) or one frame at a time against key/value caches; the DPT heads
are per frame and stateless.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggt_ros.model.kv_cache import KVCache
from vggt_ros.model.layers import Block, Mlp, frame_causal_mask

POSE_DIM = 9  # translation (3), quaternion xyzw (4), field of view h, w (2)
ADALN_EPS = 1e-6
DPT_HIDDEN = 32  # channels between the two output convolutions
PE_RATIO = 0.1  # weight of the uv positional embedding added to DPT feature maps


def activate_pose(encoding: Tensor) -> Tensor:
    """Translation and quaternion linear, fields of view ReLU."""
    return torch.cat([encoding[..., :7], F.relu(encoding[..., 7:])], dim=-1)


class CameraHead(nn.Module):
    """Last-layer tokens [S, P, dim] -> pose encodings [S, 9] after each of `num_iterations`.

    Each iteration modulates the same normalised camera token (adaLN) with the embedding of the
    current raw estimate, runs the trunk across frames and adds the branch output to the estimate.
    """

    def __init__(
        self,
        dim: int,
        trunk_depth: int = 4,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_iterations: int = 4,
    ) -> None:
        super().__init__()
        self.num_iterations = num_iterations
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_DIM))
        self.trunk = nn.Sequential(*(Block(dim, num_heads, mlp_ratio) for _ in range(trunk_depth)))
        self.token_norm = nn.LayerNorm(dim)
        self.trunk_norm = nn.LayerNorm(dim)
        self.embed_pose = nn.Linear(POSE_DIM, dim)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.adaln_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=ADALN_EPS)
        self.pose_branch = Mlp(dim, dim // 2, POSE_DIM)

    def forward(
        self, tokens: Tensor, caches: Sequence[KVCache] | None = None, sequences: int = 1
    ) -> list[Tensor]:
        """Pose encodings [S, 9] after each refinement iteration, the last the estimate (VGGT's
        loss scores them all). Without caches the S frames are a causal sequence, or `sequences`
        of them one after the other. With caches (one per iteration, each with a layer per trunk
        block and already told `new_frame()`), tokens is the stream's next frame; passing one
        cache for every iteration reproduces the reference's streaming quirk."""
        length = tokens.shape[0] // sequences
        camera = self.token_norm(tokens[:, 0].reshape(sequences, length, -1))
        mask = None if caches is not None else frame_causal_mask(length, 1, tokens.device)
        encoding, encodings = None, []
        for iteration in range(self.num_iterations):
            if encoding is None:
                estimate = self.empty_pose_tokens.expand(sequences, length, -1)
            else:
                estimate = encoding.detach()
            shift, scale, gate = self.poseLN_modulation(self.embed_pose(estimate)).chunk(3, dim=-1)
            x = gate * (self.adaln_norm(camera) * (1 + scale) + shift) + camera
            x = self._trunk(x, mask, None if caches is None else caches[iteration])
            delta = self.pose_branch(self.trunk_norm(x))
            encoding = delta if encoding is None else encoding + delta
            encodings.append(activate_pose(encoding.flatten(0, 1)))
        return encodings

    def _trunk(self, x: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        for depth, block in enumerate(self.trunk):
            x = block(x, attn_mask=mask, cache=None if cache is None else cache[depth])
        return x


class FlowHead(nn.Module):
    """Last-layer patch tokens [S, P, dim] -> [S, P, 2]: where the point at each patch's centre
    is in the session's first frame, in patches from that centre (x right, y down).

    Not in VGGT: a linear readout that this project's from-scratch models carry, so that a pose
    can be solved from the matches and the first frame's depth (vggt_ros.pose_from_matches).
    Fitted with it after training, it carries `depth_tilt`: how far the model's depth leans
    across the image per image width the content moved since the last frame, which poses from
    matches take out of the depth (pose_from_matches.level_depth); zero until fitted.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2)
        self.register_buffer('depth_tilt', torch.zeros(()))

    def forward(self, patch_tokens: Tensor) -> Tensor:
        return self.proj(patch_tokens)


class ResidualConvUnit(nn.Module):
    """relu -> conv -> relu -> conv, plus a skip of relu(x), not x: the reference's ReLU is
    in-place, so its skip connection sees the rectified input."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class FeatureFusionBlock(nn.Module):
    """Adds a refined skip feature map, refines, upsamples (to `size`, else x2) and projects."""

    def __init__(self, features: int, has_skip: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        if has_skip:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self, x: Tensor, skip: Tensor | None = None, size: tuple[int, int] | None = None
    ) -> Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        resize = {'size': size} if size is not None else {'scale_factor': 2}
        x = F.interpolate(x, **resize, mode='bilinear', align_corners=True)
        return self.out_conv(x)


def _make_scratch(in_channels: Sequence[int], features: int, output_dim: int) -> nn.Module:
    """The reference's plain `scratch` container (its attribute names are checkpoint keys)."""
    scratch = nn.Module()
    for i, channels in enumerate(in_channels, start=1):
        setattr(scratch, f'layer{i}_rn', nn.Conv2d(channels, features, 3, padding=1, bias=False))
    for i in range(1, len(in_channels) + 1):
        setattr(
            scratch, f'refinenet{i}', FeatureFusionBlock(features, has_skip=i < len(in_channels))
        )
    scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
    scratch.output_conv2 = nn.Sequential(
        nn.Conv2d(features // 2, DPT_HIDDEN, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(DPT_HIDDEN, output_dim, 1),
    )
    return scratch


def _sincos(positions: Tensor, dim: int) -> Tensor:
    """[N] -> [N, dim] = [sin(p w), cos(p w)], w_i = 100^(-i / (dim/2)), computed in float64."""
    exponents = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2)
    angles = positions.double()[:, None] / 100.0 ** exponents[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def _centred_grid(size: int, span: float, device: torch.device) -> Tensor:
    end = span * (size - 1) / size
    return torch.linspace(-end, end, size, device=device)


def uv_embedding(
    channels: int, rows: int, cols: int, aspect: float, device: torch.device
) -> Tensor:
    """[channels, rows, cols] sin/cos embedding of a uv grid spanning the unit image diagonal,
    aspect = W / H."""
    diagonal = (aspect**2 + 1.0) ** 0.5
    xs = _centred_grid(cols, aspect / diagonal, device)
    ys = _centred_grid(rows, 1.0 / diagonal, device)
    u, v = torch.meshgrid(xs, ys, indexing='xy')
    half = channels // 2
    embedding = torch.cat([_sincos(u.reshape(-1), half), _sincos(v.reshape(-1), half)], dim=-1)
    return embedding.view(rows, cols, channels).permute(2, 0, 1)


def _add_uv_embedding(x: Tensor, aspect: float) -> Tensor:
    channels, rows, cols = x.shape[1:]
    return x + PE_RATIO * uv_embedding(channels, rows, cols, aspect, x.device).to(x.dtype)


def _activate(x: Tensor, activation: str) -> Tensor:
    if activation == 'exp':
        return torch.exp(x)
    if activation == 'inv_log':
        return torch.sign(x) * torch.expm1(x.abs())
    raise ValueError(f'unknown DPT activation {activation!r}')


class DPTHead(nn.Module):
    """Patch tokens of four aggregator layers -> per-pixel values [S, H, W, output_dim - 1] and a
    confidence 1 + exp(.) [S, H, W] from the last output channel."""

    def __init__(
        self,
        dim: int,
        output_dim: int,
        activation: str,
        layers: Sequence[int],
        patch_size: int = 14,
        features: int = 256,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
    ) -> None:
        super().__init__()
        self.layers = tuple(layers)
        self.patch_size = patch_size
        self.activation = activation
        self.norm = nn.LayerNorm(dim)
        self.projects = nn.ModuleList(nn.Conv2d(dim, channels, 1) for channels in out_channels)
        first, second, _, fourth = out_channels
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(first, first, kernel_size=4, stride=4),
                nn.ConvTranspose2d(second, second, kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(fourth, fourth, kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = _make_scratch(out_channels, features, output_dim)

    def forward(
        self, tokens: dict[int, Tensor], patch_start_idx: int, image_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        height, width = image_size
        rows, cols = height // self.patch_size, width // self.patch_size
        aspect = width / height
        maps = []
        for layer, project, resize in zip(
            self.layers, self.projects, self.resize_layers, strict=True
        ):
            x = self.norm(tokens[layer][:, patch_start_idx:])
            x = x.transpose(1, 2).reshape(x.shape[0], -1, rows, cols)
            maps.append(resize(_add_uv_embedding(project(x), aspect)))
        x = self._fuse(maps)
        x = F.interpolate(
            x,
            size=(rows * self.patch_size, cols * self.patch_size),
            mode='bilinear',
            align_corners=True,
        )
        x = self.scratch.output_conv2(_add_uv_embedding(x, aspect)).permute(0, 2, 3, 1)
        return _activate(x[..., :-1], self.activation), 1 + torch.exp(x[..., -1])

    def _fuse(self, maps: list[Tensor]) -> Tensor:
        """Coarse-to-fine RefineNet fusion of the four resized maps, then the first output conv."""
        s = self.scratch
        l1, l2, l3, l4 = (getattr(s, f'layer{i}_rn')(m) for i, m in enumerate(maps, start=1))
        x = s.refinenet4(l4, size=l3.shape[2:])
        x = s.refinenet3(x, l3, size=l2.shape[2:])
        x = s.refinenet2(x, l2, size=l1.shape[2:])
        x = s.refinenet1(x, l1)
        return s.output_conv1(x)
