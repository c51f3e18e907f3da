"""The HTTP API on the tiny model, in process: every route, results equal to the Predictor's,
and every kind of bad input answered with a 4xx JSON error while the server keeps serving."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from starlette.datastructures import UploadFile

from sparsercnn.data.image_io import DecodedImage
from sparsercnn.data.transforms import build_test_transform
from sparsercnn.diagnostics.stage_boxes import compute_stage_boxes
from sparsercnn.export.onnx_export import WEIGHTS_DIGEST_KEY
from sparsercnn.model import build_postprocessor
from sparsercnn.model_file import load_model_file, save_model_file
from sparsercnn.ops.boxes import box_xyxy_to_xywh
from sparsercnn.predictor import Predictor
from sparsercnn.serving import Limits, create_app
from tests.serving.conftest import MakeClient, TestClient, decoded, encoded_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PNG = encoded_image(128, 96, seed=1)
WIDE_PNG = encoded_image(150, 70, seed=2)


def files(*images: bytes, field: str = "images") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (f"image{i}.png", data, "image/png")) for i, data in enumerate(images)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_matches(detections: list[dict[str, Any]], expected: Any, atol: float = 2e-3) -> None:
    """Response detections equal a Prediction (up to the response's 1/100 px rounding)."""
    assert len(detections) == len(expected.scores) > 0
    xyxy = torch.tensor([d["bbox"]["xyxy"] for d in detections], dtype=torch.float64)
    xywh = torch.tensor([d["bbox"]["xywh"] for d in detections], dtype=torch.float64)
    # xywh as the COCO records round it, xyxy its sum: within 0.01 px of the boxes.
    torch.testing.assert_close(xyxy, expected.boxes.double(), rtol=0, atol=0.011 + atol)
    # One box in two forms: x + w is x2 (rounding each apart left them 0.01 apart).
    torch.testing.assert_close(xywh, box_xyxy_to_xywh(xyxy), rtol=0, atol=1e-9)
    scores = torch.tensor([d["score"] for d in detections], dtype=torch.float64)
    torch.testing.assert_close(scores, expected.scores.double(), rtol=1e-5, atol=1e-5)
    assert [d["category_name"] for d in detections] == expected.class_names
    assert [d["category_id"] for d in detections] == expected.category_ids


def assert_same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Same detections up to the float noise of other batch sizes (see tests/test_predictor)."""
    assert [(d["category_id"], d["category_name"]) for d in a] == [
        (d["category_id"], d["category_name"]) for d in b
    ]
    for key in ("xyxy", "xywh"):
        torch.testing.assert_close(
            torch.tensor([d["bbox"][key] for d in a]),
            torch.tensor([d["bbox"][key] for d in b]),
            rtol=0,
            atol=0.02,
        )
    torch.testing.assert_close(
        torch.tensor([d["score"] for d in a]),
        torch.tensor([d["score"] for d in b]),
        atol=1e-5,
        rtol=0,
    )


def assert_serving(client: TestClient) -> None:
    response = client.post("/v1/detect", files=files(PNG))
    assert response.status_code == 200, response.text
    assert len(response.json()["images"][0]["detections"]) > 0


def test_detect_multipart_gives_the_predictors_detections(
    client: TestClient, model_file: Path
) -> None:
    response = client.post("/v1/detect", files=files(PNG, WIDE_PNG))
    assert response.status_code == 200, response.text
    body = response.json()
    expected = Predictor.from_file(model_file)([decoded(PNG), decoded(WIDE_PNG)])
    assert [(i["name"], i["width"], i["height"]) for i in body["images"]] == [
        ("image0.png", 128, 96),
        ("image1.png", 150, 70),
    ]
    for image, prediction in zip(body["images"], expected, strict=True):
        assert_matches(image["detections"], prediction)
    assert body["stages"] == 2
    timing = body["timing"]
    assert timing["inference_ms"] > 0 and timing["total_ms"] >= timing["decode_ms"] > 0
    assert timing["batch_images"] == 2


def test_detect_json_base64_equals_multipart(client: TestClient) -> None:
    multipart = client.post("/v1/detect", files=files(PNG)).json()
    as_json = client.post(
        "/v1/detect", json={"images": [b64(PNG), "data:image/png;base64," + b64(PNG)]}
    ).json()
    assert [i["name"] for i in as_json["images"]] == ["images[0]", "images[1]"]
    for image in as_json["images"]:
        assert_same(image["detections"], multipart["images"][0]["detections"])


def test_base64_as_tools_write_it_is_read(client: TestClient) -> None:
    """``base64`` wraps lines at 76 characters; encoders may drop the padding or use the
    URL-safe alphabet; a data: URL may have a space after its comma."""
    multipart = client.post("/v1/detect", files=files(PNG)).json()["images"][0]["detections"]
    text = b64(PNG)
    assert "+" in text and "/" in text and text.endswith("=")  # the variants differ from it
    variants = [
        "\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\n",
        text.rstrip("="),
        base64.urlsafe_b64encode(PNG).decode(),
        " data:image/png;base64, " + text,
    ]
    response = client.post("/v1/detect", json={"images": variants[:3]})
    assert response.status_code == 200, response.text
    last = client.post("/v1/detect", json={"images": variants[3:]})
    assert last.status_code == 200, last.text
    for image in response.json()["images"] + last.json()["images"]:
        assert_same(image["detections"], multipart)


def test_score_threshold_and_max_detections_filter_detections(client: TestClient) -> None:
    everything = client.post("/v1/detect", files=files(PNG)).json()["images"][0]["detections"]
    scores = [d["score"] for d in everything]
    assert scores == sorted(scores, reverse=True) and len(scores) > 3
    threshold = (scores[2] + scores[3]) / 2
    assert scores[3] < threshold < scores[2]
    above = client.post("/v1/detect", files=files(PNG), data={"score_threshold": str(threshold)})
    assert above.json()["images"][0]["detections"] == everything[:3]
    query = client.post("/v1/detect?max_detections=2", json={"images": [b64(PNG)]})
    assert query.json()["images"][0]["detections"] == everything[:2]


def test_json_null_is_the_default_of_every_option(client: TestClient) -> None:
    """{"score_threshold": null} was a 400 ("Input should be a valid number") where
    {"max_detections": null} and {"stages": null} meant their defaults."""
    default = client.post("/v1/detect", json={"images": [b64(PNG)]})
    options = {"score_threshold": None, "max_detections": None, "stages": None}
    nulls = client.post("/v1/detect", json={"images": [b64(PNG)], **options})
    assert nulls.status_code == 200, nulls.text
    assert nulls.json()["images"] == default.json()["images"]


def test_a_score_given_as_the_threshold_keeps_its_detection(client: TestClient) -> None:
    """The threshold is compared with the scores as answered (6 significant digits): copied
    from an answer, each kept its own detection and those above it; compared with the unrounded
    scores, about half of them (those rounded up) were dropped."""
    everything = client.post("/v1/detect", files=files(PNG)).json()["images"][0]["detections"]
    for index, detection in enumerate(everything):
        data = {"score_threshold": repr(detection["score"])}
        kept = client.post("/v1/detect", files=files(PNG), data=data).json()["images"][0]
        assert kept["detections"][: index + 1] == everything[: index + 1]


def test_stages_parameter_runs_the_first_stages(client: TestClient, model_file: Path) -> None:
    body = client.post("/v1/detect", files=files(PNG), data={"stages": "1"}).json()
    assert body["stages"] == 1
    expected = Predictor.from_file(model_file, num_stages=1)([decoded(PNG)])[0]
    assert_matches(body["images"][0]["detections"], expected)
    full = client.post("/v1/detect", files=files(PNG), data={"stages": "2"}).json()
    assert full["images"][0]["detections"] != body["images"][0]["detections"]


def test_stage_view_is_compute_stage_boxes(client: TestClient, model_file: Path) -> None:
    response = client.post("/v1/stages", files=files(WIDE_PNG))
    assert response.status_code == 200, response.text
    view = response.json()
    loaded = load_model_file(model_file)
    expected = compute_stage_boxes(
        loaded.model,
        build_postprocessor(loaded.config),
        build_test_transform(loaded.config.input),
        decoded(WIDE_PNG),
    )
    assert (view["width"], view["height"], view["num_stages"]) == (150, 70, 2)
    assert len(view["proposals"]) == loaded.config.model.num_proposals
    # The Python API gives what the client receives, to the last digit (one function: was
    # written out in the route alone).
    assert view.pop("inference_ms") >= 0
    assert view == expected.to_dict(loaded.categories, "image0.png")
    torch.testing.assert_close(
        torch.tensor(view["proposals"]), expected.proposal_boxes, rtol=0, atol=0.006
    )
    assert len(view["stages"]) == 2
    for stage, detections in zip(view["stages"], expected.detections, strict=True):
        torch.testing.assert_close(
            torch.tensor([d["score"] for d in stage], dtype=torch.float64),
            detections["scores"].double(),
            rtol=1e-5,
            atol=1e-6,
        )
    # The last stage is what /v1/detect answers.
    detect = client.post("/v1/detect", files=files(WIDE_PNG)).json()["images"][0]["detections"]
    assert [d["score"] for d in detect] == [d["score"] for d in view["stages"][-1]]


def test_a_large_jpeg_is_decoded_as_predict_decodes_the_file(
    make_client: MakeClient, model_file: Path, tmp_path: Path
) -> None:
    """800x640 for a 160/128 resize: decoded at half size in both, sizes and boxes in the
    upload's full pixels."""
    client = make_client()
    jpeg = encoded_image(800, 640, seed=3, image_format="JPEG")
    path = tmp_path / "large.jpg"
    path.write_bytes(jpeg)
    upload = [("images", ("large.jpg", jpeg, "image/jpeg"))]
    response = client.post("/v1/detect", files=upload)
    assert response.status_code == 200, response.text
    image = response.json()["images"][0]
    assert (image["width"], image["height"]) == (800, 640)
    from_file = Predictor.from_file(model_file)(path)[0]
    assert_matches(image["detections"], from_file)
    full = Predictor.from_file(model_file)(decoded(jpeg))[0].scores  # another input
    assert full.shape != from_file.scores.shape or not torch.allclose(full, from_file.scores)
    view = client.post("/v1/stages", files=upload).json()
    assert (view["width"], view["height"]) == (800, 640)
    assert [d["score"] for d in view["stages"][-1]] == [d["score"] for d in image["detections"]]


def test_model_health_page_static_and_docs(client: TestClient) -> None:
    model = client.get("/v1/model").json()
    assert model["classes"] == [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    assert (model["num_stages"], model["num_proposals"], model["engine"]) == (2, 16, "torch")
    assert (model["input_min_size"], model["input_max_size"]) == (128, 160)
    assert model["precision"] == "fp32" and model["version"] and model["cuda_graphs"] is False
    assert model["device"] == "cpu" and model["provider"] is None  # no onnxruntime session
    assert model["stage_limited"] == {
        "engine": "torch",
        "device": "cpu",
        "precision": "fp32",
        "provider": None,
    }
    assert model["max_images"] == 3 and model["max_batch_images"] == 4
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["queued"] == health["queued_images"] == 0
    page = client.get("/")
    assert page.status_code == 200 and 'id="canvas"' in page.text
    assert "/static/app.js" in page.text and "cdn" not in page.text.lower()
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    content = paths["/v1/detect"]["post"]["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}
    assert "stages" in content["multipart/form-data"]["schema"]["properties"]
    assert "/v1/stages" in paths and "/health" in paths and "/v1/model" in paths


def test_the_model_route_and_its_docs_report_the_connection_limit(
    make_client: MakeClient,
) -> None:
    """``--max-connections`` is uvicorn's: the app reports what it is given, null when not."""
    client = make_client(max_connections=5)
    assert client.get("/v1/model").json()["max_connections"] == 5
    assert make_client().get("/v1/model").json()["max_connections"] is None
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ModelInfo"]
    assert "--max-connections" in schema["properties"]["max_connections"]["description"]
    with pytest.raises(ValueError, match="max_connections must be >= 1, got 0"):
        make_client(max_connections=0)


def test_the_api_docs_load_nothing_from_the_network(client: TestClient) -> None:
    """The target machines are offline: FastAPI's own pages load Swagger UI and ReDoc from a
    CDN and were blank there. Every URL of /docs is the server's, and each answers; /redoc,
    whose bundle fetches its logo from its CDN, is not served."""
    response = client.get("/docs")
    assert response.status_code == 200, response.text
    html = response.text
    assert "/openapi.json" in html
    assert not re.findall(r"(?:https?:)?//[\w.-]+", html), "an external URL in the page"
    assets = re.findall(r"""['"](/docs-assets/[\w.-]+)['"]""", html)
    assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"} <= set(assets)
    assert all(client.get(url).status_code == 200 for url in assets)
    assert '"validatorUrl": null' in html  # no badge fetched from validator.swagger.io
    assert client.get("/redoc").status_code == 404


def test_a_queued_request_holds_its_images_at_the_models_input_size(
    make_client: MakeClient, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1600x1200 PNG (5.8 MB decoded) waits for its batch as the 160x120 image the model
    reads (58 kB), with its full size; a smaller image than the input stays as it is. The
    detections are the full image's, in its pixels, to the last digit."""
    client = make_client(max_batch_images=4, max_wait_ms=5)
    batcher = client.app.state.service.batcher  # type: ignore[attr-defined]
    queued: list[DecodedImage] = []
    submit = batcher.submit

    def spy(images: list[DecodedImage], num_stages: int | None) -> Any:
        queued.extend(images)
        return submit(images, num_stages)

    monkeypatch.setattr(batcher, "submit", spy)
    large = encoded_image(1600, 1200, seed=4)
    response = client.post("/v1/detect", files=files(large, PNG))
    assert response.status_code == 200, response.text
    assert [(q.image.size, q.full_size) for q in queued] == [
        ((160, 120), (1200, 1600)),
        ((128, 96), (96, 128)),
    ]
    body = response.json()
    assert [(i["width"], i["height"]) for i in body["images"]] == [(1600, 1200), (128, 96)]
    predictor = Predictor.from_file(model_file, batch_size=4)
    expected = predictor([decoded(large), decoded(PNG)])  # what the server answered before
    # Each image's answer is its Prediction.to_dict(), named after the upload.
    for index, (image, prediction) in enumerate(zip(body["images"], expected, strict=True)):
        assert image == replace(prediction, source=f"image{index}.png").to_dict()
    view = client.post("/v1/stages", files=files(large)).json()
    assert (view["width"], view["height"]) == (1600, 1200)
    stage_boxes = compute_stage_boxes(
        predictor.model, predictor.postprocessor, predictor.transform, decoded(large)
    )
    torch.testing.assert_close(
        torch.tensor(view["proposals"]),
        stage_boxes.proposal_boxes.double().round(decimals=2).float(),
        rtol=0,
        atol=0,
    )


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists open files by /proc")
def test_a_queued_request_holds_no_temporary_file_of_its_upload(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multipart parts past 1 MB are spooled to temporary files; they are closed once read,
    not when the answer is sent after the queue."""
    client = make_client()
    batcher = client.app.state.service.batcher  # type: ignore[attr-defined]
    submit, open_at_submit = batcher.submit, []

    def deleted_files() -> set[str]:  # temporary files: pytest's capture ones among them
        targets = set()
        for fd in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile (the listing's own fd)
                targets.add(str(fd.readlink()))
        return {target for target in targets if target.endswith("(deleted)")}

    def spy(images: list[DecodedImage], num_stages: int | None) -> Any:
        open_at_submit.extend(deleted_files() - before)
        return submit(images, num_stages)

    monkeypatch.setattr(batcher, "submit", spy)
    large = encoded_image(800, 700, seed=5)
    assert len(large) > 1024 * 1024
    before = deleted_files()
    response = client.post("/v1/detect", files=files(large, large))
    assert response.status_code == 200, response.text
    assert open_at_submit == []


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([encoded_image(200, 190)], "images[0] (image0.png) is 102747 bytes, more than the limit"),
        ([PNG] * 4, "4 images in one request, more than the limit of 3"),
    ],
)
def test_multipart_files_over_a_limit_are_refused_before_they_are_read(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, images: list[bytes], message: str
) -> None:
    """A file over --max-image-bytes, or one image too many, is not read into memory first."""
    reads: list[str | None] = []
    read = UploadFile.read

    async def counted(self: UploadFile, size: int = -1) -> bytes:
        reads.append(self.filename)
        return await read(self, size)

    monkeypatch.setattr(UploadFile, "read", counted)
    response = client.post("/v1/detect", files=files(*images))
    assert response.status_code == 413, response.text
    assert response.json()["error"].startswith(message)
    assert reads == []


def _solid_png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _animated_gif() -> bytes:
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (24, 16), color) for color in ("red", "green", "blue")]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


JPEG = encoded_image(128, 96, image_format="JPEG")
MULTIPART_TYPE = "multipart/form-data; boundary=x"


def _multipart(*images: bytes) -> bytes:
    """A whole multipart body (boundary ``x``) of PNG ``images`` as file parts."""
    parts = [
        b'--x\r\nContent-Disposition: form-data; name="images"; filename="a%d.png"\r\n'
        b"Content-Type: image/png\r\n\r\n%s\r\n" % (i, data)
        for i, data in enumerate(images)
    ]
    return b"".join(parts) + b"--x--\r\n"


def test_a_whole_handmade_multipart_body_is_read(client: TestClient) -> None:
    """The body the cut-off cases of :data:`BAD_REQUESTS` cut, whole, and with an epilogue."""
    for body in (_multipart(PNG, PNG), _multipart(PNG) + b"an epilogue\r\n"):
        response = client.post("/v1/detect", content=body, headers={"content-type": MULTIPART_TYPE})
        assert response.status_code == 200, response.text
    assert len(response.json()["images"]) == 1


# (request options, status, text the error must hold, field named)
BAD_REQUESTS: dict[str, tuple[dict[str, Any], int, str, str | None]] = {
    "not an image": (
        {"files": files(b"this is text, not pixels")},
        400,
        "not an image file",
        "images[0]",
    ),
    "truncated png": ({"files": files(PNG[: len(PNG) // 2])}, 400, "truncated", "images[0]"),
    "truncated jpeg": ({"files": files(JPEG[: len(JPEG) // 2])}, 400, "truncated", "images[0]"),
    "empty file": ({"files": files(b"")}, 400, "is empty", "images[0]"),
    "empty json body": (
        {"content": b"", "headers": {"content-type": "application/json"}},
        400,
        "request body is empty",
        None,
    ),
    "empty multipart body": (
        {"content": b"", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        400,
        "request body is empty",
        None,
    ),
    "no image": ({"json": {"images": []}}, 400, "no image in the request", "images"),
    # python-multipart drops a part the body ends inside of: was "no image in the request".
    "multipart body cut off": (
        {"content": _multipart(PNG)[:-100], "headers": {"content-type": MULTIPART_TYPE}},
        400,
        "the multipart body is cut off or malformed: it ends before its closing boundary",
        None,
    ),
    # Was answered with the first image's detections alone.
    "multipart body cut off in its second image": (
        {"content": _multipart(PNG, PNG)[:-100], "headers": {"content-type": MULTIPART_TYPE}},
        400,
        "the multipart body is cut off or malformed",
        None,
    ),
    "too many bytes": (
        {"files": files(encoded_image(200, 190))},
        413,
        "more than the limit of 60000",
        "images[0]",
    ),
    "too many pixels": (
        {"files": files(_solid_png(300, 300))},
        413,
        "images[0] (image0.png) has 90000 pixels (300x300), more than the limit of 40000",
        "images[0]",
    ),
    # 196 M pixels in 24 kB: over Pillow's decompression-bomb threshold, refused from the header.
    # Was "has over 178956970 pixels (Pillow's decompression-bomb guard)": Pillow's limit.
    "decompression bomb": (
        {"files": files(_solid_png(14000, 14000, mode="1"))},
        413,
        "images[0] (image0.png) has 196000000 pixels, more than the limit of 40000",
        "images[0]",
    ),
    "too many images": ({"files": files(PNG, PNG, PNG, PNG)}, 413, "limit of 3", "images"),
    "far too many images": (
        {"files": files(*[_solid_png(1, 1)] * 40)},
        413,
        "more than the limit of 3",
        "images",
    ),
    "body too large": (
        {"content": b"x" * 400_000, "headers": {"content-type": "application/json"}},
        413,
        "request body is larger than",
        None,
    ),
    "unknown query parameter": (
        {"files": files(PNG), "params": {"treshold": "0.5"}},
        400,
        "unknown parameter 'treshold'",
        "treshold",
    ),
    # Was "unknown parameter 'images'; this endpoint accepts: images, ...".
    "images in the query string": (
        {"files": files(PNG), "params": {"images": "photo.jpg"}},
        400,
        "images go in the request body, not in the query string",
        "images",
    ),
    "unknown form field": (
        {"files": files(PNG), "data": {"max_dets": "3"}},
        400,
        "unknown parameter 'max_dets'",
        "max_dets",
    ),
    "unknown json key": (
        {"json": {"images": [b64(PNG)], "nms": True}},
        400,
        "unknown parameter 'nms'",
        "nms",
    ),
    "unknown file field": (
        {"files": files(PNG, field="image")},
        400,
        "unknown file field 'image'",
        "image",
    ),
    "stages too high": ({"files": files(PNG), "data": {"stages": "3"}}, 400, "1..2", "stages"),
    "stages zero": ({"json": {"images": [b64(PNG)], "stages": 0}}, 400, "stages", "stages"),
    # pydantic alone reads true as 1: one stage would run.
    "stages true": (
        {"json": {"images": [b64(PNG)], "stages": True}},
        400,
        "parameter stages: a number is wanted, not true/false (got True)",
        "stages",
    ),
    "score not a number": (
        {"files": files(PNG), "data": {"score_threshold": "high"}},
        400,
        "score_threshold",
        "score_threshold",
    ),
    # NaN was refused as "less than or equal to 1" (it is not greater either), then as "Input
    # should be a finite number": not as Prediction.above and --score-threshold refuse it.
    "score nan": (
        {"files": files(PNG), "data": {"score_threshold": "nan"}},
        400,
        "parameter score_threshold: must be a number in [0, 1] (got 'nan')",
        "score_threshold",
    ),
    "parameter twice": (
        {"files": files(PNG), "data": {"stages": "1"}, "params": {"stages": "1"}},
        400,
        "given twice",
        "stages",
    ),
    "bad base64": (
        {"json": {"images": ["not base64!"]}},
        400,
        "not valid base64 (Only base64 data is allowed)",
        "images[0]",
    ),
    # Counted before any is decoded: the limit, not the first bad string, is the answer.
    "too many json images": (
        {"json": {"images": ["not base64!"] * 4}},
        413,
        "4 images in one request, more than the limit of 3",
        "images",
    ),
    # json.loads keeps the last value silently.
    "json key twice": (
        {
            "content": b'{"images": ["%s"], "stages": 1, "stages": 2}' % b64(PNG).encode(),
            "headers": {"content-type": "application/json"},
        },
        400,
        "key 'stages' is given twice in the JSON body",
        "stages",
    ),
    "json not an object": ({"json": [b64(PNG)]}, 400, "must be an object", None),
    "images not strings": ({"json": {"images": [1]}}, 400, "list of base64 strings", "images"),
    "invalid json": (
        {"content": b"{nope", "headers": {"content-type": "application/json"}},
        400,
        "not valid JSON",
        None,
    ),
    # json.loads raises RecursionError and ValueError here, not JSONDecodeError.
    "json nested too deeply": (
        {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}},
        400,
        "not valid JSON (nested too deeply)",
        None,
    ),
    "json number too long": (
        {
            "content": b'{"images": [], "stages": %s}' % (b"9" * 5000),
            "headers": {"content-type": "application/json"},
        },
        400,
        "not valid JSON (a number is too long)",
        None,
    ),
    # The bad value is repeated, cut to a line.
    "long bad value": (
        {"files": files(PNG), "data": {"stages": "9" * 5000}},
        400,
        "(got '" + "9" * 59 + "... (5002 chars))",
        "stages",
    ),
    "animated gif": ({"files": files(_animated_gif())}, 415, "3 frames", "images[0]"),
    "text content type": (
        {"content": b"hello", "headers": {"content-type": "text/plain"}},
        415,
        "'text/plain' is not accepted",
        None,
    ),
    "broken multipart": (
        {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
        400,
        "multipart",
        None,
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_a_json_error_and_the_server_keeps_serving(
    client: TestClient, case: str
) -> None:
    options, status, text, field = BAD_REQUESTS[case]
    response = client.post("/v1/detect", **options)
    assert response.status_code == status, response.text
    body = response.json()
    assert text in body["error"]
    assert body["field"] == field
    assert_serving(client)


def test_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 10_000

    response = client.post(
        "/v1/detect", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "larger than" in response.json()["error"]
    assert_serving(client)


@pytest.mark.parametrize(
    ("content_type", "start"),
    [
        ("application/json", b'{"images": ["iVBORw0KGgo'),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n'
            + PNG[:100],
        ),
    ],
)
def test_a_client_that_leaves_mid_upload_is_logged_in_one_line(
    client: TestClient, caplog: pytest.LogCaptureFixture, content_type: str, start: bytes
) -> None:
    """A closed connection is no server failure: it was raised out of the app, which uvicorn
    logged as an "Exception in ASGI application" with a traceback."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/detect",
        "raw_path": b"/v1/detect",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", content_type.encode()), (b"content-length", b"100000")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages = iter(
        [
            {"type": "http.request", "body": start, "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with caplog.at_level("INFO", logger="sparsercnn.serving.errors"):
        asyncio.run(client.app(scope, receive, send))  # raises nothing
    assert sent[0]["status"] == 400
    assert "closed the connection before its request body was read" in caplog.text
    assert_serving(client)


def test_stage_view_takes_exactly_one_image_and_no_parameter(client: TestClient) -> None:
    two = client.post("/v1/stages", files=files(PNG, PNG))
    assert two.status_code == 413 and "limit of 1" in two.json()["error"]
    extra = client.post("/v1/stages", files=files(PNG), data={"stages": "1"})
    assert extra.status_code == 400 and "unknown parameter 'stages'" in extra.json()["error"]
    assert client.post("/v1/stages", files=files(b"GIF89a")).status_code == 400
    assert client.post("/v1/stages", files=files(PNG)).status_code == 200


def test_unknown_routes_and_methods_answer_json_naming_the_request(client: TestClient) -> None:
    """In the shape of every error, naming the path and method and listing the endpoints."""
    listed = "this server answers GET /, GET /docs, GET /health, GET /openapi.json, "
    listed += "POST /v1/detect, GET /v1/model, POST /v1/stages"
    missing = client.get("/v2/detect")
    assert missing.status_code == 404
    assert missing.json() == {"error": f"GET /v2/detect: no such path; {listed}", "field": None}
    wrong = client.get("/v1/detect")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"  # RFC 9110
    expected = f"GET /v1/detect: the method is not allowed on this path (it takes POST); {listed}"
    assert wrong.json() == {"error": expected, "field": None}
    # The page's files: a missing one, and a method static files do not take.
    assert client.get("/static/nothing.js").json()["error"].startswith("GET /static/nothing.js:")
    put = client.put("/static/index.html")
    assert put.status_code == 405 and put.headers["allow"] == "GET, HEAD"
    assert "PUT /static/index.html: the method is not allowed" in put.json()["error"]


def test_a_failing_batch_answers_500_and_the_next_request_succeeds(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real server logs the traceback and keeps serving; TestClient would re-raise it.
    client = make_client(raise_server_exceptions=False)
    service = client.app.state.service  # type: ignore[attr-defined]
    original = service.predictor.with_stages
    calls = {"n": 0}

    def failing_once(num_stages: int | None) -> Predictor:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated out of memory")
        return original(num_stages)  # type: ignore[no-any-return]

    monkeypatch.setattr(service.predictor, "with_stages", failing_once)
    failed = client.post("/v1/detect", files=files(PNG))
    assert failed.status_code == 500 and "simulated out of memory" in failed.json()["error"]
    assert_serving(client)


def test_non_finite_model_outputs_answer_500_naming_the_requests_image(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message named the predictor's input ("<input 1>: ...") and no field."""
    client = make_client(raise_server_exceptions=False)
    predictor = client.app.state.service.predictor  # type: ignore[attr-defined]
    postprocess = predictor.postprocessor

    def nan_on_wide_images(output: Any, sizes: list[tuple[int, int]]) -> Any:
        detections = postprocess(output, sizes)
        for found, (height, width) in zip(detections, sizes, strict=True):
            if width > 2 * height:
                found["scores"][0] = float("nan")
        return detections

    monkeypatch.setattr(predictor, "postprocessor", nan_on_wide_images)
    response = client.post("/v1/detect", files=files(PNG, WIDE_PNG))
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["field"] == "images[1]"
    assert re.match(
        r"images\[1\] \(image1\.png\): 1 of its \d+ detections has a NaN or infinite score or "
        r"box, which cannot be ranked or used; a model gives",
        body["error"],
    )
    assert_serving(client)


def test_non_finite_stage_detections_answer_500_naming_the_requests_image(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/v1/stages answered "internal error: NonFiniteDetectionsError: ..." with no field, where
    /v1/detect names the upload and its field."""
    client = make_client(raise_server_exceptions=False)
    service = client.app.state.service  # type: ignore[attr-defined]
    stage_boxes = service.stage_boxes

    def nan_in_the_last_stage(image: Any) -> Any:
        result = stage_boxes(image)
        result.detections[-1]["scores"][0] = float("nan")
        return result

    monkeypatch.setattr(service, "stage_boxes", nan_in_the_last_stage)
    response = client.post("/v1/stages", files=files(PNG))
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["field"] == "images[0]"
    assert re.match(
        r"images\[0\] \(image0\.png\): 1 of its \d+ detections has a NaN or infinite score or "
        r"box, which cannot be ranked or used; a model gives",
        body["error"],
    )
    assert_serving(client)


@pytest.mark.slow
def test_onnx_engine_serves_full_stage_requests(
    make_client: MakeClient, model_file: Path, model_file_onnx: Path
) -> None:
    pytest.importorskip("onnxruntime")
    client = make_client(onnx_file=model_file_onnx)
    assert client.get("/v1/model").json()["engine"] == "onnx"
    assert client.get("/v1/model").json()["precision"] == "fp32"
    body = client.post("/v1/detect", files=files(PNG)).json()
    expected = Predictor.from_file(model_file)([decoded(PNG)])[0]
    assert_matches(body["images"][0]["detections"], expected, atol=1e-2)
    first = client.post("/v1/detect", files=files(PNG), data={"stages": "1"}).json()
    assert_matches(
        first["images"][0]["detections"],
        Predictor.from_file(model_file, num_stages=1)([decoded(PNG)])[0],
    )


def test_the_model_endpoint_names_what_runs_each_kind_of_request(
    make_client: MakeClient,
    model_file_onnx: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``serve --onnx X --device cuda`` reported ``device: cuda`` (and the page "fp32 on
    cuda") while full-stage requests ran X on onnxruntime's CPU provider; only stage-limited
    requests and the stage view ran the model file on CUDA."""
    pytest.importorskip("onnxruntime")
    with caplog.at_level("INFO", logger="sparsercnn.serving.service"):
        client = make_client(onnx_file=model_file_onnx)
    assert f"full-stage requests run {model_file_onnx} on cpu (onnx, fp32)" in caplog.text
    service = client.app.state.service  # type: ignore[attr-defined]
    # Where --device cuda puts the model file (what is reported is the predictor's device).
    monkeypatch.setattr(service.predictor, "device", torch.device("cuda", 0))
    model = client.get("/v1/model").json()
    assert (model["engine"], model["device"], model["precision"]) == ("onnx", "cpu", "fp32")
    assert model["provider"] == "CPUExecutionProvider"
    assert model["stage_limited"] == {
        "engine": "torch",
        "device": "cuda:0",
        "precision": "fp32",
        "provider": None,
    }


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_an_onnx_file_beside_a_model_on_cuda_runs_on_cuda_or_is_refused(
    make_client: MakeClient, model_file_onnx: Path
) -> None:
    """The ONNX file ran on the CPU whatever --device said; it follows --device now, by the
    CUDA provider where onnxruntime has one, and is refused where it has none."""
    onnxruntime = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ValueError, match=r"\(--device\): the installed onnxruntime"):
            make_client(onnx_file=model_file_onnx, device="cuda")
        return
    model = make_client(onnx_file=model_file_onnx, device="cuda").get("/v1/model").json()
    assert (model["engine"], model["device"]) == ("onnx", "cuda:0")
    assert model["provider"] == "CUDAExecutionProvider"
    assert model["stage_limited"]["engine"] == "torch"
    assert model["stage_limited"]["device"].startswith("cuda")


def marked_int8(onnx_file: Path, tmp_path: Path) -> Path:
    """A copy of ``onnx_file`` whose metadata says ``export --int8`` quantized it (the graph is
    the fp32 one: what the server reports and checks is the record)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from sparsercnn.export.onnx_runtime import QUANTIZATION_KEY

    path = tmp_path / "model_int8.onnx"
    graph = onnx.load(onnx_file)
    props = {prop.key: prop.value for prop in graph.metadata_props}
    onnx.helper.set_model_props(graph, {**props, QUANTIZATION_KEY: "{}"})
    onnx.save(graph, path)
    return path


def test_the_model_endpoint_reports_an_int8_onnx_file(
    make_client: MakeClient, model_file_onnx: Path, tmp_path: Path
) -> None:
    """The precision is the ONNX file's (``int8`` when ``export --int8`` recorded its
    quantization), not the torch model's."""
    onnx_file = marked_int8(model_file_onnx, tmp_path)
    assert make_client(onnx_file=onnx_file).get("/v1/model").json()["precision"] == "int8"


@pytest.mark.parametrize(
    ("graph", "precision"), [("fp32", "int8"), ("fp32", "bf16"), ("int8", "fp32")]
)
def test_a_precision_the_onnx_file_does_not_compute_in_is_refused(
    model_file: Path, model_file_onnx: Path, tmp_path: Path, graph: str, precision: str
) -> None:
    """Full-stage requests run the ONNX file: ``--onnx`` of an fp32 graph with ``--precision
    int8`` answered them in fp32 without a word. Refused before the model file loads (whose
    missing calibration would otherwise be the error), naming both flags."""
    pytest.importorskip("onnxruntime")
    onnx_file = marked_int8(model_file_onnx, tmp_path) if graph == "int8" else model_file_onnx
    expected = f"--precision {precision}: --onnx {onnx_file} computes in {graph}, the precision"
    with pytest.raises(ValueError, match=re.escape(expected)):
        create_app(model_file, onnx_file=onnx_file, precision=precision)  # type: ignore[arg-type]


def test_the_onnx_file_s_own_precision_is_accepted(
    make_client: MakeClient, model_file: Path, model_file_onnx: Path, tmp_path: Path
) -> None:
    """An int8 graph with ``--precision int8`` and a calibrated model file: every request int8."""
    from sparsercnn.model.int8_features import int8_available
    from tests.tiny_model import write_int8_calibrated_copy

    pytest.importorskip("onnxruntime")
    if not int8_available():
        pytest.skip("this CPU or PyTorch build has no oneDNN int8 convolution")
    calibrated = write_int8_calibrated_copy(model_file, tmp_path / "int8.safetensors")
    onnx_file = marked_int8(model_file_onnx, tmp_path)
    app = create_app(calibrated, onnx_file=onnx_file, precision="int8")
    assert app.state.service.predictor.precision == "int8"
    assert app.state.service.info().precision == "int8"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"test_min_size": "64"}, r"input\.test_min_size 64 \(--model: 128\)"),
        ({"num_stages": "1"}, "runs 1 stages but --model has 2"),
        ({"config": ("num_proposals", 16, 32)}, r"model\.num_proposals 32 \(--model: 16\)"),
    ],
)
def test_an_onnx_file_of_another_model_is_refused(
    model_file: Path,
    model_file_onnx: Path,
    tmp_path: Path,
    change: dict[str, Any],
    message: str,
) -> None:
    """Full-stage requests run the ONNX file, the page and ``stages`` the model file: an export
    of another model (same classes, another recipe) would make them disagree."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    graph = onnx.load(model_file_onnx)
    props = {prop.key: prop.value for prop in graph.metadata_props}
    for key, value in change.items():
        if key == "config":
            name, old, new = value
            config = json.loads(props["config"])
            assert config["model"][name] == old
            config["model"][name] = new
            props["config"] = json.dumps(config)
        else:
            props[key] = value
    onnx.helper.set_model_props(graph, props)
    onnx_file = tmp_path / "other.onnx"
    onnx.save(graph, onnx_file)
    with pytest.raises(ValueError, match=message):
        create_app(model_file, onnx_file=onnx_file)


def test_an_onnx_file_of_other_weights_is_refused(
    model_file: Path, model_file_onnx: Path, tmp_path: Path
) -> None:
    """An export of another checkpoint of the same run (model_best beside model_final: the
    same classes and config) answered full-stage requests while the page and ``stages`` ran
    --model, silently."""
    pytest.importorskip("onnxruntime")
    loaded = load_model_file(model_file)
    with torch.no_grad():
        next(loaded.model.parameters()).add_(0.01)
    other = save_model_file(
        tmp_path / "model_final.safetensors", loaded.model, loaded.config, loaded.categories
    )
    with pytest.raises(ValueError) as info:
        create_app(other, onnx_file=model_file_onnx)
    message = str(info.value)
    assert message.startswith(
        f"--onnx {model_file_onnx} was exported from other weights than --model {other} "
        "(weights CRC-32 "
    )
    assert f"export one from --model (`sparsercnn export --model {other} --output" in message


def test_an_onnx_file_recording_no_weights_is_served_with_one_warning(
    model_file: Path, model_file_onnx: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Files exported before the weights' CRC-32 was recorded cannot be checked: said once."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    graph = onnx.load(model_file_onnx)
    props = {p.key: p.value for p in graph.metadata_props if p.key != WEIGHTS_DIGEST_KEY}
    assert len(props) == len(graph.metadata_props) - 1
    del graph.metadata_props[:]
    onnx.helper.set_model_props(graph, props)
    old = tmp_path / "old.onnx"
    onnx.save(graph, old)
    with caplog.at_level("WARNING", logger="sparsercnn.serving.service"):
        create_app(model_file, onnx_file=old)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"--onnx {old} does not record which weights it was exported from (an export of an "
        f"older sparsercnn): that it is an export of --model {model_file} cannot be checked; "
        f"re-export it with `sparsercnn export --model {model_file}` to have it checked"
    ]


def test_openapi_documents_query_parameters_image_counts_and_error_answers(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    detect = spec["paths"]["/v1/detect"]["post"]
    query = {p["name"]: p for p in detect["parameters"]}
    assert set(query) == {"score_threshold", "max_detections", "stages"}
    assert all(p["in"] == "query" and not p["required"] for p in query.values())
    number, null = query["score_threshold"]["schema"]["anyOf"]  # null: the default
    assert (number["minimum"], number["maximum"], null["type"]) == (0.0, 1.0, "null")
    content = detect["requestBody"]["content"]
    for images in (
        content["multipart/form-data"]["schema"]["properties"]["images"],
        content["application/json"]["schema"]["properties"]["images"],
    ):
        assert (images["minItems"], images["maxItems"]) == (1, 3)  # the client's --max-images
    stages = spec["paths"]["/v1/stages"]["post"]
    json_images = stages["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert (json_images["images"]["minItems"], json_images["images"]["maxItems"]) == (1, 1)
    assert "parameters" in stages and stages["parameters"] == []
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for operation in (detect, stages):
        for status in ("400", "413", "415", "500", "503"):
            assert operation["responses"][status]["content"]["application/json"]["schema"] == error
    bbox = spec["components"]["schemas"]["BBox"]["properties"]
    assert all((b["minItems"], b["maxItems"]) == (4, 4) for b in bbox.values())
    body = spec["components"]["schemas"]["ErrorBody"]
    assert set(body["properties"]) == {"error", "field"} and body["required"] == ["error", "field"]
    # An actual error answer has that shape.
    answer = client.post("/v1/detect", json={"images": []}).json()
    assert set(answer) == {"error", "field"}


def test_timings_measure_what_they_name(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """decode_ms leaves out reading the request (a slow upload); the stage view's inference_ms
    leaves out the wait for work queued before it."""
    from sparsercnn.serving import app as app_module

    read = app_module.read_image_request

    async def slow_read(*args: Any) -> Any:
        await asyncio.sleep(0.3)  # a slow client
        return await read(*args)

    monkeypatch.setattr(app_module, "read_image_request", slow_read)
    timing = client.post("/v1/detect", files=files(PNG)).json()["timing"]
    assert timing["total_ms"] >= 300 > timing["decode_ms"] + timing["inference_ms"]
    monkeypatch.undo()
    service = client.app.state.service  # type: ignore[attr-defined]
    start = time.perf_counter()  # before the call: the task may start at once
    busy = service.batcher.call(lambda: time.sleep(0.5))  # the model is busy meanwhile
    view = client.post("/v1/stages", files=files(PNG)).json()
    assert time.perf_counter() - start >= 0.5 and busy.done()
    assert view["inference_ms"] < 400


def test_images_at_the_byte_limit_fit_the_body_limit_as_wrapped_base64(
    make_client: MakeClient,
) -> None:
    """The body limit leaves room for base64 as the ``base64`` tool writes it (lines of 76,
    here joined by JSON-escaped CRLFs) of ``--max-images`` files at ``--max-image-bytes``."""
    client = make_client(limits=Limits(max_image_bytes=100_000, max_images=16))
    image = PNG + bytes(100_000 - len(PNG))  # Pillow ignores bytes after a PNG's end
    text = b64(image)
    wrapped = "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    body = json.dumps({"images": ["data:image/png;base64," + wrapped] * 16}).encode()
    response = client.post("/v1/detect", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["images"]) == 16
    too_large = client.post("/v1/detect", files=files(image + b"\0"))
    assert too_large.status_code == 413 and "100001 bytes" in too_large.json()["error"]
