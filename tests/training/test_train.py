import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from towersearch.data import Catalog, LogEvent, Product
from towersearch.errors import ConfigError
from towersearch.model import load_model, model_feedback, model_fusion, model_text_config
from towersearch.search.dense import Feedback
from towersearch.search.hybrid import Fusion
from towersearch.training.towers import interpolate, is_distinct, tower_parameters, untie
from towersearch.training.train import TrainConfig, _loss, train
from towersearch.training.validation import fusion_candidates

TYPES = ["milk", "bread", "tortillas", "tortilla chips", "cola", "coffee", "rice", "apples"]
BRANDS = ["Acme", "Sunny", "Valley", "Roots", "Crest"]


@pytest.fixture
def small_store():
    products = [
        Product(f"p{j * 5 + i}", f"{BRANDS[i % 5]} {t}", brand=BRANDS[i % 5], category=f"aisle {j} > {t}")
        for j, t in enumerate(TYPES)
        for i in range(5)
    ]
    events = []
    for j, t in enumerate(TYPES[:6]):
        for i in range(4):
            product = products[j * 5 + i]
            for query in (t, f"{product.brand} {t}".lower()):
                events += [LogEvent(query, product.product_id, "click", 3)]
                events += [LogEvent(query, product.product_id, "add_to_cart", 2 if i < 3 else 0 or 1)]
    return Catalog(products), events


def tiny_config(**overrides):
    defaults = dict(max_steps=4, batch_size=8, min_stage2_pairs=4, negative_margin=0.0, progress=False)
    return TrainConfig(**{**defaults, **overrides})


def test_cascade_gives_distinct_towers_that_route_and_round_trip(small_store, tiny_model_dir, tmp_path):
    catalog, events = small_store
    out = tmp_path / "model"
    summary = train(catalog, out, events=events, config=tiny_config(), base_model=tiny_model_dir)
    assert [s["name"] for s in summary["stages"]] == ["stage1", "stage2"]
    assert summary["steps"] == 4 and summary["towers"] == "distinct"
    assert summary["config"]["guided_negatives"] is False  # the default with a log
    assert summary["pairs"]["positives"] == 48 and summary["pairs"]["synthetic"] > 0
    # with a log the synthetic cap (a quarter of the positives) keeps each cold-start product's built-in query first
    assert summary["pairs"]["food_terms"] == 0 < summary["pairs"]["food_terms_made"]
    assert summary["stages"][1]["pairs"]["with_hard_negative"] > 0
    assert (out / "training_summary.json").is_file()
    assert not (tmp_path / ".model.work").exists()

    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(str(out), device="cpu")  # loads with plain sentence-transformers
    assert is_distinct(plain)
    query_params, product_params = tower_parameters(plain)
    differs = [not torch.equal(q, p) for q, p in zip(query_params, product_params, strict=True)]
    assert any(differs), "stage 2 must leave query and product towers with different weights"
    text = ["[QRY] milk"]
    assert not np.allclose(plain.encode_query(text), plain.encode_document(text))

    again = load_model(out)
    for encode in ("encode_query", "encode_document"):
        a = getattr(plain, encode)(["cola", "Acme bread"])
        b = getattr(again, encode)(["cola", "Acme bread"])
        np.testing.assert_array_equal(a, b)
    assert model_text_config(out).markers is True
    assert json.loads((out / "towersearch.json").read_text())["towers"] == "distinct"
    assert summary["fusion"]["validation_queries"] == 0  # too few log queries to hold any out for calibration
    assert summary["interpolation"] == {"chosen": 0.5, "validation_queries": 0}  # merged halfway without them
    assert model_fusion(out) == Fusion("blend", alpha=0.6)  # trained towers earn more of the uncalibrated blend
    assert summary["feedback"] == {"chosen": 0.5, "validation_queries": 0}  # on without held-out queries
    assert model_feedback(out) == Feedback(docs=3, weight=0.5)


