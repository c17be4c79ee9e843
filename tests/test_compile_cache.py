"""Compile once per machine: the on-disk cache folder."""

from napari_deblur.engine import compile_cache
from napari_deblur.engine.compile_cache import compile_cache_dir


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DEBLUR_COMPILE_CACHE", str(tmp_path / "ours"))
    assert compile_cache_dir() == tmp_path / "ours"
    monkeypatch.delenv("NAPARI_DEBLUR_COMPILE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache_dir() == tmp_path / "xdg" / "napari-deblur" / "torch-compile"


def test_enabling_the_cache_uses_our_folder_unless_the_user_chose_one(tmp_path, monkeypatch):
    from torch._inductor import config as inductor_config

    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("NAPARI_DEBLUR_COMPILE_CACHE", str(tmp_path / "ours"))
    assert compile_cache.enable_compile_cache() == tmp_path / "ours"
    assert (tmp_path / "ours").is_dir() and inductor_config.fx_graph_cache
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "theirs"))
    assert compile_cache.enable_compile_cache() == tmp_path / "theirs"
