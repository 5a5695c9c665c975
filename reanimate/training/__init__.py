"""Training: losses, the training step objects, checkpoints of a run and the trainer."""
