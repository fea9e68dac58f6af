"""Keyboard slips: one random edit of a word, as shoppers make them (the demo's simulated shoppers, and the
optional typo augmentation of training queries, :func:`~towersearch.training.pairs.typo_pairs`)."""

from __future__ import annotations

import random

KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    out: dict[str, str] = {}
    for row in KEYBOARD_ROWS:
        for i, ch in enumerate(row):
            out[ch] = row[max(0, i - 1) : i] + row[i + 1 : i + 2]
    return out


NEIGHBOURS = _keyboard_neighbours()


def typo(word: str, rng: random.Random) -> str:
    """One random edit of a word of at least 3 letters: drop, swap, double or hit a neighbouring key (never the first
    letter)."""
    i = rng.randrange(1, len(word) - 1)
    op = rng.random()
    if op < 0.3:
        return word[:i] + word[i + 1 :]
    if op < 0.6:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op < 0.8:
        return word[:i] + word[i] + word[i:]
    near = NEIGHBOURS.get(word[i], "")
    return word[:i] + rng.choice(near) + word[i + 1 :] if near else word[:i] + word[i + 1 :]