@pytest.mark.parametrize("interpolation_by", ["dense", "hybrid"])
def test_validation_queries_are_held_out_and_calibrate_fusion(tiny_model_dir, tmp_path, interpolation_by, monkeypatch):
    from collections import Counter

    from towersearch.search.lexical import BM25Retriever

    searched = Counter()  # (query, depth) -> how often BM25 listed it
    search_rows = BM25Retriever.search_rows

    def counting(self, queries, k=10):
        searched.update((q, k) for q in queries)
        return search_rows(self, queries, k)

    monkeypatch.setattr(BM25Retriever, "search_rows", counting)
    products = [Product(f"p{i}", f"Brand{i % 7} item {i}", category=f"aisle {i % 9}") for i in range(120)]
    events = []
    for i in range(120):
        events += [LogEvent(f"item {i}", f"p{i}", "click", 2), LogEvent(f"item {i}", f"p{i}", "add_to_cart", 2)]
    config = tiny_config(
        cascade=False,
        validation_queries=30,
        validation_share=0.25,
        min_stage2_pairs=1,
        interpolation_by=interpolation_by,
    )
    summary = train(Catalog(products), tmp_path / "m", events=events, config=config, base_model=tiny_model_dir)
    assert summary["pairs"]["positives"] == 90 and summary["fusion"]["validation_queries"] == 30
    merged = summary["interpolation"]
    assert merged["validation_queries"] == 30 and set(merged["ndcg@10"]) == {"1.0", "0.75", "0.5"}
    if interpolation_by == "dense":  # the default: the towers alone choose the weight
        assert "hybrid_ndcg@10" not in merged
        best = max(merged["ndcg@10"].values())
        assert merged["ndcg@10"][str(merged["chosen"])] >= best - merged["tie"]
    else:
        hybrid = merged["hybrid_ndcg@10"]  # the weight is chosen by the towers fused with BM25, as they serve
        assert set(hybrid) == {"1.0", "0.75", "0.5"}
        best = max(hybrid.values())
        assert hybrid[str(merged["chosen"])] >= best - merged["tie"]
        assert merged["chosen"] == max(float(w) for w, v in hybrid.items() if v >= best - merged["tie"])
        if summary["feedback"]["chosen"] == 0.0:  # the calibration then scores the same towers on the same queries
            fused = summary["fusion"]["ndcg@10"]
            assert hybrid[str(merged["chosen"])] == max(fused[f.label] for f in fusion_candidates())
    assert model_fusion(tmp_path / "m").as_dict() == summary["fusion"]["chosen"]
    assert searched and max(searched.values()) == 1  # one BM25 list per held-out query, however many choices read it
    feedback = summary["feedback"]  # chosen on the same held-out queries: on only when it beats off beyond the tie
    assert feedback["validation_queries"] == 30 and set(feedback["ndcg@10"]) == {"0.0", "0.5"}
    scores = feedback["ndcg@10"]
    assert feedback["chosen"] == (0.5 if scores["0.5"] > scores["0.0"] + feedback["tie"] else 0.0)
    assert model_feedback(tmp_path / "m").weight == feedback["chosen"]


def test_untied_towers_start_equal_and_route(tiny_model_dir):
    shared = load_model(tiny_model_dir)
    distinct = untie(shared)
    texts = ["organic milk", "[PN] Acme bread"]
    np.testing.assert_allclose(distinct.encode_query(texts), shared.encode(texts), atol=1e-6)
    np.testing.assert_allclose(distinct.encode_document(texts), shared.encode(texts), atol=1e-6)
    q, p = tower_parameters(distinct)
    assert q[0].data_ptr() != p[0].data_ptr()


def test_interpolation_moves_each_tower_back_to_the_base(tiny_model_dir):
    import torch

    base = load_model(tiny_model_dir)
    texts = ["organic milk", "[PN] Acme bread"]

    def trained():
        model = untie(load_model(tiny_model_dir))
        q, p = tower_parameters(model)
        with torch.no_grad():
            for i, param in enumerate(q + p):
                param.add_(0.01 * (i % 3 + 1))
        return model

    moved = trained()
    q_trained, p_trained = moved.encode_query(texts), moved.encode_document(texts)
    assert not np.allclose(q_trained, base.encode(texts), atol=1e-3)
    same = interpolate(trained(), base, 1.0)
    np.testing.assert_allclose(same.encode_query(texts), q_trained, atol=1e-6)
    np.testing.assert_allclose(same.encode_document(texts), p_trained, atol=1e-6)
    back = interpolate(trained(), base, 0.0)
    np.testing.assert_allclose(back.encode_query(texts), base.encode(texts), atol=1e-5)
    np.testing.assert_allclose(back.encode_document(texts), base.encode(texts), atol=1e-5)
    half = interpolate(trained(), base, 0.5)
    q_half, q_moved = tower_parameters(half)[0], tower_parameters(trained())[0]
    for a, b, c in zip(q_half, q_moved, base.parameters(), strict=True):
        torch.testing.assert_close(a, (b + c) / 2)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        interpolate(trained(), base, 1.5)


