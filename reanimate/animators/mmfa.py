"""The MMFA family (paper 003) behind the :class:`Animator` interface, with head control.

A source is encoded once: its appearance volume, canonical keypoints ``p_C``, head pose
(scale, 2-D translation, rotation) and expression ``delta_S = D_e(E_e(S), p_C)``: a
:class:`~reanimate.motion.HeadMotion` (Eq. 5). A driving frame gives its rotation, scale,
translation and expression feature ``f_delta``; its expression *for the source* is
``D_e(f_D, p_C,S)`` (Eq. 4 with the source's identity). Relative transfer is
:func:`reanimate.motion.relative_head_motion` (the driver's change since its reference
frame, any subset of rotation, scale, translation and expression); absolute transfer
copies the chosen attributes. Retargeting (``animate --head/--expression``,
:class:`~reanimate.animators.base.Retarget`) moves the target head back towards the
source's: its turn scaled as an axis-angle, its scale in log space, translation and
expression ``delta`` interpolated; the eyes, lips and blinks cannot be told apart from
the rest of the expression (the learned keypoints have no face regions), so those are
refused. Every target head is rendered by Eq. 5's keypoints, the 3-D
dense motion and the multi-scale generator (:meth:`MMFAAnimator.render_heads`), which is
also what ``reanimate edit`` uses.

The rotation comes from the model's learned angle bins when it has them
(``head_pose_params.learn_rotation``), else from the face mesh's head pose of each frame
(as the paper's pretrained estimator; the animator then asks the pipeline for landmarks);
``head_pose_params.animate_rotation: mesh`` takes the face mesh's even when the bins exist.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..device import autocast, select_device
from ..errors import CheckpointError, ReanimateError
from ..geometry.keypoints3d import orthographic_projection
from ..io import frames_to_tensor, tensor_to_frames
from ..models.mmfa import MMFAConfig, MMFAModel, build_mmfa, load_mmfa_config
from ..motion import HEAD_ATTRIBUTES, HeadMotion, Keypoints, relative_head_motion
from .base import Animator, DrivingBatch, HeadControl, Motion, Rendered, Requirements, Source, Transfer
from .expression import ExpressionControl
from .registry import BuildRequest, Family, register_family

#: face-crop margin per side (as FOMM's, the VoxCeleb crops)
MMFA_CROP_INCREASE = 0.1
#: the retargeting controls MMFA honours: the head's pose and the whole expression
#: (its K learned keypoints have no eye or mouth regions to scale apart)
MMFA_RETARGET = ("head", "expression")


@dataclass
class MMFASource:
    """An encoded source: ``image`` ``(1, 3, H, W)``, the appearance ``volume``
    ``(1, C, D, h, w)``, its ``head`` (batch 1, canonical = ``p_C``) and the generator's
    2-D ``skips`` (None for a generator without them)."""

    image: torch.Tensor
    volume: torch.Tensor
    head: HeadMotion
    skips: list[torch.Tensor] | None = None


@dataclass
class MMFAMotion(Motion):
    """N driving frames: ``keypoints`` ``(N, K, 2)`` their own Eq. 5 keypoints projected
    (for drawing, smoothing and best-frame matching); ``rotation`` ``(N, 3)`` degrees,
    ``scale`` ``(N,)``, ``translation`` ``(N, 2)``, ``feature`` ``(N, F)`` (``f_delta``)."""

    rotation: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    translation: torch.Tensor | None = None
    feature: torch.Tensor | None = None

    def __getitem__(self, index: int) -> MMFAMotion:
        sl = slice(index, index + 1 if index != -1 else None)
        return MMFAMotion(
            self.keypoints[index], self.rotation[sl], self.scale[sl], self.translation[sl], self.feature[sl]
        )


def _mesh_rotation(landmarks: np.ndarray) -> torch.Tensor:
    """``(N, 478, 3)`` landmarks -> ``(N, 3)`` yaw, pitch, roll (``reanimate faces`` signs)."""
    from ..faces import head_pose

    poses = head_pose(np.asarray(landmarks, dtype=np.float32).reshape(-1, 478, 3))
    return torch.tensor([(p.yaw, p.pitch, p.roll) for p in poses], dtype=torch.float32)


class MMFAAnimator(Animator, HeadControl, ExpressionControl):
    """An :class:`MMFAModel` on a device (``fp16``: float16 autocast, CUDA only)."""

    family = "mmfa"
    translation_unit = 2.0  # keypoints in [-1, 1]

    def __init__(self, model: MMFAModel, device: str | torch.device = "auto", fp16: bool = False):
        self.device = select_device(device) if isinstance(device, str) else device
        if fp16 and self.device.type != "cuda":
            raise ReanimateError("--fp16 needs a CUDA device")
        self.autocast_dtype = torch.float16 if fp16 else None
        self.model = model.eval().to(self.device)
        self.config: MMFAConfig = model.config
        self.learned_rotation = self.config.head_pose.animates_with_learned_rotation
        self.notes: list[str] = []

    @property
    def requirements(self) -> Requirements:
        return Requirements(
            size=self.config.image_size,
            face=self.config.face,
            crop_increase=MMFA_CROP_INCREASE,
            driving_landmarks=not self.learned_rotation,
            head_attributes=HEAD_ATTRIBUTES,
            device=self.device.type,
            retarget=MMFA_RETARGET,
        )

    def describe(self) -> str:
        rotation = "learned rotation" if self.learned_rotation else "face-mesh rotation"
        return f"mmfa ({self.config.name}, {rotation})"

    def _autocast(self):
        return autocast(self.device, self.autocast_dtype)

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        return frames_to_tensor(images).to(self.device)

    # -- model steps -------------------------------------------------------------------

    @torch.inference_mode()
    def read_pose(
        self, images: torch.Tensor, landmarks: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(N, 3, H, W)`` -> rotation ``(N, 3)``, scale ``(N,)``, translation ``(N, 2)``,
        expression feature ``(N, F)``, all float32."""
        with self._autocast():
            pose = self.model.head_pose(images)
            feature = self.model.expression_encoder(images)
        if self.learned_rotation:
            rotation = pose.angles.float()
        else:
            if landmarks is None:
                raise ReanimateError("this MMFA model takes the head's rotation from face landmarks; none were found")
            rotation = _mesh_rotation(landmarks).to(self.device)
        return rotation, pose.scale.float(), pose.translation.float(), feature.float()

    @torch.inference_mode()
    def expression(self, feature: torch.Tensor, canonical: torch.Tensor) -> torch.Tensor:
        """Eq. 4: ``D_e(f, p_C)`` ``(N, K, 3)`` for features ``(N, F)`` and canonical ``(1|N, K, 3)``."""
        canonical = canonical.expand(feature.shape[0], -1, -1)
        with self._autocast():
            return self.model.expression_decoder(feature, canonical).float()

    @torch.inference_mode()
    def encode(self, image: torch.Tensor, landmarks: np.ndarray | None = None) -> MMFASource:
        """``(1, 3, H, W)`` -> the source's volume and head."""
        with self._autocast():
            volume = self.model.appearance(image)
            canonical = self.model.canonical(image).float()
            skips = self.model.generator.encode_source(image)
        rotation, scale, translation, feature = self.read_pose(image, landmarks)
        head = HeadMotion(canonical, rotation, scale, translation, self.expression(feature, canonical))
        return MMFASource(image, volume, head, skips)

    @torch.inference_mode()
    def generate(self, source: MMFASource, heads: HeadMotion, return_occlusion: bool = True):
        """Render N heads (Eq. 5 -> dense motion -> generator): ``(prediction (N, 3, H, W),
        occlusion (N, 1, h, w) | None)``."""
        kp_source = source.head.points()
        kp_target = heads.points()
        n = kp_target.shape[0]
        volume = source.volume.expand(n, *source.volume.shape[1:])
        with self._autocast():
            motion = self.model.dense_motion(volume, kp_source, kp_target)
            out = self.model.generator(volume, motion.deformation, motion.occlusion, source.skips)
        return out.prediction.float(), motion.occlusion

    # -- the Animator interface --------------------------------------------------------

    def encode_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> Source:
        state = self.encode(self._tensor(image[None]), None if landmarks is None else landmarks[None])
        return Source(image, Keypoints(orthographic_projection(state.head.points())), state)

    def estimate(self, batch: DrivingBatch) -> MMFAMotion:
        images = self._tensor(batch.crops())
        rotation, scale, translation, feature = self.read_pose(images, batch.landmarks)
        with torch.inference_mode(), self._autocast():
            canonical = self.model.canonical(images).float()
        own = HeadMotion(canonical, rotation, scale, translation, self.expression(feature, canonical))
        return MMFAMotion(Keypoints(orthographic_projection(own.points())), rotation, scale, translation, feature)

    def with_keypoints(self, motion: MMFAMotion, keypoints: Keypoints) -> MMFAMotion:
        """Smoothing moves each frame's translation by the mean shift of its keypoints;
        rotation, scale and expression are left as read."""
        shift = (keypoints.value - motion.keypoints.value).mean(dim=1)
        return dataclasses.replace(
            motion, keypoints=keypoints, translation=motion.translation + shift.to(motion.translation)
        )

    def heads(self, source: Source, motion: MMFAMotion) -> HeadMotion:
        """The driving frames as heads of the source's identity (its canonical keypoints,
        the frames' expression features decoded with them)."""
        canonical = source.state.head.canonical
        n = motion.feature.shape[0]
        return HeadMotion(
            canonical.expand(n, -1, -1),
            motion.rotation,
            motion.scale,
            motion.translation,
            self.expression(motion.feature, canonical),
        )

    def render(self, source: Source, motion: MMFAMotion, reference: MMFAMotion | None, transfer: Transfer) -> Rendered:
        state: MMFASource = source.state
        transfer.retarget.refuse_uncovered(self.family, MMFA_RETARGET)
        driving = self.heads(source, motion)
        if transfer.relative:
            if reference is None:
                raise ReanimateError("relative transfer needs the reference frame's motion")
            target = relative_head_motion(state.head, driving, self.heads(source, reference), transfer.attributes)
        else:
            kept = {name: getattr(state.head, name) for name in HEAD_ATTRIBUTES if name not in transfer.attributes}
            target = driving.with_(**{k: v.expand(len(motion), *v.shape[1:]) for k, v in kept.items()})
        return self.render_heads(source, transfer.retarget.head_motion(state.head, target))

    # -- HeadControl --------------------------------------------------------------------

    def source_head(self, source: Source) -> HeadMotion:
        return source.state.head

    def expression_from(self, source: Source, image: np.ndarray, landmarks: np.ndarray | None = None) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            feature = self.model.expression_encoder(self._tensor(image[None])).float()
        return self.expression(feature, source.state.head.canonical)

    def render_heads(self, source: Source, heads: HeadMotion) -> Rendered:
        prediction, occlusion = self.generate(source.state, heads)
        return Rendered(tensor_to_frames(prediction), occlusion)

    # -- expression features and the canonical face (interpolate, canonical) --------------

    def expression_feature(self, image: np.ndarray) -> torch.Tensor:
        """``f_delta`` ``(1, F)`` of a face image at the animator's size."""
        with torch.inference_mode(), self._autocast():
            return self.model.expression_encoder(self._tensor(image[None])).float()

    def canonical_head(self, source: Source) -> HeadMotion:
        """The source's canonical face (paper Fig. 7): its canonical keypoints with no
        rotation, translation or expression, at its own scale."""
        head = source.state.head
        return head.with_(
            rotation=torch.zeros_like(head.rotation),
            translation=torch.zeros_like(head.translation),
            expression=torch.zeros_like(head.expression),
        )


