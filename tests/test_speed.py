"""The speed benchmark (`napari-deblur bench`, napari_deblur.speed) on the CPU: the report's
figures exist and are sane, and the timing helpers do what they say."""

import json
import os

import pytest

torch = pytest.importorskip("torch")

from napari_deblur.cli import main  # noqa: E402
from napari_deblur.speed import diffusion, run_bench, timing, to_markdown, xydeblur  # noqa: E402
from napari_deblur.speed import report as speed_report  # noqa: E402


@pytest.mark.slow
def test_quick_bench_writes_json_and_a_table(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.setattr(speed_report, "CPU_SIZES", [(64, 96)])
    monkeypatch.setattr(speed_report, "CPU_DIFFUSION", {"step_sizes": [(64, 64)], "fidelity_size": (64, 64)})
    out = tmp_path / "perf.json"
    assert main(["bench", "--quick", "--device", "cpu", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"].startswith("cpu") and report["quick"] is True
    [row] = report["xydeblur"]
    assert row["size"] == "64x96"
    assert row["reference_ms"] > 0 and row["optimised_ms"] > 0 and row["engine_ms"] > 0
    stages = row["engine_stages_ms"]
    assert list(stages) == ["prepare", "network", "assemble", "finish"] and all(v >= 0 for v in stages.values())
    assert sum(stages.values()) <= row["engine_ms"] * 3  # medians of parts of the same calls
    assert row["speedup"] == pytest.approx(row["reference_ms"] / row["optimised_ms"])
    assert row["max_diff"] <= 1e-2  # the fast path stays within 1e-2 of fp32
    [step] = report["diffusion"]["steps"]
    assert step["step_ms"] > 0 and step["step_ms_per_sample_batched8"] > 0
    assert report["diffusion"]["denoiser"] == "dvsr-photo (bundled)"  # the shipped model, not a stand-in
    assert "fidelity" not in report["diffusion"]  # --quick skips the 80-pass preset
    table = (tmp_path / "perf.md").read_text()
    assert "| 64x96 |" in table and "Diffusion refinement" in table and "outside the network" in table
    assert "| 64x96 |" in capsys.readouterr().out


def test_without_a_bundled_denoiser_the_bench_says_it_times_an_untrained_one(tmp_path, monkeypatch):
    from factories import bundle_model

    from napari_deblur.models.xydeblur import XYDeblur

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_model(tmp_path, "xydeblur-photo", XYDeblur(channels=3, width=8, blocks=1).eval())
    said = []
    predictor, denoiser, which = diffusion.bundled_denoiser(log=said.append)
    assert which == "untrained ResidualDenoiser (timing only)"
    assert type(denoiser).__name__ == "ResidualDenoiser" and predictor.config["width"] == 8
    assert said and "not bundled" in said[0]


def test_median_seconds_synchronises_and_takes_the_median():
    calls = []
    seconds = timing.median_seconds(lambda: calls.append(1), torch.device("cpu"), repeats=5, warmup=2)
    assert len(calls) == 7 and seconds >= 0


def test_the_sample_frame_is_a_real_photo_in_unit_range():
    frame = timing.sample_frame(40, 60)
    assert frame.shape == (3, 40, 60) and 0 <= frame.min() and frame.max() <= 1 and frame.std() > 0.05


def test_the_sample_frame_repeats_its_first_channel_beyond_three():
    frame = timing.sample_frame(16, 24, channels=5)
    assert frame.shape == (5, 16, 24) and all((frame[i] == frame[0]).all() for i in range(5))
    assert timing.sample_frame(16, 24, channels=1).shape == (1, 16, 24)


def test_peak_memory_is_none_off_cuda():
    with timing.PeakMemory(torch.device("cpu")) as peak:
        torch.ones(8)
    assert peak.mib is None


def test_tf32_sets_and_restores_both_switches():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with timing.tf32(not before[0]):
        assert torch.backends.cudnn.allow_tf32 is (not before[0])
        assert torch.backends.cuda.matmul.allow_tf32 is (not before[0])
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def test_machine_name_and_short_error_are_one_line():
    assert timing.machine_name().strip() and "\n" not in timing.machine_name()
    said = timing.short_error(ValueError("no\n  index " + "x" * 300))
    assert said.startswith("ValueError: no index x") and len(said) == 160 and "\n" not in said


def test_what_was_measured_is_written_before_a_later_section_fails(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(speed_report, "CPU_SIZES", [(32, 32)])

    def broken(*args, **kwargs):
        raise RuntimeError("the diffusion section broke")

    monkeypatch.setattr(speed_report, "bench_diffusion", broken)
    out = tmp_path / "perf.json"
    with pytest.raises(RuntimeError, match="diffusion section"):
        run_bench("cpu", quick=True, repeats=1, out=out, log=lambda *_: None)
    assert [row["size"] for row in json.loads(out.read_text())["xydeblur"]] == ["32x32"]


def test_a_failed_memory_cap_run_is_reported_in_the_table():
    report = {
        "quick": False,
        "device": "cuda (test)",
        "machine": "test",
        "torch": "x",
        "date": "2026-12-04",
        "repeats": 1,
        "precision": "fp16",
        "xydeblur": [
            {
                "size": "256x256",
                "reference_ms": 9.0,
                "reference_tf32_ms": 6.4,
                "optimised_ms": 4.8,
                "speedup": 1.9,
                "engine_ms": 16.5,
                "max_diff": 1e-3,
                "graph_ms": 2.1,
            }
        ],
        "memory_cap": {"error": "ValueError: no index"},
        "diffusion": {"denoiser": "dvsr-photo (bundled)", "steps": []},
    }
    table = to_markdown(report)
    assert "The memory-cap run failed: ValueError: no index" in table
    assert "| 256x256 | 9.0 (TF32: 6.4) | 4.8 | 1.9x |" in table and table.splitlines()[4].endswith("| 2.1 |")
    assert "float16 residuals" not in table  # timed only where the residuals cross to the host
    report["xydeblur"][0]["engine_fp16_residuals_ms"] = 12.3
    assert "| 256x256 | 16.5 | 12.3 |" in to_markdown(report)


def test_stacks_are_timed_both_ways_and_tabled(one_thread):
    import numpy as np

    from napari_deblur.engine import frames

    lines = []
    rows = xydeblur.bench_stacks(
        torch.device("cpu"), 2, stacks=[("xydeblur-microscopy", 3, (32, 40), np.uint16)], log=lines.append
    )
    [row] = rows
    assert row["path"] == "frames" and row["frames"] == 3 and row["dtype"] == "uint16"
    assert row["overlapped_ms_per_frame"] > 0 and row["synchronous_ms_per_frame"] > 0
    assert frames.OVERLAP_TRANSFERS is True and row["same_output"] is True  # restored after the synchronous run
    assert "3 x 32x40 uint16" in lines[0]
    report = {
        "quick": False,
        "device": "cpu",
        "machine": "test",
        "torch": "x",
        "date": "2026-12-04",
        "repeats": 2,
        "precision": "fp32",
        "decoder_form": "twin-grouped",
        "xydeblur": [],
        "stacks": rows,
        "diffusion": {"denoiser": "dvsr-photo (bundled)", "steps": []},
    }
    table = to_markdown(report)
    assert "| 3 x 32x40 uint16 (xydeblur-microscopy) |" in table and "decoder form twin-grouped" in table


def test_the_speed_package_needs_no_gui():
    from test_imports import GUI_MODULES, loaded_after_import

    assert not loaded_after_import("napari_deblur.speed") & set(GUI_MODULES)


def cpu_report(forms: list, calls: list) -> dict:
    """A ``run_cpu_variants`` report around ``forms`` and ``calls``, for its Markdown table."""
    from napari_deblur.speed import cpu_variants

    return {
        "date": "today",
        "machine": "a test",
        "torch": torch.__version__,
        "threads": 1,
        "bf16_native": False,
        "tolerance": cpu_variants.TOLERANCE,
        "repeats": 1,
        "forms": forms,
        "calls": calls,
    }


def test_the_cpu_candidates_are_checked_against_fp32_and_a_missing_backend_is_a_row(tmp_path, monkeypatch, one_thread):
    from factories import tiny_model

    from napari_deblur.speed import cpu_variants

    model = tiny_model(channels=3, seed=5)
    monkeypatch.setattr(cpu_variants, "_onnx_residuals", lambda net, x: (_ for _ in ()).throw(ImportError("no onnx")))
    forms = ("fp32 NCHW eager", "fp32 channels_last eager", "bf16 channels_last eager", "onnxruntime")
    rows = cpu_variants.time_forms(model, (32, 48), repeats=1, log=lambda *_: None, forms=forms)
    assert [row["form"] for row in rows] == list(forms)
    reference, nhwc, bf16, onnx = rows
    assert reference["max_diff"] == 0 and reference["speedup"] == 1 and reference["kept"]
    assert nhwc["max_diff"] <= 1e-5 and nhwc["kept"]  # the layout changes the order of sums, not the result
    assert bf16["max_diff"] > cpu_variants.TOLERANCE and not bf16["kept"]  # 8-bit mantissa: too far from fp32
    assert onnx["error"] == "ImportError: no onnx" and "ms" not in onnx
    report = cpu_report(rows, [{"call": "xydeblur", "layout": "NCHW", "size": "32x48", "seconds": 0.5}])
    table = cpu_variants.cpu_variants_markdown(report)
    assert "| fp32 channels_last eager | 32x48 |" in table and "| yes |" in table
    assert "not run: ImportError: no onnx" in table and "| xydeblur | 32x48 | 0.500 | nan |" in table


def test_the_frozen_compiled_form_matches_fp32_and_leaves_freezing_off(one_thread):
    from factories import tiny_model
    from torch._inductor import config as inductor_config

    from napari_deblur.speed import cpu_variants

    forms = ("fp32 NCHW eager", "fp32 channels_last compiled, frozen")
    rows = cpu_variants.time_forms(tiny_model(channels=3, seed=6), (32, 48), repeats=1, log=print, forms=forms)
    assert [row["form"] for row in rows] == list(forms) and "error" not in rows[1]
    assert rows[1]["max_diff"] <= 1e-5 and rows[1]["kept"]
    assert not inductor_config.freezing  # only inside the form's calls


def test_the_engine_layout_switch_is_restored(monkeypatch):
    from napari_deblur.engine.runtime import channels_last
    from napari_deblur.speed.cpu_variants import engine_layout

    monkeypatch.delenv("NAPARI_DEBLUR_CHANNELS_LAST", raising=False)
    with engine_layout(False):
        assert not channels_last(torch.device("cpu"))
    assert channels_last(torch.device("cpu"))
    assert "NAPARI_DEBLUR_CHANNELS_LAST" not in os.environ


def test_the_fp32_floor_counts_a_convolution_exactly_and_divides_by_the_measured_rate(one_thread):
    from napari_deblur.speed.roofline import count_gflop, floor_row, matmul_gflops

    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    x = torch.rand(1, 4, 10, 12)
    assert count_gflop(lambda: conv(x)) == pytest.approx(2 * 4 * 6 * 9 * 10 * 12 / 1e9)  # a multiply-add is two
    assert matmul_gflops(size=64, repeats=2) > 0
    row = floor_row("xydeblur", gflop=100.0, rate=200.0, measured_s=0.8, target_s=0.5)
    assert row["floor_s"] == 0.5 and row["reached_gflops"] == 125.0 and row["target_s"] == 0.5
    assert "measured_s" not in floor_row("fidelity", 10.0, 200.0, None, 15.0)


def test_the_cpu_report_gives_the_floor_of_the_whole_call_beside_what_it_measured(one_thread):
    from factories import tiny_model

    from napari_deblur.speed import cpu_variants

    model = tiny_model(channels=3, seed=5)
    calls = [{"call": "xydeblur", "layout": "channels_last", "size": "32x48", "seconds": 0.25}]
    floor = cpu_variants.fp32_floor(model, (32, 48), calls, fidelity=False, log=lambda *_: None)
    (row,) = floor["rows"]
    assert row["call"] == "xydeblur" and row["gflop"] > 0 and row["measured_s"] == 0.25
    assert row["floor_s"] == pytest.approx(row["gflop"] / floor["matmul_gflops"])
    report = {**cpu_report([], calls), "floor": floor}
    table = cpu_variants.cpu_variants_markdown(report)
    assert f"| xydeblur | 32x48 | {row['gflop']:.1f} | {row['floor_s']:.3f} | 0.250 |" in table
    assert table.rstrip().endswith("| 0.5 |")  # the target
