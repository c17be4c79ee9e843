import numpy as np
import torch
from factories import tiny_model

from napari_deblur.training.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_of_model_optimizer_and_rng(tmp_path):
    model = tiny_model(width=8, blocks=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(1, 1, 16, 16))[2].mean().backward()
    opt.step()
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": torch.get_rng_state(),
        "numpy": np.random.default_rng(3).bit_generator.state,
        "iteration": 7,
        "name": "x",
        "values": [1.5, None, {"a": torch.ones(2)}],
    }
    folder = save_checkpoint(state, tmp_path / "ck", max_shard_bytes=60_000)
    shards = sorted(folder.glob("shard-*.safetensors"))
    assert len(shards) > 1 and all(p.stat().st_size < 60_000 + 4096 for p in shards)
    back = load_checkpoint(folder)
    assert back["iteration"] == 7 and back["name"] == "x" and back["values"][1] is None
    assert torch.equal(back["rng"], state["rng"])
    assert back["numpy"] == state["numpy"]
    assert all(torch.equal(back["model"][k], v) for k, v in state["model"].items())
    opt2 = torch.optim.AdamW(tiny_model(width=8, blocks=2).parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])  # int keys of the optimizer state survive
    assert set(opt2.state_dict()["state"]) == set(state["optimizer"]["state"])
    assert torch.equal(back["values"][2]["a"], torch.ones(2))


def test_saving_replaces_atomically(tmp_path):
    save_checkpoint({"a": torch.zeros(3)}, tmp_path / "ck")
    save_checkpoint({"a": torch.ones(3)}, tmp_path / "ck")
    assert torch.equal(load_checkpoint(tmp_path / "ck")["a"], torch.ones(3))
    assert not (tmp_path / "ck.tmp").exists()
