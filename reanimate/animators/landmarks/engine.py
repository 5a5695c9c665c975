""":class:`LandmarkAnimator`: the zero-shot face animator, composed of its parts
(:mod:`.source`, :mod:`.transfer`, :mod:`.eyes`, :mod:`.mouth`, :mod:`.warp`; see the
package docstring for how a frame is made)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from ...motion import HEAD_ATTRIBUTES, HeadMotion, Keypoints
from ..base import Retarget
from . import eyes, mouth, warp
from . import source as sources
from . import transfer as transfers
from .config import LandmarkAnimatorConfig
from .source import DrivingFace, LandmarkSource, to_normalized


class LandmarkAnimator:
    """Animate a face crop from driving landmarks (see :mod:`reanimate.animators.landmarks`).

    Not an ``nn.Module``: no weights, numpy on the CPU.

    >>> animator = LandmarkAnimator()
    >>> source = animator.encode_source(crop, crop_landmarks)
    >>> kp = animator.keypoints(driving_landmarks, origin, side)
    >>> frame = animator.animate(source, DrivingFace(kp[i], lm[i], frame_i), initial)
    >>> head = animator.source_head(source)  # edit it: head.with_(rotation=...)
    >>> frame = animator.pose(source, head)
    """

    def __init__(self, config: LandmarkAnimatorConfig | None = None):
        self.config = config or LandmarkAnimatorConfig()

    @property
    def size(self) -> int:
        return self.config.size

    def keypoints(self, landmarks: np.ndarray, origin, side: float) -> Keypoints:
        """Landmarks ``(B, 478, 2+)`` in pixels of a square box -> keypoints in [-1, 1].

        No Jacobians: :meth:`transfer` fits them once, on the target landmarks against
        the source (the shared reference frame), after the eyes are retargeted."""
        return Keypoints(to_normalized(np.asarray(landmarks), origin, side))

    def encode_source(self, image: np.ndarray, landmarks: np.ndarray) -> LandmarkSource:
        """``image`` ``(S, S, 3)`` uint8 face crop with ``config.size`` pixels a side and
        its ``(478, 3)`` landmarks in the crop's pixels (:func:`.source.encode_source`)."""
        return sources.encode_source(self.config, image, landmarks)

    def animate(
        self,
        source: LandmarkSource,
        driving: DrivingFace,
        initial: DrivingFace,
        attributes: Iterable[str] = HEAD_ATTRIBUTES,
        retarget: Retarget | None = None,
    ) -> np.ndarray:
        """One output crop ``(S, S, 3)`` uint8 for one driving frame, taking the head
        ``attributes`` named from the driver (without ``expression`` the source keeps
        its own: no lid, gaze or mouth retargeting either), each part of the motion as
        much as ``retarget`` says (None: all of it)."""
        attributes = tuple(attributes)
        points = transfers.moved_points(self.config, source, driving, initial, attributes, retarget)
        expression = "expression" in attributes
        change = (
            transfers.FaceChange.retargeted(driving.landmarks, initial.landmarks, driving.frame, retarget)
            if expression
            else None
        )
        return self.draw(source, points, change)

    def pose(self, source: LandmarkSource, head: HeadMotion) -> np.ndarray:
        """The source with its landmarks at the points of ``head`` (batch 1, a head of
        :meth:`source_head`'s canonical points, absolute): ``(S, S, 3)`` uint8.

        A changed expression is read, for the eyes and the mouth, from the head's
        canonical points with and without it (a frontal view in head units)."""
        assert head.batch_size == 1, f"one head at a time, got a batch of {head.batch_size}"
        points = head.points()[0].detach().cpu().double().numpy()
        change = None
        if bool(head.expression.abs().max() > 0):
            neutral = head.canonical[0].detach().cpu().double().numpy()
            change = transfers.FaceChange(neutral + head.expression[0].detach().cpu().double().numpy(), neutral)
        return self.draw(source, points, change)

    def draw(self, source: LandmarkSource, points: np.ndarray, change: transfers.FaceChange | None) -> np.ndarray:
        """The source with its landmarks moved to ``points`` ``(478, 3)`` (crop pixels),
        the eyes and mouth following ``change`` (None: they ride with the head):
        :func:`.transfer.place`, then the warp, the eye layers and the mouth fill."""
        target, points = transfers.place(self.config, source, points, change)
        nodes = self.target_nodes(source, points, target.jacobian)
        depth = np.concatenate([points[:, 2], source.depth[len(points) :]])
        if change is None:
            return self.render(source, nodes, depth)
        # The eyeball layer (a movable iris over the white of the eye) is a human eye's:
        # on other faces the eyes ride with the lids.
        gaze = (
            self.gaze_shifts(source, change.landmarks, change.reference, change.gaze)
            if self.config.gaze and source.human
            else None
        )
        closing = transfers.closing(self.config, change.landmarks, change.reference, change.lids)
        out = self.render(source, nodes, depth, self.lifted_lids(source, closing), gaze, closing)
        if self.config.mouth_fill:
            size = transfers.head_size_ratio(source, points)
            # The driver's (human) teeth and tongue do not belong in another face's mouth:
            # it opens onto a shadow in its own lips' colour instead.
            frame = change.frame if source.human else None
            mouth.fill_mouth(self.config, source, out, nodes[: len(points)], frame, change.landmarks, size)
        return out

    # -- motion transfer (.transfer) ------------------------------------------------------

    def transfer(
        self,
        source: LandmarkSource,
        driving: DrivingFace,
        initial: DrivingFace,
        attributes: Iterable[str] = HEAD_ATTRIBUTES,
        retarget: Retarget | None = None,
    ) -> tuple[Keypoints, np.ndarray]:
        """Target keypoints (batch 1) and ``(478, 3)`` target landmarks in crop pixels."""
        return transfers.transfer(self.config, source, driving, initial, attributes, retarget)

    def source_head(self, source: LandmarkSource) -> HeadMotion:
        """The source's own head (batch 1, crop pixels; :func:`.transfer.source_head`)."""
        return transfers.source_head(source)

    def expression_from(self, source: LandmarkSource, landmarks: np.ndarray) -> torch.Tensor:
        """Another face's expression for the source's head (:func:`.transfer.expression_from`)."""
        return transfers.expression_from(source, landmarks)

    def gaze_shifts(
        self, source: LandmarkSource, driving: np.ndarray, initial: np.ndarray, factor: float = 1.0
    ) -> list[np.ndarray]:
        """Per eye the iris shift in source pixels ``[(2,), (2,)]`` (``factor`` of the driver's)."""
        return transfers.gaze_shifts(self.config, source, driving, initial, factor)

    def opening(self, driving: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """``(2,)`` per eye the driver's opening ratio since ``initial``."""
        return transfers.opening(self.config, driving, initial)

    def closing(self, driving: DrivingFace, initial: DrivingFace) -> np.ndarray:
        """``(2,)`` per eye how far the driver has closed it (0 open, 1 closed)."""
        return transfers.closing(self.config, driving.landmarks, initial.landmarks)

    def lifted_lids(self, source: LandmarkSource, closing: np.ndarray) -> np.ndarray:
        """Source nodes with each closing upper lid sampled from higher up (:mod:`.eyes`)."""
        return eyes.lifted_lids(self.config, source, closing)

    # -- rendering (.warp) ----------------------------------------------------------------

    def target_nodes(self, source: LandmarkSource, points: np.ndarray, jacobian: torch.Tensor | None) -> np.ndarray:
        """Target positions of all nodes: landmarks, head-following rings, fixed border."""
        return warp.target_nodes(self.config, source, points, jacobian)

    def render(
        self,
        source: LandmarkSource,
        nodes: np.ndarray,
        depth: np.ndarray,
        source_nodes: np.ndarray | None = None,
        gaze: list[np.ndarray] | None = None,
        closing: np.ndarray | None = None,
    ) -> np.ndarray:
        """Backward-warp the source so that its nodes land on ``nodes``: ``(S, S, 3)``."""
        return warp.render(self.config, source, nodes, depth, source_nodes, gaze, closing)

    def grid_flow(
        self,
        source: LandmarkSource,
        nodes: np.ndarray,
        depth: np.ndarray,
        size: int,
        source_nodes: np.ndarray | None = None,
    ):
        """The backward flow on a ``size``-pixel grid (:func:`.warp.grid_flow`)."""
        return warp.grid_flow(source, nodes, depth, size, source_nodes)

    def rasterize(self, source: LandmarkSource, nodes: np.ndarray, depth: np.ndarray, size: int) -> np.ndarray:
        """Which triangle (index + 1; 0 = none) each grid pixel sees (:func:`.warp.rasterize`)."""
        return warp.rasterize(source, nodes, depth, size)
