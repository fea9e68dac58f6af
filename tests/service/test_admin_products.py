"""PUT /admin/products and DELETE /admin/products/{id}: catalogue updates, on disk and served before the answer."""

import shutil

import pytest
from fastapi.testclient import TestClient

from towersearch.index.generations import current_generation
from towersearch.service import app as app_module
from towersearch.service.app import create_app
from towersearch.service.settings import Settings

TOKEN = {"X-Admin-Token": "s3cret"}
NEW = {"product_id": "p7", "name": "Zesty Zucchini Noodles", "brand": "Garden Spiral", "category": "produce > veg"}


@pytest.fixture
def served(tiny_index, tmp_path):
    folder = tmp_path / "served"
    shutil.copytree(tiny_index, folder)
    return folder


@pytest.fixture
def client(served):
    with TestClient(create_app(Settings(index_dir=served, admin_token="s3cret"))) as client:
        yield client


def found(client, query, mode):
    response = client.get("/search", params={"q": query, "k": 10, "mode": mode})
    assert response.status_code == 200, response.text
    return [r["product_id"] for r in response.json()["results"]]


def test_put_products_adds_and_changes_and_is_served_at_once(client, served):
    before = client.get("/healthz").json()
    changed = {"product_id": "p2", "name": "Whole Milk Vitamin D", "brand": "Dairy Pure", "attributes": {"fat": "3%"}}
    response = client.put("/admin/products", json={"products": [NEW, changed]}, headers=TOKEN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["added"] == 1 and body["changed"] == 1 and body["encoded"] == 2 and body["products"] == 7
    assert body["generation"] == current_generation(served).name != before["generation"]
    assert client.get("/healthz").json()["generation"] == body["generation"]
    for mode in ("lexical", "dense", "hybrid"):
        assert "p7" in found(client, "zucchini noodles", mode), mode
    assert found(client, "zucchini noodles", "lexical")[0] == "p7"
    product = client.get("/products/p2").json()
    assert product["name"] == "Whole Milk Vitamin D" and product["attributes"] == {"fat": "3%"}
    assert client.get("/products/p7").status_code == 200
    similar = client.get("/products/p7/similar", params={"k": 3})
    assert similar.status_code == 200 and len(similar.json()["results"]) == 3
    again = client.put("/admin/products", json={"products": [NEW]}, headers=TOKEN)
    assert again.status_code == 200 and again.json()["changed_anything"] is False
    assert again.json()["generation"] == body["generation"]


def test_delete_product(client):
    response = client.delete("/admin/products/p6", headers=TOKEN)
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == 1 and response.json()["products"] == 5
    assert client.get("/products/p6").status_code == 404
    assert client.get("/products/p6/similar").status_code == 404
    for mode in ("lexical", "dense", "hybrid"):
        assert "p6" not in found(client, "macaroni cheese", mode), mode
    assert "p6" not in [r["product_id"] for r in client.get("/products/p1/similar").json()["results"]]
    unknown = client.delete("/admin/products/p6", headers=TOKEN)
    assert unknown.status_code == 404 and unknown.json()["detail"] == "unknown product 'p6' in the delete list"


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [("put", {"json": {"products": [NEW]}}), ("delete", {})],
)
@pytest.mark.parametrize("headers", [{}, {"X-Admin-Token": "wrong"}])
def test_updates_need_the_admin_token(client, served, call, kwargs, headers):
    generation = current_generation(served).name
    url = "/admin/products" if call == "put" else "/admin/products/p1"
    response = getattr(client, call)(url, headers=headers, **kwargs)
    assert response.status_code == 403 and "X-Admin-Token" in response.json()["detail"]
    assert current_generation(served).name == generation


def test_updates_are_off_without_a_token(served):
    with TestClient(create_app(Settings(index_dir=served))) as client:
        response = client.delete("/admin/products/p1", headers=TOKEN)
    assert response.status_code == 403 and "updating products is disabled" in response.json()["detail"]


@pytest.mark.parametrize(
    ("bad", "field", "text"),
    [
        ({"product_id": "p8", "name": "  "}, "name", "empty name"),
        ({"name": "Jam"}, "product_id", "empty product_id"),
        ({"product_id": "p8", "name": "Jam", "attributes": "not pairs"}, "attributes", "key=value"),
        ({"product_id": "p8", "name": "Jam", "attributes": {"note": "a;b"}}, "attributes", "cannot be stored"),
        (NEW, "product_id", "upserted twice"),
    ],
)
def test_a_bad_product_is_422_naming_item_and_field_and_nothing_changes(client, served, bad, field, text):
    generation = current_generation(served).name
    response = client.put("/admin/products", json={"products": [NEW, bad]}, headers=TOKEN)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["index"] == 1 and body["field"] == field
    assert body["detail"].startswith(f"products[1].{field}: ") and text in body["detail"]
    assert current_generation(served).name == generation
    assert client.get("/products/p7").status_code == 404


def test_a_failed_reload_after_the_update_is_409_and_the_old_index_serves(client, served, monkeypatch):
    def broken(settings):
        raise OSError("disk on fire")

    monkeypatch.setattr(app_module, "load_engine", broken)
    response = client.delete("/admin/products/p6", headers=TOKEN)
    assert response.status_code == 409
    assert "the update is on disk" in response.json()["detail"] and "disk on fire" in response.json()["detail"]
    assert client.get("/products/p6").status_code == 200, "still the previous index"
    monkeypatch.undo()
    assert client.post("/admin/reload", headers=TOKEN).status_code == 200
    assert client.get("/products/p6").status_code == 404


def test_a_failed_update_is_409_and_changes_nothing(client, served, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("the encoder broke")

    monkeypatch.setattr("towersearch.index.update.encode_products", boom)
    generation = current_generation(served).name
    response = client.put("/admin/products", json={"products": [NEW]}, headers=TOKEN)
    assert response.status_code == 409 and "the encoder broke" in response.json()["detail"]
    assert current_generation(served).name == generation
