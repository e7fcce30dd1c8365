"""StreamVGGT: the top-level model and streaming sessions (its presets: config).

`StreamVGGT.forward_causal` runs a whole sequence with the frame-causal mask; a `StreamSession`
feeds one frame at a time through key/value caches and gives the same outputs (camera poses too
with camera_cache='causal'; with 'official' it reproduces the reference `inference()` instead).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from vggt_ros.model.aggregator import Aggregator
from vggt_ros.model.config import PRESETS, MergingConfig, StreamVGGTConfig, as_merging_config
from vggt_ros.model.heads import CameraHead, DPTHead, FlowHead
from vggt_ros.model.kv_cache import KVCache
from vggt_ros.model.merging import FramePartition, partition_frame
from vggt_ros.stream_types import FLOW_HEAD, HEADS, PRECISIONS, SessionOptions

HEAD_CHUNK = 8  # frames per dense-head call in forward_causal, to bound activation memory


def default_device() -> torch.device:
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def autocast_dtype(device: torch.device, precision: str = 'auto') -> torch.dtype | None:
    """Aggregator autocast dtype, None for fp32. 'auto' follows the reference: bf16 on GPUs with
    compute capability >= 8, fp16 on older ones, fp32 on CPU (CPUs without AVX512-BF16 or AMX
    emulate bf16; with them 'bf16' is faster: docs/training-experiments.md, last section)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if precision == 'auto':
        if device.type != 'cuda':
            return None
        return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16
    return {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[precision]


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Explicit either way, so an autocast region of the caller cannot leak in."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


class StreamVGGT(nn.Module):
    """Aggregator + camera, point and depth heads, and a flow head where the preset has one.

    The state_dict is the official checkpoint's without `track_head.*`: a tracker is of no use
    frame by frame.
    """

    def __init__(self, preset: str | StreamVGGTConfig = 'streamvggt-1b') -> None:
        super().__init__()
        if isinstance(preset, str):
            if preset not in PRESETS:
                raise ValueError(f'unknown preset {preset!r}; choose one of {sorted(PRESETS)}')
            preset = PRESETS[preset]
        self.config = config = preset
        dim = 2 * config.embed_dim  # heads see frame-block | global-block tokens
        self.aggregator = Aggregator(
            img_size=config.img_size,
            patch_size=config.patch_size,
            dim=config.embed_dim,
            depth=config.depth,
            num_heads=config.num_heads,
            mlp_ratio=config.mlp_ratio,
            num_register_tokens=config.num_register_tokens,
            dino_depth=config.dino_depth,
            dino_num_heads=config.dino_num_heads,
            output_layers={*config.dpt_layers, config.depth - 1},
            rope_freq=config.rope_freq,
        )
        self.camera_head = CameraHead(
            dim,
            config.camera_trunk_depth,
            config.camera_num_heads,
            config.mlp_ratio,
            config.camera_iterations,
        )
        dpt = dict(
            layers=config.dpt_layers,
            patch_size=config.patch_size,
            features=config.dpt_features,
            out_channels=config.dpt_out_channels,
        )
        self.point_head = DPTHead(dim, output_dim=4, activation='inv_log', **dpt)
        self.depth_head = DPTHead(dim, output_dim=2, activation='exp', **dpt)
        self.flow_head = FlowHead(dim) if config.flow_head else None

    @property
    def device(self) -> torch.device:
        return self.aggregator.camera_token.device

    @torch.inference_mode()
    def forward_causal(
        self, images: Tensor, precision: str = 'auto', heads: tuple[str, ...] = HEADS
    ) -> dict[str, Tensor]:
        """images [S, 3, H, W] in [0, 1] -> pose_enc [S, 9], depth, depth_conf, world_points_conf
        [S, H, W], world_points [S, H, W, 3] (those of `heads`); frame t sees frames 0..t only."""
        return self._run(images, precision, heads, all_iterations=False)

    def forward(
        self,
        images: Tensor,
        precision: str = 'auto',
        heads: tuple[str, ...] = HEADS,
        sequences: int = 1,
        head_precision: str = 'fp32',
    ) -> dict[str, Tensor]:
        """forward_causal with autograd, plus pose_enc_iterations [iterations, S, 9] (the camera
        head's estimate after each refinement, which VGGT's loss scores): how a sequence is
        trained (vggt_ros.training). A batch is `sequences` causal sequences of equal length,
        their frames one after the other in `images` and in every output. `head_precision`
        'bf16' runs the heads under autocast too (their outputs stay fp32): 1.4x faster training
        on a CPU with bf16 instructions."""
        head_dtype = autocast_dtype(self.device, head_precision)
        return self._run(images, precision, heads, True, sequences, head_dtype)

    def _run(
        self,
        images: Tensor,
        precision: str,
        heads: tuple[str, ...],
        all_iterations: bool,
        sequences: int = 1,
        head_dtype: torch.dtype | None = None,
    ) -> dict[str, Tensor]:
        if images.ndim != 4:
            raise ValueError(f'expected images [S, 3, H, W], got shape {tuple(images.shape)}')
        self._check_size(images.shape[1:])
        self.check_heads(heads)
        images = images.to(self.device, torch.float32)
        with _autocast(self.device, autocast_dtype(self.device, precision)):
            tokens = self.aggregator(images, sequences=sequences)
        return self._predict(
            tokens, images.shape[-2:], heads, None, all_iterations, sequences, head_dtype
        )

    def new_session(self, options: SessionOptions | None = None, **fields: Any) -> StreamSession:
        """A stream over this model: `options`, with any SessionOptions field overridden."""
        return StreamSession(self, replace(options or SessionOptions(), **fields))

    def compile_static_parts(self, **options) -> None:
        """torch.compile what has fixed shapes within a stream (DINO and frame blocks, dense heads);
        global blocks and the camera trunk attend over caches that grow, so they stay eager."""
        for module in (
            *self.aggregator.patch_embed.blocks,
            *self.aggregator.frame_blocks,
            self.point_head,
            self.depth_head,
        ):
            module.compile(**options)

    def check_heads(self, heads: tuple[str, ...]) -> None:
        """Raise if `heads` asks for a head this model lacks (only some have a flow head)."""
        if FLOW_HEAD in heads and self.flow_head is None:
            raise ValueError(
                'this model has no flow head (poses from matches need a preset built with one, '
                'such as small)'
            )

    def _check_size(self, shape: tuple[int, ...]) -> None:
        channels, height, width = shape
        p = self.config.patch_size
        if channels != 3 or height % p or width % p or not height or not width:
            raise ValueError(
                f'expected 3 x H x W images with H, W multiples of {p}, got {tuple(shape)}'
            )

    def _predict(
        self,
        tokens: dict[int, Tensor],
        image_size: tuple[int, int],
        heads: tuple[str, ...],
        camera_caches: list[KVCache] | None = None,
        all_iterations: bool = False,
        sequences: int = 1,
        head_dtype: torch.dtype | None = None,
    ) -> dict[str, Tensor]:
        """The heads asked for, in fp32 with autocast off (as the reference) unless `head_dtype`;
        dense heads in frame chunks without autograd; `all_iterations` adds pose_enc_iterations.
        """
        out = {}
        with _autocast(self.device, head_dtype):
            tokens = {layer: t.float() for layer, t in tokens.items()}
            if 'camera' in heads:
                encodings = self.camera_head(
                    tokens[self.config.depth - 1], camera_caches, sequences
                )
                out['pose_enc'] = encodings[-1]
                if all_iterations:
                    out['pose_enc_iterations'] = torch.stack(encodings)
            frames = len(next(iter(tokens.values())))
            chunk = frames if torch.is_grad_enabled() else HEAD_CHUNK  # autograd keeps them all
            chunks = [
                self._dense(tokens, slice(i, i + chunk), image_size, heads)
                for i in range(0, frames, chunk)
            ]
        for name in chunks[0]:
            out[name] = torch.cat([chunk[name] for chunk in chunks])
        return {name: value.float() for name, value in out.items()}

    def _dense(
        self,
        tokens: dict[int, Tensor],
        frames: slice,
        image_size: tuple[int, int],
        heads: tuple[str, ...],
    ) -> dict[str, Tensor]:
        tokens = {layer: t[frames] for layer, t in tokens.items()}
        start = self.aggregator.patch_start_idx
        out = {}
        if 'depth' in heads:
            depth, depth_conf = self.depth_head(tokens, start, image_size)
            out['depth'], out['depth_conf'] = depth[..., 0], depth_conf
        if 'point' in heads:
            out['world_points'], out['world_points_conf'] = self.point_head(
                tokens, start, image_size
            )
        if FLOW_HEAD in heads:
            out['flow'] = self.flow_head(tokens[self.config.depth - 1][:, start:])
        return out


class StreamSession:
    """One stream through a StreamVGGT: `step()` a frame at a time, `reset()` to start a new world.

    Options (vggt_ros.stream_types.SessionOptions):
    window: None keeps every frame (the reference); W >= 2 keeps the first frame (the anchor, which
        defines the world) and the W - 1 most recent frames, the current one included, in both the
        aggregator and the camera-trunk caches. With W >= frames seen, outputs equal window=None.
    camera_cache: 'official' = one trunk cache shared by the 4 refinement iterations (4 entries per
        frame; reproduces the reference `inference()`); 'causal' = one cache per iteration
        (reproduces `forward_causal`).
    merging: FastVGGT token merging (a MergingConfig, a mapping of its fields, or None = off):
        every frame but the anchor is merged in the global blocks and cached merged. Frames cached
        with and without merging share the window, so `set_merging()` may switch it between frames.
    precision: 'auto' | 'fp32' | 'bf16' | 'fp16' for the aggregator; heads always run in fp32.
    heads: the heads that run, for every frame of the session.
    """

    def __init__(self, model: StreamVGGT, options: SessionOptions) -> None:
        autocast_dtype(model.device, options.precision)  # validates for this device
        model.check_heads(options.heads)
        self.options = options
        self._merging = as_merging_config(options.merging)
        self.model = model
        window, config = options.window, model.config
        self._tokens = KVCache(config.depth, window)
        if options.camera_cache == 'official':
            self._camera = [KVCache(config.camera_trunk_depth, window)] * config.camera_iterations
        else:
            self._camera = [
                KVCache(config.camera_trunk_depth, window) for _ in range(config.camera_iterations)
            ]
        # The distinct caches, each once; the camera trunk's only if the camera head runs.
        camera = dict.fromkeys(self._camera) if 'camera' in options.heads else {}
        self._caches = [self._tokens, *camera]
        self._frames_seen = 0
        self._image_size: tuple[int, int] | None = None

    @property
    def window(self) -> int | None:
        return self.options.window

    @property
    def frames_seen(self) -> int:
        """Frames stepped since the session began or was last reset."""
        return self._frames_seen

    @property
    def window_fill(self) -> int:
        """Frames currently in the cache (anchor included)."""
        return self._tokens.num_frames

    @property
    def merging(self) -> MergingConfig | None:
        """The merging option that applies to the next frame."""
        return self._merging

    def set_merging(self, merging: MergingConfig | Mapping[str, Any] | None) -> None:
        """Switch token merging for the following frames; the cached frames stay as they are."""
        self._merging = as_merging_config(merging)

    @property
    def caches(self) -> tuple[KVCache, ...]:
        """The distinct key/value caches: the global blocks' first, then the camera trunk's."""
        return tuple(self._caches)

    @property
    def cache_bytes(self) -> int:
        """Bytes allocated by all key/value caches, their eviction backups included."""
        return sum(cache.nbytes + cache.backup_nbytes for cache in self._caches)

    def reset(self) -> None:
        """Forget all frames: the next becomes the anchor and world origin. Buffers are kept."""
        for cache in self._caches:
            cache.reset()
        self._frames_seen = 0
        self._image_size = None

    def step(self, image: Tensor) -> dict[str, Tensor]:
        """image [3, H, W] in [0, 1] -> pose_enc [9], depth, depth_conf, world_points_conf [H, W],
        world_points [H, W, 3], on the model's device. All frames of a stream share one size.

        A step is all or nothing: if it raises (out of memory in a late block, say, or a
        non-finite camera), every cache is rolled back and the session is as before the call, as
        if the frame never came."""
        with self.stepping(image) as out:
            return out

    @contextlib.contextmanager
    def stepping(self, image: Tensor) -> Iterator[dict[str, Tensor]]:
        """`step` whose frame is kept only once the caller's block finishes: an exception in the
        block (what the caller makes of the outputs) rolls the frame back as one in the model
        would, so a frame is never half taken."""
        model = self.model
        if image.ndim != 3:
            raise ValueError(f'expected an image [3, H, W], got shape {tuple(image.shape)}')
        model._check_size(image.shape)
        size = tuple(image.shape[-2:])
        if self._image_size not in (None, size):
            raise ValueError(
                f"frame size {size} differs from this stream's {self._image_size}; reset() first"
            )
        try:
            with torch.inference_mode():
                out = self._run(image, size)
            pose = out['pose_enc'][0] if 'pose_enc' in out else None  # a session without cameras
            if pose is not None and (not torch.isfinite(pose).all() or not pose[3:7].abs().sum()):
                raise FloatingPointError(
                    f'the model gave no usable camera ({pose.tolist()}); its keys and values '
                    'would spoil every later frame, so the frame is undone'
                )
            yield {name: value[0] for name, value in out.items()}
        except BaseException:
            with torch.inference_mode():  # the caches are inference tensors
                for cache in self._caches:
                    cache.rollback()
            raise
        with torch.inference_mode():
            for cache in self._caches:
                cache.commit()
        self._image_size = size
        self._frames_seen += 1

    def _run(self, image: Tensor, size: tuple[int, int]) -> dict[str, Tensor]:
        """The frame through the model, its keys and values added to the caches uncommitted."""
        model = self.model
        for cache in self._caches:
            cache.new_frame()
        images = image[None].to(model.device, torch.float32)
        partition = self._partition(size)
        with _autocast(model.device, autocast_dtype(model.device, self.options.precision)):
            tokens = model.aggregator(
                images,
                self._tokens,
                first=self._frames_seen == 0,
                merger=partition,
                merge_start=self._merging.merge_start if partition is not None else 0,
            )
        return model._predict(tokens, size, self.options.heads, self._camera)

    def _partition(self, size: tuple[int, int]) -> FramePartition | None:
        """This frame's merging partition; None when merging is off or for the anchor frame,
        which is kept whole as FastVGGT keeps its first frame whole."""
        merging = self._merging
        if merging is None or not merging.enabled or self._frames_seen == 0:
            return None
        rows, cols = (side // self.model.config.patch_size for side in size)
        return partition_frame(
            merging,
            rows,
            cols,
            self.model.aggregator.patch_start_idx,
            self._frames_seen,
            self.model.device,
        )
