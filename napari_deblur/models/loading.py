"""Reading and writing weights: bundled names, safetensors, official .pkl, state_dicts.

Nothing here unpickles arbitrary objects: ``.pkl``/``.pt``/``.pth`` files go
through ``torch.load(..., weights_only=True)``. Every way a file can be wrong
(missing, unreadable, not XYDeblur, wrong shapes, damaged bundled file) raises
:class:`WeightsError` with a message that says what is wrong.

A bundled model is ``resources/<name>.safetensors`` plus ``resources/<name>.json``,
its manifest (sha256, architecture config, recipe, data, measured quality).
"""

import hashlib
import json
import math
import os
import pickle
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..resources import resources_dir
from .xydeblur import XYDeblur, config_from_state_dict

PICKLE_SUFFIXES = {".pkl", ".pt", ".pth", ".ckpt", ".bin"}
CONFIG_KEY = "napari_deblur.config"  # safetensors header: the architecture's config as JSON
ARCH_KEY = "napari_deblur.architecture"  # safetensors header: the class name
_CONFIG_KEY, _ARCH_KEY = CONFIG_KEY, ARCH_KEY  # the old private names, still read by evaluation/diffusion.py
# What an XYDeblur config may say: (type, smallest, largest). The official model is 32/6/3.
XYDEBLUR_CONFIG = {"width": (int, 1, 1024), "blocks": (int, 0, 64), "channels": (int, 1, 16)}


class WeightsError(ValueError):
    """A weights file or bundled model name that cannot be used, and why."""


class ShadowedFileWarning(UserWarning):
    """A bundled model's name was given and a file of that name is in the current folder."""


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha256(model) -> str | None:
    """The sha256 of the file a loaded model came from (its manifest's, for a bundled model),
    or ``None`` for a model built in memory."""
    info = getattr(model, "weights_info", None) or {}
    if info.get("manifest", {}).get("sha256"):
        return info["manifest"]["sha256"]
    path = info.get("path")
    return sha256_of(path) if path and Path(path).is_file() else None


def _manifests() -> dict:
    try:
        folder = resources_dir()
    except FileNotFoundError:
        return {}
    found = {}
    for path in sorted(folder.glob("*.json")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and "file" in manifest and "sha256" in manifest:
            found[manifest.get("name", path.stem)] = (path.parent, manifest)
    return found


def available_models(architecture: str | None = "XYDeblur") -> list[str]:
    """Names of the bundled models (of one architecture, or all with ``None``)."""
    return [
        name
        for name, (_, manifest) in _manifests().items()
        if architecture is None or manifest.get("architecture", {}).get("class") == architecture
    ]


def model_manifest(name: str) -> dict:
    """The manifest of a bundled model."""
    entries = _manifests()
    if name not in entries:
        raise WeightsError(_unknown_name_message(name))
    return dict(entries[name][1])


def _unknown_name_message(name) -> str:
    names = available_models(None)
    listing = ", ".join(names) if names else "none are installed"
    return f"{name!r} is neither a weights file nor a bundled model (bundled models: {listing})"


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


def checked_config(config: dict, rules: dict, source: str) -> dict:
    """The entries of ``config`` that ``rules`` names ({key: (int | float | list, low, high)};
    ``list``: 1 to 8 integers, each low..high), checked for type and bounds before anything
    is built from them; ``source`` (a file name) starts every message."""
    checked = {}
    for key, (kind, low, high) in rules.items():
        if key not in config:
            continue
        value = config[key]
        if kind is list:
            ok = isinstance(value, (list, tuple)) and 1 <= len(value) <= 8 and all(
                isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value)
            allowed = f"a list of 1 to 8 integers from {low} to {high}"
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
            allowed = f"an integer from {low} to {high}"
        else:
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                  and low <= value <= high)
            allowed = f"a number from {low} to {high}"
        if not ok:
            raise WeightsError(f"{source}: config {key} must be {allowed}, got {value!r:.80}")
        checked[key] = list(value) if kind is list else kind(value)
    return checked


def check_agreement(declared: dict, found: dict, source: str) -> None:
    """Refuse a config (header or manifest) that contradicts the tensors' shapes."""
    for key, value in declared.items():
        if key in found and found[key] != value:
            raise WeightsError(
                f"{source}: its config says {key}={value!r} but the tensors are {key}={found[key]!r}; "
                f"the header or manifest does not describe these weights"
            )


def check_finite(state: dict, path) -> None:
    """Refuse weights with NaN or infinite values: a network built from them turns every
    image into NaN (which an integer image then shows as all zeros)."""
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise WeightsError(
            f"{Path(path).name} holds non-finite weights (NaN or inf) in {len(broken)} tensor(s), e.g. "
            f"{', '.join(broken[:3])}: the file is damaged (or training diverged); use another file"
        )


