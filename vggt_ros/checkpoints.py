"""Find, read and load StreamVGGT / VGGT-1B weights safely.

A checkpoint is a local file (.pth/.pt/.bin torch state_dict, or .safetensors) or a Hugging Face id
(`lch01/StreamVGGT`, `facebook/VGGT-1B`, or `owner/repo:file`). Files are read with
`weights_only=True`, so a checkpoint can never run code, and memory-mapped, with the model built
on the meta device, so loading the 5 GB model never holds two copies of the weights.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from vggt_ros.model import StreamVGGT
from vggt_ros.weights import describe, shipped_weights

log = logging.getLogger(__name__)

# Default file of each known Hugging Face repository (spec §7.1).
HF_DEFAULT_FILES = {
    'lch01/StreamVGGT': 'checkpoints.pth',
    'facebook/VGGT-1B': 'model.pt',
    'facebook/VGGT-1B-Commercial': 'model.pt',
}
# The tracker is useless frame by frame, so the model has no track head; its keys are dropped.
IGNORED_PREFIXES = ('track_head.',)
# Wrappers added by DataParallel/DDP or by training scripts that save {"model": state_dict, ...}.
_KEY_PREFIXES = ('module.', 'model.')
_WRAPPER_KEYS = ('model', 'state_dict')
_FILE_SUFFIXES = {'.pth', '.pt', '.bin', '.ckpt', '.safetensors'}
_HF_ID = re.compile(r'^(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<file>[^:]+))?$')
_RANDOM_INIT_PRESETS = {'tiny'}


class CheckpointError(ValueError):
    """A checkpoint could not be found, read, or matched to the model."""


def resolve_checkpoint(spec: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Local path of a checkpoint: an existing file, or a Hugging Face id fetched into the cache."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    text = str(spec)
    match = _HF_ID.match(text)
    looks_local = text.startswith(('.', '/', '~')) or (
        match and not match['file'] and path.suffix in _FILE_SUFFIXES
    )
    if match is None or looks_local:
        raise CheckpointError(
            f'checkpoint file not found: {path}. Pass an existing .pth/.pt/.safetensors file or a '
            f'Hugging Face id such as lch01/StreamVGGT.'
        )
    repo = match['repo']
    filename = match['file'] or HF_DEFAULT_FILES.get(repo)
    if filename is None:
        raise CheckpointError(f'no default weight file known for {repo}; name it as {repo}:FILE')
    return _download(repo, filename, cache_dir)


def _download(repo: str, filename: str, cache_dir: str | os.PathLike | None) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise CheckpointError(
            f'checkpoint {repo} is a Hugging Face id but huggingface_hub is not installed: '
            f'pip install huggingface_hub, or pass a local file. {_placement_help(repo, filename)}'
        ) from exc
    try:
        return Path(hf_hub_download(repo, filename, cache_dir=cache_dir))
    except (
        OSError,
        ValueError,
    ) as exc:  # hub HTTP/offline errors are OSErrors, bad ids ValueErrors
        raise CheckpointError(
            f'could not get {filename} from Hugging Face repo {repo} '
            f'(offline, or not found: {_first_line(exc)}). {_placement_help(repo, filename)}'
        ) from exc


def _placement_help(repo: str, filename: str) -> str:
    return (
        f'On a machine with network access download '
        f'https://huggingface.co/{repo}/resolve/main/{filename} '
        f'(e.g. `hf download {repo} {filename} --local-dir ~/vggt_weights`), copy it here and '
        f'pass the local path as the checkpoint (e.g. checkpoint:=$HOME/vggt_weights/{filename}); '
        f'or copy a Hugging Face cache that holds it to this machine and point HF_HOME at it.'
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a checkpoint as a plain state_dict: unwrapped, prefixes stripped, tracker dropped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint file not found: {path}')
    try:
        raw = _read_safetensors(path) if path.suffix == '.safetensors' else _read_torch(path)
    except pickle.UnpicklingError as exc:
        # `from None`: torch's message advises turning the protection off, which we never do.
        raise CheckpointError(_refused_message(path, exc)) from None
    except Exception as exc:  # a foreign file can fail to parse in many ways; all mean "unreadable"
        raise CheckpointError(
            f'cannot read checkpoint {path}: {_first_line(exc)}. Expected a state_dict saved with '
            f'torch.save or a .safetensors file; pickles that need code (anything beyond tensors '
            f'and plain containers) are refused.'
        ) from exc
    return _normalise(raw, path)


def _refused_message(path: Path, exc: pickle.UnpicklingError) -> str:
    """Why torch's code-free unpickler refused the file, without torch's advice to disable it."""
    lines = (line.strip().rstrip('.') for line in str(exc).splitlines())
    reasons = [line for line in lines if line and 'weights' not in line.lower()]
    reason = f' ({"; ".join(reasons)})' if reasons else ''
    return (
        f'cannot read checkpoint {path}: it is not a plain state_dict (named tensors in plain '
        f'containers only), so the code-free loader refused it{reason}. It may hold code, or not '
        f'be a torch file at all. If it is a checkpoint you trust, convert it yourself, outside '
        f'this node: in a Python session of your own, unpickle it once with the full '
        f'(code-running) torch.load, then save only its tensors, e.g. '
        f'torch.save(model.state_dict(), "weights.pth") or '
        f'safetensors.torch.save_file(state_dict, "weights.safetensors"), and pass that file.'
    )


def _read_torch(path: Path) -> object:
    # mmap needs the zip format (torch >= 1.6); legacy pickles are still read, safely, into memory.
    return torch.load(path, map_location='cpu', weights_only=True, mmap=zipfile.is_zipfile(path))


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(path, device='cpu')


def _normalise(raw: object, source: Path) -> dict[str, Tensor]:
    state = _unwrap(raw)
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f'{source} does not hold a state_dict (found {type(state).__name__})')
    not_tensors = [
        str(k) for k, v in state.items() if not (isinstance(k, str) and isinstance(v, Tensor))
    ]
    if not_tensors:
        raise CheckpointError(f'{source}: entries that are not named tensors: {not_tensors[:5]}')
    state = _strip_prefixes(dict(state))
    dropped = [k for k in state if k.startswith(IGNORED_PREFIXES)]
    if dropped:
        log.debug('dropping %d unused keys (%s)', len(dropped), ', '.join(IGNORED_PREFIXES))
    return {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}


def _unwrap(raw: object) -> object:
    if isinstance(raw, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(raw.get(key), Mapping):
                return raw[key]
    return raw


def _strip_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    while prefix := next((p for p in _KEY_PREFIXES if all(k.startswith(p) for k in state)), None):
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def check_state_dict(state: Mapping[str, Tensor], model: nn.Module, limit: int = 5) -> None:
    """Raise CheckpointError naming the first missing, unexpected and mis-shaped keys, if any."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}'
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = [
        f'{len(items)} {what} (first: {", ".join(items[:limit])})'
        for what, items in (
            ('missing keys', missing),
            ('unexpected keys', unexpected),
            ('shape mismatches', mismatched),
        )
        if items
    ]
    if problems:
        raise CheckpointError(
            'checkpoint does not match the model: '
            + '; '.join(problems)
            + '. Is it for the chosen preset?'
        )


