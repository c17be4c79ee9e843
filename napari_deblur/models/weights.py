"""Reading, writing and recognising weights of both architectures: bundled names,
safetensors, official .pkl checkpoints, state_dicts.

One loader, :func:`load_weights`, builds an :class:`~.xydeblur.XYDeblur` or a
:class:`~.denoiser.ResidualDenoiser` from a file or a bundled name (:func:`load_model`
and :func:`load_denoiser` name the architecture for it). Nothing here unpickles arbitrary
objects: ``.pkl``/``.pt``/``.pth`` files go through ``torch.load(..., weights_only=True)``.
Every way a file can be wrong (missing, unreadable, another architecture, wrong shapes,
damaged bundled file) raises :class:`WeightsError` with a message that says what is wrong.

A safetensors file written by :func:`save_safetensors` carries its architecture's class
name (:data:`ARCH_KEY`) and config (:data:`CONFIG_KEY`) in its header; a denoiser's also
names the predictor it pairs with (:data:`PREDICTOR_KEY`, :data:`PREDICTOR_SHA_KEY`). The
bundled models and their manifests are :mod:`.registry`'s.
"""

import hashlib
import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .denoiser import ResidualDenoiser, denoiser_config_from_state_dict
from .registry import (
    DENOISER,
    XYDEBLUR,
    available_models,
    bundled_models,
    is_bundled_name,
    unknown_name_message,
    warn_if_shadowed,
)
from .xydeblur import XYDeblur, config_from_state_dict

PICKLE_SUFFIXES = {".pkl", ".pt", ".pth", ".ckpt", ".bin"}
CONFIG_KEY = "napari_deblur.config"  # safetensors header: the architecture's config as JSON
ARCH_KEY = "napari_deblur.architecture"  # safetensors header: the class name
PREDICTOR_KEY = "napari_deblur.predictor"  # a denoiser's header: the predictor it pairs with
PREDICTOR_SHA_KEY = "napari_deblur.predictor_sha256"  # ... and the checksum of that predictor's weights
DENOISER_MARK = "embed.mlp.0.weight"  # a tensor only the denoiser's noise embedding has
# What a config may say: (type, smallest, largest); list: 1 to 8 integers. The official XYDeblur is 32/6/3.
XYDEBLUR_CONFIG = {"width": (int, 1, 1024), "blocks": (int, 0, 64), "channels": (int, 1, 16)}
DENOISER_CONFIG = {"channels": (int, 1, 16), "width": (int, 1, 1024), "mults": (list, 1, 64),
                   "blocks": (int, 1, 64), "residual_scale": (float, 1e-6, 1e6), "sigma_data": (float, 0.0, 1e6)}


class WeightsError(ValueError):
    """A weights file or bundled model name that cannot be used, and why."""


# ---------------------------------------------------------------- checksums and bundled files


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


def model_manifest(name: str) -> dict:
    """The manifest of a bundled model."""
    entries = bundled_models()
    if name not in entries:
        raise WeightsError(unknown_name_message(name))
    return dict(entries[name][1])


def bundled_file(name: str, verify: bool = True, architecture: str | None = None,
                 kind: str = "model") -> tuple[Path, dict]:
    """The weights file and manifest of a bundled model, its checksum verified.

    A ``name`` that looks like a path (a suffix or a slash) and is not bundled is reported
    as a missing file; ``architecture`` (e.g. "ResidualDenoiser") refuses other kinds.
    """
    entries = bundled_models()
    if name not in entries:
        if Path(name).suffix or "/" in name or "\\" in name:
            raise WeightsError(f"weights file not found: {Path(name).expanduser()}")
        raise WeightsError(unknown_name_message(name))
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


def resolve_weights(name_or_path, verify: bool = True, architecture: str | None = None, kind: str = "model",
                    warn: bool = True) -> tuple[Path, dict | None]:
    """``(file, manifest)`` for a bundled name or a weights path (manifest ``None`` for a path).

    The rule: a bundled name (:func:`~.registry.is_bundled_name`) is the bundled model, even
    when a file of that name is in the current folder; with ``warn`` a
    :class:`~.registry.ShadowedFileWarning` then says so (write ``./name`` for the file).
    Anything else is a path when that file exists, else looked up as a bundled name (which
    fails with the list of bundled models).
    """
    if is_bundled_name(name_or_path):
        if warn:
            warn_if_shadowed(name_or_path)
        return bundled_file(name_or_path, verify, architecture, kind)
    path = Path(str(name_or_path)).expanduser()
    if path.is_file():
        return path, None
    return bundled_file(str(name_or_path), verify, architecture, kind)


# ---------------------------------------------------------------- reading a file


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


# ---------------------------------------------------------------- checks before building


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
    """Refuse tensors whose names or shapes are not those of ``model``."""
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


# ---------------------------------------------------------------- the loader


