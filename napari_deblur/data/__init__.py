"""Synthetic training data, made offline: nothing is downloaded.

* :mod:`.kernels`: photographic blur kernels (camera shake, motion, defocus, Gaussian).
* :mod:`.psf`: Born & Wolf microscope PSFs (widefield, confocal, defocused).
* :mod:`.sharp`: sharp sources (scikit-image's photographs, dead leaves, fluorescence-like scenes).
* :mod:`.degrade`: batched blur (uniform or spatially varying) and noise, in torch.
* :mod:`.pairs`: :class:`~.pairs.PairSampler` batches on the training device; :mod:`.folder`:
  :class:`~.folder.FolderPairs` for a user's paired images; ``make_sampler`` picks one.
"""