def test_training_with_interpolation_zero_gives_back_the_start(small_store, tiny_model_dir, tmp_path):
    catalog, events = small_store
    config = tiny_config(interpolation=0.0, onnx=False)
    summary = train(catalog, tmp_path / "m", events=events, config=config, base_model=tiny_model_dir)
    assert summary["interpolation"] == {"chosen": 0.0} and summary["towers"] == "distinct"
    saved, base = load_model(tmp_path / "m"), load_model(tiny_model_dir)
    texts = ["cola", "[PN] Acme bread"]
    np.testing.assert_allclose(saved.encode_query(texts), base.encode(texts), atol=1e-5)
    np.testing.assert_allclose(saved.encode_document(texts), base.encode(texts), atol=1e-5)
    with pytest.raises(ConfigError, match="interpolation"):
        tiny_config(interpolation=-0.1)
    with pytest.raises(ConfigError, match="interpolation_by"):
        tiny_config(interpolation_by="ranked")


def test_a_frozen_product_tower_keeps_the_base_models_product_vectors(small_store, tiny_model_dir, tmp_path):
    catalog, events = small_store
    config = tiny_config(freeze_product_tower=True, interpolation=1.0, onnx=False)
    summary = train(catalog, tmp_path / "m", events=events, config=config, base_model=tiny_model_dir)
    assert [s["towers"] for s in summary["stages"]] == ["distinct", "distinct"]
    saved, base = load_model(tmp_path / "m"), load_model(tiny_model_dir)
    texts = ["cola", "[PN] Acme bread"]
    np.testing.assert_allclose(saved.encode_document(texts), base.encode(texts), atol=1e-6)
    assert not np.allclose(saved.encode_query(texts), base.encode(texts), atol=1e-4)  # the query tower trained
    with pytest.raises(ConfigError, match="distinct"):
        tiny_config(freeze_product_tower=True, towers="shared")


def test_shared_single_stage_without_log(small_store, tiny_model_dir, tmp_path):
    catalog, _ = small_store
    config = tiny_config(towers="shared", cascade=False, hard_negatives=0, max_steps=2)
    summary = train(
        catalog,
        tmp_path / "m",
        config=config,
        base_model=tiny_model_dir,
        generator=lambda product: [f"aisle {product.product_id}"],
    )
    assert [s["name"] for s in summary["stages"]] == ["single"]
    assert summary["pairs"]["positives"] == 0 and summary["pairs"]["cold_start_products"] == 40
    # the generator's queries are counted apart; without a log none is capped away
    assert summary["pairs"]["generated"] == summary["pairs"]["generated_made"] == 40
    assert summary["stages"][0]["pairs"]["generated"] == 40
    # a grocery catalogue (all eight types are foods in WordNet): its food terms are added, none capped away
    pairs = summary["pairs"]
    terms = 5 * (2 + 1 + 2 + 2 + 2 + 1 + 1 + 2)  # five products of each type; coffee, bread and rice have one term
    assert pairs["food_share"] == 1.0 and pairs["food_terms"] == pairs["food_terms_made"] == terms
    assert summary["towers"] == "shared" and not is_distinct(load_model(tmp_path / "m"))
    assert summary["config"]["guided_negatives"] is True  # the default without a log


def test_no_pairs_is_a_clear_error(small_store, tiny_model_dir, tmp_path):
    from towersearch.training.pairs import PairConfig

    catalog, _ = small_store
    config = tiny_config(pairs=PairConfig(cold_start=False))
    with pytest.raises(ConfigError, match="no training pairs"):
        train(catalog, tmp_path / "m", config=config, base_model=tiny_model_dir)
    assert not (tmp_path / "m").exists()


