import json
import sys

import pytest

from towersearch.cli import main


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["towersearch", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_json_counts(monkeypatch, capsys, tiny_store):
    code, out, _ = run(
        monkeypatch,
        capsys,
        "validate",
        "--catalog",
        tiny_store["catalog"],
        "--log",
        tiny_store["log"],
        "--judgements",
        tiny_store["judgements"],
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    assert result["catalog"]["products"] == 6 and result["catalog"]["departments"] == 5
    assert result["log"]["events"] == {"add_to_cart": 1, "click": 2, "impression": 1, "purchase": 1}
    assert result["log"]["queries"] == 3
    assert result["judgements"]["queries"] == 3
    assert result["judgements"]["grades"] == {"0": 1, "1": 1, "2": 1, "3": 3}


def test_validate_reports_the_bad_line_and_exits_non_zero(monkeypatch, capsys, tiny_store, tmp_path):
    bad = tmp_path / "log.csv"
    bad.write_text("query,product_id,event\nmilk,p1,click\nmilk,p404,click\n")
    code, _, err = run(monkeypatch, capsys, "validate", "--catalog", tiny_store["catalog"], "--log", bad)
    assert code == 1
    assert "log.csv, line 3, field 'product_id': unknown product 'p404'" in " ".join(err.split())


def test_validate_skip_bad_rows_reports_counts(monkeypatch, capsys, tiny_store, tmp_path):
    bad = tmp_path / "log.csv"
    bad.write_text("query,product_id,event\nmilk,p1,click\nmilk,p404,click\nmilk,p1,zap\n")
    code, out, _ = run(
        monkeypatch, capsys, "validate", "--catalog", tiny_store["catalog"], "--log", bad, "--skip-bad-rows", "--json"
    )
    assert code == 0
    log = json.loads(out)["log"]
    assert log["loaded"] == 1 and log["skipped"] == {"unknown_product": 1, "unknown_event": 1}


def test_validate_needs_a_file(monkeypatch, capsys):
    code, _, err = run(monkeypatch, capsys, "validate")
    assert code == 1 and "nothing to validate" in err


def test_evaluate_bm25_json(monkeypatch, capsys, tiny_store, tmp_path):
    code, out, _ = run(
        monkeypatch,
        capsys,
        "evaluate",
        "--catalog",
        tiny_store["catalog"],
        "--judgements",
        tiny_store["judgements"],
        "--retriever",
        "bm25",
        "--out",
        tmp_path / "report",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    assert result["queries"] == 3
    assert set(result["metrics"]["bm25"]) == {
        "ndcg@10",
        "recall@10",
        "recall@100",
        "mrr@10",
        "judged@10",
        "condensed_ndcg@10",
    }
    assert result["metrics"]["bm25"]["mrr@10"] == pytest.approx(1.0)  # each query finds a relevant product first
    assert (tmp_path / "report" / "metrics.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retriever", "bm26"], "unknown retriever bm26; allowed: bm25, dense, hybrid, all"),
        (["--fields", "name,colour"], "unknown product field(s) ['colour']"),
    ],
)
def test_evaluate_bad_options(monkeypatch, capsys, tiny_store, args, message):
    code, _, err = run(
        monkeypatch,
        capsys,
        "evaluate",
        "--catalog",
        tiny_store["catalog"],
        "--judgements",
        tiny_store["judgements"],
        *args,
    )
    assert code == 1 and message in " ".join(err.split())


def test_usage_error_exits_2(monkeypatch, capsys):
    code, _, err = run(monkeypatch, capsys, "evaluate")
    assert code == 2 and "--judgements" in err


