"""Inference pipelines (reading, batching, running a model, writing), kept apart from
the networks."""

from .animate import AnimationOptions, AnimationPipeline, AnimationResult, animate

__all__ = ["AnimationOptions", "AnimationPipeline", "AnimationResult", "animate"]