@dataclass(frozen=True)
class Architecture:
    """What :func:`load_weights` needs to know about one architecture.

    ``rules``: the config it accepts (:func:`checked_config`); ``from_tensors``: its config
    read off a state_dict (a ``KeyError`` when the tensors are not of this architecture);
    ``declared_only``: config entries the tensors cannot tell, taken from the header or
    manifest; ``kind``: how messages name it; ``strict``: a bundled model or header of
    another class is refused by name (else the key check says how the tensors differ).
    """

    cls: type
    rules: dict
    from_tensors: object
    declared_only: tuple = ()
    kind: str = "model"
    strict: bool = False


ARCHITECTURES = {
    XYDEBLUR: Architecture(XYDeblur, XYDEBLUR_CONFIG, config_from_state_dict),
    DENOISER: Architecture(ResidualDenoiser, DENOISER_CONFIG, denoiser_config_from_state_dict,
                           declared_only=("residual_scale", "sigma_data"), kind="diffusion denoiser", strict=True),
}


def load_weights(name_or_path, architecture: str = XYDEBLUR, *, verify: bool = True, warn: bool = True):
    """A model of ``architecture`` (a key of :data:`ARCHITECTURES`) from a bundled name, a
    ``.safetensors`` file, an official ``.pkl`` checkpoint or a plain state_dict
    (``.pt``/``.pth``); a module of that class is returned as it is.

    Names and paths (:func:`resolve_weights`): a string without a path separator or suffix
    that names a bundled model loads that bundled model, even if a file of that name is in
    the current folder (a :class:`~.registry.ShadowedFileWarning` says so unless
    ``warn=False``; write ``./name`` for the file); anything else is a file path. The config
    is read from the header or manifest and checked against the tensors' shapes before the
    model is built. A bundled model's checksum is verified against its manifest
    (``verify=False`` skips it). The model comes back in eval mode, fp32, on the CPU, with
    ``model.weights_info`` saying where it came from.
    """
    spec = ARCHITECTURES[architecture]
    if isinstance(name_or_path, spec.cls):
        return name_or_path
    path, manifest = resolve_weights(name_or_path, verify, architecture if spec.strict else None, spec.kind, warn)

    state, config = read_state_dict(path)
    header = read_header(path) if spec.strict else {}
    found_class = header.get(ARCH_KEY)
    if found_class and found_class != architecture:
        raise WeightsError(f"{path.name} holds a {found_class}, not a {spec.kind} ({architecture})")
    if manifest is not None:
        config = {**config, **(manifest.get("architecture") or {})}
    declared = checked_config(config, spec.rules, path.name)
    try:
        found = checked_config(spec.from_tensors(state), spec.rules, f"{path.name} (tensor shapes)")
    except KeyError:
        found = {}  # not shaped like this architecture: the key check below says how
    shaped = {k: v for k, v in found.items() if k not in spec.declared_only}
    check_agreement(declared, shaped, path.name)
    config = {**shaped, **{k: declared[k] for k in spec.declared_only if k in declared}}
    with torch.device("meta"):  # the expected shapes, nothing allocated: checked before building
        check_keys(spec.cls(**config), state, path)
    model = spec.cls(**config)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    model.weights_info = {
        "name": manifest.get("name", path.stem) if manifest else path.stem,
        "path": str(path),
        "bundled": manifest is not None,
        "manifest": manifest or {},
        **_origin(architecture, path, manifest or {}, header),
    }
    return model


def _origin(architecture: str, path: Path, manifest: dict, header: dict) -> dict:
    """The architecture's own entries of ``weights_info``: which XYDeblur branch learned
    horizontal blur; which predictor a denoiser pairs with (a bundled name or a path, a file
    shipped next to the denoiser by its full path) and that predictor's checksum."""
    if architecture == XYDEBLUR:
        return {"horizontal_branch": manifest.get("horizontal_branch", "first")}
    predictor = manifest.get("predictor") or header.get(PREDICTOR_KEY) or None
    if predictor and not Path(predictor).is_absolute() and (path.parent / predictor).is_file():
        predictor = str(path.parent / predictor)
    return {"predictor": predictor,
            "predictor_sha256": manifest.get("predictor_sha256") or header.get(PREDICTOR_SHA_KEY) or None}


def load_model(name_or_path, *, verify: bool = True, warn: bool = True) -> XYDeblur:
    """An XYDeblur (:func:`load_weights`). The architecture (width, blocks, channels) is read
    from the file and checked against its tensors before the model is built;
    ``weights_info["horizontal_branch"]`` says which branch learned horizontal blur."""
    return load_weights(name_or_path, XYDEBLUR, verify=verify, warn=warn)


def load_denoiser(name_or_path, *, verify: bool = True, warn: bool = True) -> ResidualDenoiser:
    """A :class:`~.denoiser.ResidualDenoiser` (:func:`load_weights`).

    A bare state_dict does not carry ``residual_scale`` and ``sigma_data`` (1.0 and 0 are
    assumed); safetensors files and bundled models do. ``model.weights_info["predictor"]``
    is the predictor it pairs with (a bundled XYDeblur name or a path), from the manifest or
    the safetensors header, or ``None`` when the file does not say;
    ``weights_info["predictor_sha256"]`` the checksum of the predictor's weights it was
    trained against, where recorded.
    """
    return load_weights(name_or_path, DENOISER, verify=verify, warn=warn)


# ---------------------------------------------------------------- writing


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
