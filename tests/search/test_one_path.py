"""Every way of running a retriever runs the same code: in memory, from an index folder, from the CLI."""

import threading

import numpy as np
import pytest


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    from towersearch.data.demo import DemoConfig, generate_demo_store

    folder = tmp_path_factory.mktemp("demo")
    generate_demo_store(folder, DemoConfig(n_products=400, seed=3))
    return folder


def test_evaluate_catalog_and_index_give_identical_metrics(cli_json, small_demo, tiny_model_dir, tmp_path):
    catalog, log, judgements = (small_demo / f"{n}.csv" for n in ("catalog", "log", "judgements"))
    index = tmp_path / "index"
    cli_json("index", "--catalog", catalog, "--log", log, "--model", tiny_model_dir,
         "--ann", "flat", "--out", index, "--json")  # fmt: skip
    in_memory = cli_json("evaluate", "--catalog", catalog, "--model", tiny_model_dir,
                     "--judgements", judgements, "--json")  # fmt: skip
    from_index = cli_json("evaluate", "--index", index, "--judgements", judgements, "--json")
    assert in_memory["queries"] == from_index["queries"] > 50
    assert set(in_memory["metrics"]) == {"bm25", "dense", "hybrid"}
    for name, metrics in in_memory["metrics"].items():
        assert from_index["metrics"][name] == pytest.approx(metrics, abs=1e-9), name
    # not trivially equal: the retrievers differ from each other
    assert in_memory["metrics"]["dense"] != in_memory["metrics"]["bm25"]


def test_query_encoding_is_safe_from_32_threads(tiny_model_dir):
    from towersearch.model import load_model
    from towersearch.search.dense import QueryEncoder, encode_queries
    from towersearch.text import TextConfig

    model = load_model(tiny_model_dir)
    text = TextConfig()
    encoder = QueryEncoder(model, text, cache_size=0)  # no cache: every call runs the tower
    queries = [f"organic {w} number {i}" for i, w in enumerate(["milk", "tortilla chips", "pop", "oat bran"] * 16)]
    expected = encode_queries(model, queries, text)
    inside, most = [0], [0]
    original = model.encode_query

    def watched(*args, **kwargs):  # how many threads are in the tower at once
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        try:
            return original(*args, **kwargs)
        finally:
            inside[0] -= 1

    model.encode_query = watched
    barrier = threading.Barrier(32)
    errors: list[BaseException] = []
    got: dict[int, np.ndarray] = {}

    def work(worker: int) -> None:
        barrier.wait()
        try:
            for i in range(worker, len(queries), 32):
                for _ in range(5):
                    got[i] = encoder.vector(queries[i])[0]
        except BaseException as exc:  # noqa: BLE001 - the test collects every failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert most[0] == 1, "the tower ran in several threads at once"
    assert len(got) == len(queries)
    np.testing.assert_allclose(np.stack([got[i] for i in range(len(queries))]), expected, atol=1e-5)


def test_a_models_feedback_is_applied_alike_in_memory_and_from_an_index(cli_json, small_demo, tiny_model_dir, tmp_path):
    import json
    import shutil

    from towersearch.model import MODEL_META

    catalog, log, judgements = (small_demo / f"{n}.csv" for n in ("catalog", "log", "judgements"))
    results = {}
    for weight in (0.0, 2.0):  # a heavy weight, so the tiny model's lists surely change
        model = tmp_path / f"model-{weight}"
        shutil.copytree(tiny_model_dir, model)
        meta = model / MODEL_META
        data = json.loads(meta.read_text()) if meta.is_file() else {}
        meta.write_text(json.dumps({**data, "feedback": {"docs": 3, "weight": weight}}))
        index = tmp_path / f"index-{weight}"
        cli_json(
            "index", "--catalog", catalog, "--log", log, "--model", model, "--ann", "flat", "--out", index, "--json"
        )
        in_memory = cli_json("evaluate", "--catalog", catalog, "--model", model, "--judgements", judgements, "--json")
        from_index = cli_json("evaluate", "--index", index, "--judgements", judgements, "--json")
        for name in ("dense", "hybrid"):
            assert from_index["metrics"][name] == pytest.approx(in_memory["metrics"][name], abs=1e-9), (weight, name)
        results[weight] = in_memory["metrics"]
    assert results[2.0]["dense"] != results[0.0]["dense"], "the feedback changes what dense search finds"
    assert results[2.0]["bm25"] == results[0.0]["bm25"]
