"""Command-line options made from configuration dataclasses, so that an option's name, default and help text live in
one place: the dataclass field and its ``metadata["help"]`` (as transformers' ``HfArgumentParser`` reads
``TrainingArguments``).

Typer builds a command's options from its function's signature and type hints; :func:`with_options` gives a command
that takes ``**options`` one keyword parameter per field, and :func:`section_values` sorts the parsed values back
into keyword arguments for the dataclasses.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

SIMPLE_TYPES = (bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class ConfigOption:
    """One option: the keyword parameter typer reads, and the field its value goes to.

    Attributes:
        section: ``""`` for a field of the top-level config, else the name of the nested config holding it.
        field: The field's name in its dataclass.
        parameter: The command's parameter (name, default, and type with its ``typer.Option``).
        comma_list: The field is a tuple of strings, given as one comma-separated string.
    """

    section: str
    field: str
    parameter: inspect.Parameter
    comma_list: bool = False

    def value(self, given: Any) -> Any:
        """The field's value for the parsed option value ``given``."""
        return tuple(v.strip() for v in given.split(",") if v.strip()) if self.comma_list else given


def _simple_type(hint: Any) -> type | None:
    """bool, int, float or str for such a type (or its ``| None``), tuple for ``tuple[str, ...]``, else None."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            return None
        hint = args[0]
    if hint in SIMPLE_TYPES:
        return hint
    if typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, ...):
        return tuple
    return None


def config_options(
    config: type,
    section: str = "",
    *,
    prefix: str = "",
    names: Mapping[str, str] | None = None,
    skip: Collection[str] = (),
    flags: Collection[str] = (),
    panel: str | None = None,
) -> list[ConfigOption]:
    """An option for each field of the dataclass ``config`` whose type is bool, int, float or str (or one of them
    ``| None``), or a tuple of strings (given comma-separated); fields of other types (nested configs) get none.

    The option is ``--`` and the parameter name with dashes (``max_steps`` is ``--max-steps``); a boolean is an
    ``--x/--no-x`` pair. Its default is the field's default and its help the field's ``metadata["help"]``.

    Args:
        config: The dataclass.
        section: Where the values go: ``""`` for the top-level config, else the field holding ``config`` in it.
        prefix: Put before each field's name (``"ranker_"`` makes ``share`` ``--ranker-share``).
        names: Parameter names for fields whose prefixed name will not do (``{"enabled": "ranker"}``).
        skip: Fields with no option.
        flags: Boolean fields that are a lone flag that turns them on (``--resume``) rather than a pair.
        panel: The heading ``--help`` lists the options under.
    """
    hints = typing.get_type_hints(config)
    options = []
    for f in dataclasses.fields(config):
        kind = _simple_type(hints[f.name])
        if kind is None or f.name in skip:
            continue
        name = (names or {}).get(f.name, prefix + f.name)
        decl = "--" + name.replace("_", "-")
        if kind is bool and f.name not in flags:
            decl = f"{decl}/--no-{decl[2:]}"
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        annotation = hints[f.name]
        if kind is tuple:
            annotation, default = str, ",".join(default)
        option = typer.Option(decl, help=f.metadata.get("help", ""), rich_help_panel=panel)
        parameter = inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, option]
        )
        options.append(ConfigOption(section, f.name, parameter, comma_list=kind is tuple))
    return options


def with_options(options: Sequence[ConfigOption]) -> Callable[[F], F]:
    """Decorate a command that takes ``**options`` so that typer sees one keyword parameter per option instead.

    Typer reads ``inspect.signature(command, eval_str=True)`` and ``typing.get_type_hints(command)``, so both are set.
    """

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        parameters = own + [o.parameter for o in options]
        names = [p.name for p in parameters]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise TypeError(f"{command.__name__}: more than one parameter named {', '.join(twice)}")
        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": signature.return_annotation}
        return command

    return decorate


def section_values(options: Sequence[ConfigOption], given: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The parsed values of ``options`` (``given``, by parameter name) as keyword arguments per section:
    ``{"": top-level fields, "text": {...}, ...}``."""
    values: dict[str, dict[str, Any]] = {o.section: {} for o in options}
    for o in options:
        values[o.section][o.field] = o.value(given[o.parameter.name])
    return values
