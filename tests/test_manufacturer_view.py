"""The manufacturer's own view: the devices its account imported, claimed or not, with the tags
given at import only, never who claimed them; and both lists as CSV."""

from __future__ import annotations

import csv
import io

from tests.conftest import Api


def _import(api: Api) -> dict[str, str]:
    imported = api.import_devices(
        {"deviceId": "f-1", "devEui": "0011223344556677", "tags": ["line-a"]},
        {"deviceId": "f-2", "tags": ["line-a", "batch-7"]},
        {"deviceId": "f-3", "tags": ["line-b"]},
    )
    return {d["deviceId"]: d["ownerToken"] for d in imported["devices"]}


def test_the_manufacturer_lists_what_it_imported(api: Api) -> None:
    tokens = _import(api)
    claim = {"ownerToken": tokens["f-2"], "tags": ["owners-own"]}
    assert api.call("POST", "/v1/claimed-devices", json=claim).status_code == 201
    listed = api.call("GET", "/v1/manufacturing/devices", "manufacturer").json()
    assert listed["total"] == 3 and listed["pageNextToken"] is None
    first, second, _ = listed["items"]
    assert set(first) == {"deviceId", "identifiers", "tags", "claimed", "importedAt"}
    assert first["identifiers"]["devEui"] == "0011223344556677"
    assert second == {**second, "deviceId": "f-2", "claimed": True, "tags": ["line-a", "batch-7"]}
    by_tag = api.call("GET", "/v1/manufacturing/devices?tag=line-a", "manufacturer").json()
    assert [d["deviceId"] for d in by_tag["items"]] == ["f-1", "f-2"]
    owners = api.call("GET", "/v1/manufacturing/devices?tag=owners-own", "manufacturer").json()
    assert owners["total"] == 0  # An owner's tags are not the factory's.
    unclaimed = api.call("GET", "/v1/manufacturing/devices?claimed=false", "manufacturer").json()
    assert [d["deviceId"] for d in unclaimed["items"]] == ["f-1", "f-3"]
    paged = api.call("GET", "/v1/manufacturing/devices?pageLimit=2", "manufacturer").json()
    rest = api.call(
        "GET", f"/v1/manufacturing/devices?pageLimit=2&pageNextToken={paged['pageNextToken']}",
        "manufacturer",
    ).json()  # fmt: skip
    assert [d["deviceId"] for d in paged["items"] + rest["items"]] == ["f-1", "f-2", "f-3"]


def test_another_account_sees_none_of_them_and_a_viewer_may_not(api: Api) -> None:
    _import(api)
    assert api.call("GET", "/v1/manufacturing/devices", "rival").json()["total"] == 0
    assert api.call("GET", "/v1/manufacturing/devices", "viewer").status_code == 403
    bad = api.call("GET", "/v1/manufacturing/devices?claimed=maybe", "manufacturer")
    assert bad.status_code == 422


def test_both_lists_export_as_csv(api: Api) -> None:
    tokens = _import(api)
    api.call("POST", "/v1/claimed-devices", json={"ownerToken": tokens["f-1"]})
    exported = api.call(
        "GET", "/v1/manufacturing/devices", "manufacturer", headers={"Accept": "text/csv"}
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["deviceId"] for r in rows] == ["f-1", "f-2", "f-3"]
    assert rows[0]["devEui"] == "0011223344556677" and rows[0]["claimed"] == "true"
    assert rows[1]["tags"] == "line-a;batch-7"
    owned = api.call("GET", "/v1/claimed-devices", headers={"Accept": "text/csv"})
    (device,) = csv.DictReader(io.StringIO(owned.text))
    assert device["deviceId"] == "f-1" and device["status"] == "READY"
    refused = api.call("GET", "/v1/manufacturing/devices", "viewer", headers={"Accept": "text/csv"})
    assert refused.status_code == 403  # A refusal is an error answer, not a broken CSV.


def test_the_csv_holds_every_page(api: Api) -> None:
    from zerotouch.domain.views import MAX_PAGE_LIMIT

    count = MAX_PAGE_LIMIT * 2 + 3
    api.import_devices(*({"deviceId": f"many-{i:04d}", "tags": ["bulk"]} for i in range(count)))
    exported = api.call(
        "GET", "/v1/manufacturing/devices?tag=bulk", "manufacturer", headers={"Accept": "text/csv"}
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["deviceId"] for r in rows] == [f"many-{i:04d}" for i in range(count)]
