"""Readers: every supported format becomes one :class:`radscribe.io.image.Image`."""

from radscribe.io.image import Image

__all__ = ["Image"]
