import pytest
from fastapi.testclient import TestClient

from towersearch.index.generations import current_generation
from towersearch.service.app import create_app
from towersearch.service.settings import Settings


@pytest.fixture
def client(tiny_index):
    app = create_app(Settings(index_dir=tiny_index, admin_token="s3cret"))
    with TestClient(app) as client:
        yield client


def test_search_shape_and_modes(client):
    body = client.get("/search", params={"q": "tortilla chips", "k": 3, "mode": "lexical"}).json()
    assert body["mode"] == "lexical" and body["results"][0]["product_id"] == "p4"
    first = body["results"][0]
    assert set(first) == {"product_id", "name", "brand", "category", "department", "size", "score", "scores", "rank"}
    hybrid = client.get("/search", params={"q": "milk"}).json()["results"]
    assert hybrid and all("fused" in r["scores"] for r in hybrid)
    filtered = client.get("/search", params={"q": "milk", "department": "bakery"}).json()["results"]
    assert [r["product_id"] for r in filtered] == ["p3"]
    assert body["spelling"] == {}


def test_search_says_which_words_it_read_otherwise(client):
    """A misspelt word is reported with the catalogue's word BM25 read it as (its term's most frequent word in the
    indexed fields: "tortillas", twice, over "tortilla"); dense mode reads the query as typed."""
    body = client.get("/search", params={"q": "tortila chips", "mode": "lexical", "k": 1}).json()
    assert body["spelling"] == {"tortila": "tortillas"} and body["results"][0]["product_id"] == "p4"
    assert client.get("/search", params={"q": "tortila chips"}).json()["spelling"] == {"tortila": "tortillas"}
    assert client.get("/search", params={"q": "tortila chips", "mode": "dense"}).json()["spelling"] == {}


@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({"q": ""}, 422, "at least 1 character"),
        ({"q": "   "}, 422, "empty query"),
        ({"q": "x" * 257}, 422, "at most 256 characters"),
        ({"q": "milk", "k": 0}, 422, "greater than or equal to 1"),
        ({"q": "milk", "k": 101}, 422, "k must be at most 100"),
        ({"q": "milk", "mode": "psychic"}, 400, "unknown mode 'psychic'"),
        ({}, 422, "Field required"),
    ],
)
def test_bad_requests_get_clear_4xx(client, params, status, text):
    response = client.get("/search", params=params)
    assert response.status_code == status
    assert text in response.text


def test_products_and_similar(client):
    assert client.get("/products/p1").json()["attributes"]["dietary"] == "organic, kosher"
    assert client.get("/products/nope").status_code == 404
    assert client.get("/products/nope/similar").json() == {"detail": "unknown product 'nope'"}
    similar = client.get("/products/p1/similar", params={"k": 2}).json()["results"]
    assert len(similar) == 2 and "p1" not in [r["product_id"] for r in similar]
    assert "k must be at most 100" in client.get("/products/p1/similar", params={"k": 101}).json()["detail"]


def test_health_page_and_docs(client):
    assert client.get("/healthz").json()["products"] == 6
    page = client.get("/")
    assert page.status_code == 200 and 'id="search-form"' in page.text
    assert client.get("/docs").status_code == 200
    assert "/search" in client.get("/openapi.json").json()["paths"]


def test_reload_needs_the_token_and_keeps_serving(client, tiny_index):
    assert client.post("/admin/reload").status_code == 403
    assert client.post("/admin/reload", headers={"X-Admin-Token": "wrong"}).status_code == 403
    before = client.get("/healthz").json()["built"]
    response = client.post("/admin/reload", headers={"X-Admin-Token": "s3cret"})
    assert response.status_code == 200 and response.json()["products"] == 6
    assert client.get("/healthz").json()["built"] == before  # same folder, same build
    (current_generation(tiny_index) / "manifest.json").write_text("{broken")
    failed = client.post("/admin/reload", headers={"X-Admin-Token": "s3cret"})
    assert failed.status_code == 409 and "still serving the previous index" in failed.json()["detail"]
    assert client.get("/search", params={"q": "milk"}).status_code == 200


def test_health_shows_names_not_paths(client, tiny_index, tiny_model_dir):
    health = client.get("/healthz").json()
    assert health["index"] == tiny_index.name and health["model"] == tiny_model_dir.name
    assert health["generation"] == current_generation(tiny_index).name
    assert len(health["model_fingerprint"]) == 16 and health["model_untrained"] is False
    for field, value in health.items():
        assert not str(value).startswith("/"), f"/healthz field {field!r} shows a path: {value}"
        assert str(tiny_index.parent) not in str(value) and str(tiny_model_dir.parent) not in str(value)


def test_reload_disabled_without_token(tiny_index):
    with TestClient(create_app(Settings(index_dir=tiny_index))) as client:
        response = client.post("/admin/reload", headers={"X-Admin-Token": "anything"})
        assert response.status_code == 403 and "disabled" in response.json()["detail"]


def test_suggest_endpoint(client):
    body = client.get("/suggest", params={"prefix": "mil", "k": 3}).json()
    assert body["prefix"] == "mil" and body["suggestions"]
    assert all(any(w.startswith("mil") for w in s["text"].split()) for s in body["suggestions"])
    assert set(body["suggestions"][0]) == {"text", "score", "match", "folded"}
    assert client.get("/suggest", params={"prefix": "qqqqqqq"}).json()["suggestions"] == []
    assert client.get("/suggest", params={"prefix": ""}).status_code == 422
    assert client.get("/suggest", params={"prefix": "  "}).status_code == 422
    assert client.get("/suggest", params={"prefix": "x" * 101}).status_code == 422
    assert client.get("/suggest", params={"prefix": "mil", "k": 0}).status_code == 422


def test_products_show_review_insights(insights_index):
    with TestClient(create_app(Settings(index_dir=insights_index))) as client:
        p1 = client.get("/products/p1").json()
        assert p1["name"] == "Organic 2% Milk"
        assert p1["reviews"] == {
            "count": 3,
            "intent_share": {"highly_useful": 0.6667, "passionate": 0.3333, "obnoxious": 0.3333, "balanced": 0.3333},
            "most_useful": {
                "review_id": "r2",
                "title": "Lasts a week",
                "text": "Kept fresh for seven days after opening, which beats the store brand.",
                "rating": 4.0,
                "p_highly_useful": 0.9,
            },
        }
        assert client.get("/products/p2").json()["reviews"] is None  # no reviews
        assert client.get("/products/p99").status_code == 404  # reviewed, but not in the catalogue
        result = client.get("/search", params={"q": "milk", "mode": "lexical"}).json()["results"][0]
        assert "reviews" not in result  # search results stay as they are
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert "most_useful" in schema["ReviewInsights"]["properties"]


def test_products_of_an_index_without_reviews(client):
    body = client.get("/products/p1").json()
    assert body["reviews"] is None and body["name"] == "Organic 2% Milk"
