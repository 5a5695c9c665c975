"""Implicit morphable head avatars (IMavatar, Zheng et al. 2022): a person's head fitted
from one video as canonical occupancy and texture fields deformed by a learnt,
rig-driven skinning (see ARCHITECTURE.md)."""
