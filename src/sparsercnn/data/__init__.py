"""Data: COCO-format datasets, image decoding, dataset validation, augmentation and loading.

This package sits below the engine and never imports the model. Import the submodules directly
(``sparsercnn.data.coco``, ``sparsercnn.data.validation``, ...); nothing heavy is loaded here.
"""
