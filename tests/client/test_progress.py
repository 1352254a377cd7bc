"""The progress bar's plain form (when it is given a stream, or tqdm is missing): one line per
change when the stream is not a terminal, redrawn in place when it is."""

from __future__ import annotations

import io

from defectlab.client.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with ProgressBar("Exporting", stream=out) as bar:
        bar.update(0, None)
        bar.update(5, 10)
        bar.update(5, 10)  # unchanged: not written again
        bar.update(10, 10)
    assert out.getvalue().splitlines() == [
        "Exporting: 0",
        "Exporting: 5 / 10 (50 %)",
        "Exporting: 10 / 10 (100 %)",
    ]


def test_redrawn_in_place_on_a_terminal_with_sizes_in_bytes() -> None:
    out = Terminal()
    with ProgressBar("Downloading", unit="B", stream=out) as bar:
        bar.update(512, 3 * 1024 * 1024)
        bar.update(3 * 1024 * 1024, 3 * 1024 * 1024)
    assert out.getvalue() == (
        "\rDownloading: 512 B / 3.0 MB (0 %)\033[K\rDownloading: 3.0 MB / 3.0 MB (100 %)\033[K\n"
    )
