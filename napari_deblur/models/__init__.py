"""The networks and their weights; torch only.

* :mod:`.xydeblur`: :class:`~.xydeblur.XYDeblur`, one encoder and two weight-sharing decoders.
* :mod:`.twin`: XYDeblur's two decoder branches as one pass, an inference form.
* :mod:`.denoiser`: :class:`~.denoiser.ResidualDenoiser`, the residual diffusion denoiser.
* :mod:`.weights`: the one public way to load, save and recognise weights of either network.
* :mod:`.weight_files`: the file level beneath it (safetensors headers, checksums).
* :mod:`.registry`: the bundled models, their manifests and the default for an image.
"""
