"""Parsing of the sentinel's HTTP input: query fields and JSON bodies.

Owns the checks `sentinel.http.api` applies to what a client sends: numbers
finite and in range, bodies JSON objects (any depth), topologies well-formed
with a 64-bit epoch. Pure functions (no aiohttp): each returns the parsed
value or raises `sentinel.errors.BadInput`, whose one-line message the API
answers as HTTP 400 ``{"error": ...}``. Invariant: on any input they raise
nothing but `BadInput`, so bad input never becomes a 500."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from sentinel.errors import BadInput
from slotwarden.cluster.topology import SlotMap

MAX_EPOCH = (1 << 63) - 1  # epochs are compared and persisted as signed 64-bit numbers


def one_line(text: object) -> str:
    """``text`` on one line, cut to 200 characters (reasons go back to the client)."""
    line = " ".join(str(text).split())
    return line if len(line) <= 200 else line[:197] + "..."


def query_int(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """The integer query field ``name`` (``default`` if absent), within ``lo..hi``."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name} must be an integer, not {one_line(repr(raw))}") from None
    if not lo <= value <= hi:
        raise BadInput(f"{name} must be between {lo} and {hi}")
    return value


def query_float(query: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    """The finite number query field ``name`` (``default`` if absent), within ``lo..hi``."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"{name} must be a number, not {one_line(repr(raw))}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise BadInput(f"{name} must be a finite number between {lo:g} and {hi:g}")
    return value


def json_object(raw: bytes) -> dict[str, object]:
    """The body as a JSON object (a dict); anything else is `BadInput`."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise BadInput("body must be JSON") from None
    except RecursionError:
        raise BadInput("body is nested too deeply") from None
    if not isinstance(data, dict):
        raise BadInput("body must be a JSON object")
    return data


def body_int(data: Mapping[str, object], name: str, lo: int, hi: int) -> int:
    """The integer field ``name`` of a body (not a bool, not a float), within ``lo..hi``."""
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise BadInput(f"{name} must be an integer between {lo} and {hi}")
    return value


def topology_of(data: Mapping[str, object]) -> SlotMap:
    """A topology body (`SlotMap.to_dict`'s shape), its epoch in ``0..MAX_EPOCH``."""
    body_int(data, "epoch", 0, MAX_EPOCH)
    shards = data.get("shards")
    if not isinstance(shards, list) or not all(isinstance(x, dict) for x in shards):
        raise BadInput("not a topology: shards must be a list of objects")
    try:
        return SlotMap.from_dict(dict(data))
    except KeyError as exc:
        raise BadInput(f"not a topology: missing field {one_line(exc)}") from None
    except OverflowError:
        raise BadInput("not a topology: too many shards") from None
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise BadInput(f"not a topology: {one_line(exc)}") from None
