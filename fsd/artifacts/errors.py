"""The error every artifact reader raises: a file that is missing, unreadable or of another format."""

from __future__ import annotations

from fsd.errors import FsdError


class ArtifactError(FsdError):
    """A checkpoint, model card or exported model cannot be used; the message says why and what to do."""

    code = "invalid_artifact"
