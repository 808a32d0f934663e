from tests.conftest import Api


def test_health(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_claim_flow(api: Api) -> None:
    device = api.claimed("dev-1", tags=["a"])
    assert device["status"] == "READY"
    assert device["tags"] == ["a"]


def test_the_openapi_pages_work_offline(api: Api) -> None:
    for page, assets in (
        ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
        ("/redoc", ("redoc.standalone.js",)),
    ):
        html = api.client.get(page)
        assert (
            html.status_code == 200 and "https://" not in html.text and "http://" not in html.text
        )
        for asset in assets:
            assert f"/static-offline-docs/{asset}" in html.text
            served = api.client.get(f"/static-offline-docs/{asset}")
            assert served.status_code == 200 and len(served.content) > 10_000
