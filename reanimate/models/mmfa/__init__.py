"""MMFA (Motion Manipulation via unsupervised keypoint positioning in Face Animation, Li et al.; face-vid2vid's 3-D keypoint model with a
scale, an expression encoder-decoder and a multi-scale generator): one module per
network, its config beside it, and the model container."""

from .appearance import AppearanceConfig, AppearanceFeatureExtractor
from .canonical_keypoints import CanonicalKeypointConfig, CanonicalKeypointDetector
from .config import MMFAConfig, default_discriminator, load_mmfa_config
from .dense_motion import DenseMotion3D, DenseMotion3DConfig, DenseMotion3DOutput
from .expression import ExpressionDecoder, ExpressionDecoderConfig, ExpressionEncoder, ExpressionEncoderConfig
from .generator import GeneratorOutputs, MultiScaleGenerator, MultiScaleGeneratorConfig
from .head_pose import (
    ANGLE_BIN_CENTRES,
    HeadPoseConfig,
    HeadPoseEstimator,
    HeadPoseOutput,
    angle_bin_centres,
    angles_from_logits,
)
from .model import MMFAModel, build_mmfa, mmfa_model_info, mmfa_report

__all__ = [
    "ANGLE_BIN_CENTRES",
    "AppearanceConfig",
    "AppearanceFeatureExtractor",
    "CanonicalKeypointConfig",
    "CanonicalKeypointDetector",
    "DenseMotion3D",
    "DenseMotion3DConfig",
    "DenseMotion3DOutput",
    "ExpressionDecoder",
    "ExpressionDecoderConfig",
    "ExpressionEncoder",
    "ExpressionEncoderConfig",
    "GeneratorOutputs",
    "HeadPoseConfig",
    "HeadPoseEstimator",
    "HeadPoseOutput",
    "MMFAConfig",
    "MMFAModel",
    "MultiScaleGenerator",
    "MultiScaleGeneratorConfig",
    "angle_bin_centres",
    "angles_from_logits",
    "build_mmfa",
    "default_discriminator",
    "load_mmfa_config",
    "mmfa_model_info",
    "mmfa_report",
]
