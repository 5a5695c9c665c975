"""Networks (one module each, its config beside it) and the model container."""

from .background import BackgroundMotionConfig, BackgroundMotionPredictor
from .config import ModelConfig, builtin_configs, load_config
from .dense_motion import DenseMotion, DenseMotionConfig, DenseMotionOutput
from .discriminator import DiscriminatorConfig, MultiScaleDiscriminator, PatchDiscriminator
from .fomm import FirstOrderModel, build_model, count_parameters
from .generator import Generator, GeneratorConfig, GeneratorOutput, SourceEncoding
from .keypoint_detector import KeypointDetector, KeypointDetectorConfig
from .motion_transformer import MotionTransformer, MotionTransformerConfig

__all__ = [
    "BackgroundMotionConfig",
    "BackgroundMotionPredictor",
    "DenseMotion",
    "DenseMotionConfig",
    "DenseMotionOutput",
    "DiscriminatorConfig",
    "FirstOrderModel",
    "Generator",
    "GeneratorConfig",
    "GeneratorOutput",
    "KeypointDetector",
    "KeypointDetectorConfig",
    "ModelConfig",
    "MotionTransformer",
    "MotionTransformerConfig",
    "MultiScaleDiscriminator",
    "PatchDiscriminator",
    "SourceEncoding",
    "build_model",
    "builtin_configs",
    "count_parameters",
    "load_config",
]
