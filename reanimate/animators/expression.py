"""Expression control: what an :class:`~reanimate.animators.base.Animator` adds when its
expressions are features a network reads from an image and decodes for a source's
identity (MMFA paper Sec. 3.2, Eq. 4), with a canonical face of no pose or expression.

``reanimate canonical`` (paper Fig. 7), ``reanimate train-vae`` and ``reanimate
interpolate`` (Sec. 3.3, 4.4, Fig. 8) only check ``isinstance(animator,
ExpressionControl)`` (together with :class:`~reanimate.animators.base.HeadControl`, whose
``source_head`` and ``render_heads`` they render with), never the family's type.
"""

from __future__ import annotations

import abc

import numpy as np
import torch

from ..motion import HeadMotion
from .base import Source


class ExpressionControl(abc.ABC):
    """An animator whose expressions are features ``f_delta`` decoded onto canonical
    keypoints (MMFA Eq. 4: ``delta = D_e(f_delta, p_C)``)."""

    @abc.abstractmethod
    def expression_feature(self, image: np.ndarray) -> torch.Tensor:
        """``f_delta`` ``(1, F)`` float32 of an ``(H, W, 3)`` uint8 face image at
        :attr:`Requirements.size` (cropped like a source)."""

    @abc.abstractmethod
    def expression(self, feature: torch.Tensor, canonical: torch.Tensor) -> torch.Tensor:
        """Eq. 4: the expression field ``(N, K, 3)`` of features ``(N, F)`` (on the
        animator's device) for the identity of canonical keypoints ``(1|N, K, 3)``."""

    @abc.abstractmethod
    def canonical_head(self, source: Source) -> HeadMotion:
        """The source's canonical face (MMFA Fig. 7): its canonical keypoints with no
        rotation, translation or expression (batch 1), for ``render_heads``."""


__all__ = ["ExpressionControl"]
