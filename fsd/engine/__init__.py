"""Training machinery: distributed setup, resumable sampling, checkpoints, optimisation, the
training loop, dataset-wide prediction, metric logs and plots."""
