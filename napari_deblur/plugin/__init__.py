"""The napari side of napari-deblur: reader, sample data and dock widgets.

Only this subpackage imports napari and Qt. The modules napari loads through
the manifest (``reader``, ``sample_data``, ``xydeblur_widget``, ``diffusion_widget``)
import torch and the engine inside functions, so discovering or opening the plugin stays cheap.

- ``reader``: TIFF files with their channels, pixel sizes, axis labels and units
- ``sample_data``: the blurred samples with their sharp references
- ``axes``: which engine axes string an Image layer stands for, and its current plane
- ``plane``: where a "current slice" result goes (the plane alone, placed by ``translate``)
- ``layers``: output layer names, their ``add_image`` arguments, properties copied from the input, add-or-replace
- ``running``: the RunError a failed job raises, and the decorator that makes job generators raise it
- ``xydeblur_job``: one XYDeblur restoration (engine run, output layers' data, colour shift, metrics), no Qt
- ``diffusion_job``: one diffusion refinement (steps, previews, trajectory, mean and std, metrics), no Qt
- ``readout``: the colour-shift region mask, reference metrics and the text the widgets show
- ``model_default``: which bundled model or denoiser suits a layer, and why
- ``options``: the model, device, precision and tile controls ("Load weights..." included)
- ``compare``: the side-by-side grid view toggle
- ``dock``: the base both dock widgets share (layer lists, run and cancel, the worker, progress)
- ``turns``: main-thread work one step per event-loop turn (result layers added, live layers removed)
- ``estimate``: how long an XYDeblur run will take on the CPU, said before it starts (no Qt)
- ``sampling``: the diffusion widget's steps, presets, samples, seed and sampler controls
- ``live``: the diffusion widget's live ``x0 estimate`` and ``z_t`` layers during a run
- ``xydeblur_widget``: the XYDeblur dock widget
- ``diffusion_widget``: the "Diffusion deblur" dock widget
"""
