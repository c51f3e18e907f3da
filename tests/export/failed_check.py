"""A parity check that failed, for the tests of what a failed export check says."""

from __future__ import annotations

from sparsercnn.export import ParityCheck

# ONNX Runtime's boxes off by 3 px (5%), a score by 0.2, one detection unmatched.
FAILED_PARITY = ParityCheck(
    inputs=[(2, 64, 64)],
    max_box_diff=3.0,
    max_box_rel_diff=0.05,
    max_score_diff=0.2,
    unmatched=1,
)
