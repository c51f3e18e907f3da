"""Pure-PyTorch operators: box geometry and RoIAlign (torchvision semantics)."""
