"""Diffusion refinement ("Deblurring via Stochastic Refinement", Whang et al., CVPR 2022).

- :mod:`.schedule`: the continuous noise levels (training draws and inference schedules);
- :mod:`.sampler`: one ancestral DDPM or deterministic DDIM step, and a plain sampling loop;
- :mod:`.stats`: running per-pixel mean and standard deviation (Welford/Chan);
- :mod:`.refine`: the engine, ``refine_iter`` / ``refine``: any image or stack in, the mean
  and standard deviation over samples out, with tiling and a preview per step.

The denoiser network itself is :class:`napari_deblur.models.denoiser.ResidualDenoiser`.
"""
