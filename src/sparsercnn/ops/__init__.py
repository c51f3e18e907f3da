"""Pure-PyTorch operators: box geometry and RoIAlign (torchvision semantics).

``from sparsercnn.ops import roi_align; roi_align(input, boxes, output_size, ...)`` is the
torchvision-style function; the sampling it is built from lives in :mod:`.roi_sampling`.
"""

from sparsercnn.ops.boxes import box_iou, clip_boxes, generalized_box_iou
from sparsercnn.ops.multilevel_roi_align import multilevel_roi_align
from sparsercnn.ops.roi_sampling import roi_align

__all__ = ["box_iou", "clip_boxes", "generalized_box_iou", "multilevel_roi_align", "roi_align"]