def load_mmfa(checkpoint, config: MMFAConfig | str | None = None, with_discriminator: bool = False) -> MMFAModel:
    """An MMFA model from an own-format checkpoint (its embedded config unless ``config``)."""
    if not ckpt.is_own_format(checkpoint):
        raise CheckpointError(checkpoint, "MMFA weights are .safetensors files written by `reanimate train`")
    if config is None:
        meta = ckpt.read_own_metadata(checkpoint)
        try:
            config = MMFAConfig.from_yaml_text(meta.get("config", ""), name=str(checkpoint))
        except (ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(checkpoint, f"embedded config is not an MMFA config ({exc})") from None
    elif not isinstance(config, MMFAConfig):
        config = load_mmfa_config(config)
    model = build_mmfa(config, with_discriminator=with_discriminator)
    ckpt.load_own_into(checkpoint, model)
    return model.eval()


def _build(request: BuildRequest) -> MMFAAnimator:
    if request.align_corners is not None:
        raise ReanimateError("--align-corners is for FOMM checkpoints; MMFA configs set it in common_params")
    model = load_mmfa(request.checkpoint, request.config)
    return MMFAAnimator(model, device=request.device, fp16=request.fp16)


def _model_info(config_name: str) -> tuple[str, list[tuple[str, int, int]]]:
    from ..models.mmfa import mmfa_model_info

    return mmfa_model_info(config_name)


FAMILY = register_family(
    Family(
        "mmfa",
        "MMFA 3-D keypoints with pose, scale, translation and expression control; needs --checkpoint",
        build=_build,
        uses_checkpoint=True,
        model_info=_model_info,
    )
)

__all__ = ["MMFA_CROP_INCREASE", "MMFAAnimator", "MMFAMotion", "MMFASource", "load_mmfa"]
