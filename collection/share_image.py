"""The picture a shared link shows (Open Graph / Twitter card): the initiative's title and its progress,
drawn by the server with Pillow as a PNG. Only what the public page shows: never personal data."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 630  # the size Open Graph and Twitter's large card recommend
MARGIN = 64
BLUE = (0, 51, 153)  # the EU flag's blue
YELLOW = (255, 204, 0)
INK = (27, 27, 27)
MUTED = (80, 90, 95)
TRACK = (221, 227, 239)
WHITE = (255, 255, 255)

# DejaVu covers the Latin, Greek and Cyrillic scripts of the 24 official languages (Debian:
# fonts-dejavu-core). Without it, Pillow's own font (Latin only) stands in.
FONT_FILES = {
    "regular": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",),
    "bold": ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",),
}

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.cache
def _font(weight: str, size: int) -> Font:
    for candidate in FONT_FILES[weight]:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size)


@dataclass(frozen=True)
class ShareCard:
    """The texts of the picture, already translated and with numbers formatted for the language."""

    label: str  # "European Citizens' Initiative"
    registration_number: str
    title: str
    total: str  # the number of statements, formatted
    total_line: str  # "N of 1,000,000 statements of support"
    states_line: str  # "N of 7 Member States at or over their minimum"
    share_of_goal: float  # 0..1


def _lines(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int, most: int) -> list[str]:
    """`text` broken at spaces into lines no wider than `width`; at most `most`, the last cut short with
    an ellipsis."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > most:
        words = lines[most - 1].split()
        while len(words) > 1 and draw.textlength(" ".join(words) + " …", font=font) > width:
            words.pop()
        last = " ".join(words)
        while last and draw.textlength(last + " …", font=font) > width:  # one very long word
            last = last[:-1]
        lines = [*lines[: most - 1], last + " …"]
    return lines


def share_image_png(card: ShareCard) -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), WHITE)
    draw = ImageDraw.Draw(image)
    inner = WIDTH - 2 * MARGIN

    draw.rectangle((0, 0, WIDTH, 120), fill=BLUE)
    draw.text((MARGIN, 60), card.label, font=_font("bold", 34), fill=WHITE, anchor="lm")
    number_font = _font("regular", 30)
    draw.text((WIDTH - MARGIN, 60), card.registration_number, font=number_font, fill=YELLOW, anchor="rm")

    title_font = _font("bold", 48)
    y = 150
    for line in _lines(draw, card.title, title_font, inner, 2):
        draw.text((MARGIN, y), line, font=title_font, fill=INK)
        y += 60

    draw.text((MARGIN, 372), card.total, font=_font("bold", 72), fill=BLUE, anchor="ls")
    draw.text((MARGIN, 422), card.total_line, font=_font("regular", 32), fill=INK, anchor="ls")

    bar_top, bar_bottom = 452, 492
    draw.rounded_rectangle((MARGIN, bar_top, WIDTH - MARGIN, bar_bottom), radius=20, fill=TRACK)
    filled = round(inner * max(0.0, min(1.0, card.share_of_goal)))
    if filled:
        # At least the rounded ends' width, so a small share still shows as a bar.
        right = MARGIN + max(filled, 40)
        draw.rounded_rectangle((MARGIN, bar_top, right, bar_bottom), radius=20, fill=BLUE)

    draw.text((MARGIN, 556), card.states_line, font=_font("regular", 32), fill=MUTED, anchor="ls")
    draw.rectangle((0, HEIGHT - 12, WIDTH, HEIGHT), fill=YELLOW)

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
