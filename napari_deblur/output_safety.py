"""Writing results without losing anything: the rules every command and the streaming writer follow.

- :func:`check_apart` refuses an output that is an input, lies inside an input (a folder of
  TIFFs or a zarr store) or would contain one. Paths are compared resolved (a symbolic link
  counts as what it points to) and, where they exist, by device and inode.
- :func:`check_writable` creates the destination folder and a probe file in it, before any
  computation, so a read-only or inaccessible destination fails at once, naming the folder.
- :class:`OutputError` (an ``OSError``) is a failed write as one line: which file, and why
  (``disk full``, ``read-only file system``, ``permission denied``...); :func:`output_error`
  builds it from the ``OSError`` the writer raised.
- :func:`removed_on_failure` collects the files one run writes and removes them if the run
  fails or is interrupted, so a rerun is not blocked by half a set of outputs. Only the
  files recorded there are removed: never a file or folder this run did not write.

numpy-free, torch-free: the standard library only.
"""

import errno
import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path

_REASONS = {
    getattr(errno, name): reason
    for name, reason in (
        ("ENOSPC", "disk full"),
        ("EDQUOT", "disk quota exceeded"),
        ("EROFS", "read-only file system"),
        ("EACCES", "permission denied"),
        ("EPERM", "permission denied"),
        ("EFBIG", "file too large for this file system"),
        ("ENAMETOOLONG", "file name too long"),
        ("ENOENT", "its folder does not exist"),
        ("EISDIR", "a folder of that name exists"),
        ("ENOTDIR", "a file stands where a folder is needed"),
    )
    if hasattr(errno, name)
}
# numpy's tofile (and so tifffile) reports a short write without an errno
_SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")


class OutputError(OSError):
    """A result could not be written: the message names the file and the reason."""


def failure_reason(err: OSError) -> str:
    """Why a write failed, in a few words (``disk full``, ``read-only file system``...)."""
    if err.errno in _REASONS:
        return _REASONS[err.errno]
    short = _SHORT_WRITE.search(str(err))
    if short:
        return f"disk full or over quota ({short.group(2)} of {short.group(1)} bytes written)"
    return err.strerror or " ".join(str(err).split()) or type(err).__name__


def output_error(path, err: OSError) -> OutputError:
    """``cannot write <path>: <reason>`` as an :class:`OutputError` (errno kept); ``err`` may be one already."""
    reason = getattr(err, "reason", None) or failure_reason(err)
    error = OutputError(f"cannot write {path}: {reason}")
    error.errno, error.reason = err.errno, reason
    return error


def check_writable(folder) -> Path:
    """Create ``folder`` (and its parents) and a probe file in it; :class:`OutputError` if either fails."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(folder, err) from None
    if not folder.is_dir():
        raise OutputError(f"cannot write into {folder}: it is not a folder")
    probe = folder / f".napari-deblur-probe-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"cannot write into {folder}: {failure_reason(err)}") from None
    return folder


def _identities(path: Path) -> set:
    """The resolved path and, if it exists, its (device, inode): two names of one thing share one."""
    keys = {str(path)}
    try:
        stat = path.stat()
        keys.add((stat.st_dev, stat.st_ino))
    except OSError:
        pass
    return keys


def _owner(path: Path, table: dict):
    """The entry of ``table`` (identity -> path) that names ``path``, else None."""
    return next((table[key] for key in _identities(path) if key in table), None)


def check_apart(inputs, outputs) -> None:
    """ValueError if an output is an input, lies inside one, or would contain one.

    ``inputs``: files, folders of TIFFs or zarr stores that are read; ``outputs``: the files,
    folders or stores that will be written.
    """
    sources, targets = {}, {}
    for path in inputs:
        for key in _identities(Path(path).resolve()):
            sources[key] = Path(path)
    for path in outputs:
        for key in _identities(Path(path).resolve()):
            targets[key] = Path(path)
    for out in outputs:
        resolved = Path(out).resolve()
        source = _owner(resolved, sources)
        if source is not None:
            raise ValueError(f"{out} is the input {source}; choose another output")
        for folder in resolved.parents:
            source = _owner(folder, sources)
            if source is not None:
                raise ValueError(f"{out} lies inside the input {source}; choose an output outside it")
    for path in inputs:
        for folder in Path(path).resolve().parents:
            out = _owner(folder, targets)
            if out is not None:
                raise ValueError(f"{out} would contain the input {path}; choose an output that does not hold it")


@contextmanager
def removed_on_failure():
    """A list to which a run appends each file it has written; removed again if the run raises.

    KeyboardInterrupt included. Files a run has completely written stay once the block ends.
    """
    written = []
    try:
        yield written
    except BaseException:
        for path in reversed(written):
            try:
                Path(path).unlink(missing_ok=True)
            except OSError:
                pass  # the original error says more than a failed clean-up
        raise
