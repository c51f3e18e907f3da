"""``sparsercnn eval --detections``: a results file scored as the model that wrote it, and the
flags that have no meaning without a model refused in one line."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from sparsercnn.cli.main import main
from tests.synthetic_coco import Box, WriteCoco, truncate
from tests.tiny_model import write_tiny_model_file

SIZES = [(48, 64), (64, 48)]


@pytest.fixture
def data(write_coco: WriteCoco) -> list[str]:
    """``--json`` and ``--images`` of two images whose objects fill them: the untrained tiny
    model's boxes (its proposals start as the whole image) then match some, so AP is not 0."""
    dataset = write_coco(
        categories=[{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        size=SIZES,
        boxes=[[Box(3, (0, 0, w, h)), Box(7, (2, 2, w - 4, h - 4))] for h, w in SIZES],
    )
    return ["--json", str(dataset.json_path), "--images", str(dataset.image_dir)]


def test_predict_then_eval_detections_gives_the_model_s_ap(
    data: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(write_tiny_model_file(tmp_path / "model.safetensors"))
    predictions, by_model, by_file = (
        tmp_path / "predictions.json",
        tmp_path / "model.json",
        tmp_path / "file.json",
    )
    same_run = ["--batch-size", "1"]
    argv = ["predict", "--model", model, data[3], "--output", str(predictions), *same_run]
    assert main(argv) == 0
    eval_model = ["eval", "--model", model, *data, "--workers", "0", *same_run]
    assert main([*eval_model, "--output", str(by_model)]) == 0
    capsys.readouterr()
    assert (
        main(["eval", "--detections", str(predictions), *data[:2], "--output", str(by_file)]) == 0
    )
    out = capsys.readouterr().out
    assert f"scored: the detections of {predictions} (no model ran: no images/s figures)" in out
    expected, got = json.loads(by_model.read_text()), json.loads(by_file.read_text())
    assert expected["AP"] > 0
    for name in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100", "per_class", "num_detections"):
        assert got[name] == expected[name], name
    assert got["detections_file"] == str(predictions) and "images_per_second" not in str(got)


def test_eval_detections_names_the_images_predict_could_not_read(
    write_coco: WriteCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: predict left out an unreadable image (listing it in its frame list), and eval
    --detections scored it as missed with no word that predict never read it."""
    dataset = write_coco(
        num_images=3, categories=[{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    )
    truncate(dataset.image_paths[1])
    model = str(write_tiny_model_file(tmp_path / "model.safetensors"))
    predictions = tmp_path / "predictions.json"
    predict = ["predict", "--model", model, str(dataset.image_dir), "--output", str(predictions)]
    assert main(predict) == 2
    caplog.clear()
    assert main(["eval", "--detections", str(predictions), "--json", str(dataset.json_path)]) == 0
    err = caplog.text
    assert (
        f"{predictions}: 1 of the 3 images of {dataset.json_path} could not be read by predict "
        f"({tmp_path / 'predictions.frames.json'} lists it: {dataset.image_paths[1]}): scored "
        "as nothing detected there (their objects count as missed)"
    ) in err
    assert "has no detection of" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--stages", "1", "--device", "cpu"], "--stages 1, --device cpu: these configure a model"),
        # Was: --workers ignored unsaid (its default 2 could not be told from a flag given).
        (["--workers", "2"], "--workers 2: these configure a model's run, and --detections"),
        (["--results", "r.json"], "--results r.json writes a model's detections"),
        (["--report-dir", "report"], "--report-dir report draws sample images"),
    ],
)
def test_flags_without_meaning_for_a_detections_file_are_refused(
    data: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    detections = tmp_path / "d.json"
    detections.write_text("[]")
    assert main(["eval", "--detections", str(detections), *data[:2], *flags]) == 2
    assert message in capsys.readouterr().err


def test_a_model_run_has_two_workers_unless_told(
    data: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--workers defaults to None (so that --detections can refuse it), 2 for a model run."""
    from sparsercnn.engine import model_evaluation

    model = str(write_tiny_model_file(tmp_path / "model.safetensors"))
    workers: list[int] = []

    def stop(*args: object, num_workers: int, **kwargs: object) -> None:
        workers.append(num_workers)
        raise ValueError("stopped before the run")

    monkeypatch.setattr(model_evaluation, "evaluate_model_file", stop)
    assert main(["eval", "--model", model, *data]) == 2
    assert main(["eval", "--model", model, *data, "--workers", "0"]) == 2
    assert workers == [2, 0]


def test_images_stay_required_with_a_model(
    data: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(write_tiny_model_file(tmp_path / "model.safetensors"))
    assert main(["eval", "--model", model, *data[:2]]) == 2
    assert "--images is needed with --model" in capsys.readouterr().err


def test_a_file_that_is_no_results_file_is_one_line(
    data: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    detections = tmp_path / "d.json"
    detections.write_text("{not json")
    assert main(["eval", "--detections", str(detections), *data[:2]]) == 2
    err = capsys.readouterr().err
    assert f"sparsercnn eval: error: {detections} is not JSON" in err
    assert len(err.strip().splitlines()) == 1


def test_an_output_that_is_no_regular_file_is_refused_and_left_as_it_is(
    data: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--output PIPE`` replaced the named pipe by a regular file (and, as root, ``--output
    /dev/null`` the device): an atomic write renames over whatever is there."""
    detections = tmp_path / "d.json"
    detections.write_text("[]")
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    argv = ["eval", "--detections", str(detections), *data]
    assert main([*argv, "--output", str(pipe)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"sparsercnn eval: error: --output {pipe} is a named pipe, not a regular file, and a "
        "command writes its files whole (replacing what is there); give the path of a regular "
        "file"
    ]
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    os.mkfifo(report_dir / "confusion_matrix.json")
    assert main([*argv, "--report-dir", str(report_dir)]) == 2
    assert (
        f"--report-dir {report_dir}: {report_dir / 'confusion_matrix.json'} is a named pipe"
        in capsys.readouterr().err
    )
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert stat.S_ISFIFO((report_dir / "confusion_matrix.json").stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "d.json", "pipe", "report"]


def test_an_output_given_as_a_link_is_written_through_to_its_target(
    data: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``--output link.json`` replaced the link by a regular file, leaving its target as it
    was, and said "metrics written to link.json": the target now gets the metrics (as a
    shell's ``>`` writes through a link), the link stays, and the messages name the target."""
    detections = tmp_path / "d.json"
    detections.write_text("[]")
    target = tmp_path / "runs" / "metrics.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(Path("runs") / "metrics.json")
    with caplog.at_level(logging.WARNING):
        argv = ["eval", "--detections", str(detections), *data[:2], "--output", str(link)]
        assert main(argv) == 0
    assert link.is_symlink() and os.readlink(link) == str(Path("runs") / "metrics.json")
    assert json.loads(target.read_text())["detections_file"] == str(detections)
    assert f"metrics written to {target} (AP and AR" in capsys.readouterr().out
    assert f"--output {target} exists: it will be replaced" in caplog.text
    # A link to a file not there yet creates it; a loop of links is refused by the parser.
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "runs" / "new.json")
    assert main([*argv[:-1], str(dangling)]) == 0
    assert dangling.is_symlink() and "AP" in json.loads(
        (tmp_path / "runs" / "new.json").read_text()
    )
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(SystemExit):
        main([*argv[:-1], str(tmp_path / "a")])
    assert (
        f"argument --output: {tmp_path / 'a'} is a symbolic link that leads to no file"
        in capsys.readouterr().err
    )


def test_a_model_of_other_categories_is_refused_before_any_image_is_decoded(
    write_coco: WriteCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The data's check decoded every image before the model's categories were compared."""
    from sparsercnn.data import policy

    def decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(policy, "check_image_files", decode)
    dataset = write_coco(categories=[{"id": 3, "name": "cat"}, {"id": 8, "name": "bird"}])
    model = str(write_tiny_model_file(tmp_path / "model.safetensors"))
    data = ["--json", str(dataset.json_path), "--images", str(dataset.image_dir)]
    assert main(["eval", "--model", model, *data]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "(8, 'bird')" in line and "but the model was trained on [(3, 'cat'), (7, 'dog')]" in line
