"""The sources each tenant has registered, kept in the data directory (mode 0600: URIs may hold
credentials). The connector service syncs every registered source on an interval."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


class RegisteredSource(BaseModel):
    tenant: str
    uri: str  # as given, credentials included: never print it, show the source's display_uri
    metadata: dict[str, Any] = Field(default_factory=dict)


class SourceRegistry:
    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[RegisteredSource]:
        if not self.path.exists():
            return []
        return [RegisteredSource(**s) for s in json.loads(self.path.read_text())]

    def add(self, source: RegisteredSource) -> None:
        sources = [s for s in self.all() if (s.tenant, s.uri) != (source.tenant, source.uri)]
        sources.append(source)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([s.model_dump() for s in sources], f, indent=2)
        os.replace(tmp, self.path)
