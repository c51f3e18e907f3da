"""The names of the files a training run writes in its output folder besides its checkpoints
(:mod:`sparsercnn.engine.checkpoint` names those): one place for the trainer that writes them,
the check of a run folder before a run, and the commands that name them to the user (which
import this module, not the engine, before they need torch)."""

from __future__ import annotations

# The resolved config, written before the first step (and again when a time budget refits the
# schedule): what ``--config`` and ``--resume`` of ``--preset auto`` read back.
CONFIG_FILE = "config.json"
# The training and evaluation records (:mod:`sparsercnn.engine.metrics_log`), from the first one
# on: a run stopped before its first record leaves none.
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
MODEL_FINAL_FILE = "model_final.safetensors"
MODEL_BEST_FILE = "model_best.safetensors"
# Every one of them: a new run in a folder holding one would overwrite it (a config.json the
# user wrote, another run's curves) or leave it beside its own (another run's model_best).
RUN_OUTPUT_FILES = (CONFIG_FILE, METRICS_FILE, CURVES_FILE, MODEL_FINAL_FILE, MODEL_BEST_FILE)
# The trained models: files the check of a run folder never advises deleting.
MODEL_FILES = (MODEL_FINAL_FILE, MODEL_BEST_FILE)
# The lock a run holds on its folder while it runs (:mod:`sparsercnn.engine.run_lock`), removed
# when it ends; one a killed run leaves behind holds no lock, and is no run's output.
RUN_LOCK_FILE = ".run.lock"
