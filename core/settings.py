"""Typed settings, read from ``GLIMPSE_*`` environment variables (and CLI flags that override them)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL = "ViT-B-32"


def _split_list(value: object) -> object:
    """Accept comma- or os.pathsep-separated strings for list settings given through the env."""
    if isinstance(value, str):
        parts = [p.strip() for chunk in value.split(",") for p in chunk.split(":")]
        return [p for p in parts if p]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GLIMPSE_", env_file=None, extra="ignore")

    data_dir: Path = Path("./glimpse-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file inside the data dir"
    )
    media_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="folders files may be served from, besides the folders that were indexed",
    )

    db_wait_seconds: float = Field(default=30.0, ge=0, description="start-up wait for the database")

    model: str = DEFAULT_MODEL
    pretrained: str | None = Field(
        default=None,
        description="open_clip tag, checkpoint file, 'bundled' or 'none' (random init); "
        "unset: the model's own default (core/models.py default_pretrained)",
    )
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    batch_size: int = Field(default=32, ge=1, le=4096)
    workers: int = Field(default=0, ge=0, description="decode processes; 0 = one per CPU core")
    commit_units: int = Field(default=512, ge=1, description="vectors per crash-safe commit")
    max_image_pixels: int = Field(default=89_478_485, ge=1)

    video_fps: float = Field(default=1.0, gt=0, le=60)
    video_max_frames: int = Field(default=3600, ge=1)
    video_sampling: Literal["fps", "keyframes"] = "fps"
    segment_threshold: float = Field(default=0.95, ge=0, le=1.0)

    # Text in images and video frames (core/ocr.py), read while indexing.
    ocr: bool = Field(default=False, description="read the text in images and video frames (OCR)")
    ocr_max_pixels: int = Field(default=500_000, ge=10_000, description="pictures are downscaled to this")
    ocr_budget_seconds: float = Field(default=3.0, gt=0, description="OCR time per picture")
    ocr_min_confidence: float = Field(default=0.6, ge=0, le=1.0, description="lines below are noise")
    ocr_models: str | None = Field(default=None, description="folder of the OCR's ONNX models")

    ray_address: str | None = Field(
        default=None,
        description="index on a Ray cluster: auto (the running one, else a new local one), "
        "local (a new local one) or the head's address; unset: on this machine",
    )
    ray_actors: int = Field(
        default=0, ge=0, description="embedding actors on the cluster; 0 = one per GPU, or one per node"
    )
    index: str = Field(
        default="auto",
        description="index type: auto (exact up to 100,000 vectors, then IVF-PQ re-ranked exactly), "
        "flat, ivf, or a FAISS index-factory string such as IVF4096,PQ256x4fs",
    )
    moments_per_video: int = Field(default=3, ge=1)

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    query_cache_size: int = Field(default=1024, ge=0)
    media_link_seconds: int = Field(
        default=3600, ge=10, le=7 * 24 * 3600, description="lifetime of signed media links"
    )
    media_link_secret: SecretStr | None = Field(
        default=None, description="key that signs media links (default: derived from the API keys)"
    )
    full_paths: bool = Field(
        default=False,
        description="show clients full server paths instead of paths relative to their media folder",
    )
    pack_text_weights: bool = Field(
        default=True, description="query service on CPU: oneDNN-packed copy of the text tower"
    )

    @field_validator("media_roots", mode="before")
    @classmethod
    def _roots(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("pretrained", mode="before")
    @classmethod
    def _no_weights(cls, value: object) -> object:
        # "none" (flag or env, any case) asks for a seeded random initialisation of any model; an
        # empty value is the same as leaving it unset: the model's own default.
        if isinstance(value, str):
            value = value.strip()
            if value.lower() == "none":
                return "none"
            return value or None
        return value

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @cached_property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'catalogue.db').resolve()}"


def resolve_device(device: str = "auto") -> str:
    """``auto`` means CUDA when a GPU is visible, else CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
