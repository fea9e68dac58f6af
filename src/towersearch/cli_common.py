"""What every ``towersearch`` command shares: the consoles, the ``--json`` and ``--skip-bad-rows`` options, output."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")]
SkipOpt = Annotated[
    bool, typer.Option("--skip-bad-rows", help="Skip and count malformed rows instead of stopping at the first one.")
]


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=None, ensure_ascii=False) + "\n")


def _summary_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in rows.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table
