"""Rewrite the ``slots:`` of some shards in a cluster.yaml's text, keeping the rest.

Pure, no I/O (the caller reads and writes the file). Comments, key order,
blank lines and quoting survive: the YAML is *composed* (PyYAML nodes carry
the exact character span of each scalar), and only the text of each
affected shard's ``slots`` value is replaced. The block style of the bundled
cluster.yaml (``- name: a`` / ``slots: 0-5460``, quoted or not) and the
files ``yaml.safe_dump`` writes (the test fixtures') are handled; so is a
flow mapping per shard. Anything else - an alias or anchor, a merge key
(``<<:``), a multi-line or block scalar, a shard without a literal ``slots``
key - raises `LayoutError` ("edit slots by hand: ..."), never a guess.

`rewrite` checks the result: it must parse and validate
(`slotwarden.cluster.config.parse`) and give every shard exactly the slots
asked; otherwise `LayoutError` or the `ConfigError`, and nothing is to be
written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from slotwarden.cluster.config import ClusterConfig, parse
from slotwarden.cluster.errors import ConfigError
from slotwarden.cluster.slots import format_ranges


class LayoutError(ValueError):
    """The file's layout is not one this editor changes safely."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"edit slots by hand: {detail}")


def _compose(text: str) -> yaml.Node:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise LayoutError(f"the file is not valid YAML ({exc})") from None
    if not isinstance(node, yaml.MappingNode):
        raise LayoutError("the file is not a YAML mapping")
    return node


def _value(mapping: yaml.MappingNode, key: str, where: str) -> yaml.Node | None:
    found = None
    for k, v in mapping.value:
        if not isinstance(k, yaml.ScalarNode):
            continue
        if k.tag.endswith(":merge") or k.value == "<<":
            raise LayoutError(f"{where} uses a merge key (<<)")
        if k.value == key:
            found = v
    return found


def slots_spans(text: str) -> dict[str, tuple[int, int, yaml.ScalarNode, bool]]:
    """Shard name -> (start, end, node, in a flow collection) of its ``slots`` value."""
    root = _compose(text)
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise LayoutError(f"the file uses YAML aliases (*{event.anchor})")
        if getattr(event, "anchor", None):
            raise LayoutError(f"the file uses YAML anchors (&{event.anchor})")
    shards = _value(root, "shards", "the top level")
    if not isinstance(shards, yaml.SequenceNode):
        raise LayoutError("no 'shards:' list at the top level")
    out: dict[str, tuple[int, int, yaml.ScalarNode, bool]] = {}
    for index, item in enumerate(shards.value):
        where = f"shards[{index}]"
        if not isinstance(item, yaml.MappingNode):
            raise LayoutError(f"{where} is not a mapping")
        name = _value(item, "name", where)
        if not isinstance(name, yaml.ScalarNode):
            raise LayoutError(f"{where} has no literal name")
        slots = _value(item, "slots", where)
        if not isinstance(slots, yaml.ScalarNode):
            raise LayoutError(f"shard {name.value} has no literal 'slots:' value")
        if slots.style in ("|", ">"):
            raise LayoutError(f"shard {name.value}'s slots are a block scalar ({slots.style})")
        if slots.start_mark.line != slots.end_mark.line:
            raise LayoutError(f"shard {name.value}'s slots span several lines")
        flow = bool(item.flow_style or shards.flow_style)
        out[str(name.value)] = (slots.start_mark.index, slots.end_mark.index, slots, flow)
    return out


def _render(value: str, node: yaml.ScalarNode, flow: bool) -> str:
    if node.style == "'":
        return f"'{value}'"
    if node.style == '"' or value == "" or (flow and "," in value):
        return f'"{value}"'
    return value


def rewrite(text: str, slots: Mapping[str, set[int]], source: str = "cluster.yaml") -> str:
    """``text`` with the shards named in ``slots`` owning exactly those slots.

    Raises `LayoutError` (layout not handled, or an unknown shard) or
    `ConfigError` (the result would be an invalid cluster.yaml).
    """
    spans = slots_spans(text)
    unknown = sorted(set(slots) - set(spans))
    if unknown:
        raise LayoutError(f"the file has no shard named {', '.join(unknown)}")
    edits = []
    for name, wanted in slots.items():
        start, end, node, flow = spans[name]
        edits.append((start, end, _render(format_ranges(wanted), node, flow)))
    out = text
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new + out[end:]
    check(out, slots, source)
    return out


def check(text: str, slots: Mapping[str, set[int]], source: str) -> ClusterConfig:
    """Parse and validate ``text``; every shard in ``slots`` must own exactly those."""
    data: Any = yaml.safe_load(text)
    config = parse(data, source)
    owned = ownership(config)
    for name, wanted in slots.items():
        if owned.get(name) != set(wanted):
            raise LayoutError(f"after the edit shard {name} would not own exactly the slots asked")
    return config


def ownership(config: ClusterConfig) -> dict[str, set[int]]:
    """The config's slots per shard, in file order."""
    return {s.name: {x for lo, hi in s.slots for x in range(lo, hi + 1)} for s in config.shards}


__all__ = ["ConfigError", "LayoutError", "check", "ownership", "rewrite", "slots_spans"]
