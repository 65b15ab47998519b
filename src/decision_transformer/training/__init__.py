"""Training: TrainConfig (every option, declared once), the trainer, its run directory and presets/."""
