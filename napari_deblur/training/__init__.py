"""Training and export, resumable across commands; torch and numpy only.

* :mod:`.train_xydeblur`: trains XYDeblur (the predictor).
* :mod:`.train_dvsr`: trains the residual diffusion denoiser against a frozen predictor.
* :mod:`.sources`: the data options both trainers share, and the pair sampler they make.
* :mod:`.checkpoint`: checkpoints as safetensors shards with exact resume.
* :mod:`.export` / :mod:`.export_dvsr`: a run into bundled fp16 weights and a manifest (with the gate).
* :mod:`.orientation`: measures which XYDeblur branch learned horizontal blur.
"""
