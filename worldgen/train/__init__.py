"""Training: configs, checkpoints, the shared loop, and one stage per model."""