def test_failed_run_keeps_the_previous_model(small_store, tiny_model_dir, tmp_path, monkeypatch):
    catalog, events = small_store
    out = tmp_path / "m"
    train(catalog, out, events=events, config=tiny_config(cascade=False, max_steps=1), base_model=tiny_model_dir)
    before = (out / "training_summary.json").read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr("towersearch.training.train.run_stage", boom)
    with pytest.raises(RuntimeError, match="power cut"):
        train(catalog, out, events=events, config=tiny_config(), base_model=tiny_model_dir)
    assert (out / "training_summary.json").read_text() == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"towers": "triple"}, "unknown towers mode 'triple'; allowed: shared, distinct"),
        ({"max_steps": 0}, "max_steps must be >= 1"),
        ({"batch_size": 1}, "batch_size must be >= 2"),
        ({"hardness_strength": -1.0}, "hardness_strength must be >= 0"),
        ({"stage1_share": 1.0}, "stage1_share must be between 0 and 1"),
        ({"precision": "fp16"}, "precision must be one of auto, fp32, bf16, got 'fp16'"),
    ],
)
def test_bad_train_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_auto_precision_is_bf16_only_where_the_device_computes_it_natively(monkeypatch):
    from towersearch.encoders.bf16 import native_bf16

    assert native_bf16("meta") is False  # neither a CPU nor a GPU

    from towersearch.encoders import bf16
    from towersearch.training import train as train_module

    for native in (True, False):
        monkeypatch.setattr(bf16, "native_bf16", lambda device, native=native: native)
        assert train_module.training_precision("auto", "cpu") == ("bf16" if native else "fp32")
        assert train_module.training_precision("fp32", "cpu") == "fp32"  # what is asked for, native or not
        assert train_module.training_precision("bf16", "cpu") == "bf16"


def test_bf16_steps_train_other_weights_than_fp32_and_say_so(small_store, tiny_model_dir, tmp_path):
    catalog, events = small_store
    weights, summaries = {}, {}
    for precision in ("fp32", "bf16"):
        config = tiny_config(precision=precision, cascade=False, hard_negatives=0, interpolation=1.0)
        out = tmp_path / precision
        summaries[precision] = train(catalog, out, events=events, config=config, base_model=tiny_model_dir)
        weights[precision] = tower_parameters(load_model(out))[0]
    assert [s["precision"] for s in summaries["fp32"]["stages"]] == ["fp32"]
    assert [s["precision"] for s in summaries["bf16"]["stages"]] == ["bf16"]
    assert summaries["bf16"]["config"]["precision"] == "bf16"
    # the same seed, data and steps: only the arithmetic differs, so autocast really ran
    assert any(not torch.equal(a, b) for a, b in zip(weights["fp32"], weights["bf16"], strict=True))
    assert all(w.dtype == torch.float32 for w in weights["bf16"])  # mixed precision keeps fp32 weights
    assert (tmp_path / "bf16" / "onnx").is_dir()


def test_a_bf16_stage_leaves_the_model_encoding_in_fp32(small_store, tiny_model_dir, tmp_path):
    """Mixed precision wraps the model's forward in autocast while it trains; mining, calibration and the ONNX export's
    check against PyTorch encode with the same object afterwards and must get fp32 vectors."""
    from towersearch.training.pairs import PairConfig, mine_pairs
    from towersearch.training.train import StageData, run_stage

    catalog, events = small_store
    pairs, _ = mine_pairs(events, PairConfig())
    model = load_model(tiny_model_dir)
    info = run_stage(
        model, StageData("stage1", pairs), catalog, tiny_config(precision="bf16"), steps=2, learning_rate=1e-4,
        work_dir=tmp_path / "work",
    )  # fmt: skip
    assert info["precision"] == "bf16"
    assert "_original_forward" not in model.__dict__
    texts = ["[QRY] milk", "[PN] Acme bread [PBN] Acme"]
    after = model.encode(texts, convert_to_tensor=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = model.encode(texts, convert_to_tensor=True)
    assert not torch.equal(after, under_autocast)  # bf16 arithmetic shows in the vectors
    model.save(str(tmp_path / "saved"))  # and what trained is what a fresh fp32 load encodes
    assert torch.equal(after, load_model(tmp_path / "saved").encode(texts, convert_to_tensor=True))


def reference_loss(q, d, scale, alpha):
    """In-batch softmax loss with self-adversarial weighting, written out: α·sg(cos) added to negative logits."""
    sim = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(d, dim=-1).T
    off_diagonal = 1 - torch.eye(len(q))
    logits = scale * sim + alpha * sim.detach() * off_diagonal
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(q)))


