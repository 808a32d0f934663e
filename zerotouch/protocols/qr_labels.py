"""Labels for a device's box: its QR payload as a code, with the deviceId and serial under it
in human-readable text; and QR payloads read back from a photo or scan. Bytes in, bytes out.

Codes are made and read by zxing-cpp (error correction level M); PNG and the photos read go
through Pillow; PDF sheets (A4, 3 x 7 labels of 70 x 42.3 mm, the common sticker sheet) through
fpdf2, the text set in Helvetica so that it can be selected and searched.
"""

from __future__ import annotations

import enum
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import fpdf.image_parsing
import zxingcpp
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

# A phone photo is some 12-50 million pixels; anything far beyond is refused unread.
MAX_PIXELS = 80_000_000
PNG_SCALE = 4
_DARK = re.compile(rb"\x00+")
_BITMAP_FONT = ImageFont.load_default_imagefont()
_LINE_PX = 13
_SHEET = (3, 7)  # Columns, rows.
# fpdf2 deflates each picture it embeds; a code of a few hundred bytes gains nothing from
# more than the fastest level (measured: a sheet of 21 labels is made 1.3 times faster).
fpdf.image_parsing.SETTINGS.compression_level = 1
_CELL_MM = (70.0, 42.3)
_CODE_MM = 30.0


class Format(enum.StrEnum):
    SVG = "svg"
    PNG = "png"
    PDF = "pdf"
    TEXT = "text"


MEDIA_TYPES = {
    Format.SVG: "image/svg+xml",
    Format.PNG: "image/png",
    Format.PDF: "application/pdf",
    Format.TEXT: "text/plain; charset=utf-8",
}


class ImageError(ValueError):
    """An upload that is not a PNG or JPEG picture we can read."""


@dataclass(frozen=True, slots=True)
class Label:
    device_id: str
    qr: str
    serial: str | None = None

    def lines(self) -> list[str]:
        return [self.device_id] + ([f"S/N {self.serial}"] if self.serial else [])


_QR = zxingcpp.BarcodeFormat.QRCode


def code(payload: str) -> zxingcpp.Barcode:
    """The QR code of a payload, as zxing-cpp makes it."""
    return zxingcpp.create_barcode(payload, _QR, ec_level="M")


def text(label: Label) -> bytes:
    return (label.qr + "\n").encode()


def svg(label: Label) -> bytes:
    """The code as one path of its dark runs, the text lines under it, in module units."""
    picture = code_image(label.qr)
    side, width = picture.height, picture.width
    pixels = picture.tobytes()
    runs = []
    for y in range(side):
        for run in _DARK.finditer(pixels, y * width, (y + 1) * width):
            start = run.start() - y * width
            runs.append(f"M{start} {y}h{run.end() - run.start()}v1H{start}Z")
    font = max(side / 16, 2.0)
    lines = label.lines()
    height = side + font * (1.3 * len(lines) + 0.5)
    texts = "".join(
        f'<text x="{side / 2:g}" y="{side + font * 1.3 * (i + 1) - font * 0.2:g}">'
        f"{escape(line)}</text>"
        for i, line in enumerate(lines)
    )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'viewBox="0 0 {side} {height:g}" width="{side * 4}" height="{height * 4:g}">'
        f'<rect width="{side}" height="{height:g}" fill="#FFFFFF"/>'
        f'<path fill="#000000" d="{"".join(runs)}"/>'
        f'<g font-family="Helvetica, Arial, sans-serif" font-size="{font:g}" '
        f'text-anchor="middle" fill="#000000">{texts}</g></svg>'
    ).encode()


def png(label: Label, *, scale: int = PNG_SCALE) -> bytes:
    """A black-and-white picture, ``scale`` pixels a module (4: about 20 mm at 203 dpi, the
    resolution of label printers), the text in Pillow's own bitmap font."""
    image = code_image(label.qr).convert("1")
    side = image.width * scale
    lines = label.lines()
    sheet = Image.new("1", (side, side + _LINE_PX * len(lines) + 4), 1)
    sheet.paste(image.resize((side, side), Image.Resampling.NEAREST), (0, 0))
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(lines):
        draw.text((side / 2, side + i * _LINE_PX), line, fill=0, font=_BITMAP_FONT, anchor="ma")
    out = io.BytesIO()
    sheet.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def code_image(payload: str, *, scale: int = 1) -> Image.Image:
    """The code as a grayscale picture, ``scale`` pixels a module, quiet zone included."""
    drawn = code(payload).to_image(scale=scale)
    height, width = drawn.shape
    pixels = bytes(memoryview(drawn))  # type: ignore[arg-type]
    return Image.frombuffer("L", (width, height), pixels, "raw", "L", 0, 1)


def pdf(labels: Iterable[Label]) -> bytes:
    """A4 sheets of labels, 3 x 7 a page: the code, and the deviceId and serial as text."""
    doc = FPDF(unit="mm", format="A4")
    doc.set_auto_page_break(False)
    doc.set_margins(0, 0)
    doc.set_font("Helvetica", size=7)
    doc.set_creator("zerotouch")
    columns, rows = _SHEET
    width, height = _CELL_MM
    top = (297 - rows * height) / 2
    per_page = columns * rows
    for index, label in enumerate(labels):
        if index % per_page == 0:
            doc.add_page()
        column, row = index % columns, index % per_page // columns
        x, y = column * width, top + row * height
        doc.image(code_image(label.qr), x=x + (width - _CODE_MM) / 2, y=y + 2, w=_CODE_MM)
        for i, line in enumerate(label.lines()):
            # Text at a point (centred by its measured width): cell() lays out far more.
            baseline = y + 2 + _CODE_MM + 3 + i * 3.2
            doc.text(x + (width - doc.get_string_width(line)) / 2, baseline, line)
    return bytes(doc.output())


def render(label: Label, fmt: Format) -> bytes:
    if fmt is Format.SVG:
        return svg(label)
    if fmt is Format.PNG:
        return png(label)
    if fmt is Format.PDF:
        return pdf([label])
    return text(label)


def read(image: bytes) -> list[str]:
    """The QR payloads in a PNG or JPEG picture, each once, in the order zxing-cpp finds them."""
    # Pillow refuses a picture of over twice its own pixel limit as it opens it (and only warns
    # between the two); ours, lower, is checked before a pixel is decoded.
    try:
        picture = Image.open(io.BytesIO(image))
        if picture.format not in ("PNG", "JPEG"):
            raise ImageError(f"must be a PNG or JPEG picture, not {picture.format}")
        if picture.width * picture.height > MAX_PIXELS:
            raise ImageError(f"must be at most {MAX_PIXELS} pixels")
        picture.load()
    except Image.DecompressionBombError:
        raise ImageError(f"must be at most {MAX_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ImageError("must be a PNG or JPEG picture") from None
    gray = picture.convert("L")
    found = zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormats(_QR))
    return list(dict.fromkeys(b.text for b in found if b.valid))
