"""``compile=True``: the engine's network through torch.compile, and the fallback to eager."""

import numpy as np
import pytest
import torch
from factories import tiny_model

from napari_deblur import xydeblur
from napari_deblur.engine import compiled, runtime

IMAGE = np.random.default_rng(2).integers(0, 256, (36, 40)).astype(np.uint8)
SECOND_IMAGE = np.random.default_rng(3).integers(0, 256, (52, 28)).astype(np.uint8)


def a_model():
    model = tiny_model(1, seed=7)
    with torch.no_grad():
        model.Decoder1_4.main[0].bias.add_(0.03)
    return model


def test_a_failing_compiler_falls_back_to_eager_and_says_why(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found")

        return run

    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    runtime.release_prepared()
    model = a_model()
    eager = xydeblur(IMAGE, model, out_dtype="float32")
    result = xydeblur(IMAGE, model, out_dtype="float32", compile=True)
    assert eager.info["compile"] == "eager"
    assert result.info["compile"] == "eager (compile failed: RuntimeError: no C++ compiler found)"
    np.testing.assert_array_equal(result.restored, eager.restored)
    runtime.release_prepared()


def test_out_of_memory_in_the_compiled_network_is_not_swallowed(monkeypatch):
    def oom_compile(fn, **kwargs):
        def run(*args):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return run

    monkeypatch.setattr(compiled.torch, "compile", oom_compile)
    net = compiled.CompiledResiduals(a_model())
    with pytest.raises(torch.OutOfMemoryError):
        net.residuals(torch.rand(1, 1, 16, 16))
    assert net.error is None  # the engine retries with smaller tiles; compiling is not given up


@pytest.mark.slow
def test_the_compiled_network_gives_the_eager_result(tmp_path, monkeypatch):
    """Two frame shapes through one compiled network (dynamic shapes): the eager result, and
    the compiled code kept on disk for the next process."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    runtime.release_prepared()
    model = a_model()
    for image in (IMAGE, SECOND_IMAGE):
        eager = xydeblur(image, model, out_dtype="float32", device="cpu")
        result = xydeblur(image, model, out_dtype="float32", device="cpu", compile=True)
        assert result.info["compile"] == "compiled" and result.restored.shape == image.shape
        for name in ("restored", "r_hor", "r_ver"):
            np.testing.assert_allclose(getattr(result, name), getattr(eager, name), rtol=1e-4, atol=1e-3)
    assert any(tmp_path.iterdir())  # the compiled code was kept on disk for the next process
    runtime.release_prepared()