def test_alpha_zero_is_the_vanilla_loss_and_alpha_matches_reference(tiny_model_dir):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = load_model(tiny_model_dir)
    torch.manual_seed(0)
    q, d = torch.randn(6, 16), torch.randn(6, 16)
    labels = torch.arange(6)
    vanilla = MultipleNegativesRankingLoss(model, scale=20.0).compute_loss_from_embeddings([q, d], labels)
    zero = _loss(model, TrainConfig(hardness_strength=0.0)).compute_loss_from_embeddings([q, d], labels)
    assert torch.allclose(zero, vanilla)
    assert torch.allclose(vanilla, reference_loss(q, d, 20.0, 0.0), atol=1e-5)
    hard = _loss(model, TrainConfig(hardness_strength=5.0)).compute_loss_from_embeddings([q, d], labels)
    assert torch.allclose(hard, reference_loss(q, d, 20.0, 5.0), atol=1e-5)
    assert hard > vanilla  # harder in-batch negatives weigh more


def test_symmetric_loss_averages_both_directions(tiny_model_dir):
    model = load_model(tiny_model_dir)
    torch.manual_seed(1)
    q, d = torch.randn(5, 16), torch.randn(5, 16)
    labels = torch.arange(5)
    loss = _loss(model, TrainConfig(hardness_strength=0.0, loss_directions="symmetric"))
    both = loss.compute_loss_from_embeddings([q, d], labels)
    expected = (reference_loss(q, d, 20.0, 0.0) + reference_loss(d, q, 20.0, 0.0)) / 2
    assert torch.allclose(both, expected, atol=1e-5)
    one_way = _loss(model, TrainConfig(hardness_strength=0.0)).compute_loss_from_embeddings([q, d], labels)
    assert not torch.allclose(both, one_way)
    with pytest.raises(ConfigError, match="loss_directions must be one of"):
        TrainConfig(loss_directions="sideways")


def test_a_few_hard_negatives_do_not_shrink_every_batch(small_store, tiny_model_dir, tmp_path, caplog):
    from towersearch.text import product_text, query_text
    from towersearch.training.pairs import PairConfig, mine_pairs
    from towersearch.training.train import StageData, run_stage

    catalog, events = small_store
    pairs, _ = mine_pairs(events, PairConfig())
    config = tiny_config()
    first = pairs[0]
    negative = next(p for p in catalog.products if p.product_id != first.product_id)
    rows = [(query_text(first.query, config.text), product_text(catalog[first.product_id], config.text))]
    data = StageData("stage2", pairs, [(*rows[0], product_text(negative, config.text))])
    model = load_model(tiny_model_dir)
    info = run_stage(model, data, catalog, config, steps=1, learning_rate=1e-5, work_dir=tmp_path / "work")
    assert info["rows"] == {"pairs": len(pairs)} and info["batch_size"] == config.batch_size
    assert "training on plain pairs only" in caplog.text


def test_resume_skips_a_finished_stage(small_store, tiny_model_dir, tmp_path, monkeypatch):
    import towersearch.training.train as train_module

    catalog, events = small_store
    real_run_stage = train_module.run_stage
    calls = []

    def crash_in_stage2(model, data, *args, **kwargs):
        calls.append(data.name)
        if data.name == "stage2":
            raise KeyboardInterrupt
        return real_run_stage(model, data, *args, **kwargs)

    monkeypatch.setattr(train_module, "run_stage", crash_in_stage2)
    with pytest.raises(KeyboardInterrupt):
        train(catalog, tmp_path / "m", events=events, config=tiny_config(), base_model=tiny_model_dir)
    assert calls == ["stage1", "stage2"] and not (tmp_path / "m").exists()
    assert (tmp_path / ".m.work" / "stage1-model" / "modules.json").is_file()

    calls.clear()
    monkeypatch.setattr(
        train_module,
        "run_stage",
        lambda model, data, *a, **k: calls.append(data.name) or real_run_stage(model, data, *a, **k),
    )
    summary = train(catalog, tmp_path / "m", events=events, config=tiny_config(resume=True), base_model=tiny_model_dir)
    assert calls == ["stage2"], "a resumed run must not train stage 1 again"
    assert [s["name"] for s in summary["stages"]] == ["stage1", "stage2"] and summary["steps"] == 4
    assert (tmp_path / "m" / "modules.json").is_file() and not (tmp_path / ".m.work").exists()


