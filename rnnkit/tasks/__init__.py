"""Applications: one module per task, each a model and its pipeline."""
