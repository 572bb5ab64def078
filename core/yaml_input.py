"""YAML from users (the configuration file, the simulator's workload file), read with bounds.

YAML aliases share one node, so a 1 KB document can stand for billions of values (a "billion
laughs"): cheap to load, but anything that walks or formats the result, such as an error
message, runs for minutes with the GIL held. The loader counts what aliases expand to and
refuses a document past a small budget; ``describe`` formats any value in bounded time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, SequenceNode

# A real configuration reuses a block (a price table, a capacity) a few dozen times at most.
MAX_ALIAS_NODES = 10_000
DESCRIBE_CHARS = 40
# Beyond this many items or levels a container is shown as "..." instead of being walked.
_DESCRIBE_ITEMS = 8
_DESCRIBE_DEPTH = 3
_DESCRIBE_INT_BITS = 256


class YamlInputError(ValueError):
    """The text is not YAML we accept; ``problem`` says why (with a line and column when known)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


class InputProblems(ValueError):
    """A document we read is invalid; ``problems`` holds one ``key: what is wrong`` line each and
    ``source`` names the file (or is empty). Each kind of document has its own subclass."""

    def __init__(self, problems: list[str], *, source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


def load_yaml_file(path: Path, *, error: type[InputProblems], max_bytes: int | None = None) -> object:
    """The YAML document in ``path``; every failure (unreadable, too large, not YAML we accept)
    is raised as ``error`` naming the file."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except OSError as failure:
        raise error([f"cannot read: {failure.strerror or failure}"], source=source) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise error([f"larger than {max_bytes} bytes"], source=source)
    return load_yaml_text(data.decode("utf-8", errors="replace"), error=error, source=source)


def load_yaml_text(text: str, *, error: type[InputProblems], source: str = "") -> object:
    try:
        return load_yaml(text)
    except YamlInputError as failure:
        raise error([failure.problem], source=source) from None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts the nodes aliases stand for and stops past MAX_ALIAS_NODES."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it expands to (its whole subtree)
        self._alias_nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        is_alias = isinstance(event, yaml.AliasEvent)
        node = super().compose_node(parent, index)
        if node is None:
            return None
        if is_alias:
            # An alias to an anchor still being composed (a recursive document) counts as one node.
            self._alias_nodes += self._sizes.get(id(node), 1)
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise ComposerError(
                    None,
                    None,
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes; write the values out",
                    event.start_mark,
                )
            return node
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(self._sizes.get(id(item), 1) for item in node.value)
        elif isinstance(node, MappingNode):
            size += sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
        self._sizes[id(node)] = size
        return node


def load_yaml(text: str) -> object:
    """Parse one YAML document with the safe loader and the alias budget, or raise YamlInputError."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise YamlInputError("not valid YAML: nested too deeply") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise YamlInputError(f"not valid YAML: {where}{problem}") from None
    except ValueError as error:  # the constructor's int() refuses integers of over 4,300 digits
        raise YamlInputError(f"not valid YAML: {describe(str(error))}") from None
    finally:
        loader.dispose()


def not_a_string(value: object) -> str:
    """What is wrong with a value where a string belongs, and the fix when YAML typed an unquoted word.

    YAML 1.1 (PyYAML) reads unquoted yes/no, on/off, y/n and true/false as booleans and digits as
    numbers, so `zone: NO` (Norway) arrives as False: say so, and suggest the quotes.
    """
    if isinstance(value, bool):
        word = "true" if value else "false"
        return (
            f"must be a string, but YAML read an unquoted word as the boolean {word} (yes/no, on/off, "
            'y/n and true/false are booleans in YAML): quote it, for example zone: "NO"'
        )
    if isinstance(value, int | float):
        number = describe(value)
        return f'must be a string, but YAML read it as the number {number}: quote it, like "{number}"'
    return f"must be a non-empty string, got {describe(value)}"


def describe(value: object) -> str:
    """A short, bounded rendering of a value for an error message (at most DESCRIBE_CHARS)."""
    if value is None:
        return "nothing"
    text = _bounded_repr(value, _DESCRIBE_DEPTH)
    return text if len(text) <= DESCRIBE_CHARS else text[: DESCRIBE_CHARS - 3] + "..."


def _bounded_repr(value: object, depth: int) -> str:
    """repr() that looks at a few items of a few levels only, so its cost does not grow with the value."""
    if isinstance(value, str | bytes):
        return repr(value[: DESCRIBE_CHARS + 1])
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= _DESCRIBE_INT_BITS else "a very large integer"
    if isinstance(value, Mapping):
        if depth <= 0:
            return "{...}"
        parts = []
        for count, (key, item) in enumerate(value.items()):
            if count >= _DESCRIBE_ITEMS:
                parts.append("...")
                break
            parts.append(f"{_bounded_repr(key, depth - 1)}: {_bounded_repr(item, depth - 1)}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, list | tuple | set | frozenset):
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        if isinstance(value, set | frozenset):
            opening, closing = "{", "}"
        if depth <= 0:
            return opening + "..." + closing
        parts = []
        for count, item in enumerate(value):
            if count >= _DESCRIBE_ITEMS:
                parts.append("...")
                break
            parts.append(_bounded_repr(item, depth - 1))
        return opening + ", ".join(parts) + closing
    text = repr(value)  # YAML's other types (dates, times) have short reprs
    return text[: DESCRIBE_CHARS + 1]
