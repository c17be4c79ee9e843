import pytest
import torch
from factories import tiny_model

from napari_deblur.engine import device as dev
from napari_deblur.engine.restore import plan_memory


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert dev.pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "mps_available", lambda: True)
    assert dev.pick_device("auto").type == "mps"
    monkeypatch.setattr(dev, "mps_available", lambda: False)
    assert dev.pick_device("auto").type == "cpu"


def test_a_cuda_device_always_carries_its_index(monkeypatch):
    # torch 2.11's memory queries (mem_get_info, set_per_process_memory_fraction) refuse a
    # plain torch.device("cuda"): the first GPU bench stopped there
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    assert dev.pick_device("auto") == torch.device("cuda", 2)
    assert dev.pick_device("cuda") == torch.device("cuda", 2)
    assert dev.pick_device(torch.device("cuda")) == torch.device("cuda", 2)
    assert dev.pick_device("cuda:1") == torch.device("cuda", 1)  # an explicit index is kept


def test_unavailable_devices_are_refused_clearly(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "mps_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        dev.pick_device("cuda")
    with pytest.raises(ValueError, match="Metal"):
        dev.pick_device("mps")


def test_auto_precision():
    assert dev.pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert dev.pick_dtype("auto", torch.device("cuda")) == torch.float16
    assert dev.pick_dtype("auto", torch.device("mps")) == torch.float16
    assert dev.pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_out_of_memory_is_recognised():
    assert dev.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert dev.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert dev.is_out_of_memory(MemoryError())
    assert not dev.is_out_of_memory(RuntimeError("shape mismatch"))


def test_auto_tile_follows_free_memory(monkeypatch):
    model = tiny_model(width=32, blocks=1)
    cpu = torch.device("cpu")
    monkeypatch.setattr("napari_deblur.engine.restore.free_memory", lambda d: 64 << 30)
    big_tile, _ = plan_memory(model, cpu, torch.float32, 4000, 4000)
    monkeypatch.setattr("napari_deblur.engine.restore.free_memory", lambda d: 256 << 20)
    small_tile, batch = plan_memory(model, cpu, torch.float32, 4000, 4000)
    assert big_tile == 1024 and 128 <= small_tile < big_tile and batch >= 1
    assert small_tile % 32 == 0


def test_a_large_gpu_takes_a_4096_frame_in_one_piece(monkeypatch):
    model = tiny_model(width=32, blocks=1)
    cuda = torch.device("cuda", 0)  # only planned, nothing runs there
    monkeypatch.setattr("napari_deblur.engine.restore.free_memory", lambda d: 120 << 30)
    tile, batch = plan_memory(model, cuda, torch.float16, 4096, 4096)
    assert tile == 4096 and batch >= 1
    monkeypatch.setattr("napari_deblur.engine.restore.free_memory", lambda d: 8 << 30)  # a laptop GPU: tiles
    tile, _ = plan_memory(model, cuda, torch.float16, 4096, 4096)
    assert 1024 <= tile < 4096 and tile % 32 == 0


def test_cached_cuda_memory_is_released_only_when_it_holds_a_large_share(monkeypatch):
    from types import SimpleNamespace

    from napari_deblur.engine.runtime import RELEASE_SHARE, release_device_cache

    emptied = []
    reserved = {"bytes": 0}
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace(total_memory=100))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: reserved["bytes"])
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    cuda = torch.device("cuda", 0)
    reserved["bytes"] = 20  # a 720p frame's working memory on a large card: kept for the next call
    release_device_cache(cuda, RELEASE_SHARE)
    assert emptied == []
    reserved["bytes"] = 30  # over a quarter of the device: given back
    release_device_cache(cuda, RELEASE_SHARE)
    assert emptied == [True]
    release_device_cache(torch.device("cpu"), RELEASE_SHARE)  # nothing to do off CUDA
    assert emptied == [True]
    release_device_cache(cuda)  # without a share: always given back (after running out of memory)
    assert emptied == [True, True]
