"""reanimate: bring a still image to life with the motion of a driving video."""

__version__ = "0.1.0"
