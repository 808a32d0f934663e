from tests.conftest import Api


def test_health(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_claim_flow(api: Api) -> None:
    device = api.claimed("dev-1", tags=["a"])
    assert device["status"] == "READY"
    assert device["tags"] == ["a"]
