"""The DeepLesion matching walk: which pooled, score-ranked detections are false positives, and
which detection first hits each lesion.

The official procedure pools the detections of all images, sorts them by score (descending; ties
keep input order, image by image) and walks down the list: a detection marks as hit every
not-yet-hit lesion of its image whose overlap with it is >= the threshold; a detection with no
such lesion at all (or in an image without lesions) is a false positive; a detection whose
qualifying lesions were all hit earlier is neither a true nor a false positive.

Whether a detection is a false positive depends only on its own overlaps, and a lesion is hit by
the best-ranked detection that qualifies for it, so the walk is computed image by image without a
Python loop over detections. :class:`RankedMatches` keeps the outcome; every DeepLesion number
(FROC, curve, sensitivity by size) is read from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fsd.eval.boxes import overlap_matrix
from fsd.eval.inputs import OverlapKind


def allowed_false_positives(fp_per_image: float, num_images: int) -> int:
    """The most false positives allowed at ``fp_per_image`` over ``num_images`` images.

    This is floor(fp_per_image * num_images) in exact arithmetic, decided the way the official
    code decides it: k false positives are allowed when ``k / num_images <= fp_per_image`` in
    floating point (so 0.29 FPs/image over 100 images allows 29, although 0.29 * 100 < 29).
    """
    allowed = math.floor(fp_per_image * num_images)
    while (allowed + 1) / num_images <= fp_per_image:
        allowed += 1
    while allowed > 0 and allowed / num_images > fp_per_image:
        allowed -= 1
    return allowed


@dataclass(frozen=True)
class RankedMatches:
    """Outcome of the matching walk over a data set.

    Ranks are 0-based positions in the pooled, score-sorted list of all detections.

    Attributes:
        num_images: images evaluated (the denominator of "FPs per image").
        num_detections: detections of all images.
        fp_ranks: sorted ranks of the false positives.
        lesion_hit_ranks: one entry per lesion (images in order, lesions in input order within an
            image): rank of the detection that first hit it, or ``num_detections`` if none did.
    """

    num_images: int
    num_detections: int
    fp_ranks: np.ndarray
    lesion_hit_ranks: np.ndarray

    @property
    def num_lesions(self) -> int:
        return int(self.lesion_hit_ranks.shape[0])

    def rank_cutoff(self, fp_per_image: float) -> int:
        """Number of top-ranked detections that count at this rate: all those above the
        (allowed + 1)-th false positive, or every detection when there are fewer false positives."""
        allowed = allowed_false_positives(fp_per_image, self.num_images)
        if allowed < self.fp_ranks.shape[0]:
            return int(self.fp_ranks[allowed])
        return self.num_detections

    def lesions_hit(self, fp_per_image: float, lesion_mask: np.ndarray | None = None) -> int:
        """Lesions (all, or those selected by a boolean mask) hit within the false-positive budget."""
        hit_ranks = self.lesion_hit_ranks if lesion_mask is None else self.lesion_hit_ranks[lesion_mask]
        return int(np.count_nonzero(hit_ranks < self.rank_cutoff(fp_per_image)))

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative false positives per image and sensitivity after each ranked detection."""
        is_false_positive = np.zeros(self.num_detections, dtype=np.int64)
        is_false_positive[self.fp_ranks] = 1
        hit = self.lesion_hit_ranks[self.lesion_hit_ranks < self.num_detections]
        hits_per_rank = np.bincount(hit, minlength=self.num_detections)
        fp_per_image = np.cumsum(is_false_positive) / self.num_images
        sensitivity = np.cumsum(hits_per_rank) / max(self.num_lesions, 1)
        return fp_per_image.astype(np.float64), sensitivity.astype(np.float64)


def match_detections(
    detections: list[np.ndarray], lesions: list[np.ndarray], threshold: float, overlap: OverlapKind
) -> RankedMatches:
    """Run the matching walk on checked per-image arrays ((N, 5) detections, (M, 4) lesions)."""
    counts = [len(image_detections) for image_detections in detections]
    num_detections = int(sum(counts))
    scores = np.concatenate([image_detections[:, 4] for image_detections in detections])
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(num_detections, dtype=np.int64)
    ranks[order] = np.arange(num_detections)

    is_false_positive = np.zeros(num_detections, dtype=bool)
    lesion_hit_ranks: list[np.ndarray] = []
    start = 0
    for image_detections, image_lesions in zip(detections, lesions, strict=True):
        stop = start + len(image_detections)
        image_ranks = ranks[start:stop]
        first_hits = np.full(len(image_lesions), num_detections, dtype=np.int64)
        if len(image_lesions) == 0:
            is_false_positive[start:stop] = True
        elif len(image_detections) > 0:
            qualifies = overlap_matrix(image_detections, image_lesions, overlap) >= threshold
            is_false_positive[start:stop] = ~qualifies.any(axis=1)
            first_hits = np.where(qualifies, image_ranks[:, None], num_detections).min(axis=0)
        lesion_hit_ranks.append(first_hits)
        start = stop

    return RankedMatches(
        num_images=len(detections),
        num_detections=num_detections,
        fp_ranks=np.sort(ranks[is_false_positive]),
        lesion_hit_ranks=np.concatenate(lesion_hit_ranks).astype(np.int64),
    )
