"""Configuration of the web console."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebConfig(_Strict):
    """(web:)"""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, gt=0, lt=65536)
    tile_url: Optional[str] = Field(default=None, description="base-map tile URL template; none by default (offline)")
    group: str = "imminence-web"
