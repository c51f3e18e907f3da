"""Imports point one way: structures/ops -> model, loss -> engine -> CLI (conventions.md).

Data and evaluation never import the model; nothing below the CLI imports the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sparsercnn"

# The end-user predictor: the predictors, their per-image result, the inputs they take.
PREDICTOR = {"predictor", "prediction", "image_inputs"}
# Everything built on the bottom layer (structures, config, ops).
ABOVE_BOTTOM = PREDICTOR | {
    "model",
    "loss",
    "data",
    "evaluation",
    "engine",
    "cli",
    "drawing_writer",
    "drawings_marker",
    "visualization",
    "recipe",
    "video",
}

# Layer of each top-level module or subpackage, and the layers it must not import.
FORBIDDEN = {
    "atomic_file": ABOVE_BOTTOM | {"config", "structures"},
    "runtime": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "paths": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "json_lines": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "text": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "json_values": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "box_format_evidence": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "scores": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "run_files": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "file_lock": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "file_chunks": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "fetched_file": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "torch_archive": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "safetensors_file": ABOVE_BOTTOM | {"config", "structures", "ops"},
    "torchrun_env": ABOVE_BOTTOM | {"config", "structures", "ops", "runtime"},
    "structures": ABOVE_BOTTOM,
    "config": ABOVE_BOTTOM,
    "ops": ABOVE_BOTTOM,
    # The three siblings on the bottom layer use none of each other.
    "model": ABOVE_BOTTOM - {"model"},
    "loss": ABOVE_BOTTOM - {"loss"},
    "data": ABOVE_BOTTOM - {"data"},
    "evaluation": PREDICTOR | {"model", "loss", "data", "engine", "cli", "recipe"},
    "visualization": PREDICTOR | {"model", "loss", "engine", "cli", "recipe"},
    "weights": PREDICTOR | {"engine", "cli", "loss", "evaluation", "visualization", "recipe"},
    "engine": PREDICTOR | {"cli", "diagnostics", "recipe"},
    # The automatic recipe times training steps (engine) and sits under the CLI only.
    "recipe": PREDICTOR | {"cli", "diagnostics", "export", "evaluation", "visualization", "video"},
    "diagnostics": {"cli"},
    "export": {"cli", "engine", "loss", "diagnostics"},
    "benchmarking": {"cli", "engine", "loss", "diagnostics"},
    "predictor": {"cli", "engine"},
    # The result record sits on the label map and COCO records, not the model: the drawings,
    # the server's schemas and video read it without loading the detector.
    "prediction": ABOVE_BOTTOM - {"data", "evaluation"},
    # Reading inputs needs no model: only image decoding and the test resize.
    "image_inputs": ABOVE_BOTTOM - {"data"},
    "drawing_writer": {"cli", "engine"},
    # The marker of a folder of drawings sits on its name (image_inputs), below the writer: no
    # drawing, data or model code; the input listing finds marked folders by the name alone.
    "drawings_marker": ABOVE_BOTTOM - {"image_inputs", "drawings_marker"},
    "video": {"cli", "engine", "export"},
}
# The server is an entry point like the CLI: only the CLI imports it.
for _layer, _forbidden in FORBIDDEN.items():
    _forbidden.add("serving")
FORBIDDEN["serving"] = {"cli", "engine", "loss"}


def imported_modules(path: Path) -> set[str]:
    """The absolute imports of ``path``: ``from a.b import c`` gives ``a.b`` and ``a.b.c`` (a
    module or a name in ``a.b``), so that ``from sparsercnn import video`` names ``video``."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def imported_layers(path: Path) -> set[str]:
    layers = set()
    for name in imported_modules(path):
        parts = name.split(".")
        if parts[0] == "sparsercnn" and len(parts) > 1:
            layers.add(parts[1])
    return layers


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_imports_point_one_way(path: Path) -> None:
    forbidden = FORBIDDEN.get(layer_of(path), set())
    wrong = imported_layers(path) & forbidden
    assert not wrong, f"{path.relative_to(PACKAGE)} imports {sorted(wrong)}"


# Within the CLI: a command's steps never import the command (its parser and run()), and the
# steps of ``predict`` import one another one way: inputs <- progress <- sequences; those of
# ``train`` and ``demo`` too: config_options <- resume_setup <- training_setup.
CLI_FORBIDDEN = {
    "predict_inputs": {"predict", "predict_progress", "predict_sequences"},
    "predict_progress": {"predict", "predict_sequences"},
    "predict_sequences": {"predict"},
    "config_options": {"train", "demo", "resume_setup", "training_setup"},
    "resume_setup": {"train", "demo", "training_setup"},
    "training_setup": {"train", "demo"},
}


@pytest.mark.parametrize(
    "path",
    # Every step named, and any new predict step found (the assertion asks for its place).
    sorted(
        {*(PACKAGE / "cli").glob("predict_*.py")}
        | {PACKAGE / "cli" / f"{name}.py" for name in CLI_FORBIDDEN}
    ),
    ids=lambda p: p.stem,
)
def test_the_steps_of_a_command_never_import_it(path: Path) -> None:
    assert path.stem in CLI_FORBIDDEN, f"cli/{path.name}: give its place in CLI_FORBIDDEN"
    prefix = "sparsercnn.cli."
    imported = {
        name.removeprefix(prefix).split(".")[0]
        for name in imported_modules(path)
        if name.startswith(prefix)
    }
    wrong = imported & CLI_FORBIDDEN[path.stem]
    assert not wrong, f"cli/{path.name} imports {sorted(wrong)}"
