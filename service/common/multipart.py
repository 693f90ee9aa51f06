"""In-memory parsing of multipart bodies (RFC 2046): ``multipart/form-data`` and STOW-RS's
``multipart/related``.

The whole body is already in memory (read under the size limit), so parts are sliced out of it
directly: nothing is spooled to a temporary file, unlike python-multipart's form parser. Header
parameters (boundary, type, name, filename) are parsed with the standard library's e-mail
header parser, which handles quoting and RFC 2231 encodings. :func:`encode_related` writes the
``multipart/related`` bodies of WADO-RS answers and of STOW-RS deliveries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value

#: RFC 2046 allows 1 to 70 characters, but real senders exceed it (Orthanc 1.10's STOW-RS client
#: sends 73: two UUIDs joined by a dash), so longer boundaries are accepted up to a sanity bound
MAX_BOUNDARY_LENGTH = 200
MAX_PART_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not well-formed multipart; the message says where."""


@dataclass(frozen=True)
class MediaType:
    """A parsed Content-Type: lower-case ``type/subtype`` and its parameters (names lower-cased)."""

    essence: str
    params: dict[str, str]


def parse_header_value(name: str, value: str) -> MediaType:
    """``type/subtype; a=b`` (or ``form-data; name=...``) split into its value and parameters."""
    message = Message()
    message[name] = value
    params: dict[str, str] = {}
    raw = message.get_params(header=name, unquote=True) or []
    essence = raw[0][0].strip().lower() if raw else ""
    for key, item in raw[1:]:
        params[key.strip().lower()] = collapse_rfc2231_value(item).strip()
    return MediaType(essence=essence, params=params)


@dataclass(frozen=True)
class Part:
    """One body part: its headers (names lower-cased) and its content."""

    headers: dict[str, str]
    content: bytes

    @property
    def content_type(self) -> MediaType | None:
        value = self.headers.get("content-type")
        return parse_header_value("content-type", value) if value else None

    @property
    def disposition(self) -> MediaType | None:
        value = self.headers.get("content-disposition")
        return parse_header_value("content-disposition", value) if value else None

    @property
    def field_name(self) -> str | None:
        disposition = self.disposition
        return disposition.params.get("name") if disposition else None

    @property
    def filename(self) -> str | None:
        disposition = self.disposition
        return disposition.params.get("filename") if disposition else None


def boundary_of(media_type: MediaType) -> str:
    """The boundary parameter of a multipart Content-Type, validated."""
    boundary = media_type.params.get("boundary", "")
    if not boundary:
        raise MultipartError("the multipart Content-Type has no boundary parameter")
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise MultipartError(f"the multipart boundary is longer than {MAX_BOUNDARY_LENGTH} characters")
    return boundary


def _parse_headers(block: bytes, index: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, separator, value = line.partition(b":")
        if not separator or not name.strip():
            raise MultipartError(f"part {index}: malformed header line")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("utf-8", errors="replace")
    return headers


def _split_part(raw: bytes, index: int) -> Part:
    if raw.startswith(b"\r\n"):  # no headers at all
        return Part(headers={}, content=raw[2:])
    end = raw.find(b"\r\n\r\n", 0, MAX_PART_HEADER_BYTES)
    if end < 0:
        raise MultipartError(f"part {index}: headers do not end with an empty line (or exceed 16 KiB)")
    return Part(headers=_parse_headers(raw[:end], index), content=raw[end + 4 :])


def _after_delimiter(body: bytes, position: int) -> int:
    """Skip transport padding (spaces, tabs) and the CRLF after a boundary line."""
    while position < len(body) and body[position] in b" \t":
        position += 1
    if body[position : position + 2] != b"\r\n":
        raise MultipartError("a boundary line is not followed by CRLF")
    return position + 2


def parse_multipart(body: bytes, boundary: str) -> list[Part]:
    """Split ``body`` into its parts; raises MultipartError when it is not well-formed.

    The preamble before the first boundary and the epilogue after the closing one are ignored.
    """
    delimiter = b"--" + boundary.encode("latin-1")
    if body.startswith(delimiter):
        position = len(delimiter)
    else:
        first = body.find(b"\r\n" + delimiter)
        if first < 0:
            raise MultipartError("the body does not contain the boundary given in the Content-Type")
        position = first + 2 + len(delimiter)
    parts: list[Part] = []
    separator = b"\r\n" + delimiter
    while True:
        if body[position : position + 2] == b"--":
            return parts
        position = _after_delimiter(body, position)
        end = body.find(separator, position)
        if end < 0:
            raise MultipartError("the body ends before the closing boundary (truncated upload?)")
        parts.append(_split_part(body[position:end], len(parts) + 1))
        position = end + len(separator)


def encode_related(contents: Sequence[bytes], part_type: str) -> tuple[bytes, str]:
    """A ``multipart/related`` body with one ``part_type`` part per item, and its Content-Type."""
    boundary = uuid.uuid4().hex
    chunks = [f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + content + b"\r\n" for content in contents]
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="{part_type}"; boundary={boundary}'
