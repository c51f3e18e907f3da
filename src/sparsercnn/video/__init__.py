"""Video in and out of the detector: frames of video files (PyAV, the ``video`` extra) and of
image folders, detections on them through the predictors' batching, and annotated videos written
atomically. For example::

    predictor = Predictor.from_file("model.safetensors")
    for frame, prediction in predict_video(predictor, "clip.mp4", every=5):
        print(frame.index, frame.timestamp, prediction.above(0.5).class_names)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparsercnn.lazy_import import lazy_exports as _lazy_exports

# Resolved on first use, so that reading the suffixes (the command line's --help) does not
# import torch.
_EXPORTS = {
    "frame_records": "sparsercnn.video.prediction",
    "frame_summary": "sparsercnn.video.prediction",
    "open_sequence": "sparsercnn.video.prediction",
    "predict_video": "sparsercnn.video.prediction",
    "Frame": "sparsercnn.video.reader",
    "FrameFolder": "sparsercnn.video.reader",
    "FrameSequence": "sparsercnn.video.reader",
    "VideoFile": "sparsercnn.video.reader",
    "VideoReadError": "sparsercnn.video.reader",
    "import_av": "sparsercnn.video.reader",
    "VIDEO_SUFFIXES": "sparsercnn.video.suffixes",
    "VideoWriter": "sparsercnn.video.writer",
    "choose_codec": "sparsercnn.video.writer",
    "video_rate": "sparsercnn.video.writer",
}

if TYPE_CHECKING:
    from sparsercnn.video.prediction import (
        frame_records,
        frame_summary,
        open_sequence,
        predict_video,
    )
    from sparsercnn.video.reader import (
        Frame,
        FrameFolder,
        FrameSequence,
        VideoFile,
        VideoReadError,
        import_av,
    )
    from sparsercnn.video.suffixes import VIDEO_SUFFIXES
    from sparsercnn.video.writer import VideoWriter, choose_codec, video_rate

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())

__all__ = [
    "VIDEO_SUFFIXES",
    "Frame",
    "FrameFolder",
    "FrameSequence",
    "VideoFile",
    "VideoReadError",
    "VideoWriter",
    "choose_codec",
    "frame_records",
    "frame_summary",
    "import_av",
    "open_sequence",
    "predict_video",
    "video_rate",
]
