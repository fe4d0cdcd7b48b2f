"""Reading a QC thresholds file (core.qc describes its format): tomllib parses it, this module checks
every assay and rule and reports a problem as one line, `FILE:LINE: what is wrong`, with the nearest
metric name for a typo. tomllib keeps no positions, so `_Lines` finds each table and key in the text
(see there for why that is exact enough).
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import WorkerError
from core.exitcodes import ExitCode
from core.qc import METRICS, Assay, Bound, Direction, Rule, Thresholds


class ThresholdsError(WorkerError):
    """The thresholds file cannot be used: `FILE:LINE: reason`. Exit 78 like other configuration errors."""

    exit_code = ExitCode.CONFIG


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*[.=]")


class _Lines:
    """Where each `[[assay]]`/`[[assay.rule]]` table and each key of it is in the text.

    tomllib parsed the file already, so the text is valid TOML and every table header stands on a line of
    its own. Array-of-tables entries appear in the text in the order tomllib returns them, so the n-th
    `[[assay]]` header is the n-th assay and the rule headers after it (up to the next `[[assay]]`) are its
    rules. A key is found as the first line of its table's span that assigns it (`key =` or dotted
    `key.sub =`); lines inside multi-line strings are skipped. A value written as a sub-table header
    (`[assay.rule.min]`) is found by that header. Anything not found falls back to the table's header line,
    which is still the right place to look.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.top_end = len(self.lines) + 1
        self.assays: list[tuple[int, list[int]]] = []  # (header line, [rule header lines])
        in_string: str | None = None
        for number, line in enumerate(self.lines, start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_string = quote
            match = _HEADER.match(line)
            if not match or in_string is not None:
                continue
            name = match.group(2).replace(" ", "")
            self.top_end = min(self.top_end, number)
            if match.group(1) == "[[" and name == "assay":
                self.assays.append((number, []))
            elif match.group(1) == "[[" and name == "assay.rule" and self.assays:
                self.assays[-1][1].append(number)

    def _span_end(self, start: int) -> int:
        for number in range(start + 1, len(self.lines) + 1):
            match = _HEADER.match(self.lines[number - 1])
            if match and not match.group(2).replace(" ", "").startswith(self._table_name(start) + "."):
                return number
        return len(self.lines) + 1

    def _table_name(self, start: int) -> str:
        match = _HEADER.match(self.lines[start - 1])
        return match.group(2).replace(" ", "") if match else ""

    def find_key(self, start: int, key: str) -> int:
        """The line assigning `key` in the table whose header is on line `start` (0: the top level)."""
        end = self.top_end if start == 0 else self._span_end(start)
        name = self._table_name(start) if start else ""
        for number in range(start + 1, end):
            line = self.lines[number - 1]
            match = _KEY.match(line)
            if match and match.group(1) == key:
                return number
            header = _HEADER.match(line)
            if header and header.group(2).replace(" ", "") == f"{name}.{key}".lstrip("."):
                return number
        return max(start, 1)

    def assay_line(self, index: int) -> int:
        return self.assays[index][0] if index < len(self.assays) else 1

    def rule_line(self, assay: int, rule: int) -> int:
        if assay < len(self.assays) and rule < len(self.assays[assay][1]):
            return self.assays[assay][1][rule]
        return self.assay_line(assay)


_TOP_KEYS = ("version", "default_assay", "assay")
_ASSAY_KEYS = ("name", "prefixes", "description", "rule")
_RULE_KEYS = ("metric", "min", "max", "note")
_BOUND_KEYS = ("warn", "fail")


def _nearest(word: str, choices: Sequence[str] | frozenset[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_thresholds(text: str, path: str = "thresholds.toml") -> Thresholds:
    """Parse and validate a thresholds file's text (pure). Raises ThresholdsError `path:line: reason`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "... (at line 7, column 3)"; lead with the line so every error reads the same.
        msg = str(exc)
        where = re.search(r"\s*\(at line (\d+), column (\d+)\)", msg)
        if where:
            line, msg = where.group(1), f"{msg[: where.start()]} (column {where.group(2)})"
        else:  # "(at end of document)": an unclosed array or string runs to the last line
            line = str(max(len(text.splitlines()), 1))
            msg = re.sub(r"\s*\(at end of document\)", " (at end of file)", msg)
        raise ThresholdsError(f"{path}:{line}: not valid TOML: {msg}") from None
    lines = _Lines(text)

    def fail(line: int, reason: str) -> ThresholdsError:
        return ThresholdsError(f"{path}:{line}: {reason}")

    for key in doc:
        if key not in _TOP_KEYS:
            raise fail(lines.find_key(0, key), f"unknown top-level key {key!r}{_nearest(key, _TOP_KEYS)}")
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise fail(lines.find_key(0, "version"), "needs a non-empty string 'version' (recorded per verdict)")
    raw_assays = doc.get("assay")
    if isinstance(raw_assays, dict):
        # `[assay]` instead of `[[assay]]`: a single table where an array of tables is meant.
        line = next((n for n, t in enumerate(lines.lines, 1) if _HEADER.match(t) and "assay" in t), 1)
        raise fail(line, "write each assay as [[assay]] (an array of tables), not [assay]")
    if not isinstance(raw_assays, list) or not raw_assays:
        raise fail(1, "needs at least one [[assay]] table")

    assays: list[Assay] = []
    owner: dict[str, str] = {}
    for i, raw in enumerate(raw_assays):
        at = lines.assay_line(i)
        if not isinstance(raw, dict):
            raise fail(at, "[[assay]] must be a table")
        for key in raw:
            if key not in _ASSAY_KEYS:
                raise fail(lines.find_key(at, key), f"unknown assay key {key!r}{_nearest(key, _ASSAY_KEYS)}")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise fail(lines.find_key(at, "name"), "[[assay]] needs a string 'name'")
        if any(a.name == name for a in assays):
            raise fail(lines.find_key(at, "name"), f"assay {name!r} is defined twice")
        prefixes = raw.get("prefixes", [])
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and p for p in prefixes):
            raise fail(
                lines.find_key(at, "prefixes"), f"assay {name!r}: 'prefixes' must be non-empty strings"
            )
        for prefix in prefixes:
            if prefix in owner:
                raise fail(
                    lines.find_key(at, "prefixes"),
                    f"prefix {prefix!r} is in both assay {owner[prefix]!r} and {name!r}",
                )
            owner[prefix] = name
        description = raw.get("description", "")
        if not isinstance(description, str):
            raise fail(lines.find_key(at, "description"), f"assay {name!r}: 'description' must be a string")
        raw_rules = raw.get("rule", [])
        if not isinstance(raw_rules, list):
            raise fail(lines.find_key(at, "rule"), f"assay {name!r}: rules are [[assay.rule]] tables")
        rules = [_parse_rule(r, lines.rule_line(i, j), lines, fail) for j, r in enumerate(raw_rules)]
        assays.append(Assay(name, tuple(prefixes), tuple(rules), description))

    default = doc.get("default_assay", assays[0].name)
    if not isinstance(default, str) or default not in {a.name for a in assays}:
        names = [a.name for a in assays]
        raise fail(
            lines.find_key(0, "default_assay"),
            f"default_assay {default!r} is not an assay here ({', '.join(names)})"
            + _nearest(str(default), names),
        )
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Thresholds(version.strip(), digest, path, default, tuple(assays))


def _parse_rule(raw: object, at: int, lines: _Lines, fail: Any) -> Rule:
    if not isinstance(raw, dict):
        raise fail(at, "[[assay.rule]] must be a table")
    for key in raw:
        if key not in _RULE_KEYS:
            raise fail(lines.find_key(at, key), f"unknown rule key {key!r}{_nearest(key, _RULE_KEYS)}")
    metric = raw.get("metric")
    if not isinstance(metric, str):
        raise fail(lines.find_key(at, "metric"), "rule needs a string 'metric' (an alignstats report key)")
    if metric not in METRICS:
        raise fail(lines.find_key(at, "metric"), f"unknown metric {metric!r}{_nearest(metric, METRICS)}")
    bounds: list[Bound] = []
    for direction in Direction:
        spec = raw.get(str(direction))
        if spec is None:
            continue
        line = lines.find_key(at, str(direction))
        if not isinstance(spec, dict) or not spec:
            raise fail(line, f"{metric}: {direction} must be a table like {{ warn = 90, fail = 80 }}")
        for key, value in spec.items():
            if key not in _BOUND_KEYS:
                raise fail(
                    line, f"{metric}: unknown level {key!r} in {direction}{_nearest(key, _BOUND_KEYS)}"
                )
            if not _is_number(value):
                raise fail(line, f"{metric}: {direction}.{key} must be a finite number, not {value!r}")
        warn, fail_at = spec.get("warn"), spec.get("fail")
        if warn is not None and fail_at is not None:
            # A fail threshold that is reached before the warn one would make 'warn' unreachable.
            if direction is Direction.MIN and warn < fail_at:
                raise fail(
                    line, f"{metric}: min.warn ({warn}) is below min.fail ({fail_at}); warn must be >="
                )
            if direction is Direction.MAX and warn > fail_at:
                raise fail(
                    line, f"{metric}: max.warn ({warn}) is above max.fail ({fail_at}); warn must be <="
                )
        bounds.append(
            Bound(
                direction, None if warn is None else float(warn), None if fail_at is None else float(fail_at)
            )
        )
    if not bounds:
        raise fail(at, f"{metric}: rule needs 'min' and/or 'max'")
    if "note" in raw and not isinstance(raw["note"], str):
        raise fail(lines.find_key(at, "note"), f"{metric}: 'note' must be a string")
    return Rule(metric, tuple(bounds), at)


def load_thresholds(path: str | Path) -> Thresholds:
    """Read and validate a thresholds file. Raises ThresholdsError (one line, names the file and line)."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ThresholdsError(f"{p}: thresholds file not found") from None
    except UnicodeDecodeError as exc:
        raise ThresholdsError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ThresholdsError(f"{p}: cannot read the thresholds file ({exc.strerror})") from None
    return parse_thresholds(text, str(p))


def validate_thresholds_file(path: str | Path) -> Thresholds:
    """For `alignbatch-controller check`: the same as load_thresholds (it raises ThresholdsError with
    `FILE:LINE: reason`), named for the caller's intent."""
    return load_thresholds(path)
