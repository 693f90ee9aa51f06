"""Tissue labels and their CT numbers (HU) in each contrast phase.

Every painted pixel carries a :class:`Region` label besides its HU value; lesion placement uses
the labels to put each lesion type in its anatomical home.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Region(enum.IntEnum):
    """What a pixel of a synthetic slice shows."""

    AIR = 0
    TABLE = 1
    SKIN = 2
    SUBCUT_FAT = 3
    MUSCLE = 4
    LUNG = 5
    MEDIASTINUM = 6
    HEART = 7
    VESSEL = 8
    AIRWAY = 9
    LIVER = 10
    SPLEEN = 11
    KIDNEY = 12
    STOMACH = 13
    BOWEL = 14
    ABDOMEN_FAT = 15
    PELVIC_FAT = 16
    BLADDER = 17
    CORTICAL_BONE = 18
    MARROW = 19
    SPINAL_CANAL = 20
    PANCREAS = 21
    GALLBLADDER = 22
    PELVIC_ORGAN = 23
    CARTILAGE = 24
    BREAST = 25


#: Pixels that belong to the patient (everything but air and the table).
NOT_BODY: frozenset[int] = frozenset({Region.AIR, Region.TABLE})


class Phase(enum.Enum):
    """Contrast phase of a series."""

    NONCONTRAST = "noncontrast"
    ARTERIAL = "arterial"
    PORTAL = "portal"


@dataclass(frozen=True)
class TissueTable:
    """Mean HU of each tissue in one contrast phase."""

    air: float = -1000.0
    lung: float = -850.0
    fat: float = -100.0
    skin: float = 30.0
    muscle: float = 50.0
    blood: float = 40.0
    aorta: float = 40.0
    veins: float = 40.0
    myocardium: float = 45.0
    liver: float = 60.0
    liver_vessels: float = 40.0
    spleen: float = 50.0
    kidney_cortex: float = 35.0
    kidney_medulla: float = 35.0
    pancreas: float = 45.0
    bowel_wall: float = 45.0
    fluid: float = 10.0
    bladder: float = 10.0
    uterus: float = 45.0
    prostate: float = 40.0
    breast_gland: float = 30.0
    cartilage: float = 120.0
    cortical_bone: float = 1000.0
    marrow: float = 250.0
    disc: float = 85.0
    csf: float = 10.0
    cord: float = 35.0
    bowel_gas: float = -950.0


TISSUES: dict[Phase, TissueTable] = {
    Phase.NONCONTRAST: TissueTable(),
    Phase.ARTERIAL: TissueTable(
        blood=120.0,
        aorta=320.0,
        veins=70.0,
        myocardium=110.0,
        liver=75.0,
        liver_vessels=90.0,
        spleen=110.0,
        kidney_cortex=190.0,
        kidney_medulla=80.0,
        pancreas=120.0,
        bowel_wall=90.0,
        uterus=110.0,
        prostate=70.0,
    ),
    Phase.PORTAL: TissueTable(
        blood=150.0,
        aorta=180.0,
        veins=160.0,
        myocardium=100.0,
        liver=105.0,
        liver_vessels=165.0,
        spleen=115.0,
        kidney_cortex=165.0,
        kidney_medulla=150.0,
        pancreas=100.0,
        bowel_wall=80.0,
        uterus=100.0,
        prostate=70.0,
    ),
}
