"""Draw the delay distribution of each backoff strategy as a PNG histogram.

Run: ``python docs/plot_backoff.py [OUT_DIR] [--samples N]`` (default ``docs/img``). Each
image has one row per retry ``n`` (1 at the top); a row is a histogram of the delays
drawn before that retry, over 0 s (left) to the 10 s cap (right). The random source is
seeded, so the committed images are reproducible.

The PNG is written with ``zlib`` and ``struct`` and a tiny bitmap font, so the docs need
no plotting library.
"""

from __future__ import annotations

import argparse
import random
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from resilience.backoff import Constant, Exponential, Linear

if TYPE_CHECKING:
    from collections.abc import Callable

CAP = 10.0
RETRIES = 6
WIDTH, ROW_HEIGHT, LEFT, TOP, BOTTOM, RIGHT = 640, 56, 56, 12, 30, 24
PLOT_WIDTH = WIDTH - LEFT - RIGHT
BIN_WIDTH = 4
BINS = PLOT_WIDTH // BIN_WIDTH
HEIGHT = TOP + RETRIES * ROW_HEIGHT + BOTTOM
WHITE, GREY, INK = (255, 255, 255), (200, 200, 200), (40, 40, 40)
COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
]

# A 3x5 bitmap font: each glyph is five rows of three bits.
FONT = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    "n": ("000", "110", "101", "101", "101"),
    "s": ("011", "100", "010", "001", "110"),
    "=": ("000", "111", "000", "111", "000"),
    " ": ("000", "000", "000", "000", "000"),
}


def strategies(seed: int) -> dict[str, Callable[[int], float]]:
    """Return the strategies to draw, by file name, each with a seeded random source."""
    # Seeded sources make the committed images reproducible; jitter is not cryptography.
    return {
        "constant": Constant(2.0),
        "linear": Linear(1.0, 1.5, max_delay=CAP),
        "exponential-none": Exponential(0.5, max_delay=CAP),
        "exponential-full": Exponential(
            0.5,
            max_delay=CAP,
            jitter="full",
            rng=random.Random(seed),  # noqa: S311
        ),
        "exponential-equal": Exponential(
            0.5,
            max_delay=CAP,
            jitter="equal",
            rng=random.Random(seed),  # noqa: S311
        ),
        "exponential-decorrelated": Exponential(
            0.5,
            max_delay=CAP,
            jitter="decorrelated",
            rng=random.Random(seed),  # noqa: S311
        ),
    }


def histogram(strategy: Callable[[int], float], samples: int) -> list[list[int]]:
    """Count, for each retry n, how many of ``samples`` retry sequences drew each delay bin."""
    counts = [[0] * BINS for _ in range(RETRIES)]
    for _ in range(samples):
        for n in range(1, RETRIES + 1):  # whole sequences: decorrelated jitter needs them
            delay = strategy(n)
            counts[n - 1][min(BINS - 1, int(delay / CAP * BINS))] += 1
    return counts


class Canvas:
    """An RGB image in memory."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * width * height)

    def fill(self, x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int]) -> None:
        """Paint the rectangle [x0, x1) x [y0, y1)."""
        row = bytes(colour) * (x1 - x0)
        for y in range(max(0, y0), min(self.height, y1)):
            start = (y * self.width + x0) * 3
            self.pixels[start : start + len(row)] = row

    def text(self, x: int, y: int, words: str, scale: int = 2) -> None:
        """Write ``words`` with the bitmap font, top left at (x, y)."""
        for char in words:
            for dy, bits in enumerate(FONT[char]):
                for dx, bit in enumerate(bits):
                    if bit == "1":
                        px, py = x + dx * scale, y + dy * scale
                        self.fill(px, py, px + scale, py + scale, INK)
            x += 4 * scale

    def png(self) -> bytes:
        """Encode the image as a PNG (8-bit RGB, no filtering)."""
        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )

        def chunk(tag: bytes, data: bytes) -> bytes:
            body = tag + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def draw(counts: list[list[int]]) -> Canvas:
    """Draw one histogram row per retry, scaled to its own tallest bin."""
    canvas = Canvas(WIDTH, HEIGHT)
    for row, bins in enumerate(counts):
        base = TOP + (row + 1) * ROW_HEIGHT - 4
        canvas.text(8, base - 16, f"n={row + 1}")
        canvas.fill(LEFT, base, LEFT + PLOT_WIDTH, base + 1, GREY)
        tallest = max(bins) or 1
        for i, count in enumerate(bins):
            height = round(count / tallest * (ROW_HEIGHT - 10))
            if height:
                x = LEFT + i * BIN_WIDTH
                canvas.fill(x, base - height, x + BIN_WIDTH - 1, base, COLOURS[row])
    axis = TOP + RETRIES * ROW_HEIGHT + 6
    for seconds in (0, 5, 10):
        x = LEFT + round(seconds / CAP * PLOT_WIDTH)
        canvas.fill(x, axis - 6, x + 1, axis - 2, INK)
        label = f"{seconds}s"
        canvas.text(min(x - 4, WIDTH - 8 * len(label)), axis + 2, label)
    return canvas


def main(argv: list[str] | None = None) -> None:
    """Write one PNG per strategy into the output directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=Path(__file__).parent / "img", type=Path)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, strategy in strategies(args.seed).items():
        path = args.out / f"backoff-{name}.png"
        path.write_bytes(draw(histogram(strategy, args.samples)).png())
        print(path)


if __name__ == "__main__":
    main()
