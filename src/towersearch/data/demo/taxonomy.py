"""The demo taxonomy: departments, aisles and product types, read from the package data file ``taxonomy.txt``.

The file's header describes its line format. Confusable types that share words but are different intents
(tortillas / tortilla chips, peanut butter / peanuts / butter) sit in different aisles.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from towersearch.data.schema import split_category

TAXONOMY_FILE = "taxonomy.txt"


@dataclass(frozen=True, slots=True)
class ProductType:
    """One product type of the demo taxonomy, such as "tortilla chips" in "snacks > chips"."""

    type_id: int
    name: str
    department: str
    aisle: str
    generic: str
    synonyms: tuple[str, ...]
    variants: tuple[str, ...]
    heads: tuple[str, ...]
    sizes: tuple[str, ...]
    dietary: tuple[str, ...]
    staple: bool
    use: str

    @property
    def category(self) -> str:
        """The category path written in the catalogue: ``"department > aisle"``."""
        return f"{self.department} > {self.aisle}"


def _items(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_taxonomy(text: str) -> tuple[ProductType, ...]:
    """Parse the taxonomy format of ``taxonomy.txt`` (described at the top of that file).

    Raises:
        ValueError: a type line has more than 7 fields, or two types have the same name.
    """
    types: list[ProductType] = []
    department = aisle = use = ""
    sizes: tuple[str, ...] = ()
    dietary: tuple[str, ...] = ()
    lines: list[str] = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        if line.startswith("+") and lines:
            lines[-1] += " " + line[1:].strip()
        elif line and not line.startswith("#"):
            lines.append(line)
    for line in lines:
        if line.startswith("@"):
            path, sizes_text, dietary_text, use = (part.strip() for part in line[1:].split("|"))
            department, aisle = split_category(path)
            sizes, dietary = _items(sizes_text), () if dietary_text == "-" else _items(dietary_text)
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) > 7:
            raise ValueError(f"taxonomy line has more than 7 fields: {line!r}")
        name, generic, synonyms, variants, heads, own_sizes, own_dietary = parts + [""] * (7 - len(parts))
        staple = name.startswith("*")
        own_diet = () if own_dietary == "-" else (_items(own_dietary) or dietary)
        types.append(
            ProductType(
                type_id=len(types),
                name=name.lstrip("*").strip(),
                department=department,
                aisle=aisle,
                generic=generic,
                synonyms=_items(synonyms),
                variants=_items(variants),
                heads=_items(heads),
                sizes=_items(own_sizes) or sizes,
                dietary=own_diet,
                staple=staple,
                use=use,
            )
        )
    names = [t.name for t in types]
    if len(set(names)) != len(names):
        raise ValueError("taxonomy type names must be unique")
    return tuple(types)


@cache
def product_types() -> tuple[ProductType, ...]:
    """The hand-written taxonomy the demo store draws its products from (read once, then cached)."""
    return parse_taxonomy(files(__package__).joinpath(TAXONOMY_FILE).read_text(encoding="utf-8"))
