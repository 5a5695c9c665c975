"""Rigs behind :class:`reanimate.avatar.rig.Rig`: procedural (tests), ICT-FaceKit, FLAME."""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ..rig import Rig


def load_rig(spec: str | dict) -> Rig:
    """The rig an avatar config names: ``ict`` (shipped), ``procedural`` (tests) or
    ``{flame: generic_model.pkl, landmarks: landmark_embedding.npy}`` (the user's files)."""
    if spec == "ict":
        from .ict import ict_rig

        return ict_rig()
    if spec == "procedural":
        from .procedural import procedural_rig

        return procedural_rig()
    if isinstance(spec, dict) and "flame" in spec:
        from .flame import load_flame

        path = Path(spec["flame"]).expanduser()
        if not path.is_file():
            raise InputError(path, "FLAME model not found (rig: {flame: FILE}; FLAME is a registration-only download)")
        landmarks = spec.get("landmarks")
        return load_flame(path, None if landmarks is None else Path(landmarks).expanduser())
    raise ValueError(f"unknown rig {spec!r} (ict, procedural or {{flame: FILE}})")


__all__ = ["load_rig"]
