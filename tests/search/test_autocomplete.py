import bisect
import copy
import random

import numpy as np
import pytest

from towersearch.data import LogEvent, Product
from towersearch.errors import ConfigError
from towersearch.search.autocomplete import (
    Candidate,
    SuggestConfig,
    Suggester,
    build_candidates,
    catalog_phrases,
    normal_form,
)


def searches(query: str, n: int, converted: int = 0, clicked: int = 0) -> list[LogEvent]:
    events = []
    for i in range(n):
        sid = f"{query}-{i}"
        events.append(LogEvent(query, "p1", "impression", session_id=sid))
        if i < clicked:
            events.append(LogEvent(query, "p1", "click", session_id=sid))
        if i < converted:
            events.append(LogEvent(query, "p1", "add_to_cart", session_id=sid))
    return events


def intent_vectors(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for the query tower: one direction per hand-labelled intent, plus a small offset."""
    intents = {"mac": 0, "macaroni": 0, "string": 1, "cheese": 2, "cheddar": 2, "avocado": 3, "milk": 4, "oat": 5}
    out = np.zeros((len(texts), 8), dtype=np.float32)
    for row, text in enumerate(texts):
        out[row, intents.get(text.split()[0], 6)] = 1.0
        out[row, 7] = 0.05 * (len(text) % 3)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


LOG = (
    searches("mac and cheese", 40, converted=20, clicked=30)
    + searches("mac n cheese", 25, converted=10, clicked=20)
    + searches("macaroni and cheese", 15, converted=8, clicked=10)
    + searches("macaroni & cheese", 5, converted=1, clicked=3)
    + searches("string cheese", 12, converted=6, clicked=8)
    + searches("cheddar cheese", 9, converted=3, clicked=5)
    + searches("avocado", 30, converted=15, clicked=20)
    + searches("oat milk", 8, converted=2, clicked=4)
    + searches("milk", 50, converted=30, clicked=40)
    + searches("zzz rare", 1)
    + searches("free money scam", 5)
)


@pytest.fixture
def suggester():
    candidates = build_candidates(LOG, blocklist={"scam"})
    return Suggester(candidates, intent_vectors([c.text for c in candidates]))


def test_candidates_count_searches_conversion_and_filter_junk():
    candidates = {
        c.text: c for c in build_candidates(LOG, blocklist={"scam"}, returns_nothing=lambda q: q == "oat milk")
    }
    assert "zzz rare" not in candidates  # searched once
    assert "free money scam" not in candidates  # blocklisted word
    assert "oat milk" not in candidates  # returns nothing
    mac = candidates["mac and cheese"]
    assert mac.searches == 40 and mac.conversion_rate == 0.5 and mac.no_click_rate == pytest.approx(0.25)


def test_mac_shows_one_mac_and_cheese_with_the_others_folded(suggester):
    shown = suggester.suggest("mac", 8)
    texts = [s.text for s in shown]
    variants = {"mac and cheese", "mac n cheese", "macaroni and cheese", "macaroni & cheese"}
    assert len(variants & set(texts)) == 1
    assert texts[0] == "mac and cheese"
    assert set(shown[0].folded) == variants - {"mac and cheese"}
    without = [s.text for s in suggester.suggest("mac", 8, dedup=False)]
    assert len(variants & set(without)) == 4


def test_word_start_matches_rank_below_query_start(suggester):
    shown = suggester.suggest("chee", 8)
    texts = [s.text for s in shown]
    assert "string cheese" in texts and "cheddar cheese" in texts
    assert {s.match for s in shown if s.text == "string cheese"} == {"word_start"}
    first = suggester.suggest("ched", 3)[0]
    assert (first.text, first.match) == ("cheddar cheese", "query_start")
    assert all(s.text.startswith("chee") == (s.match == "query_start") for s in shown)


def test_typos_are_tolerated_and_discounted(suggester):
    shown = suggester.suggest("avacado", 5)
    assert [s.text for s in shown] == ["avocado"] and shown[0].match == "fuzzy"
    exact = suggester.suggest("avoc", 5)[0]
    assert exact.text == "avocado" and exact.score > shown[0].score
    assert suggester.suggest("mlk", 5) == []  # three characters: too short for fuzzy matching


def test_unknown_prefix_is_empty_and_bad_input_is_an_error(suggester):
    assert suggester.suggest("qqqqqqqqqq", 5) == []
    with pytest.raises(ConfigError, match="empty prefix"):
        suggester.suggest("   ")
    with pytest.raises(ConfigError, match="longer than 100"):
        suggester.suggest("x" * 101)
    with pytest.raises(ConfigError, match="k must be >= 1"):
        suggester.suggest("mac", 0)


def test_catalog_phrases_rank_below_real_queries():
    products = [Product("p1", "Valley Fresh Oat Milk", brand="Valley Fresh"), Product("p2", "Oatmeal Cookies 12")]
    assert catalog_phrases(products) == [
        "cookies",
        "milk",
        "oat milk",
        "oatmeal cookies",
        "valley fresh",
        "valley fresh oat milk",
    ]
    candidates = build_candidates(searches("oat milk", 3), products)
    by_text = {c.text: c for c in candidates}
    assert by_text["oat milk"].source == "log" and by_text["oatmeal cookies"].source == "catalog"
    shown = Suggester(candidates).suggest("oat", 5)
    assert shown[0].text == "oat milk" and "oatmeal cookies" in [s.text for s in shown]


def test_normal_form():
    assert normal_form("Mac & Cheese") == normal_form("mac n cheese") == normal_form("mac and cheeses")
    assert normal_form("berries") == "berry" and normal_form("glass") == "glass"


def test_save_load_round_trip(suggester, tmp_path):
    suggester.save(tmp_path)
    again = Suggester.load(tmp_path)
    assert [s.as_dict() for s in again.suggest("mac")] == [s.as_dict() for s in suggester.suggest("mac")]
    # half-size float16 rows, memory-mapped on load
    assert isinstance(again.embeddings, np.memmap) and again.embeddings.dtype == np.float16


def test_float32_memory_map_of_older_indexes_still_loads(suggester, tmp_path):
    suggester.save(tmp_path)
    np.save(tmp_path / "suggest_embeddings.npy", np.asarray(suggester.embeddings, dtype=np.float32))
    again = Suggester.load(tmp_path)
    assert isinstance(again.embeddings, np.memmap) and again.embeddings.dtype == np.float32
    assert [s.as_dict() for s in again.suggest("mac")] == [s.as_dict() for s in suggester.suggest("mac")]


@pytest.mark.parametrize("precompute_rows", [1, 1000])
def test_prefix_index_matches_a_linear_scan(suggester, precompute_rows):
    """The precomputed and bisect paths agree with a plain scan over every candidate and word."""
    config = SuggestConfig(precompute_rows=precompute_rows)
    suggester = Suggester(suggester.candidates, suggester.embeddings, config)
    for prefix in ("m", "ma", "mac", "mac ", "che", "cheese", "o", "oat m", "milk"):
        got = {s.text for s in suggester.suggest(prefix, 50, dedup=False) if s.match != "fuzzy"}
        want = {
            c.text
            for c in suggester.candidates
            if any(" ".join(c.text.split()[i:]).startswith(prefix) for i in range(len(c.text.split())))
        }
        assert got == want, prefix
    assert config.pool >= 50


def test_candidate_embeddings_must_match(suggester):
    from towersearch.errors import ArtifactError

    with pytest.raises(ArtifactError, match="3 suggestion embeddings"):
        Suggester([Candidate("a", 2)], np.zeros((3, 4)))


def test_two_typos_in_a_long_prefix():
    suggester = Suggester([Candidate("strawberry yogurt", 10), Candidate("straw hats", 3)])
    shown = suggester.suggest("strawbery yoghrt", 5)  # two edits, the second after the first six characters
    assert [s.text for s in shown] == ["strawberry yogurt"] and shown[0].match == "fuzzy"


def test_spelling_variants_fold_only_when_close_in_meaning_too():
    texts = ["toilet paper", "toliet paper", "chips", "chops", "ice cream", "icecream", "pears", "peas"]
    candidates = [Candidate(t, searches=100 - 10 * i, source="log") for i, t in enumerate(texts)]
    vectors = np.eye(len(texts), dtype=np.float32)
    vectors[1] = (vectors[0] + vectors[1]) / np.sqrt(2)  # toliet ~ toilet: cosine 0.71
    vectors[3] = 0.3 * vectors[2] + np.sqrt(1 - 0.09) * vectors[3]  # chops vs chips: cosine 0.3
    vectors[7] = (vectors[6] + vectors[7]) / np.sqrt(2)  # peas ~ pears, but too short to fold as a typo
    s = Suggester(candidates, vectors, SuggestConfig(dedup_threshold=0.85))
    by_text = {x.text: x.folded for x in s.suggest("t", 8) + s.suggest("c", 8) + s.suggest("i", 8) + s.suggest("p", 8)}
    assert by_text["toilet paper"] == ["toliet paper"]
    assert "chips" in by_text and "chops" in by_text
    assert by_text["ice cream"] == ["icecream"]  # normal forms ignore spaces
    assert "pears" in by_text and "peas" in by_text


WORDS = (
    "chocolate chocolates choc chip chips cheese cheddar string mac macaroni oat oatmeal milk almond vanilla "
    "strawberry strawberries peanut butter sparkling water crème brûlée jalapeño über 日本茶 naïve café caffè "
    "organic fresh frozen mini large valleyfresh sunfield"
).split()


def synthetic_candidates(n: int, seed: int = 0) -> list[Candidate]:
    """Phrases of one to four words (multi-byte ones, long ones sharing their first bytes, a NUL) with misspelt
    aliases, sorted by text as :func:`build_candidates` returns them."""
    rng = random.Random(seed)
    words = [*WORDS, "nul\x00l"]
    out: dict[str, Candidate] = {}
    while len(out) < n:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
        aliases = ()
        if rng.random() < 0.2 and len(text) > 4:
            i = rng.randrange(1, len(text) - 1)
            aliases = (text[:i] + rng.choice("aeiou") + text[i + 1 :],)
        source = "catalog" if rng.random() < 0.2 else "log"
        out[text] = Candidate(text, float(rng.randint(2, 500)), rng.random() * 0.5, rng.random(), source, aliases)
    return sorted(out.values(), key=lambda c: c.text)


class _ListKeys(list):
    """The reference: the keys as a plain sorted list of strings, searched with ``bisect``, as they were kept before
    :class:`~towersearch.search.autocomplete._SortedKeys`."""

    def range(self, prefix: str) -> tuple[int, int]:
        lo = bisect.bisect_left(self, prefix)
        return lo, bisect.bisect_left(self, prefix + "\U0010ffff", lo)

    def ranges(self, prefixes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        pairs = np.array([self.range(p) for p in prefixes], dtype=np.int64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def take(self, rows: np.ndarray) -> list[str]:
        return [self[r] for r in rows.tolist()]


def _reference(suggester: Suggester) -> Suggester:
    """``suggester`` with its keys, candidates of keys and precomputed prefixes built the plain way."""
    entries = sorted(
        {
            (" ".join(words[i:]), cid, i == 0)
            for cid, cand in enumerate(suggester.candidates)
            for text in (cand.text, *cand.aliases)
            for words in [text.split()]
            for i in range(len(words))
        }
    )
    reference = copy.copy(suggester)
    reference.keys = _ListKeys(e[0] for e in entries)
    reference.ids = np.array([e[1] for e in entries], dtype=np.int64)
    reference.starts = np.array([e[2] for e in entries], dtype=bool)
    reference._top = {}
    keys = reference.keys
    for length in range(1, suggester.config.precomputed_prefix + 1):
        start, current = 0, None
        for j, key in enumerate([*keys, None]):
            head = key[:length] if key is not None else None
            if head == current:
                continue
            if current is not None and len(current) == length and j - start >= suggester.config.precompute_rows:
                reference._top[current] = reference._rank_rows(np.arange(start, j), "exact")
            start, current = j, head
    return reference


def test_compact_keys_give_what_a_sorted_list_gives():
    """The compact key store finds the same rows as bisect over a sorted list, and every suggestion is the same."""
    candidates = synthetic_candidates(400)
    emb = np.random.default_rng(0).normal(size=(len(candidates), 8)).astype(np.float32)
    suggester = Suggester(
        candidates, emb / np.linalg.norm(emb, axis=1, keepdims=True), SuggestConfig(precompute_rows=12)
    )
    reference = _reference(suggester)
    assert list(suggester.keys) == list(reference.keys) and len(suggester.keys) == len(reference.keys)
    assert suggester.ids.tolist() == reference.ids.tolist()
    assert suggester.starts.tolist() == reference.starts.tolist()
    assert suggester._top == reference._top and len(suggester._top) > 20
    forms = [normal_form(c.text).replace(" ", "") for c in candidates]
    assert list(suggester.normal) == forms
    same = np.array(forms)[:, None] == np.array(forms)[None, :]
    assert np.array_equal(suggester._normal_id[:, None] == suggester._normal_id[None, :], same)

    rng = random.Random(1)
    keys = sorted(set(reference.keys))
    prefixes = sorted({k[:n] for k in keys for n in range(1, len(k) + 1)})
    typed = rng.sample(prefixes, 300)
    typed += [p[:i] + rng.choice("aeioust") + p[i + 1 :] for p in typed[:150] for i in [rng.randrange(len(p))]]
    probes = [*prefixes, *typed, "zz", "\x00", "a\x00", "nul\x00", "\U0010ffff", "ch\udc80", "é" * 5]
    for prefix in probes:
        assert suggester._range(prefix) == reference._range(prefix), prefix
    got, want = suggester.keys.ranges(probes), reference.keys.ranges(probes)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    rows = np.array(sorted(rng.sample(range(len(keys)), 200)))
    assert suggester.keys.take(rows) == reference.keys.take(rows)

    for prefix in sorted(set(typed)):
        if not prefix.strip():
            continue
        for dedup in (True, False):
            got = [s.as_dict() for s in suggester.suggest(prefix, 8, dedup=dedup)]
            assert got == [s.as_dict() for s in reference.suggest(prefix, 8, dedup=dedup)], prefix


def test_an_empty_suggester_suggests_nothing():
    suggester = Suggester([])
    assert len(suggester.keys) == 0 and suggester._range("a") == (0, 0)
    assert suggester.suggest("avocado") == []
