"""Claiming as nRF Cloud's clients do it: claimToken, dry runs, a CSV of claims, `message`."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api


def _tokens(api: Api, *device_ids: str, **fields: Any) -> list[str]:
    imported = api.import_devices(*({"deviceId": d, **fields} for d in device_ids))
    return [d["ownerToken"] for d in imported["devices"]]


def _qr(api: Api, device_id: str) -> str:
    qr: str = api.import_devices({"deviceId": device_id})["devices"][0]["qr"]
    return qr


def test_claim_token_is_an_owner_token_or_a_label(api: Api) -> None:
    (token,) = _tokens(api, "n1")
    res = api.call("POST", "/v1/claimed-devices", json={"claimToken": token, "tags": ["a,b", "c"]})
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["id"] == body["deviceId"] == "n1"
    assert body["tags"] == ["a", "b", "c"]  # nRF's clients send tags comma-separated.
    res = api.call("POST", "/v1/claimed-devices", json={"claimToken": _qr(api, "n2")})
    assert res.status_code == 201 and res.json()["id"] == "n2"


def test_a_refusal_carries_message_beside_detail(api: Api) -> None:
    res = api.call("POST", "/v1/claimed-devices", json={"claimToken": "LW:garbage"})
    assert res.status_code == 422
    body = res.json()
    assert body["message"] == body["detail"] and body["errors"][0]["field"] == "claimToken"
    res = api.call("POST", "/v1/claimed-devices", json={"claimToken": "0" * 32})
    assert res.status_code == 403 and res.json()["message"] == "The owner token is not valid."
    both = {"claimToken": "0" * 32, "ownerToken": "0" * 32}
    assert api.call("POST", "/v1/claimed-devices", json=both).status_code == 422


def test_dry_run_checks_without_claiming(api: Api) -> None:
    (token,) = _tokens(api, "dry")
    res = api.call("POST", "/v1/claimed-devices?dryrun=true", json={"claimToken": token})
    assert res.status_code == 202 and res.json() == {"deviceId": "dry"}
    assert api.call("GET", "/v1/claimed-devices/dry").status_code == 404  # Not claimed.
    wrong = api.call("POST", "/v1/claimed-devices?dryrun=true", json={"claimToken": "1" * 32})
    assert wrong.status_code == 403 and wrong.json()["code"] == "invalid_owner_token"
    assert api.call("POST", "/v1/claimed-devices", json={"ownerToken": token}).status_code == 201
    again = api.call("POST", "/v1/claimed-devices?dryrun=true", json={"claimToken": token})
    assert again.status_code == 409 and again.json()["code"] == "already_claimed"
    viewer = api.call(
        "POST", "/v1/claimed-devices?dryrun=true", "viewer", json={"ownerToken": token}
    )
    assert viewer.status_code == 403 and viewer.json()["code"] == "permission_denied"


def _post_csv(api: Api, text: str, **headers: str) -> Any:
    # As Nordic's client sends it: no Content-Type at all.
    return api.call("POST", "/v1/claimed-devices", content=text.encode(), headers=headers)


def test_a_csv_body_claims_each_row_on_its_own(api: Api) -> None:
    first, second, third = _tokens(api, "b1", "b2", "b3")
    api.call("POST", "/v1/claimed-devices", "rival", json={"ownerToken": third})
    text = f'"{first}","t1,t2"\n"{"0" * 32}"\n\n"{second}"\n"{third}"\n"a","b","c"\n'
    res = _post_csv(api, text)
    assert res.status_code == 200, res.text
    body = res.json()
    assert sorted(body["claimedIds"]) == ["b1", "b2"]
    assert [(f["row"], f["code"]) for f in body["failed"]] == [
        (2, "invalid_owner_token"),
        (5, "already_claimed"),  # Row 3 is blank.
        (6, "validation_failed"),
    ]
    assert all(first not in str(f) and third not in str(f) for f in body["failed"])
    assert api.call("GET", "/v1/claimed-devices/b1").json()["tags"] == ["t1", "t2"]
    # One quoted token alone is a JSON string: still a CSV of one claim.
    (fourth,) = _tokens(api, "b4")
    assert _post_csv(api, f'"{fourth}"\n').json() == {"claimedIds": ["b4"], "failed": []}
    declared = _post_csv(api, f"{fourth}\n", **{"Content-Type": "text/csv"})
    assert declared.json()["failed"][0]["code"] == "already_claimed"


def test_a_csv_body_has_limits(api: Api) -> None:
    assert _post_csv(api, "\n\n").status_code == 422
    many = "".join(f'"{i:032X}"\n' for i in range(1001))
    res = _post_csv(api, many)
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "body"
    assert _post_csv(api, "x\n", **{"Content-Type": "text/csv"}).status_code == 200
    dry = api.call("POST", "/v1/claimed-devices?dryrun=true", content=b'"x"\n')
    assert dry.status_code == 422 and dry.json()["errors"][0]["field"] == "dryrun"
    array = api.call("POST", "/v1/claimed-devices", content=b"[]")
    assert array.status_code == 422 and array.json()["errors"][0]["field"] == "body"
    assert _post_csv(api, "x\n", **{"Authorization": "Bearer zt_nobody"}).status_code == 401
