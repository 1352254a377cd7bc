"""``ImageRef``: the one place that tells the forms of ``Task.image`` apart."""

from __future__ import annotations

import pytest

from defectlab.media.references import ImageRef


@pytest.mark.parametrize(
    ("image", "kind", "location", "connection", "place"),
    [
        ("2026/11/ab12.jpg", "stored", "2026/11/ab12.jpg", 0, "stored"),
        (
            "https://Cam.Local:8443/a.jpg",
            "url",
            "https://Cam.Local:8443/a.jpg",
            0,
            "cam.local:8443",
        ),
        ("http://10.0.0.5/b.png", "url", "http://10.0.0.5/b.png", 0, "10.0.0.5"),
        ("storage://12/line-1/0001.png", "storage", "line-1/0001.png", 12, "storage:12"),
    ],
)
def test_each_form_parses_and_writes_back_as_it_was(
    image: str, kind: str, location: str, connection: int, place: str
) -> None:
    ref = ImageRef.parse(image)
    assert ref is not None
    assert (ref.kind, ref.location, ref.connection_id, ref.place) == (
        kind,
        location,
        connection,
        place,
    )
    assert str(ref) == image
    assert ref.stored == (kind == "stored")


@pytest.mark.parametrize(
    "image",
    [
        "",
        "s3://bucket/a.jpg",
        "ftp://host/a.jpg",
        "storage://x/a.jpg",
        "storage://12/",
        "file:///etc",
    ],
)
def test_what_nothing_can_read_parses_to_none(image: str) -> None:
    assert ImageRef.parse(image) is None


def test_a_storage_reference_is_made_from_its_parts() -> None:
    assert str(ImageRef.in_storage(7, "a/b.jpg")) == "storage://7/a/b.jpg"
    assert ImageRef.parse("storage://7/a/b.jpg") == ImageRef.in_storage(7, "a/b.jpg")
