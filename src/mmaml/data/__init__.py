"""Image data sets for few-shot classification: loaders, splits, download and caching."""

from mmaml.data.image_classes import ImageClasses, class_split

__all__ = ["ImageClasses", "class_split"]
