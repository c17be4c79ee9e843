"""Resumable training checkpoints: safetensors shards under 16 MiB plus a JSON index.

A training run on the GPU machine lasts at most 10 minutes a command and only
files under 16 MiB come back, so a checkpoint is every tensor of the state
(model, EMA, optimizer moments, RNG states) packed into shards no larger than
``max_shard_bytes``, and ``index.json`` with everything else (iteration,
optimizer hyper-parameters, config). Nothing is pickled.
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MAX_SHARD_BYTES = 15 << 20


def _flatten(tree, prefix=""):
    """Split a nested dict/list of tensors and plain values into (tensors, skeleton)."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}, {"__tensor__": prefix}
    if isinstance(tree, dict):
        tensors, skeleton = {}, {}
        for key, value in tree.items():
            t, s = _flatten(value, f"{prefix}/{key}" if prefix else str(key))
            tensors.update(t)
            skeleton[str(key)] = s
        return tensors, {"__dict__": skeleton, "__intkeys__": [k for k in tree if isinstance(k, int)]}
    if isinstance(tree, (list, tuple)):
        tensors, items = {}, []
        for i, value in enumerate(tree):
            t, s = _flatten(value, f"{prefix}/{i}")
            tensors.update(t)
            items.append(s)
        return tensors, {"__list__": items}
    return {}, {"__value__": tree}


def _unflatten(skeleton, tensors):
    if "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if "__dict__" in skeleton:
        ints = set(skeleton.get("__intkeys__", []))
        return {(int(k) if int_key(k, ints) else k): _unflatten(v, tensors) for k, v in skeleton["__dict__"].items()}
    if "__list__" in skeleton:
        return [_unflatten(v, tensors) for v in skeleton["__list__"]]
    return skeleton["__value__"]


def int_key(key: str, ints: set) -> bool:
    return key.lstrip("-").isdigit() and int(key) in ints


def save_checkpoint(state: dict, folder, max_shard_bytes: int = MAX_SHARD_BYTES) -> Path:
    """Write ``state`` (nested dicts/lists of tensors and JSON values) to ``folder``.

    The folder is written next to its final place and renamed, so an
    interrupted save never leaves a half checkpoint behind.
    """
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors, skeleton = _flatten(state)
    shards, current, size = [], {}, 0
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        if nbytes > max_shard_bytes:  # one tensor larger than a shard: split it along dim 0 views
            raise ValueError(f"tensor {name} ({nbytes} bytes) exceeds the shard size {max_shard_bytes}")
        current[name] = tensor
        size += nbytes
    if current:
        shards.append(current)
    files = {}
    for i, shard in enumerate(shards):
        fname = f"shard-{i:03d}.safetensors"
        save_file(shard, str(tmp / fname))
        files.update({name: fname for name in shard})
    (tmp / "index.json").write_text(json.dumps({"skeleton": skeleton, "files": files}))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def load_checkpoint(folder) -> dict:
    """Read what :func:`save_checkpoint` wrote."""
    folder = Path(folder)
    index = json.loads((folder / "index.json").read_text())
    tensors = {}
    for fname in sorted(set(index["files"].values())):
        tensors.update(load_file(str(folder / fname)))
    return _unflatten(index["skeleton"], tensors)
