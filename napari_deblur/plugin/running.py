"""How a job generator reports a failed run to the widget that started it, with no Qt in it.

The widgets hand their job generators (:func:`napari_deblur.plugin.xydeblur_job.run_job`,
:func:`napari_deblur.plugin.diffusion_job.run_diffusion`) to napari's ``thread_worker``,
whose ``errored`` signal the widget shows. superqt's worker turns a ``RuntimeError`` into a
warning instead of emitting ``errored``, and the engine and torch report most failures
(CUDA errors, out of memory) as ``RuntimeError``; :func:`job_generator` passes those on as
:class:`RunError`, with the error's first line as the message.
"""

import functools


class RunError(Exception):
    """A run failed. (superqt's worker swallows a RuntimeError into a warning, so engine and
    torch RuntimeErrors are passed on as this.)"""


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or its type's name when the message is empty."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def job_generator(function):
    """Decorate the generator function ``function(job)`` so a RuntimeError it raises is
    raised as :class:`RunError` (chained to the original), with :func:`first_line` as message.

    What it yields, returns and does on ``close()`` (a cancelled run) is unchanged.
    """

    @functools.wraps(function)
    def generator(job):
        try:
            return (yield from function(job))
        except RuntimeError as err:
            raise RunError(first_line(err)) from err

    return generator
