"""Diffusion refinement ("Deblurring via Stochastic Refinement", Whang et al., CVPR 2022).

- :mod:`.refine`: the engine, ``refine_iter`` / ``refine``: any image or stack in, mean and std over samples out;
- :mod:`.request`: its arguments, checked once before any work;
- :mod:`.chains`: the plan (tile, batch, chains in flight, seeds) and the run of the diffusion chains;
- :mod:`.images`: the chains' [0, 1]-unit residuals back to images in the input's units and layout;
- :mod:`.tiles`: the tile grid shared by all chains and the blended noise estimate of a whole state;
- :mod:`.pair`: which predictor and denoiser work together, and what the denoiser needs of the image;
- :mod:`.schedule`: the continuous noise levels (training draws and inference schedules);
- :mod:`.presets`: the Fidelity and Perceptual presets (steps and samples), one definition for every caller;
- :mod:`.sampler`: one ancestral DDPM or deterministic DDIM step, and a plain sampling loop;
- :mod:`.stats`: running per-pixel mean and standard deviation (Welford/Chan).

The denoiser network itself is :class:`napari_deblur.models.denoiser.ResidualDenoiser`.
"""
