"""The detector contract: every detector says what it looks for, when it applies, and what it found.

In the spirit of TorchXRayVision's uniform ``Model`` and timm's registry: a detector is one class
with a ``name`` (its registry key), the ``kinds`` it can assert or deny (ids of
:data:`radscribe.knowledge.ontology.FINDING_KINDS`), ``applies(image, recognition)`` (None when it
runs, else the human reason it does not) and ``detect(image) -> Detection``. The pipeline
(:mod:`radscribe.analyze`) is one loop over :data:`DETECTORS` and names none of them.

:data:`DETECTORS` maps a name to a *factory* (any callable returning a detector): building one must
be cheap; weights load lazily on the first ``detect`` so that listing or routing costs nothing, and a
session (:class:`radscribe.analyze.Analyzer`) keeps the built detector for every later study.

A new detector is one class plus one ``register_detector`` call (docs/detectors.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding

if TYPE_CHECKING:  # pragma: no cover
    from radscribe.io.image import Image
    from radscribe.preprocess.recognize import Recognition


@dataclass(frozen=True)
class Detection:
    """What one detector found in one study.

    ``heatmaps`` / ``masks`` are keyed by the index into ``findings``: float32 0..1 and bool arrays on
    the image grid, (y, x) for a 2D image or (z, y, x). ``contours`` are named bool masks (z, y, x)
    drawn as outlines on every overlay (e.g. ``"lungs"``); ``side_files`` are written beside
    findings.json (relative name -> JSON-able object, or bytes written as they are). ``timings`` are
    seconds per stage. ``recognized`` is (modality, region, source) when the detector's content check
    established more than the header did (e.g. a bare PNG recognised as a chest X-ray).
    ``display_window`` is the intensity window its overlays are best read in ("lung", "brain", ...),
    None to let the pipeline choose from the body region.
    """

    findings: tuple[Finding, ...]
    heatmaps: dict[int, np.ndarray] = field(default_factory=dict)
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    contours: dict[str, np.ndarray] = field(default_factory=dict)
    side_files: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    recognized: tuple[str, str, str] | None = None
    display_window: str | None = None


@runtime_checkable
class Detector(Protocol):
    """A detector (see module doc). ``applies`` must be cheap next to ``detect`` and never raise for
    an image of another domain: it returns the reason instead."""

    name: str
    kinds: tuple[str, ...]

    def applies(self, image: Image, recognition: Recognition) -> str | None: ...

    def detect(self, image: Image) -> Detection: ...


#: name -> factory. A plain dict: iterate it, or add to it with :func:`register_detector`.
DETECTORS: dict[str, Callable[[], Detector]] = {}


def register_detector(name: str, factory: Callable[[], Detector]) -> None:
    """Add (or replace) ``name``. ``factory()`` must return an object whose ``name`` is ``name``."""
    if not isinstance(name, str) or not name or name in ("auto", "none") or "," in name:
        raise ValueError(f"invalid detector name {name!r}: a non-empty string without commas, not auto/none")
    if not callable(factory):
        raise TypeError(f"detector factory for {name!r} is not callable")
    DETECTORS[name] = factory


def unregister_detector(name: str) -> None:
    """Remove ``name`` (tests that register a toy detector clean up with this)."""
    DETECTORS.pop(name, None)


def detector_names() -> tuple[str, ...]:
    """Registered names, in registry (= run) order."""
    return tuple(DETECTORS)


def get_detector(name: str) -> Detector:
    """Build the detector ``name``; RadscribeInputError listing the known names otherwise."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise RadscribeInputError(f"unknown detector {name!r}; known detectors: {', '.join(DETECTORS)}") from None
    det = factory()
    if getattr(det, "name", None) != name:
        raise TypeError(f"factory registered as {name!r} built a detector named {getattr(det, 'name', None)!r}")
    return det


def parse_models(models: str | None) -> tuple[str, ...] | None:
    """``--models`` value -> None for "auto" (every detector that applies), () for "none", else the
    requested names (validated: unknown names raise RadscribeInputError listing the known ones)."""
    text = (models or "auto").strip()
    if text.lower() == "auto":
        return None
    if text.lower() == "none":
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in DETECTORS]
    if unknown or not names:
        raise RadscribeInputError(
            f"unknown detector{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown)) or repr(text)} "
            f"in --models; known detectors: {', '.join(DETECTORS)} (or 'auto', 'none')")
    return names


# The built-in detectors register themselves when their module is imported; importing it here (after
# the names above exist) makes DETECTORS complete for everyone who imports this module.
from radscribe.models import builtin_detectors as _builtin  # noqa: E402,F401
