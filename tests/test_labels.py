"""Labels made and read back with zxing-cpp: PNG, SVG and PDF sheets; the live label route;
`zerotouch labels`; and claiming from a photo of a printed label."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import httpx
import pypdfium2
import pytest
from PIL import Image, ImageDraw, ImageFilter

from tests.conftest import Api
from tests.helpers import zerotouch
from zerotouch import demo
from zerotouch.protocols import qr_labels, tr005

LORA = {
    "devEui": "70B3D57ED005B001",
    "joinEui": "70B3D57ED0000000",
    "profileId": "00010001",
    "serial": "SN-0042",
}


def _label(device_id: str = "sensor-7", serial: str | None = "SN-0042") -> qr_labels.Label:
    payload = tr005.encode_fields(
        "70B3D57ED0000000", "70B3D57ED005B001", "00010001", owner_token="AB" * 16
    )
    return qr_labels.Label(device_id, payload, serial)


def _png_of(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def _svg_picture(svg: bytes, scale: int = 6) -> Image.Image:
    """The SVG's path drawn by the test (runs of dark modules), to be read by zxing-cpp."""
    text = svg.decode()
    width, height = (float(v) for v in re.search(r'viewBox="0 0 (\S+) (\S+)"', text).groups())  # type: ignore[union-attr]
    picture = Image.new("L", (int(width * scale), int(height * scale)), 255)
    draw = ImageDraw.Draw(picture)
    path = re.search(r'<path fill="#000000" d="([^"]*)"', text).group(1)  # type: ignore[union-attr]
    for x, y, run in re.findall(r"M(\d+) (\d+)h(\d+)v1H\d+Z", path):
        x0, y0 = int(x) * scale, int(y) * scale
        draw.rectangle((x0, y0, x0 + int(run) * scale - 1, y0 + scale - 1), fill=0)
    return picture


def test_png_svg_and_pdf_read_back_as_the_same_payload() -> None:
    label = _label()
    assert qr_labels.read(qr_labels.png(label)) == [label.qr]
    svg = qr_labels.svg(label)
    assert b"sensor-7" in svg and b"S/N SN-0042" in svg
    assert qr_labels.read(_png_of(_svg_picture(svg))) == [label.qr]
    labels = [_label(f"sensor-{i}", f"SN-{i}") for i in range(25)]
    document = pypdfium2.PdfDocument(qr_labels.pdf(labels))
    assert len(document) == 2  # 21 labels a sheet.
    page = document[0]
    picture = page.render(scale=200 / 72).to_pil()
    assert set(qr_labels.read(_png_of(picture))) == {label.qr}
    text = page.get_textpage().get_text_range()
    # The deviceId and serial under each code are text, not pictures of text.
    assert "sensor-0" in text and "S/N SN-20" in text and "sensor-21" not in text
    for garbage in (b"not a picture", b"GIF89a not a picture we take", _gif()):
        with pytest.raises(qr_labels.ImageError):
            qr_labels.read(garbage)


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("L", (10, 10)).save(out, format="GIF")
    return out.getvalue()


def _photo(*labels: bytes, seed: int = 7) -> bytes:
    """Printed labels photographed: scaled, rotated, on a noisy, blurred background, as JPEG."""
    rnd = random.Random(seed)
    background = Image.effect_noise((1600, 1200), 40).convert("RGB")
    for i, label in enumerate(labels):
        printed = Image.open(io.BytesIO(label)).convert("RGB")
        printed = printed.resize((printed.width * 2 + 37, printed.height * 2 + 37))
        printed = printed.rotate(rnd.uniform(10, 35), expand=True, fillcolor=(255, 255, 255))
        background.paste(printed, (120 + i * 720, 150 + rnd.randint(0, 300)))
    background = background.filter(ImageFilter.GaussianBlur(0.8))
    out = io.BytesIO()
    background.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _import(api: Api, *records: dict[str, Any]) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = api.import_devices(*records)["devices"]
    return devices


def _post_photo(api: Api, picture: bytes, **data: str) -> httpx.Response:
    return api.call(
        "POST",
        "/v1/claimed-devices",
        files={"image": ("label.jpg", picture, "image/jpeg")},
        data=data,
    )