def test_guided_negatives_train_both_stages_and_need_a_guide(small_store, tiny_model_dir, tmp_path):
    from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss

    with pytest.raises(ConfigError, match="guide"):
        _loss(load_model(tiny_model_dir), TrainConfig(guided_negatives=True))
    catalog, events = small_store
    config = tiny_config(guided_negatives=True)
    summary = train(catalog, tmp_path / "m", events=events, config=config, base_model=tiny_model_dir)
    assert [s["name"] for s in summary["stages"]] == ["stage1", "stage2"] and summary["towers"] == "distinct"
    assert summary["config"]["guided_negatives"] is True
    guide = load_model(tiny_model_dir)
    assert isinstance(_loss(load_model(tiny_model_dir), config, guide), GISTEmbedLoss)


def test_mining_reuses_catalogue_embeddings(small_store, tiny_model_dir, tmp_path):
    """Given the catalogue already encoded, mining finds the same negatives without encoding the catalogue again."""
    from towersearch.search.dense import encode_products
    from towersearch.text import TextConfig
    from towersearch.training.pairs import PairConfig, mine_pairs
    from towersearch.training.train import mine_negatives

    catalog, events = small_store
    positives, _ = mine_pairs(events, PairConfig())
    config = tiny_config(hard_negatives=2)
    model = load_model(tiny_model_dir)
    plain = mine_negatives(model, positives, positives, catalog, config)
    assert plain

    embeddings = encode_products(model, catalog.products, TextConfig())
    calls = []
    encode_document = model.encode_document
    model.encode_document = lambda texts, **kw: calls.append(len(texts)) or encode_document(texts, **kw)
    reused = mine_negatives(
        model, positives, positives, catalog, config, corpus_embeddings=embeddings, cache_dir=tmp_path / "cache"
    )
    assert reused == plain
    # the catalogue is not encoded again
    assert all(n < len(catalog.products) for n in calls)


def test_logged_negatives_come_first_and_mining_fills_in(small_store, tiny_model_dir):
    from towersearch.text import TextConfig, product_text, query_text
    from towersearch.training.pairs import PairConfig, mine_pairs
    from towersearch.training.train import mine_negatives

    catalog, events = small_store
    positives, _ = mine_pairs(events, PairConfig())
    model = load_model(tiny_model_dir)
    skipped = {"milk": ["p12", "p13"], "bread": ["no-such-product"]}

    def mined(**options):
        config = tiny_config(hard_negatives=1, **{"negative_source": "model", **options})
        return mine_negatives(model, positives, positives, catalog, config, skipped=skipped)

    rows = mined(logged_negatives=True)
    text = TextConfig()
    names = {product_text(p, text): p.product_id for p in catalog}
    milk = [names[r[2]] for r in rows if r[0] == query_text("milk", text)]
    assert milk and set(milk) == {"p12", "p13"}  # both logged negatives used, in turn
    milk_pairs = [p for p in positives if p.query == "milk"]
    assert len(milk) == len(milk_pairs)
    assert any(r[0] == query_text("bread", text) for r in rows)  # unknown product dropped: bread is mined
    off = mined(logged_negatives=False)
    assert [r for r in off if r[0] == query_text("milk", text)] != [r for r in rows if r[0] == query_text("milk", text)]
    both = mine_negatives(model, positives, positives, catalog, tiny_config(hard_negatives=1, negative_source="both"))
    assert set(off) < set(both)  # the mined rows, and BM25's besides


def test_shown_not_negative_keeps_passed_over_products_out_of_mined_and_bm25_negatives(small_store, tiny_model_dir):
    from towersearch.text import TextConfig, product_text, query_text
    from towersearch.training.pairs import PairConfig, mine_pairs
    from towersearch.training.train import mine_negatives

    catalog, events = small_store
    positives, _ = mine_pairs(events, PairConfig())
    model = load_model(tiny_model_dir)
    text = TextConfig()
    names = {product_text(p, text): p.product_id for p in catalog}

    def negatives_of(query, **options):
        config = tiny_config(hard_negatives=1, negative_source="both", **options)
        rows = mine_negatives(model, positives, positives, catalog, config, skipped=shown)
        return {names[r[2]] for r in rows if r[0] == query_text(query, text)}

    shown: dict[str, list[str]] = {}
    before = negatives_of("milk")
    assert before
    shown = {"milk": sorted(before)}  # what was taken as milk's negatives, now shown for it and passed over
    assert negatives_of("milk") == before  # off: still taken
    after = negatives_of("milk", shown_not_negative=True)
    assert after and not after & before  # other products fill in
    assert negatives_of("bread", shown_not_negative=True) == negatives_of("bread")  # other queries untouched


