"""Training data, made offline from real images and synthetic blur: nothing is downloaded.

* :mod:`.real`: real sharp images (folders, files or crop banks) as training sources.
* :mod:`.bank`: packs seeded crops of them into a bank small enough to travel with the code.
* :mod:`.heldout`: which real files are held out for the benchmark, in code.
* :mod:`.sharp`: synthetic sharp sources (dead leaves, fluorescence-like scenes) and the shipped photos.
* :mod:`.kernels`: photographic blur kernels (camera shake, motion, defocus, Gaussian).
* :mod:`.motion`: dynamic-scene blur, one sharp frame averaged along smooth, varying flows.
* :mod:`.psf`: Born & Wolf microscope PSFs (widefield, confocal, defocused).
* :mod:`.psf_files`: measured or computed PSFs read from files (``--psf``).
* :mod:`.degrade`: batched blur (uniform or spatially varying), noise and compression, in torch.
* :mod:`.pairs`: :class:`~.pairs.PairSampler` batches on the training device; :mod:`.folder`:
  :class:`~.folder.FolderPairs` for a user's paired images; ``make_sampler`` picks one.
"""
