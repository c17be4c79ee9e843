"""What compiling costs the first process on a machine and the next one
(``napari-deblur bench --cpu-variants`` reports it).

Each process is a fresh Python that loads the bundled photo model, compiles the engine's
network (:class:`~napari_deblur.engine.compiled.CompiledResiduals`) and runs it once on a
frame; both share one empty on-disk cache folder, so the first compiles and the second should
find what the first wrote. torch only (and the standard library's subprocess).
"""

import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time
start = time.perf_counter()
import torch
from napari_deblur.engine.runtime import device_copy
from napari_deblur.models.registry import bundled_name
from napari_deblur.models.weights import load_model
device = torch.device(sys.argv[1])
height, width = int(sys.argv[2]), int(sys.argv[3])
work = device_copy(load_model(bundled_name("photo")), device, compile=True)
x = torch.rand(1, 3, height, width, device=device).contiguous(memory_format=torch.channels_last)
ready = time.perf_counter()
with torch.inference_mode():
    work.residuals(x)
if device.type == "cuda":
    torch.cuda.synchronize()
print(json.dumps({"import_s": ready - start, "first_call_s": time.perf_counter() - ready, "status": work.status}))
"""


def compile_reuse(device: str = "cpu", size=(256, 256), timeout: float = 900, log=print) -> dict:
    """Two fresh processes, one empty cache: each one's time to its first compiled result."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="napari-deblur-compile-") as folder:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": folder}
        for which in ("first process", "second process"):
            done = subprocess.run(
                [sys.executable, "-c", CHILD, device, str(size[0]), str(size[1])],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the {which} failed: {done.stderr.strip().splitlines()[-1:]}")
            row = {"process": which, **json.loads(done.stdout.strip().splitlines()[-1])}
            runs.append(row)
            log(f"  compile, {which}: first compiled result after {row['first_call_s']:.1f} s ({row['status']})")
    return {"device": device, "size": f"{size[0]}x{size[1]}", "runs": runs}