def check_keys(model: torch.nn.Module, state: dict, path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise WeightsError(f"{path} does not match {type(model).__name__}: " + "; ".join(parts))
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        k, got, want = wrong[0]
        raise WeightsError(
            f"{path}: shape mismatch in {len(wrong)} tensors, e.g. {k} is {got}, the model expects {want}"
        )


def bundled_file(name: str, verify: bool = True, architecture: str | None = None,
                 kind: str = "model") -> tuple[Path, dict]:
    """The weights file and manifest of a bundled model, its checksum verified.

    A ``name`` that looks like a path (a suffix or a slash) and is not bundled is reported
    as a missing file; ``architecture`` (e.g. "ResidualDenoiser") refuses other kinds.
    """
    entries = _manifests()
    if name not in entries:
        if Path(name).suffix or "/" in name or "\\" in name:
            raise WeightsError(f"weights file not found: {Path(name).expanduser()}")
        raise WeightsError(_unknown_name_message(name))
    folder, manifest = entries[name]
    cls = manifest.get("architecture", {}).get("class")
    if architecture is not None and cls != architecture:
        raise WeightsError(f"bundled model {name!r} is a {cls}, not a {kind} ({architecture})")
    path = folder / manifest["file"]
    if not path.is_file():
        raise WeightsError(f"bundled model {name!r} is incomplete: {path} is missing")
    if verify and sha256_of(path) != manifest["sha256"]:
        raise WeightsError(
            f"checksum mismatch for bundled model {name!r}: {path.name} does not have the sha256 "
            f"in its manifest; the file is damaged or was replaced, reinstall napari-deblur"
        )
    return path, manifest


def is_bundled_name(name_or_path) -> bool:
    """Whether ``name_or_path`` is read as a bundled model's name: a string without a path
    separator or a suffix that names a bundled model (a :class:`~pathlib.Path` is a path)."""
    if not isinstance(name_or_path, str):
        return False
    bare = not ("/" in name_or_path or "\\" in name_or_path or Path(name_or_path).suffix
                or name_or_path.startswith("~"))
    return bare and name_or_path in _manifests()


def weights_key(name_or_path) -> str:
    """A string that :func:`resolve_weights` reads as the same weights (for caches keyed by
    strings): a bundled name as it is, a path as a path (``./name`` where the bare name
    would read as a bundled model)."""
    if is_bundled_name(name_or_path):
        return name_or_path
    text = str(name_or_path)
    return os.path.join(os.curdir, text) if is_bundled_name(text) else text


def warn_if_shadowed(name: str) -> None:
    """A :class:`ShadowedFileWarning` when the bundled ``name`` is also a file or folder here."""
    if Path(name).exists():
        warnings.warn(f"{name!r} is a bundled model and also a file in the current folder; using the bundled "
                      f"model (write ./{name} for the file)", ShadowedFileWarning, stacklevel=4)


def resolve_weights(name_or_path, verify: bool = True, architecture: str | None = None, kind: str = "model",
                    warn: bool = True) -> tuple[Path, dict | None]:
    """``(file, manifest)`` for a bundled name or a weights path (manifest ``None`` for a path).

    The rule: a bundled name (:func:`is_bundled_name`) is the bundled model, even when a file
    of that name is in the current folder; with ``warn`` a :class:`ShadowedFileWarning` then
    says so (write ``./name`` for the file). Anything else is a path when that file exists,
    else looked up as a bundled name (which fails with the list of bundled models).
    """
    if is_bundled_name(name_or_path):
        if warn:
            warn_if_shadowed(name_or_path)
        return bundled_file(name_or_path, verify, architecture, kind)
    path = Path(str(name_or_path)).expanduser()
    if path.is_file():
        return path, None
    return bundled_file(str(name_or_path), verify, architecture, kind)


def load_model(name_or_path, *, verify: bool = True, warn: bool = True) -> XYDeblur:
    """Load an XYDeblur from a bundled name, a ``.safetensors``, an official ``.pkl``
    checkpoint or a plain state_dict (``.pt``/``.pth``).

    Names and paths (:func:`resolve_weights`): a string without a path separator or suffix
    that names a bundled model loads that bundled model, even if a file of that name is in
    the current folder (a :class:`ShadowedFileWarning` says so unless ``warn=False``; write
    ``./name`` for the file); anything else is a file path. The architecture (width, blocks,
    channels) is read from the file and checked against its tensors before the model is
    built. A bundled model's checksum is verified against its manifest (``verify=False``
    skips it). The model comes back in eval mode, fp32, on the CPU, with
    ``model.weights_info`` saying where it came from.
    """
    if isinstance(name_or_path, XYDeblur):
        return name_or_path
    path, manifest = resolve_weights(name_or_path, verify, warn=warn)

    state, config = read_state_dict(path)
    if manifest is not None:
        config = {**config, **(manifest.get("architecture") or {})}
    declared = checked_config(config, XYDEBLUR_CONFIG, path.name)
    try:
        found = checked_config(config_from_state_dict(state), XYDEBLUR_CONFIG, f"{path.name} (tensor shapes)")
    except KeyError:
        found = {}  # not XYDeblur-shaped: the key check below says how
    check_agreement(declared, found, path.name)
    with torch.device("meta"):  # the expected shapes, nothing allocated: checked before building
        check_keys(XYDeblur(**found), state, path)
    model = XYDeblur(**found)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    model.weights_info = {
        "name": manifest.get("name", path.stem) if manifest else path.stem,
        "path": str(path),
        "bundled": manifest is not None,
        "manifest": manifest or {},
        "horizontal_branch": (manifest or {}).get("horizontal_branch", "first"),
    }
    return model


def save_safetensors(model: torch.nn.Module, path, *, half: bool = False, metadata: dict | None = None) -> Path:
    """Write a model's weights as safetensors, with its architecture in the header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    meta = {ARCH_KEY: type(model).__name__, CONFIG_KEY: json.dumps(getattr(model, "config", {}))}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    save_file(state, str(path), metadata=meta)
    return path
