"""Tool profiles: what each argument of a wrapped tool is (input, output, companion files).

Parsing is pure. A profile turns the tool's argv into a template: literal strings plus `Slot`s for every
argument that names a file. The runner decides where each slot's file lives locally (staged copy,
stdin, scratch output) and renders the template into the argv it executes.

Nothing is guessed: an argument that looks like a remote URI but has no role in the profile (and was not
declared with `--input`/`--output` on the worker's command line) is a usage error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import UsageError
from core.locations import Location, LocationError, looks_remote, parse_location
from worker.parts import parse_part_prefix


class Role(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


class Kind(StrEnum):
    ALIGNMENTS = "alignments"  # BAM/CRAM/SAM; companion index .bai/.csi/.crai
    BED = "bed"
    FASTA = "fasta"  # companion .fai (+ .gzi when bgzipped)
    REPORT = "report"  # an alignstats JSON report (rewritten after the run)
    PART = "part"  # a fan-out part file of the built-in engine (worker/fanout.py)
    PART_PREFIX = "part-prefix"  # where a shard child's part goes: a prefix ending in '/' (worker/parts.py)
    FILE = "file"


@dataclass(frozen=True)
class OptionRole:
    role: Role
    kind: Kind


@dataclass(frozen=True)
class Slot:
    """One argument naming a file. `prefix` is kept verbatim in front of the rendered path (`--x=`)."""

    number: int  # position among the slots, stable identity
    option: str  # "-i", "--report", or "" for a declared bare argument
    text: str  # as the user gave it
    location: Location
    role: Role
    kind: Kind
    prefix: str = ""

    @property
    def is_stdio(self) -> bool:
        return self.text == "-"


@dataclass(frozen=True)
class Profile:
    name: str
    short_options: str = ""  # POSIX getopt string, e.g. "i:o:C"
    long_options: Mapping[str, bool] = field(default_factory=dict)  # name -> takes a value
    roles: Mapping[str, OptionRole] = field(default_factory=dict)
    stream_option: str | None = None  # the option whose input may be fed on stdin
    # Options whose value is passed on verbatim, never staged and never taken for a file, even if it
    # looks like a URI: metadata (`--meta input=s3://...`), or a file the tool accepts but ignores.
    passthrough: frozenset[str] = frozenset()
    # A flag that makes every operand (non-option argument) a file of this role: `--merge-parts P...`.
    operand_roles: Mapping[str, OptionRole] = field(default_factory=dict)


ALIGNSTATS = Profile(
    name="alignstats",
    # alignstats' own getopt string (ALIGNSTATS.md §1); no long options.
    short_options="ACDF:MOP:T:UWb:f:hi:j:m:n:o:pq:r:t:v",
    roles={
        "-i": OptionRole(Role.INPUT, Kind.ALIGNMENTS),
        "-t": OptionRole(Role.INPUT, Kind.BED),
        "-m": OptionRole(Role.INPUT, Kind.BED),
        "-r": OptionRole(Role.INPUT, Kind.BED),
        "-T": OptionRole(Role.INPUT, Kind.FASTA),
        "-o": OptionRole(Role.OUTPUT, Kind.REPORT),
        "--part-out": OptionRole(Role.OUTPUT, Kind.PART_PREFIX),
    },
    # The built-in engine's own long options (fan-out, report format); the real alignstats has none.
    long_options={
        "shard-of": True,
        "shard-index": True,
        "part-out": True,
        "merge-parts": False,
        "format": True,
    },
    passthrough=frozenset({"--shard-of", "--shard-index", "--format"}),
    operand_roles={"--merge-parts": OptionRole(Role.INPUT, Kind.PART)},
    stream_option="-i",
)

INDEXER = Profile(
    name="alignbatch-index",
    short_options="i:o:T:h",
    long_options={"input": True, "output": True, "reference": True, "help": False},
    roles={
        "-i": OptionRole(Role.INPUT, Kind.ALIGNMENTS),
        "--input": OptionRole(Role.INPUT, Kind.ALIGNMENTS),
        "-o": OptionRole(Role.OUTPUT, Kind.FILE),
        "--output": OptionRole(Role.OUTPUT, Kind.FILE),
    },
    # A CRAM index is built without the reference: never stage a multi-GB FASTA for it.
    passthrough=frozenset({"-T", "--reference"}),
)

SUMMARY = Profile(
    name="alignbatch-summary",
    long_options={"report": True, "output": True, "meta": True, "help": False},
    roles={
        "--report": OptionRole(Role.INPUT, Kind.REPORT),
        "--output": OptionRole(Role.OUTPUT, Kind.FILE),
    },
    passthrough=frozenset({"--meta"}),
)

GENERIC = Profile(name="generic")

PROFILES: dict[str, Profile] = {
    "alignstats": ALIGNSTATS,
    "alignbatch-alignstats": ALIGNSTATS,
    "alignbatch-index": INDEXER,
    "alignbatch-summary": SUMMARY,
}


def profile_for(tool: str) -> Profile:
    return PROFILES.get(os.path.basename(tool), GENERIC)


@dataclass(frozen=True)
class ParsedCommand:
    tool: str
    profile: Profile
    template: tuple[str | Slot, ...]
    slots: tuple[Slot, ...]
    options: tuple[tuple[str, str | None], ...]  # every option seen, in order, with its value

    def has_option(self, name: str) -> bool:
        return any(opt == name for opt, _ in self.options)

    def option_value(self, name: str) -> str | None:
        values = [v for opt, v in self.options if opt == name]
        return values[-1] if values else None

    def slot_for(self, option: str) -> Slot | None:
        found = [s for s in self.slots if s.option == option]
        return found[-1] if found else None  # getopt semantics: the last occurrence wins

    @property
    def inputs(self) -> tuple[Slot, ...]:
        return tuple(s for s in self.slots if s.role is Role.INPUT)

    @property
    def outputs(self) -> tuple[Slot, ...]:
        return tuple(s for s in self.slots if s.role is Role.OUTPUT)

    def render(self, paths: Mapping[int, str], *, extra: Sequence[str] = ()) -> list[str]:
        """The argv to execute: each slot replaced by `paths[slot.number]` (default: as given)."""
        argv = [self.tool]
        for piece in self.template:
            if isinstance(piece, Slot):
                argv.append(piece.prefix + paths.get(piece.number, piece.text))
            else:
                argv.append(piece)
        # Extra options go before a `--` terminator if the user wrote one, else at the end.
        if extra:
            if "--" in argv:
                cut = argv.index("--")
                argv[cut:cut] = list(extra)
            else:
                argv.extend(extra)
        return argv


class _Builder:
    def __init__(self, declared: Mapping[str, Role]) -> None:
        self.template: list[str | Slot] = []
        self.slots: list[Slot] = []
        self.options: list[tuple[str, str | None]] = []
        self.declared = declared
        self.used_declared: set[str] = set()

    def slot(self, option: str, text: str, role: OptionRole, prefix: str = "") -> None:
        loc = parse_part_prefix(text, option) if role.kind is Kind.PART_PREFIX else _location(text, option)
        if loc.pinned and role.role is Role.OUTPUT:
            # A pin names content that already exists; a write would silently ignore it.
            raise UsageError(
                f"{option + ' ' if option else ''}{text}: an output cannot be pinned; drop its "
                "?versionId=/?etag= query"
            )
        s = Slot(len(self.slots), option, text, loc, role.role, role.kind, prefix)
        self.slots.append(s)
        self.template.append(s)

    def literal(self, token: str, *, value: str | None = None, option: str = "", prefix: str = "") -> None:
        """A token without a profile role: a declared file, a plain literal, or an error if remote."""
        text = token[len(prefix) :] if prefix else token
        if text in self.declared:
            self.used_declared.add(text)
            role = OptionRole(self.declared[text], Kind.FILE)
            self.slot(option, text, role, prefix)
            return
        check = value if value is not None else text
        if looks_remote(check):
            where = f" (option {option})" if option else ""
            raise UsageError(
                f"argument {check!r}{where} names a remote object but has no input/output role for tool "
                f"{os.path.basename(self.tool_name)}; declare it with --input or --output"
            )
        self.template.append(token)

    tool_name = ""


def _location(text: str, option: str) -> Location:
    if text == "-":
        return Location("file", path="-")
    try:
        return parse_location(text)
    except LocationError as exc:
        raise UsageError(f"{option + ' ' if option else ''}{exc}") from None


def parse_command(
    argv: Sequence[str],
    *,
    declared_inputs: Sequence[str] = (),
    declared_outputs: Sequence[str] = (),
) -> ParsedCommand:
    """Parse `TOOL ARGS...` with the tool's profile and the worker's `--input`/`--output` declarations."""
    if not argv:
        raise UsageError("no tool given: usage alignbatch-worker [options] -- TOOL ARGS...")
    tool, args = argv[0], list(argv[1:])
    profile = profile_for(tool)
    declared: dict[str, Role] = {}
    for text in declared_inputs:
        declared[text] = Role.INPUT
    for text in declared_outputs:
        if declared.get(text) is Role.INPUT:
            raise UsageError(f"{text!r} is declared both as --input and --output")
        declared[text] = Role.OUTPUT
    b = _Builder(declared)
    b.tool_name = tool
    short = _short_spec(profile.short_options)
    flags = args[: args.index("--")] if "--" in args else args
    operand_role = next((r for flag, r in profile.operand_roles.items() if flag in flags), None)
    i = 0
    options_done = False
    while i < len(args):
        tok = args[i]
        i += 1
        if options_done or tok == "-" or not tok.startswith("-"):
            if operand_role is not None and tok not in declared:
                b.slot("", tok, operand_role)
            else:
                b.literal(tok)
            continue
        if tok == "--":
            options_done = True
            b.template.append(tok)
            continue
        if tok.startswith("--"):
            name, eq, value = tok[2:].partition("=")
            takes = profile.long_options.get(name)
            opt = "--" + name
            if takes is None:  # unknown long option: only `--x=VALUE` can name a file
                if eq:
                    b.literal(tok, value=value, option=opt, prefix=opt + "=")
                else:
                    b.literal(tok)
                continue
            if not takes:
                b.options.append((opt, None))
                b.template.append(tok)
                continue
            if not eq:
                if i >= len(args):
                    raise UsageError(f"option {opt} of {os.path.basename(tool)} needs a value")
                value = args[i]
                i += 1
                b.template.append(opt)
                prefix = ""
            else:
                prefix = opt + "="
            b.options.append((opt, value))
            role = profile.roles.get(opt)
            if role is not None:
                b.slot(opt, value, role, prefix)
            elif opt in profile.passthrough:
                b.template.append(prefix + value)
            else:
                b.literal(prefix + value, value=value, option=opt, prefix=prefix)
            continue
        # Short options, getopt style: clusters (-Ci x) and attached values (-ix.bam).
        j = 1
        while j < len(tok):
            ch = tok[j]
            opt = "-" + ch
            if ch not in short:
                # Unknown to the profile: keep the rest verbatim and let the tool report it.
                b.template.append(tok if j == 1 else "-" + tok[j:])
                break
            if not short[ch]:
                b.options.append((opt, None))
                b.template.append(opt)
                j += 1
                continue
            if j + 1 < len(tok):
                value = tok[j + 1 :]
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise UsageError(f"option {opt} of {os.path.basename(tool)} needs a value")
            b.options.append((opt, value))
            b.template.append(opt)
            role = profile.roles.get(opt)
            if role is not None:
                b.slot(opt, value, role)
            elif opt in profile.passthrough:
                b.template.append(value)
            else:
                b.literal(value, option=opt)
            break
    missing = [d for d in declared if d not in b.used_declared]
    if missing:
        raise UsageError(f"declared file {missing[0]!r} does not appear in the tool's arguments")
    return ParsedCommand(tool, profile, tuple(b.template), tuple(b.slots), tuple(b.options))


def _short_spec(spec: str) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for idx, ch in enumerate(spec):
        if ch == ":":
            continue
        out[ch] = idx + 1 < len(spec) and spec[idx + 1] == ":"
    return out


# Companion files a tool finds next to an input by name (HTSlib's lookup order).
def companion_suffixes(kind: Kind, location: Location) -> list[tuple[str, bool]]:
    """(suffix, replace_extension) pairs to try for companions of an input; first found wins per group."""
    name = location.name.lower()
    if kind is Kind.ALIGNMENTS:
        if name.endswith(".cram"):
            return [(".crai", False), (".crai", True)]
        return [(".bai", False), (".csi", False), (".bai", True), (".csi", True)]
    return []


def fasta_companions(location: Location) -> list[str]:
    """Required (.fai) and, for bgzipped FASTA, .gzi suffixes appended to the FASTA name."""
    name = location.name.lower()
    if name.endswith((".gz", ".bgz", ".bgzf")):
        return [".fai", ".gzi"]
    return [".fai"]
