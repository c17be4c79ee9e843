"""Weight files, whatever the architecture: reading, writing and recognising them.

:func:`read_state_dict` reads the tensors (and, from a safetensors header, the config) of a
``.safetensors`` file, an official ``.pkl`` checkpoint or a state_dict saved by
``torch.save``; :func:`save_safetensors` writes one. Nothing here unpickles arbitrary
objects: ``.pkl``/``.pt``/``.pth`` files go through ``torch.load(..., weights_only=True)``.
A safetensors file written by :func:`save_safetensors` carries its architecture's class
name (:data:`ARCH_KEY`) and config (:data:`CONFIG_KEY`) in its header; a denoiser's also
names the predictor it pairs with (:data:`PREDICTOR_KEY`, :data:`PREDICTOR_SHA_KEY`).
A file that cannot be used raises :class:`WeightsError`.

Building a model from the tensors is :mod:`.weights`' job, which also re-exports the
names here: import them from :mod:`napari_deblur.models.weights`.
"""

import hashlib
import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from .registry import DENOISER, available_models

PICKLE_SUFFIXES = {".pkl", ".pt", ".pth", ".ckpt", ".bin"}
CONFIG_KEY = "napari_deblur.config"  # safetensors header: the architecture's config as JSON
ARCH_KEY = "napari_deblur.architecture"  # safetensors header: the class name
PREDICTOR_KEY = "napari_deblur.predictor"  # a denoiser's header: the predictor it pairs with
PREDICTOR_SHA_KEY = "napari_deblur.predictor_sha256"  # ... and the checksum of that predictor's weights
DENOISER_MARK = "embed.mlp.0.weight"  # a tensor only the denoiser's noise embedding has


class WeightsError(ValueError):
    """A weights file or bundled model name that cannot be used, and why."""


def sha256_of(path) -> str:
    """The sha256 of a file, as a hex string, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_state_dict(obj, path) -> dict:
    """Find the tensors in what torch.load returned (official {'model': sd, ...} too)."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "params_ema", "params", "ema"):
            if isinstance(obj.get(key), dict):
                return _extract_state_dict(obj[key], path)
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {k.removeprefix("module."): v for k, v in obj.items()}
    raise WeightsError(
        f"{path} holds no state_dict: expected a dict of tensors or {{'model': state_dict, ...}}, "
        f"got {type(obj).__name__}" + (f" with keys {list(obj)[:6]}" if isinstance(obj, dict) else "")
    )


def read_state_dict(path) -> tuple[dict, dict]:
    """Tensors and metadata (config) from a .safetensors or a pickle-format file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"{path} is not a readable safetensors file ({err})") from None
        config = header_config(meta, path)
        check_finite(state, path)
        return state, config
    if path.suffix not in PICKLE_SUFFIXES:
        raise WeightsError(
            f"{path.name}: unknown weights format {path.suffix!r}; use .safetensors, an official "
            f".pkl checkpoint or a state_dict saved as .pt/.pth"
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise WeightsError(
            f"{path.name} cannot be read safely: it holds Python objects besides tensors, which "
            f"weights_only loading refuses ({first_line}). Save model.state_dict() instead."
        ) from None
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise WeightsError(f"{path.name} is not a PyTorch checkpoint ({type(err).__name__}: {err})") from None
    state = _extract_state_dict(obj, path)
    check_finite(state, path)
    return state, {}


def read_header(path) -> dict:
    """The string metadata of a safetensors file (``{}`` for other formats)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def header_config(meta: dict, path) -> dict:
    """The architecture config in a safetensors header (``{}`` when it has none), or a
    :class:`WeightsError` naming the file when it is not a JSON object."""
    if CONFIG_KEY not in meta:
        return {}
    try:
        config = json.loads(meta[CONFIG_KEY])
    except ValueError as err:
        raise WeightsError(f"{Path(path).name}: its {CONFIG_KEY} header is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{Path(path).name}: its {CONFIG_KEY} header must be a JSON object, got {config!r:.80}")
    return config


def is_denoiser(name_or_path) -> bool:
    """True for a bundled ResidualDenoiser name or a weights file that holds one: a safetensors
    file whose header names the class, a pickle whose tensors include the noise embedding's
    (:data:`DENOISER_MARK`). Anything else, unreadable files included, is not."""
    if str(name_or_path) in available_models(DENOISER):
        return True
    path = Path(str(name_or_path)).expanduser()
    if not path.is_file():
        return False
    if path.suffix == ".safetensors":
        return read_header(path).get(ARCH_KEY) == DENOISER
    if path.suffix in PICKLE_SUFFIXES:
        try:
            state, _ = read_state_dict(path)
        except WeightsError:
            return False  # not weights at all: the XYDeblur loader reports why
        return DENOISER_MARK in state
    return False


def check_finite(state: dict, path) -> None:
    """Refuse weights with NaN or infinite values: a network built from them turns every
    image into NaN (which an integer image then shows as all zeros)."""
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise WeightsError(
            f"{Path(path).name} holds non-finite weights (NaN or inf) in {len(broken)} tensor(s), e.g. "
            f"{', '.join(broken[:3])}: the file is damaged (or training diverged); use another file"
        )


def save_safetensors(model: torch.nn.Module, path, *, half: bool = False, metadata: dict | None = None) -> Path:
    """Write a model's weights as safetensors, with its architecture in the header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    meta = {ARCH_KEY: type(model).__name__, CONFIG_KEY: json.dumps(getattr(model, "config", {}))}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    path.write_bytes(canonical_header(save(state, metadata=meta)))
    return path


def canonical_header(data: bytes) -> bytes:
    """A safetensors file's bytes with its header's metadata keys sorted (and the tensors in data
    order), so the same weights and metadata always give the same bytes and sha256.

    safetensors writes the metadata in hash-map order, which changes from one save to the next:
    re-exporting identical weights gave a new checksum and broke a denoiser's pin to them."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    meta = header.pop("__metadata__", None)
    ordered = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    ordered.update(sorted(header.items(), key=lambda item: item[1]["data_offsets"]))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors pads it
    return len(text).to_bytes(8, "little") + text + data[8 + size :]