def load_model(
    checkpoint: str | os.PathLike | None,
    preset: str = 'streamvggt-1b',
    device: str | torch.device = 'cpu',
    cache_dir: str | os.PathLike | None = None,
) -> StreamVGGT:
    """Build the model for `preset` in eval mode on `device`, loading `checkpoint` strictly
    (None: the preset's shipped weights, else random ones where the preset allows it)."""
    checkpoint = checkpoint if checkpoint is not None else shipped_weights(preset)
    if checkpoint is None:
        return _random_model(preset).to(device).eval().requires_grad_(False)
    state = load_state_dict_file(resolve_checkpoint(checkpoint, cache_dir))
    # On the meta device nothing is allocated: load_state_dict(assign=True) adopts the (memory-
    # mapped) checkpoint tensors instead of copying them into a second set of weights.
    with torch.device('meta'):
        model = StreamVGGT(preset=preset)
    check_state_dict(state, model)
    expected = model.state_dict()
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    left_on_meta = [
        name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta
    ]
    if left_on_meta:
        raise CheckpointError(f'model tensors not set by the checkpoint: {left_on_meta[:5]}')
    return model.to(device).eval().requires_grad_(False)


def weights_description(checkpoint: str | os.PathLike | None, preset: str) -> str | None:
    """What load_model(checkpoint, preset) runs, in words for logs and reports; None when that
    is random weights."""
    if checkpoint:
        return f'preset {preset}, checkpoint {checkpoint}'
    shipped = shipped_weights(preset)
    if shipped is None:
        return None
    return f'preset {preset}, the weights shipped with vggt_ros: {describe(shipped)}'.rstrip(': ')


def missing_checkpoint(checkpoint: str | os.PathLike | None, preset: str) -> str | None:
    """Why `preset` cannot run without `checkpoint` (no weights shipped, none random), if so:
    to say before anything else is said about the weights."""
    if checkpoint or shipped_weights(preset) is not None or preset in _RANDOM_INIT_PRESETS:
        return None
    return (
        f'preset {preset!r} needs a checkpoint: pass a local .pth/.safetensors file or a '
        f'Hugging Face id ({", ".join(HF_DEFAULT_FILES)}), or use preset small (shipped '
        f'weights). {_placement_help("lch01/StreamVGGT", "checkpoints.pth")}'
    )


def _random_model(preset: str) -> StreamVGGT:
    if reason := missing_checkpoint(None, preset):
        raise CheckpointError(reason)
    log.warning(
        'preset %r without a checkpoint: using RANDOM weights, outputs are meaningless', preset
    )
    return StreamVGGT(preset=preset)
