"""Animators: every model family behind one interface that the pipelines consume."""
