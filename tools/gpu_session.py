"""One GPU lease, prepared: the measurements the open issues need from a GPU and a training
continuation, in the single command a lease has room for.

A task that is lent a GPU gets about 15 minutes of device time, the machine's start
included, and one command may run 10 minutes. This script is that command. On the device
machine, from the repository root (the package need not be installed there):

    PYTHONUNBUFFERED=1 python3 tools/gpu_session.py --out $OUT --budget 540

It runs these stages in turn. Each has its own deadline. A stage that fails or runs over
is logged, and the next one still runs.

0. With ``--variants-seconds S``: ``tools/xydeblur_variants.py`` (each decoder form of
   XYDeblur timed, its kernels profiled, torch.compile tried) in at most S seconds; the
   bench then runs the fastest form (``NAPARI_DEBLUR_DECODER``).
1. ``napari-deblur bench --device cuda``: XYDeblur from 256x256 to 4096x4096 (eager and
   as a CUDA graph), a 16384x16384 image under a 4 GiB cap, denoiser steps, the Fidelity
   preset at 720p.
2. Training: each model named by ``--train`` continues from its bundled weights (a model in
   ``FROM_SCRATCH``, none today, would start afresh), and the time left (less
   ``--compile-seconds``) is split between them. Each is then exported (fp16 + manifest)
   with the GPU named. XYDeblurs train first; a denoiser whose predictor
   was just retrained (``--train xydeblur-photo dvsr-photo``) then trains against the new
   one, and its manifest pins that one's checksum, so the two ship together.
3. ``tools/probe_denoiser.py`` on each trained denoiser: Fidelity against x_init on
   held-out crops.
4. With ``--compile-seconds S``: the bench with ``--quick --compile`` (torch.compile at
   256x256 and 720p) in the S seconds kept for it.

``OUT`` receives ``report.tar.gz`` (bench JSON and Markdown, this script's log, the
training logs, the probe lines) and ``NAME.safetensors`` + ``NAME.json`` per trained
model. With at most 3 models that is at most 7 files, each under 16 MiB, inside the limits
of what comes back (8 files).

Back on a CPU machine: unpack the report, copy ``performance-cuda*.{json,md}`` into
``benchmarks/``, and score each new model with ``napari-deblur eval --models
OUT/NAME.safetensors`` before shipping it. Replace a bundled model only when the benchmark
improves.

Real data: pack the crop banks first (outside git: ``banks/`` is ignored) and carry them,
``napari-deblur pack --preset photo --sharp ../shared/data/photos --out banks/photo.npz`` and
``napari-deblur pack --preset microscopy --sharp ../shared/data/fluorescence --psf
../shared/data/psfs/flowdec_psfgen/psfgen1.tif ../shared/data/fluorescence/flowdec_bars/kernel.tif
--crops 240 --out banks/microscopy.npz`` (about 36 MiB together), then run with ``--banks banks``.
Gate what comes back with ``napari-deblur export ... --real ../shared/data`` before shipping.

``--device cpu --smoke`` runs every stage in miniature. It is how this script is tested
without a GPU.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The continuation recipes. A continuation starts from trained weights, so it uses a short
# warm-up and a lower peak rate than a run from scratch. --fit-iters times the first
# iterations and shortens the cosine schedule so that it ends within the time limit.
RECIPES = {
    "dvsr-photo": ["dvsr", "--preset", "photo", "--batch", "32", "--crop", "128", "--lr", "2e-4"],
    "dvsr-microscopy": ["dvsr", "--preset", "microscopy", "--batch", "32", "--crop", "128", "--lr", "2e-4"],
    # continued from the bundled weights (2026-12-08) on the data mix that took them there (README,
    # real-data benchmark: candidate 15, with half of the samples blurred on gamma-encoded values)
    "xydeblur-photo": [
        "xydeblur",
        "--preset",
        "photo",
        "--batch",
        "16",
        "--crop",
        "192",
        "--lr",
        "1e-4",
        "--fft-weight",
        "0",
        "--identity-prob",
        "0.25",
        "--motion-prob",
        "0.3",
        "--soft-prob",
        "0.4",
        "--display-blur-prob",
        "0.5",
    ],
    "xydeblur-microscopy": [
        "xydeblur",
        "--preset",
        "microscopy",
        "--batch",
        "16",
        "--crop",
        "192",
        "--lr",
        "2e-4",
        "--ema",
        "0.995",
        "--fft-weight",
        "0.05",
    ],
}
# bundled weights not worth continuing (they fail the do-no-harm gate): these would train from
# scratch. None since 2026-12-07, when xydeblur-photo was replaced by weights that pass.
FROM_SCRATCH: set[str] = set()
# the XYDeblur each denoiser trains against (the presets' defaults in training/train_dvsr.py)
PREDICTOR_OF = {"dvsr-photo": "xydeblur-photo", "dvsr-microscopy": "xydeblur-microscopy"}
SMOKE_RECIPE = ["--batch", "2", "--crop", "32"]
RESERVE_PER_MODEL = 45  # seconds kept back for each model's export and probe
MAX_MODELS = 3  # 2 files each and the report: 7 of the 8 files a lease brings back
MIN_STAGE_SECONDS = 10  # a stage with less time than this is skipped


class Session:
    """The stages' bookkeeping. Logs and training runs live in a scratch folder, so ``out``
    only ever holds what should come back, even if the lease ends mid-stage."""

    def __init__(self, out: Path, budget: float, device: str, smoke: bool, banks: Path | None = None):
        self.out, self.device, self.smoke, self.banks = out, device, smoke, banks
        self.out.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + budget
        self.work = Path(tempfile.mkdtemp(prefix="napari-deblur-gpu-session-"))
        self.stage = self.work / "stage"
        self.stage.mkdir()
        self.log_path = self.stage / "session.log"
        self.results = {}
        self.gpu = self.torch = None
        self.keep = 0  # seconds the training leaves for the stages after it
        self.decoder = None  # the decoder form the variants stage found fastest

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, line: str) -> None:
        stamped = f"[{time.strftime('%H:%M:%S')} {self.left():6.0f} s left] {line}"
        print(stamped, flush=True)
        with open(self.log_path, "a") as log:
            log.write(stamped + "\n")

    def run(self, name: str, args: list, limit: float, env: dict | None = None) -> bool:
        """Run ``python3 -m napari_deblur ARGS`` (or a script) for at most ``limit`` seconds."""
        limit = min(limit, self.left() - 5)
        if limit < MIN_STAGE_SECONDS:
            self.log(f"{name}: skipped, {self.left():.0f} s left")
            self.results[name] = "skipped"
            return False
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        cmd = [sys.executable, *args] if args[0].endswith(".py") else [sys.executable, "-m", "napari_deblur", *args]
        self.log(f"{name}: {' '.join(cmd[1:])} (at most {limit:.0f} s)")
        start = time.monotonic()
        with open(self.stage / f"{name}.log", "w") as output:
            try:
                code = subprocess.run(
                    cmd, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=limit
                ).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        seconds = time.monotonic() - start
        self.results[name] = {"exit": code, "seconds": round(seconds, 1)}
        tail = (self.stage / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
        self.log(f"{name}: exit {code} after {seconds:.0f} s; last lines: {' | '.join(tail)}")
        return code == 0

    def environment(self) -> None:
        import platform

        try:
            import torch

            gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
            self.log(
                f"python {platform.python_version()}, torch {torch.__version__}, {gpu}, {os.cpu_count()} CPU cores"
            )
            self.gpu, self.torch = (gpu if torch.cuda.is_available() else None), torch.__version__
        except ImportError:
            self.log("torch is not importable")

    def variants(self, seconds: float) -> None:
        """The decoder forms timed; the fastest is what the bench then runs."""
        out = self.stage / "variants.json"
        small = (
            ["--sizes", "64x64", "--repeats", "1", "--no-compile"]
            if self.smoke
            else ["--compile-timeout", str(max(30, (seconds - 70) / 3))]
        )  # up to 3 compiles after ~60 s eager
        self.run(
            "variants",
            [str(ROOT / "tools" / "xydeblur_variants.py"), "--device", self.device, *small, "--out", str(out)],
            seconds,
        )
        try:
            self.decoder = json.loads(out.read_text())["fastest"]
            self.log(f"the bench runs the {self.decoder} decoder form")
        except (OSError, ValueError, KeyError):
            self.log("no fastest form measured: the bench runs the engine's default")

    def bench(self) -> None:
        # 6 repeats: the first lease's XYDeblur rows took 85 s with them, the 16384^2 run 49 s
        quick = ["--quick", "--repeats", "1"] if self.smoke else ["--repeats", "6"]
        env = {"NAPARI_DEBLUR_DECODER": self.decoder} if self.decoder else None
        self.run(
            "bench",
            ["bench", "--device", self.device, *quick, "--out", str(self.stage / f"performance-{self.device}.json")],
            40 if self.smoke else 230,
            env=env,
        )

    def bench_compile(self) -> None:
        """torch.compile at 256x256 and 720p, in the ``--compile-seconds`` training kept for it."""
        self.run(
            "bench-compile",
            [
                "bench",
                "--device",
                self.device,
                "--quick",
                "--compile",
                *(["--repeats", "1"] if self.smoke else []),
                "--out",
                str(self.stage / f"performance-{self.device}-compile.json"),
            ],
            40 if self.smoke else 150,
        )

    def predictors_overlay(self, name: str) -> dict:
        """A resources folder in which the just-exported XYDeblur ``name`` replaces the bundled
        one, as the environment for the stages after it: a denoiser that pairs with ``name``
        then trains against, records the checksum of, and is probed with the new predictor."""
        folder = self.work / "resources"
        if not folder.is_dir():  # the checkout's (this script runs from one, not an installed wheel)
            shutil.copytree(os.environ.get("NAPARI_DEBLUR_RESOURCES") or ROOT / "resources", folder)
        for suffix in (".safetensors", ".json"):
            shutil.copy2(self.out / f"{name}{suffix}", folder / f"{name}{suffix}")
        self.log(f"the stages after this one use the new {name} (resources overlay {folder})")
        return {"NAPARI_DEBLUR_RESOURCES": str(folder)}

    def train(self, names: list) -> None:
        # predictors first: a denoiser whose predictor is retrained here trains against the new one
        names = sorted(names, key=lambda name: RECIPES[name][0] != "xydeblur")
        env = None
        for index, name in enumerate(names):
            remaining = len(names) - index
            seconds = (self.left() - self.keep - RESERVE_PER_MODEL * remaining) / remaining
            seconds = min(seconds, 60) if self.smoke else seconds
            kind = RECIPES[name][0]
            recipe = [*RECIPES[name][:3], *SMOKE_RECIPE] if self.smoke else RECIPES[name]
            iters = 4 if self.smoke else 200_000  # an upper bound: --fit-iters sets the length
            run_dir = self.work / "runs" / name
            preset = recipe[recipe.index("--preset") + 1]
            bank = self.banks / f"{preset}.npz" if self.banks else None
            if bank is not None and bank.is_file():  # real sharp images (napari-deblur pack), PSFs included
                recipe = [*recipe, "--sharp", str(bank)]
            scratch = name in FROM_SCRATCH
            start = [] if scratch else ["--init", name]
            warmup = 1 if self.smoke else (300 if scratch else 100)  # a fresh network warms up longer
            args = [
                "train",
                *recipe,
                *start,
                "--iters",
                str(iters),
                "--warmup",
                str(warmup),
                "--val-every",
                str(1 if self.smoke else 1000),
                "--ckpt-every",
                str(10 * iters),
                "--time-limit",
                str(max(1, int(seconds - 30))),
                "--fit-iters",
                "--device",
                self.device,
                "--out",
                str(run_dir),
            ]
            # start-up (Python, torch, the data) on top of the training's own time limit; a smoke run
            # on a loaded 2-core test machine needs more of it than a GPU machine
            if not self.run(f"train-{name}", args, seconds + (90 if self.smoke else 30), env=env):
                continue
            log = run_dir / "log.jsonl"
            if log.is_file():
                (self.stage / f"train-{name}.jsonl").write_text(log.read_text())
            device = f"{self.gpu}, PyTorch {self.torch}, tools/gpu_session.py" if self.gpu else "CPU (smoke run)"
            note = (
                "continued from the bundled weights on a GPU lease by tools/gpu_session.py; "
                "ship only after `napari-deblur eval` shows an improvement"
            )
            if not self.run(
                f"export-{name}",
                [
                    "export",
                    str(run_dir),
                    "--name",
                    name,
                    "--out",
                    str(self.out),
                    "--trained-on",
                    device,
                    "--note",
                    note,
                ],
                90 if self.smoke else 30,  # a loaded 2-core test machine needs longer to start Python and torch
                env=env,
            ):
                continue
            if kind == "xydeblur" and any(PREDICTOR_OF.get(later) == name for later in names[index + 1 :]):
                env = self.predictors_overlay(name)
            if kind == "dvsr":
                size = ["--crops", "16"]
                if self.smoke:
                    size = ["--crops", "2", "--crop", "32", "--steps", "2", "--samples", "2"]
                self.run(
                    f"probe-{name}",
                    [str(ROOT / "tools" / "probe_denoiser.py"), str(run_dir), *size, "--device", self.device],
                    60 if self.smoke else 40,
                    env=env,
                )

    def pack(self) -> Path:
        (self.stage / "results.json").write_text(json.dumps(self.results, indent=1) + "\n")
        report = self.out / "report.tar.gz"
        with tarfile.open(report, "w:gz") as tar:
            for path in sorted(self.stage.iterdir()):
                tar.add(path, arcname=path.name)
        return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-session")))
    parser.add_argument("--budget", type=float, default=540, help="seconds for everything (default 540)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--train",
        nargs="*",
        default=["dvsr-photo", "dvsr-microscopy"],
        choices=sorted(RECIPES),
        help="bundled models to continue training (default: both denoisers; none: no training)",
    )
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmark stages")
    parser.add_argument(
        "--compile-seconds",
        type=float,
        default=0,
        help="seconds kept after training for the torch.compile bench (default 0: not run)",
    )
    parser.add_argument(
        "--variants-seconds",
        type=float,
        default=0,
        help="seconds for tools/xydeblur_variants.py before the bench (default 0: not run)",
    )
    parser.add_argument("--smoke", action="store_true", help="every stage in miniature (a test on the CPU)")
    parser.add_argument(
        "--banks",
        type=Path,
        default=None,
        metavar="DIR",
        help="train on the crop banks DIR/photo.npz and DIR/microscopy.npz (napari-deblur pack; "
        "carried to the device, never committed) instead of the procedural data",
    )
    args = parser.parse_args(argv)
    if len(args.train) > MAX_MODELS:
        parser.error(f"--train takes at most {MAX_MODELS} models: a lease brings back 8 files, 2 per model")

    session = Session(args.out, args.budget, args.device, args.smoke, args.banks)
    session.environment()
    if not args.no_bench:
        if args.variants_seconds:
            session.variants(args.variants_seconds)
        session.bench()
        session.keep = args.compile_seconds
    session.train(args.train)
    if not args.no_bench and args.compile_seconds:
        session.bench_compile()
    session.log(f"stages: {json.dumps(session.results)}")
    report = session.pack()
    shutil.rmtree(session.work, ignore_errors=True)  # checkpoints (optimizer state) do not come back
    print(f"{args.out} holds {', '.join(sorted(p.name for p in args.out.iterdir()))}; the report is {report.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
