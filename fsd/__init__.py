"""FSD: a fully-specialized CT lesion detector found by neural architecture search.

The library holds everything the offline pipeline (search, train, evaluate, export) and the
inference service share: DICOM and DeepLesion reading, the one preprocessing definition, the
normalization layers and operation table, the detector, evaluation and export.
"""

__version__ = "0.1.0"