def test_a_photo_of_a_printed_label_claims_the_device(api: Api) -> None:
    first, second = _import(api, {"deviceId": "boxed-1", **LORA}, {"deviceId": "boxed-2"})
    res = api.call("GET", "/v1/manufacturing/devices/boxed-1/qr?format=png", "manufacturer")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    printed = res.content
    other = api.call("GET", "/v1/manufacturing/devices/boxed-2/qr?format=png", "manufacturer")
    both = _post_photo(api, _photo(printed, other.content))
    assert both.status_code == 422 and both.json()["code"] == "several_qr_codes", both.text
    claimed = _post_photo(api, _photo(printed), tags="from-photo")
    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["deviceId"] == "boxed-1" and claimed.json()["tags"] == ["from-photo"]
    again = _post_photo(api, _photo(printed))
    assert again.status_code == 409
    blank = _post_photo(api, _png_of(Image.effect_noise((400, 300), 30)))
    assert blank.status_code == 422 and "no QR code" in blank.json()["detail"]
    junk = _post_photo(api, b"\x89PNG but not really")
    assert junk.status_code == 422 and junk.json()["errors"][0]["field"] == "image"
    missing = api.call("POST", "/v1/claimed-devices", data={"tags": "x"}, files={"f": ("a", b"")})
    assert missing.status_code == 422
    viewer = api.call(
        "POST", "/v1/claimed-devices", "viewer", files={"image": ("l.png", printed, "image/png")}
    )
    assert viewer.status_code == 403
    assert second["deviceId"] == "boxed-2" and first["deviceId"] == "boxed-1"


def test_the_live_label_route(api: Api) -> None:
    (device,) = _import(api, {"deviceId": "live-1", **LORA})
    base = "/v1/manufacturing/devices/live-1/qr"
    text = api.call("GET", f"{base}?format=text", "manufacturer")
    assert text.text.strip() == device["qr"] and text.headers["content-type"].startswith("text/")
    svg = api.call("GET", base, "manufacturer")
    assert svg.headers["content-type"] == "image/svg+xml"
    assert qr_labels.read(_png_of(_svg_picture(svg.content))) == [device["qr"]]
    assert api.call("GET", f"{base}?format=pdf", "manufacturer").status_code == 422
    assert api.call("GET", f"{base}?format=png", "owner").status_code == 200  # Owner may import.
    assert api.call("GET", f"{base}?format=png", "viewer").status_code == 403
    assert api.call("GET", base, "rival").status_code == 404
    listed = api.call("GET", "/v1/manufacturing/labels", "manufacturer").json()
    assert listed["items"][0]["serial"] == "SN-0042" and listed["total"] == 1
    api.call("POST", "/v1/claimed-devices", json={"ownerToken": device["ownerToken"]})
    assert api.call("GET", base, "manufacturer").status_code == 404  # Claimed: no label.
    assert api.call("GET", "/v1/manufacturing/labels", "manufacturer").json()["total"] == 0


def test_labels_command_from_a_file_and_by_tag(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "line.jsonl"
    records = [{"deviceId": f"box-{i}", "serial": f"S{i}", "tags": ["lot-9"]} for i in range(30)]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert zerotouch(env, "import", str(source), "--account", "demo").returncode == 0
    labels = tmp_path / "line.jsonl.labels.csv"
    rows = list(csv.DictReader(io.StringIO(labels.read_text())))
    payloads = {row["deviceId"]: row["qr"] for row in rows}
    done = zerotouch(
        env, "labels", "--from", str(labels), "--out", str(tmp_path / "png"), "--format", "png"
    )
    assert done.returncode == 0 and done.stdout.strip().startswith("30 labels"), done.stderr
    picture = (tmp_path / "png" / "box-3.png").read_bytes()
    assert qr_labels.read(picture) == [payloads["box-3"]]
    keys = demo.create_keys(env)
    with demo.server(env) as (base, _):
        served = {**env, "ZEROTOUCH_API_KEY": keys.manufacturer}
        done = zerotouch(
            served,
            "labels",
            "--tag",
            "lot-9",
            "--server",
            base,
            "--out",
            str(tmp_path / "pdf"),
        )
        assert done.returncode == 0, done.stderr
        (sheets,) = (tmp_path / "pdf").iterdir()
        document = pypdfium2.PdfDocument(sheets.read_bytes())
        assert len(document) == 2
        text = document[1].get_textpage().get_text_range()
        assert "box-29" in text and "S/N S29" in text
        # The owner claims box-3 from a photo of its label, through the server.
        photo = tmp_path / "box-3.jpg"
        photo.write_bytes(_photo(picture))
        owner = {**env, "ZEROTOUCH_API_KEY": keys.owner}
        claimed = zerotouch(owner, "claim", "--qr-image", str(photo), "--server", base)
        assert claimed.returncode == 0 and claimed.stdout.strip() == "box-3", claimed.stderr
        refused = zerotouch(owner, "claim", "--token", "00" * 16, "--server", base)
        assert refused.returncode == 2 and "403" in refused.stderr
    token = next(r["ownerToken"] for r in rows if r["deviceId"] == "box-4")
    local = zerotouch(env, "claim", "--token", token, "--account", "demo")
    assert local.returncode == 0 and local.stdout.strip() == "box-4", local.stderr
