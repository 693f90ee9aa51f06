"""The in-memory multipart parser (RFC 2046) and Accept negotiation, on their own."""

from __future__ import annotations

import httpx
import pytest

from service.common.multipart import MultipartError, boundary_of, parse_header_value, parse_multipart
from service.http.errors import ServiceError
from service.http.negotiation import wants_dicom


def test_parses_what_httpx_sends_including_binary_that_looks_like_a_boundary():
    tricky = b"\r\n--not-the-boundary\r\n\r\n\x00\xff" * 10
    request = httpx.Request(
        "POST", "http://x/", files=[("files", ("a b.dcm", tricky, "application/dicom")), ("files", ("é.dcm", b"", "x/y"))],
        data={"note": "hello"},
    )
    media = parse_header_value("content-type", request.headers["content-type"])
    parts = parse_multipart(request.read(), boundary_of(media))
    by_name = [(part.field_name, part.filename, part.content) for part in parts]
    assert ("note", None, b"hello") in by_name
    assert ("files", "a b.dcm", tricky) in by_name
    assert ("files", "é.dcm", b"") in by_name


def test_stow_body_with_preamble_epilogue_padding_and_quoted_parameters():
    content_type = 'Multipart/Related; type="application/dicom"; boundary="b=1 x"'
    media = parse_header_value("content-type", content_type)
    assert media.essence == "multipart/related" and media.params["type"] == "application/dicom"
    body = (
        b"preamble\r\n--b=1 x\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\nONE"
        b"\r\n--b=1 x  \r\nContent-Type: application/dicom\r\n\r\nTWO\r\n--b=1 x--\r\nepilogue"
    )
    parts = parse_multipart(body, boundary_of(media))
    assert [part.content for part in parts] == [b"ONE", b"TWO"]
    assert parts[0].content_type.essence == "application/dicom"
    assert parts[0].content_type.params == {"transfer-syntax": "1.2.840.10008.1.2.1"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"--B\r\nContent-Type: a\r\n\r\nDATA", "closing boundary"),
        (b"no boundary at all", "does not contain the boundary"),
        (b"--Bjunk\r\n\r\nx\r\n--B--", "not followed by CRLF"),
        (b"--B\r\nbroken header line\r\n\r\nx\r\n--B--", "malformed header"),
        (b"--B\r\nContent-Type: a" + b"x" * 20000 + b"\r\n--B--", "headers do not end"),
    ],
)
def test_malformed_bodies_raise_a_clear_error(body, fragment):
    with pytest.raises(MultipartError, match=fragment):
        parse_multipart(body, "B")


def test_boundary_is_required_and_bounded():
    with pytest.raises(MultipartError, match="no boundary"):
        boundary_of(parse_header_value("content-type", "multipart/related"))
    # bounded, though above RFC 2046's 70 characters: Orthanc's STOW-RS client sends 73
    assert boundary_of(parse_header_value("content-type", "multipart/related; boundary=" + "x" * 73)) == "x" * 73
    with pytest.raises(MultipartError, match="longer than 200"):
        boundary_of(parse_header_value("content-type", "multipart/related; boundary=" + "x" * 201))


def test_empty_multipart_has_no_parts():
    assert parse_multipart(b"--B--\r\n", "B") == []


@pytest.mark.parametrize(
    ("accept", "dicom"),
    [
        (None, False), ("", False), ("*/*", False), ("application/json", False),
        ("application/dicom", True), ("application/dicom, */*;q=0.1", True),
        ("application/json;q=0.5, application/dicom", True), ("application/json, application/dicom", False),
        ("application/*", False), ("application/dicom;q=0.2, application/json;q=0.8", False),
        ("text/html, application/dicom;q=0.9", True), ("*/*, application/dicom", True),
    ],
)
def test_accept_negotiation(accept, dicom):
    assert wants_dicom(accept) is dicom


@pytest.mark.parametrize("accept", ["text/html", "image/png, text/*", "application/json;q=0, application/dicom;q=0"])
def test_unacceptable_accept_headers_are_406(accept):
    with pytest.raises(ServiceError) as raised:
        wants_dicom(accept)
    assert raised.value.status == 406


def test_boundaries_longer_than_rfc_2046_allows_are_accepted_as_orthanc_sends_them():
    from service.common.multipart import parse_multipart

    boundary = "87382f2c-f5ea-4eb7-9c69-0098b02399d3-87382f2c-f5ea-4eb7-9c69-0098b02399d3"  # 73 characters
    body = f"--{boundary}\r\nContent-Type: application/dicom\r\nContent-Length: 3\r\n\r\nabc\r\n--{boundary}--".encode()
    (part,) = parse_multipart(body, boundary)
    assert part.content == b"abc" and part.headers["content-length"] == "3"
