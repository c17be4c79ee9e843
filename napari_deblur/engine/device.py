"""Device and precision choice, and how much memory a run may use."""

import os

import torch

_PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(device="auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; anything else is checked."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu', 'cuda', 'mps', got {device!r}")
    name = device.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return with_index(torch.device("cuda"))
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' was requested but PyTorch sees no CUDA GPU (is a CUDA build of torch installed?)"
        )
    if name == "mps" and not mps_available():
        raise ValueError("device 'mps' was requested but Apple's Metal backend is not available")
    allowed = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    try:
        picked = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be {allowed}, got {device!r}") from None
    if picked.type not in ("cpu", "cuda", "mps"):  # e.g. 'meta' (no data) or a backend the engine has not met
        raise ValueError(f"device must be {allowed}, got {device!r}")
    return with_index(picked)


def with_index(device: torch.device) -> torch.device:
    """A CUDA device with its index (torch 2.11's memory queries refuse plain ``"cuda"``)."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 in hardware through oneDNN (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(precision, device: torch.device) -> torch.dtype:
    """``"auto"``: fp16 on CUDA and MPS, fp32 on the CPU."""
    if precision == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'fp32', 'fp16' or 'bf16', got {precision!r}")
    return _PRECISIONS[precision]


def precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _PRECISIONS.items()}[dtype]


def free_memory(device: torch.device) -> int:
    """Bytes a run may reasonably claim on ``device`` right now."""
    if device.type == "cuda":
        device = with_index(device)
        free, total = torch.cuda.mem_get_info(device)
        fraction = getattr(torch.cuda, "get_per_process_memory_fraction", lambda _d: 1.0)(device)
        if fraction < 1.0:  # torch.cuda.set_per_process_memory_fraction caps this process below the card
            free = min(free, int(fraction * total) - torch.cuda.memory_allocated(device))
        return int(max(free, 0))
    if device.type == "mps":
        limit = torch.mps.recommended_max_memory()
        return int(max(limit - torch.mps.driver_allocated_memory(), limit // 8))
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def describe(device: torch.device) -> str:
    """A one-line description: name and free memory."""
    free_gib = free_memory(device) / 2**30
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, {free_gib:.1f} GiB free)"
    if device.type == "mps":
        return f"mps (Apple GPU, {free_gib:.1f} GiB available)"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''}, {free_gib:.1f} GiB free)"


def is_out_of_memory(err: BaseException) -> bool:
    """True for the allocator failures of CUDA, MPS and the CPU."""
    if isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(err, (RuntimeError, MemoryError)) and (
        isinstance(err, MemoryError) or "out of memory" in str(err).lower()
    )
