"""Service settings: every TOWERSEARCH_* variable applies, and the bounds and the admin token act in the app."""

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from towersearch.service.app import create_app
from towersearch.service.settings import Settings


def test_settings_read_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TOWERSEARCH_INDEX_DIR", str(tmp_path))
    monkeypatch.setenv("TOWERSEARCH_CACHE_SIZE", "7")
    monkeypatch.setenv("TOWERSEARCH_MAX_K", "3")
    monkeypatch.setenv("TOWERSEARCH_MAX_QUERY_LENGTH", "5")
    monkeypatch.setenv("TOWERSEARCH_QUANTIZE_QUERIES", "1")
    settings = Settings()
    assert settings.index_dir == tmp_path
    assert (settings.cache_size, settings.max_k, settings.max_query_length) == (7, 3, 5)
    assert settings.quantize_queries is True
    assert settings.admin_token is None and not settings.reload_enabled


def test_defaults(tmp_path):
    settings = Settings(index_dir=tmp_path)
    assert (settings.cache_size, settings.max_k, settings.max_query_length) == (10_000, 100, 256)
    assert settings.quantize_queries is False and not settings.reload_enabled


def test_bounds_from_the_environment_decide_in_the_app(monkeypatch, tiny_index):
    monkeypatch.setenv("TOWERSEARCH_MAX_K", "3")
    monkeypatch.setenv("TOWERSEARCH_MAX_QUERY_LENGTH", "5")
    with TestClient(create_app(Settings(index_dir=tiny_index))) as client:
        too_many = client.get("/search", params={"q": "milk", "k": 5})
        assert too_many.status_code == 422
        assert too_many.json() == {"detail": "k must be at most 3 (TOWERSEARCH_MAX_K); got 5"}
        assert len(client.get("/search", params={"q": "milk", "k": 3}).json()["results"]) <= 3
        too_long = client.get("/search", params={"q": "milk chocolate"})
        assert too_long.status_code == 422 and "at most 5 characters" in too_long.json()["detail"]
        default_k = client.get("/search", params={"q": "milk", "mode": "lexical"})  # k left out: min(10, max_k)
        assert default_k.status_code == 200 and len(default_k.json()["results"]) == 2  # the two milks
        assert len(client.get("/search", params={"q": "chips", "mode": "dense"}).json()["results"]) == 3
        assert client.get("/products/p1/similar", params={"k": 4}).status_code == 422
        assert len(client.get("/products/p1/similar").json()["results"]) == 3


def test_bounds_above_the_old_hard_coded_limits(tiny_index):
    settings = Settings(index_dir=tiny_index, max_k=500, max_query_length=1000)
    with TestClient(create_app(settings)) as client:
        assert client.get("/search", params={"q": "milk", "k": 150}).status_code == 200
        assert client.get("/search", params={"q": "milk " * 60}).status_code == 200  # 300 characters
        assert client.get("/products/p1/similar", params={"k": 150}).status_code == 200
        assert client.get("/search", params={"q": "milk", "k": 501}).status_code == 422


def _reload(client, token=None):
    headers = {} if token is None else {"X-Admin-Token": token}
    return client.post("/admin/reload", headers=headers)


def test_admin_token_from_the_environment(monkeypatch, tiny_index):
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN", "from-env")
    settings = Settings(index_dir=tiny_index)
    assert settings.admin_token.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings) and "from-env" not in str(settings)
    with TestClient(create_app(settings)) as client:
        assert _reload(client, "from-env").status_code == 200
        wrong = _reload(client, "from-envx")
        assert wrong.status_code == 403 and wrong.json() == {"detail": "wrong or missing X-Admin-Token header"}
        assert _reload(client).status_code == 403
        assert _reload(client, "").status_code == 403


def test_admin_token_from_a_file(monkeypatch, tiny_index, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-file\n", encoding="utf-8")
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN_FILE", str(secret))
    settings = Settings(index_dir=tiny_index)
    assert settings.admin_token.get_secret_value() == "from-file"
    with TestClient(create_app(settings)) as client:
        assert _reload(client, "from-file").status_code == 200
        assert _reload(client, "from-file ").status_code == 403
        assert _reload(client, "wrong").status_code == 403
        missing = _reload(client)
        assert missing.status_code == 403 and "missing X-Admin-Token" in missing.json()["detail"]


def test_admin_token_file_problems_are_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN_FILE", str(tmp_path / "nope"))
    with pytest.raises(ValidationError, match="cannot read the admin token file"):
        Settings(index_dir=tmp_path)
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN_FILE", str(tmp_path / "empty"))
    with pytest.raises(ValidationError, match="admin token file .* is empty"):
        Settings(index_dir=tmp_path)
    (tmp_path / "token").write_text("t")
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN", "t")
    with pytest.raises(ValidationError, match="not both"):
        Settings(index_dir=tmp_path)


def test_empty_admin_token_disables_reload(monkeypatch, tiny_index):
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN", "")
    with TestClient(create_app(Settings(index_dir=tiny_index))) as client:
        response = _reload(client, "")
        assert response.status_code == 403 and "disabled" in response.json()["detail"]
