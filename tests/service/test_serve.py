"""`towersearch serve`: the environment decides every setting a flag does not, and no token on the command line."""

import sys

import pytest

from towersearch.cli import main


@pytest.fixture
def started(monkeypatch):
    """Run `towersearch serve` without loading an index or listening; returns what it would have served."""
    import uvicorn

    from towersearch.search.engine import SearchEngine

    seen = {}

    def fake_load(folder, **kwargs):
        seen["load"] = kwargs
        return object()

    monkeypatch.setattr(SearchEngine, "load", fake_load)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.setdefault("settings", app.state.settings))

    def serve(*args):
        monkeypatch.setattr(sys, "argv", ["towersearch", "serve", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code or 0
        return code, seen

    return serve


def test_environment_applies(monkeypatch, started, tmp_path):
    monkeypatch.setenv("TOWERSEARCH_CACHE_SIZE", "7")
    monkeypatch.setenv("TOWERSEARCH_MAX_K", "3")
    monkeypatch.setenv("TOWERSEARCH_MAX_QUERY_LENGTH", "5")
    monkeypatch.setenv("TOWERSEARCH_QUANTIZE_QUERIES", "true")
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN", "tok")
    code, seen = started(tmp_path)
    assert code == 0
    assert seen["load"] == {"cache_size": 7, "quantize_queries": True}
    settings = seen["settings"]
    assert (settings.index_dir, settings.max_k, settings.max_query_length) == (tmp_path, 3, 5)
    assert settings.quantize_queries is True and settings.admin_token.get_secret_value() == "tok"


@pytest.mark.parametrize(
    ("env", "flag", "expected"),
    [(None, None, False), ("1", None, True), ("0", None, False), ("1", "--no-quantize-queries", False),
     (None, "--quantize-queries", True), ("0", "--quantize-queries", True)],
)  # fmt: skip
def test_quantize_flag_overrides_the_environment_only_when_given(monkeypatch, started, tmp_path, env, flag, expected):
    if env is not None:
        monkeypatch.setenv("TOWERSEARCH_QUANTIZE_QUERIES", env)
    code, seen = started(tmp_path, *([flag] if flag else []))
    assert code == 0
    assert seen["load"]["quantize_queries"] is expected and seen["settings"].quantize_queries is expected


def test_no_admin_token_flag(started, tmp_path, capsys):
    code, seen = started(tmp_path, "--admin-token", "x")
    assert code == 2 and "load" not in seen
    assert "No such option" in capsys.readouterr().err


def test_bad_setting_is_one_clear_line(monkeypatch, started, tmp_path, capsys):
    monkeypatch.setenv("TOWERSEARCH_MAX_K", "0")
    code, seen = started(tmp_path)
    assert code == 1 and "load" not in seen
    assert "bad service settings: max_k" in capsys.readouterr().err
