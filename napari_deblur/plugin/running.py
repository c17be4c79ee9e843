"""Starting a widget's job in napari's worker thread: the wiring both dock widgets share."""


def start_worker(widget, function, job, *, desc: str, on_yielded):
    """Run the generator ``function(job)`` in a napari ``thread_worker`` for ``widget``.

    ``on_yielded`` gets every yielded value; the widget's ``_on_returned``, ``_on_error``
    and ``_on_finished`` get the rest. An activity-dock progress bar (``widget._pbar``) is
    opened, Run is disabled and Cancel enabled, the widget's bar shows "busy"; the worker
    is stored as ``widget.worker`` and returned, not yet started.
    """
    from napari.qt.threading import thread_worker
    from napari.utils import progress

    widget._pbar = progress(total=0, desc=desc)
    worker = thread_worker(function, ignore_errors=True)(job)
    worker.yielded.connect(on_yielded)
    worker.returned.connect(widget._on_returned)
    worker.errored.connect(widget._on_error)
    worker.finished.connect(widget._on_finished)
    widget.run_button.setEnabled(False)
    widget.cancel_button.setEnabled(True)
    widget.progress_bar.setRange(0, 0)
    widget.worker = worker
    return worker
