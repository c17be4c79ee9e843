"""The engine: any image or stack in, restored out; torch and numpy only.

* :mod:`.restore`: :func:`~.restore.xydeblur_iter` / :func:`~.restore.xydeblur`, the XYDeblur engine.
* :mod:`.runtime`: what the engines share to run a network (model cache, device copies, OOM retry).
* :mod:`.axes`: axis strings and the (batch, channel, Y, X) layout the networks work in.
* :mod:`.intensity`: scaling between the user's units and the networks' [0, 1].
* :mod:`.tiling`: overlapping tiles with smooth blending, batched.
* :mod:`.frames`: frames that fit one tile, restored on the device from end to end.
* :mod:`.device`: device and precision choice, and the memory a run may use.
* :mod:`.options`: the tuning parameters, checked once for every entry point.
* :mod:`.compiled`: ``torch.compile`` of the networks, with a fallback to eager.
* :mod:`.compile_cache`: where compiled code is kept on disk, for the next process.
"""