def test_bm25_negatives_are_lexical_confusers_off_the_positives_shelf():
    from towersearch.text import TextConfig, product_text, query_text
    from towersearch.training.negatives import lexical_negatives
    from towersearch.training.pairs import Pair

    products = [
        Product("t1", "Acme Flour Tortillas", category="bakery > tortillas"),
        Product("t2", "Sunny Corn Tortillas", category="bakery > tortillas"),
        Product("c1", "Valley Tortilla Chips", category="snacks > chips"),
        Product("c2", "Roots Tortilla Chips Lime", category="snacks > chips"),
        Product("m1", "Crest Whole Milk", category="dairy > milk"),
    ]
    catalog = Catalog(products)
    targets = [Pair("tortillas", "t1", "converted")]
    config = TrainConfig(negative_source="bm25", hard_negatives=2)
    rows = lexical_negatives(targets, {"tortillas": {"t1"}}, catalog, config)
    text = TextConfig()
    assert [r[:2] for r in rows] == [(query_text("tortillas", text), product_text(products[0], text))] * 2
    negatives = {r[2] for r in rows}
    assert negatives == {product_text(products[2], text), product_text(products[3], text)}  # chips, not t2's shelf
    one = lexical_negatives(targets, {"tortillas": {"t1"}}, catalog, TrainConfig(negative_source="bm25"))
    assert len(one) == 1
    misspelt = [Pair("tortilllas", "t1", "converted")]  # BM25 reads it as "tortillas" unless spelling is off
    spelt = lexical_negatives(misspelt, {}, catalog, config)
    assert {r[2] for r in spelt} == negatives
    assert lexical_negatives(misspelt, {}, catalog, replace(config, spelling=False)) == []
    with pytest.raises(ConfigError, match="negative_source must be model, bm25 or both"):
        TrainConfig(negative_source="random")


def test_init_model_warm_starts_from_trained_distinct_towers(small_store, tiny_model_dir, tmp_path, monkeypatch):
    """train(init_model=…) starts from the saved towers' weights, keeps them distinct, and the base model stays the
    untrained reference."""
    from towersearch.training import train as training

    catalog, events = small_store
    first = tmp_path / "first"
    first_config = tiny_config(cascade=False, max_steps=2, onnx=False)  # distinct towers, one quick stage
    train(catalog, first, events=events, config=first_config, base_model=tiny_model_dir)
    started_from = []
    run_stage = training.run_stage

    def spy(model, *args, **kwargs):
        started_from.append((is_distinct(model), [p.detach().clone() for p in model.parameters()]))
        return run_stage(model, *args, **kwargs)

    monkeypatch.setattr(training, "run_stage", spy)
    config = tiny_config(onnx=False)
    summary = train(
        catalog, tmp_path / "warm", events=events, config=config, base_model=tiny_model_dir, init_model=first
    )
    init = load_model(first)
    distinct, weights = started_from[0]
    assert distinct and all(torch.equal(a, b) for a, b in zip(weights, init.parameters(), strict=True))
    assert [s["towers"] for s in summary["stages"]] == ["distinct", "distinct"] and summary["towers"] == "distinct"
    assert summary["init_model"] == str(first) and summary["base_model"] == str(tiny_model_dir)
    warm = load_model(tmp_path / "warm")
    assert any(not torch.equal(a, b) for a, b in zip(warm.parameters(), init.parameters(), strict=True))


