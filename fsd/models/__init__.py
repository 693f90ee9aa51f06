"""Detector parts (backbone, neck, RPN, RoI heads, region-aware graph), the genotype, and builders.

``build_detector(genotype, config)`` is the only way a derived network is built.
"""

from fsd.models.builder import architecture_record, build_baseline, build_detector, build_from_architecture
from fsd.models.detector import LesionDetector
from fsd.models.detector_config import DetectorConfig
from fsd.models.genotype import Genotype, GenotypeError, default_genotype, load_genotype

__all__ = [
    "DetectorConfig",
    "Genotype",
    "GenotypeError",
    "LesionDetector",
    "architecture_record",
    "build_baseline",
    "build_detector",
    "build_from_architecture",
    "default_genotype",
    "load_genotype",
]