def test_train_json_with_tiny_model(monkeypatch, capsys, tiny_store, tiny_model_dir, tmp_path):
    out = tmp_path / "model"
    code, stdout, err = run(
        monkeypatch,
        capsys,
        "train",
        "--catalog",
        tiny_store["catalog"],
        "--log",
        tiny_store["log"],
        "--out",
        out,
        "--base-model",
        tiny_model_dir,
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["steps"] >= 1 and (out / "modules.json").is_file()
    assert summary["pairs"]["positives"] == 4  # milk/p1, milk/p2, tortillas/p3, pop/p5
    assert json.loads((out / "training_summary.json").read_text())["pairs"] == summary["pairs"]
    assert summary["feedback"] == {"chosen": 0.5, "validation_queries": 0}


def test_train_prints_its_choices(monkeypatch, capsys, tiny_store, tiny_model_dir, tmp_path):
    args = ["--catalog", tiny_store["catalog"], "--log", tiny_store["log"], "--base-model", tiny_model_dir]
    code, stdout, err = run(monkeypatch, capsys, "train", *args, "--out", tmp_path / "m", "--max-steps", "2")
    assert code == 0, err
    assert "dense search feedback: weight 0.5 (no held-out queries)" in stdout
    code, stdout, err = run(
        monkeypatch, capsys, "train", *args, "--out", tmp_path / "m2", "--max-steps", "2", "--feedback", "0"
    )
    assert code == 0, err
    assert "dense search feedback: weight 0 (fixed)" in stdout
    assert json.loads((tmp_path / "m2" / "towersearch.json").read_text())["feedback"] == {"docs": 3, "weight": 0.0}


def test_train_rejects_bad_options(monkeypatch, capsys, tiny_store, tmp_path):
    code, _, err = run(
        monkeypatch, capsys, "train", "--catalog", tiny_store["catalog"], "--out", tmp_path / "m", "--towers", "triple"
    )
    assert code == 1 and "unknown towers mode 'triple'" in err
    assert not (tmp_path / "m").exists()
    code, _, err = run(
        monkeypatch, capsys, "train", "--catalog", tiny_store["catalog"], "--out", tmp_path / "m", "--food-terms", "yes"
    )
    assert code == 1 and "food_terms must be one of auto, on, off, got 'yes'" in err
    assert not (tmp_path / "m").exists()


TRAIN_FLAGS_BEFORE = """--catalog --out --log --judgements --towers --cascade --no-cascade --max-steps --epochs
--batch-size --cached-loss --learning-rate --stage2-learning-rate --hardness-strength --hard-negatives
--logged-negatives --no-logged-negatives --guided-negatives --no-guided-negatives --fields --markers --no-markers
--cold-start --no-cold-start --synthetic-per-product --min-conversions --min-conversion-rate --query-generator
--ranker --no-ranker --ranker-share --ranker-candidates --base-model --seed --device --resume --skip-bad-rows
--json""".split()


def test_train_keeps_its_flags():
    import typer

    from towersearch.cli import app

    command = typer.main.get_command(app).commands["train"]
    flags = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    assert set(TRAIN_FLAGS_BEFORE) <= flags
    assert {"--stage1-share", "--warmup-ratio", "--scale", "--negative-margin", "--min-stage2-pairs"} <= flags
    assert not {"--progress", "--pairs-seed", "--ranker-seed", "--no-resume", "--no-cached-loss"} & flags


def test_train_options_are_the_config_fields(monkeypatch, capsys, tiny_store, tmp_path):
    """No flag gives the dataclasses' defaults; each flag sets its field, nested ones included."""
    from towersearch.text import TextConfig
    from towersearch.training.config import TrainConfig

    configs = []
    monkeypatch.setattr("towersearch.training.train.train", lambda *a, config, **k: configs.append(config) or {})
    base = ["train", "--catalog", tiny_store["catalog"], "--out", tmp_path / "m", "--json"]
    code, _, err = run(monkeypatch, capsys, *base)
    assert code == 0, err
    assert configs.pop() == TrainConfig(progress=False)

    flags = ["--min-conversions", "3", "--no-ranker", "--ranker-share", "0.3", "--fields", "name, brand"]
    flags += ["--no-markers", "--seed", "7", "--stage1-share", "0.5", "--cached-loss", "--no-guided-negatives"]
    code, _, err = run(monkeypatch, capsys, *base, *flags, "--max-steps", "9", "--epochs", "2", "--food-terms", "off")
    assert code == 0, err
    config = configs.pop()
    assert config.pairs.min_conversions == 3 and config.seed == config.pairs.seed == 7
    assert config.pairs.food_terms == "off"
    assert config.ranker.enabled is False and config.ranker.share == 0.3
    assert config.text == TextConfig(fields=("name", "brand"), markers=False)
    assert (config.stage1_share, config.cached_loss, config.guided_negatives) == (0.5, True, False)
    assert (config.max_steps, config.epochs, config.progress) == (9, 2.0, False)


def test_train_init_model_is_passed_on_and_base_model_still_works(monkeypatch, capsys, tiny_store, tmp_path):
    calls = []
    monkeypatch.setattr("towersearch.training.train.train", lambda *a, **k: calls.append(k) or {})
    base = ["train", "--catalog", tiny_store["catalog"], "--out", tmp_path / "m", "--json"]
    code, _, err = run(monkeypatch, capsys, *base, "--init-model", tmp_path / "towers", "--base-model", tmp_path / "b")
    assert code == 0, err
    assert calls[0]["init_model"] == tmp_path / "towers" and calls[0]["base_model"] == tmp_path / "b"
    code, _, err = run(monkeypatch, capsys, *base)
    assert code == 0, err
    assert calls[1]["init_model"] is None and calls[1]["base_model"] is None


def test_train_rejects_an_unknown_field_with_the_allowed_ones(monkeypatch, capsys, tiny_store, tmp_path):
    args = ["train", "--catalog", tiny_store["catalog"], "--out", tmp_path / "m", "--fields", "name,colour"]
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 1 and "unknown product field(s) ['colour']; allowed: name, brand" in " ".join(err.split())


def test_options_with_the_same_name_are_refused():
    from towersearch.cli_options import config_options, with_options
    from towersearch.training.pairs import PairConfig

    with pytest.raises(TypeError, match="more than one parameter named seed"):
        with_options(config_options(PairConfig))(lambda seed=0, **options: None)


def test_demo_data_then_validate(monkeypatch, capsys, tmp_path):
    code, out, _ = run(monkeypatch, capsys, "demo-data", tmp_path, "--products", "300", "--seed", "3", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["products"] == 300
    code, out, _ = run(
        monkeypatch,
        capsys,
        "validate",
        "--catalog",
        tmp_path / "catalog.csv",
        "--log",
        tmp_path / "log.csv",
        "--judgements",
        tmp_path / "judgements.csv",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    assert result["catalog"]["products"] == 300
    assert sum(result["log"]["events"].values()) == sum(summary["events"].values())


def test_index_search_similar_and_evaluate_index(monkeypatch, capsys, tiny_store, tiny_model_dir, tmp_path):
    folder = tmp_path / "index"
    code, out, err = run(
        monkeypatch,
        capsys,
        "index",
        "--catalog",
        tiny_store["catalog"],
        "--log",
        tiny_store["log"],
        "--model",
        tiny_model_dir,
        "--out",
        folder,
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["head_queries"] == 3
    code, out, _ = run(
        monkeypatch, capsys, "search", folder, "tortilla chips", "--k", "2", "--mode", "lexical", "--json"
    )
    results = json.loads(out)["results"]
    assert code == 0 and results[0]["product_id"] == "p4" and results[0]["rank"] == 1 and "bm25" in results[0]["scores"]
    code, out, _ = run(monkeypatch, capsys, "search", folder, "tortila chips", "--k", "2", "--mode", "lexical")
    assert code == 0 and "showing results for: tortila → tortillas" in out and "p4" in out
    code, out, _ = run(monkeypatch, capsys, "search", folder, "tortilla chips", "--k", "2", "--mode", "lexical")
    assert code == 0 and "showing results for" not in out
    code, out, _ = run(monkeypatch, capsys, "similar", folder, "p1", "--k", "2", "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 2
    code, _, err = run(monkeypatch, capsys, "similar", folder, "nope")
    assert code == 1 and "unknown product 'nope'" in err
    code, _, err = run(monkeypatch, capsys, "search", folder, "milk", "--mode", "psychic")
    assert code == 1 and "unknown mode 'psychic'" in err
    code, out, _ = run(
        monkeypatch, capsys, "evaluate", "--index", folder, "--judgements", tiny_store["judgements"], "--json"
    )
    assert code == 0 and set(json.loads(out)["metrics"]) == {"bm25", "dense", "hybrid"}


def test_index_is_self_contained_and_moves(monkeypatch, capsys, tiny_store, tiny_model_dir, tmp_path):
    """The index holds its towers: it searches with the model folder it was built from deleted, after a move."""
    import os
    import shutil

    towers = tmp_path / "towers"
    shutil.copytree(tiny_model_dir, towers)
    folder = tmp_path / "built" / "index"
    args = ("index", "--catalog", tiny_store["catalog"], "--log", tiny_store["log"], "--model", towers)
    code, out, err = run(monkeypatch, capsys, *args, "--out", folder, "--json")
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["model"]["path"] == "model" and manifest["model"]["source"] == str(towers)
    shutil.rmtree(towers)
    moved = tmp_path / "elsewhere" / "moved-index"
    moved.parent.mkdir()
    os.replace(folder, moved)
    shutil.rmtree(tmp_path / "built")
    code, out, err = run(monkeypatch, capsys, "search", moved, "milk", "--json")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert results and results[0]["product_id"] in {"p1", "p2"}
    code, out, err = run(monkeypatch, capsys, "suggest", moved, "mil", "--json")
    assert code == 0 and json.loads(out)["suggestions"], err


def test_index_with_a_blocklist(monkeypatch, capsys, tiny_store, tiny_model_dir, tmp_path):
    args = ("index", "--catalog", tiny_store["catalog"], "--log", tiny_store["log"], "--model", tiny_model_dir)
    code, _, err = run(monkeypatch, capsys, *args, "--out", tmp_path / "a", "--json")
    assert code == 0, err
    code, out, _ = run(monkeypatch, capsys, "suggest", tmp_path / "a", "mil", "--json")
    assert any("milk" in s["text"] for s in json.loads(out)["suggestions"])  # what the blocklist will remove
    blocked = tmp_path / "blocked.txt"
    blocked.write_text("# never suggest\nMilk\n")
    code, out, err = run(monkeypatch, capsys, *args, "--out", tmp_path / "b", "--blocklist", blocked, "--json")
    assert code == 0, err
    assert json.loads(out)["suggest"]["blocklist"] == ["milk"]
    code, out, _ = run(monkeypatch, capsys, "suggest", tmp_path / "b", "mil", "--json")
    assert code == 0 and not any("milk" in s["text"].split() for s in json.loads(out)["suggestions"])
    code, _, err = run(monkeypatch, capsys, *args, "--out", tmp_path / "c", "--blocklist", tmp_path / "nope.txt")
    assert code != 0 and "nope.txt" in err and not (tmp_path / "c").exists()


def test_export_onnx_then_index_with_it(cli_json, tiny_model_dir, tiny_store, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    exported = cli_json("export-onnx", model, "--json")
    assert set(exported["towers"]) == {"shared"} and exported["towers"]["shared"]["max_abs_diff"] <= 1e-4
    assert (model / "onnx" / exported["towers"]["shared"]["int8"]).is_file()
    built = cli_json("index", "--catalog", tiny_store["catalog"], "--model", model, "--out", tmp_path / "i", "--json")
    assert built["model"]["encoder"] == "onnx"
    torch_built = cli_json(
        "index", "--catalog", tiny_store["catalog"], "--model", model, "--out", tmp_path / "t", "--encoder", "torch",
        "--json",
    )  # fmt: skip
    assert torch_built["model"]["encoder"] == "torch"