@pytest.mark.parametrize(
    ("meta", "overrides", "match"),
    [
        ({"towers": "distinct", "text": {"markers": False}}, {}, "was trained on text .* --markers/--no-markers"),
        ({"towers": "distinct"}, {"towers": "shared"}, "distinct towers, which cannot be merged"),
    ],
)
def test_init_model_must_fit_the_training_options(small_store, tmp_path, meta, overrides, match):
    catalog, events = small_store
    folder = tmp_path / "towers"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    (folder / "towersearch.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=match):
        train(catalog, tmp_path / "m", events=events, config=tiny_config(**overrides), init_model=folder)
    from towersearch.errors import ArtifactError

    with pytest.raises(ArtifactError, match="not a sentence-transformers model folder"):
        train(catalog, tmp_path / "m", events=events, config=tiny_config(), init_model=tmp_path / "nothing")
    assert not (tmp_path / "m").exists()


def test_lexical_residual_adds_bm25_over_the_querys_best_to_every_logit(small_store, tiny_model_dir):
    from towersearch.search.lexical import BM25Retriever
    from towersearch.training.residual import LexicalBias

    catalog, _ = small_store
    bm25 = BM25Retriever(catalog.products, spelling=False)
    queries = ["tortilla chips", "coffee", "zzz"]
    bias = LexicalBias(bm25, queries)
    # rows: each query with its positive and negative catalogue rows (p15 = Acme tortilla chips, p10 = tortillas)
    labels = torch.tensor([[0, 15, 10], [1, 25, 26], [2, 0, 1]])
    matrix = bias.matrix(labels).numpy()
    assert matrix.shape == (3, 6)  # every positive, then every negative
    columns = [15, 25, 0, 10, 26, 1]
    for i, query in enumerate(queries[:2]):
        best = bm25.search_rows([query], k=1)[0][1][0]
        np.testing.assert_allclose(matrix[i], bm25.score_rows(query, np.array(columns)) / best, rtol=1e-6)
    assert matrix[0, 0] > matrix[0, 3] > 0  # "tortilla chips": both words in the positive, one in the negative
    assert matrix[0, 1] == 0 and not matrix[2].any()  # no shared term, and a query BM25 does not know
    assert matrix.max() <= 1 + 1e-6

    model = load_model(tiny_model_dir)
    torch.manual_seed(2)
    q, d, n = torch.randn(3, 16), torch.randn(3, 16), torch.randn(3, 16)
    config = TrainConfig(hardness_strength=5.0, lexical_residual=0.5)
    loss = _loss(model, config, lexical=bias)
    loss._batch_bias = bias.matrix(labels)
    got = loss.compute_loss_from_embeddings([q, d, n], labels)
    sim = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(torch.cat([d, n]), dim=-1).T
    sim = sim + 0.5 * torch.from_numpy(matrix)
    own = torch.cat([torch.eye(3), torch.eye(3)], dim=1).bool()
    logits = 20.0 * sim + 5.0 * sim.detach() * ~own  # self-adversarial weight on in-batch negatives only
    assert torch.allclose(got, torch.nn.functional.cross_entropy(logits, torch.arange(3)), atol=1e-5)
    plain = _loss(model, TrainConfig(hardness_strength=5.0)).compute_loss_from_embeddings([q, d, n], labels)
    assert not torch.allclose(got, plain)
    with pytest.raises(ConfigError, match="lexical_residual"):
        TrainConfig(lexical_residual=0.5, loss_directions="symmetric")


def test_lexical_residual_trains_both_stages(small_store, tiny_model_dir, tmp_path):
    catalog, events = small_store
    config = tiny_config(lexical_residual=0.5, onnx=False)
    summary = train(catalog, tmp_path / "m", events=events, config=config, base_model=tiny_model_dir)
    stage1, stage2 = summary["stages"]
    assert stage1["steps"] > 0 and stage2["steps"] > 0
    assert stage2["pairs"]["with_hard_negative"] > 0
    assert summary["config"]["lexical_residual"] == 0.5 and summary["towers"] == "distinct"


def test_stage1_negatives_give_the_log_positives_bm25_confusers(small_store, tiny_model_dir, tmp_path):
    catalog, events = small_store
    off = train(catalog, tmp_path / "off", events=events, config=tiny_config(onnx=False), base_model=tiny_model_dir)
    assert off["stages"][0]["pairs"]["with_hard_negative"] == 0
    config = tiny_config(stage1_negatives=True, onnx=False)
    summary = train(catalog, tmp_path / "on", events=events, config=config, base_model=tiny_model_dir)
    stage1 = summary["stages"][0]
    # one BM25 confuser per log positive at most: the synthetic pairs stay plain
    assert 0 < stage1["pairs"]["with_hard_negative"] <= summary["pairs"]["positives"]
    assert stage1["steps"] > 0 and "hard_negatives" in stage1["rows"]
    assert summary["config"]["stage1_negatives"] is True
