"""The napari side of napari-deblur: reader, sample data and dock widgets.

Only this subpackage imports napari and Qt. The modules napari loads through
the manifest (``reader``, ``sample_data``, ``xydeblur_widget``) import torch and
the engine inside functions, so discovering or opening the plugin stays cheap.

- ``reader``: TIFF files with their channels, pixel sizes, axis labels and units
- ``sample_data``: the blurred samples with their sharp references
- ``axes``: which engine axes string an Image layer stands for, and its current plane
- ``layers``: output layer names, properties copied from the input, add-or-replace
- ``job``: one restoration (engine run, output layers' data, colour shift, metrics), no Qt
- ``plane``: where a "current slice" result goes (the plane alone, placed by ``translate``)
- ``readout``: the colour-shift region mask and the text the widget shows
- ``compare``: the side-by-side grid view toggle
- ``options``: the model, device, precision and tile controls ("Load weights..." included)
- ``xydeblur_widget``: the XYDeblur dock widget
"""
