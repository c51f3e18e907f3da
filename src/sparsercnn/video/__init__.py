"""Video in and out of the detector: frames of video files (PyAV, the ``video`` extra) and of
image folders, detections on them through the predictors' batching, and annotated videos written
atomically. For example::

    predictor = Predictor.from_file("model.safetensors")
    for frame, prediction in predict_video(predictor, "clip.mp4", every=5):
        print(frame.index, frame.timestamp, prediction.above(0.5).class_names)
"""

from sparsercnn.video.prediction import frame_records, open_sequence, predict_video
from sparsercnn.video.reader import (
    VIDEO_SUFFIXES,
    Frame,
    FrameFolder,
    FrameSequence,
    VideoFile,
    import_av,
    is_video_file,
)
from sparsercnn.video.writer import VideoWriter, choose_codec, video_rate

__all__ = [
    "VIDEO_SUFFIXES",
    "Frame",
    "FrameFolder",
    "FrameSequence",
    "VideoFile",
    "VideoWriter",
    "choose_codec",
    "frame_records",
    "import_av",
    "is_video_file",
    "open_sequence",
    "predict_video",
    "video_rate",
]
