"""Weights of both architectures in and out: bundled names, safetensors, official .pkl
checkpoints, state_dicts. The public way to load, save and recognise weights.

One loader, :func:`load_weights`, builds an :class:`~.xydeblur.XYDeblur` or a
:class:`~.denoiser.ResidualDenoiser` from a file or a bundled name (:func:`load_model`
and :func:`load_denoiser` name the architecture for it). Every way a file can be wrong
(missing, unreadable, another architecture, wrong shapes, damaged bundled file) raises
:class:`WeightsError` with a message that says what is wrong.

Reading and writing the files themselves (:func:`read_state_dict`, :func:`save_safetensors`,
:func:`is_denoiser`, the safetensors header keys, :func:`sha256_of`) is
:mod:`.weight_files`'; those names are re-exported here, so callers import everything
about weights from this module. The bundled models and their manifests are :mod:`.registry`'s.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .denoiser import ResidualDenoiser, denoiser_config_from_state_dict
from .registry import (
    DENOISER,
    XYDEBLUR,
    bundled_models,
    is_bundled_name,
    unknown_name_message,
    warn_if_shadowed,
)
from .weight_files import (
    ARCH_KEY,
    CONFIG_KEY,
    DENOISER_MARK,
    PICKLE_SUFFIXES,
    PREDICTOR_KEY,
    PREDICTOR_SHA_KEY,
    WeightsError,
    header_config,
    is_denoiser,
    read_header,
    read_state_dict,
    save_safetensors,
    sha256_of,
)
from .xydeblur import XYDeblur, config_from_state_dict

__all__ = [
    "ARCHITECTURES",
    "ARCH_KEY",
    "CONFIG_KEY",
    "DENOISER_CONFIG",
    "DENOISER_MARK",
    "PICKLE_SUFFIXES",
    "PREDICTOR_KEY",
    "PREDICTOR_SHA_KEY",
    "XYDEBLUR_CONFIG",
    "Architecture",
    "WeightsError",
    "bundled_file",
    "check_agreement",
    "check_keys",
    "checked_config",
    "header_config",
    "is_denoiser",
    "load_denoiser",
    "load_model",
    "load_weights",
    "model_manifest",
    "read_header",
    "read_state_dict",
    "resolve_weights",
    "save_safetensors",
    "sha256_of",
    "weights_sha256",
]

# What a config may say: (type, smallest, largest); list: 1 to 8 integers. The official XYDeblur is 32/6/3.
XYDEBLUR_CONFIG = {"width": (int, 1, 1024), "blocks": (int, 0, 64), "channels": (int, 1, 16)}
DENOISER_CONFIG = {
    "channels": (int, 1, 16),
    "width": (int, 1, 1024),
    "mults": (list, 1, 64),
    "blocks": (int, 1, 64),
    "residual_scale": (float, 1e-6, 1e6),
    "sigma_data": (float, 0.0, 1e6),
}


# ---------------------------------------------------------------- checksums and bundled files


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


def bundled_names(*modules) -> list:
    """The bundled names of those ``modules`` whose weights are a bundled model's (a user's
    file keeps its own name, which may equal a bundled one; it is left out)."""
    infos = (getattr(module, "weights_info", None) or {} for module in modules)
    return [info["name"] for info in infos if info.get("bundled")]


def gate_warning(name) -> str | None:
    """One line for a bundled model that has not passed the do-no-harm gate on real data (no
    passed ``real_benchmark`` gate in its manifest: :mod:`napari_deblur.evaluation.real`);
    None for one that passed, and for anything that is not a bundled name (a user's own
    weights are theirs to judge)."""
    if not isinstance(name, str) or name not in bundled_models():
        return None
    gate = model_manifest(name).get("real_benchmark", {}).get("gate", {})
    if gate.get("passed"):
        return None
    return (
        f"the bundled {name} has not passed the real-data do-no-harm gate: it can make real images "
        "worse (see the README's Real-data benchmark); compare with the input"
    )


def bundled_file(
    name: str, verify: bool = True, architecture: str | None = None, kind: str = "model"
) -> tuple[Path, dict]:
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


def resolve_weights(
    name_or_path, verify: bool = True, architecture: str | None = None, kind: str = "model", warn: bool = True
) -> tuple[Path, dict | None]:
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
            ok = (
                isinstance(value, (list, tuple))
                and 1 <= len(value) <= 8
                and all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value)
            )
            allowed = f"a list of 1 to 8 integers from {low} to {high}"
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
            allowed = f"an integer from {low} to {high}"
        else:
            ok = (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
                and low <= value <= high
            )
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
    DENOISER: Architecture(
        ResidualDenoiser,
        DENOISER_CONFIG,
        denoiser_config_from_state_dict,
        declared_only=("residual_scale", "sigma_data"),
        kind="diffusion denoiser",
        strict=True,
    ),
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
    return {
        "predictor": predictor,
        "predictor_sha256": manifest.get("predictor_sha256") or header.get(PREDICTOR_SHA_KEY) or None,
    }


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
