"""Query parts as vectors of the library's space: texts and uploaded images, through one encoder.

The engine receives a :class:`QueryEmbedder`; how texts get encoded is passed in with it: at once
(:class:`DirectText`, the CLI) or micro-batched with concurrent requests (the API passes
:class:`glimpse.search.batching.TextBatcher`). Stored items need no model: their vectors come from
the index (see :meth:`glimpse.search.engine.SearchEngine.query_vector`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from glimpse.core.models import ModelRef

if TYPE_CHECKING:
    from PIL import Image

    from glimpse.core.encoder import Encoder


class TextEncoder(Protocol):
    """Encodes one query text into a unit vector, shape (D,) float32."""

    def encode(self, text: str) -> np.ndarray: ...


class DirectText:
    """Each text encoded when asked (through the encoder's LRU cache)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def encode(self, text: str) -> np.ndarray:
        return self.encoder.encode_texts([text])[0]


class QueryEmbedder:
    """The library's model, for what a query brings: a text, or an uploaded image."""

    def __init__(self, encoder: Encoder, text: TextEncoder | None = None) -> None:
        self.encoder = encoder
        self._text = text or DirectText(encoder)

    @property
    def ref(self) -> ModelRef:
        return self.encoder.ref

    def text(self, text: str) -> np.ndarray:
        """A unit vector (D,) for ``text`` (stripped; blank text is the caller's to refuse)."""
        return self._text.encode(text)

    def image(self, image: Image.Image) -> np.ndarray:
        """A unit vector (D,) for a decoded RGB image, preprocessed exactly as the indexer does."""
        return self.encoder.encode_images([image])[0]
