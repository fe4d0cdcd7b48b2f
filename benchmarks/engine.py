"""Benchmark the built-in alignstats engine against `samtools stats`: speed, and memory as operators see it.

Usage: python benchmarks/engine.py DIR [--bam e_large.bam] [--repeat N] [--golden GOLDEN_DIR]
                                   [--only=LABEL,...] [--no-scaling] [--slack-mb 4]

DIR holds the BAM and targets.bed (e.g. /work/large after `make_data.sh DIR --large-only`).

Per command (median wall of N runs): wall, CPU (user, sys) and memory:
- VmHWM: peak resident set (the kernel's high-water mark);
- RssAnon: peak private memory, RssFile: peak file-backed memory (shared libraries: shared between
  processes and evictable), both sampled from /proc/PID/status every 2 ms;
- the fixed runtime baseline measured in the same run: the engine with the same flags on a tiny BAM
  (one 1 kbp contig, 10 reads), and the data-dependent part, peak - baseline, next to the issue's budget
  4 B x (longest contig + 1) + SLACK MB, computed from the BAM header.
Then two scaling checks: the engine on two synthetic BAMs written with pysam, the same reads on a 1 Mbp and
on a 50 Mbp contig (private memory must grow by ~4 B per extra base), and on a 10% subsample of the BAM with
the same header (it must not grow with the number of reads). `samtools stats` runs in the same session for
the speed target: `-C` within 2x its wall time. With --golden, checks the case e reports byte for byte.
Prints figures only; nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import Measure, load_text, measure

MIB = 1024 * 1024
ENGINE_CONFIGS = {
    "-C": ["-C"],
    "-C -p": ["-C", "-p"],
    "-C -W": ["-C", "-W"],
    "-A -C": ["-A", "-C"],
    "-t targets.bed": ["-t", "targets.bed"],
}
GOLDEN_NAMES = {"-C": "e_large__C.json", "-t targets.bed": "e_large__t.json"}


def summarise(runs: list[Measure]) -> Measure:
    """Median wall (with that run's CPU); memory peaks are the maximum over the runs."""
    mid = sorted(runs, key=lambda m: m.wall)[len(runs) // 2]
    return Measure(
        statistics.median(m.wall for m in runs),
        mid.user,
        mid.sys,
        max(m.hwm_mb for m in runs),
        max(m.anon_mb for m in runs),
        max(m.file_mb for m in runs),
        max(m.exit_code for m in runs),
    )


def repeat(cmd: list[str], cwd: Path, n: int) -> Measure:
    return summarise([measure(cmd, cwd) for _ in range(n)])


def write_bam(path: Path, contigs: list[tuple[str, int]], n_reads: int, read_len: int = 100) -> None:
    """A coordinate-sorted BAM of n_reads unpaired reads spread evenly over the first contig."""
    import pysam

    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": n, "LN": ln} for n, ln in contigs]}
    span = max(contigs[0][1] - read_len, 1)
    quals = pysam.qualitystring_to_array("I" * read_len)
    seq = ("ACGT" * (read_len // 4 + 1))[:read_len]
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for i in range(n_reads):
            rec = pysam.AlignedSegment(out.header)
            rec.query_name = f"r{i}"
            rec.flag = 0
            rec.reference_id = 0
            rec.reference_start = i * span // max(n_reads, 1)
            rec.mapping_quality = 60
            rec.cigartuples = [(0, read_len)]
            rec.query_sequence = seq
            rec.query_qualities = quals
            out.write(rec)


def bam_info(path: Path) -> tuple[int, int]:
    """(longest contig, number of records) from the header and the index (or a full count)."""
    import pysam

    with pysam.AlignmentFile(str(path), "rb", check_sq=False) as af:
        longest = max(af.lengths) if af.lengths else 0
        try:
            records = sum(s.total for s in af.get_index_statistics()) + af.nocoordinate
        except ValueError:
            records = sum(1 for _ in af.fetch(until_eof=True))
    return longest, records


def fmt_row(name: str, m: Measure, base: Measure | None) -> str:
    extra = f"{m.anon_mb - base.anon_mb:9.1f} {m.hwm_mb - base.hwm_mb:9.1f}" if base else f"{'-':>9} {'-':>9}"
    return (
        f"{name:<38} {m.wall:7.2f} {m.user:7.2f} {m.sys:6.2f} {m.hwm_mb:8.1f} {m.anon_mb:8.1f} "
        f"{m.file_mb:8.1f} {base.anon_mb if base else float('nan'):8.1f} {extra}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--bam", default="e_large.bam")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--golden", type=Path, default=None)
    ap.add_argument(
        "--only",
        default=None,
        help=f"comma-separated engine configs to run (--only=-C,-A -C), of {list(ENGINE_CONFIGS)}",
    )
    ap.add_argument("--no-scaling", action="store_true", help="skip the synthetic scaling checks")
    ap.add_argument("--slack-mb", type=float, default=4.0, help="the budget's 'few MB' (default 4)")
    args = ap.parse_args()
    engine = shutil.which("alignbatch-alignstats") or str(
        Path(sys.executable).parent / "alignbatch-alignstats"
    )
    samtools = shutil.which("samtools")
    bam = args.dir / args.bam
    if not bam.exists():
        print(f"{bam} not found", file=sys.stderr)
        return 66
    configs = {k: v for k, v in ENGINE_CONFIGS.items() if args.only is None or k in args.only.split(",")}
    longest, records = bam_info(bam)
    budget = 4 * (longest + 1) / MIB + args.slack_mb
    print(f"case: {bam}  records={records:,}  longest contig={longest:,} bp  repeat={args.repeat}")
    print(f"cpus={os.cpu_count()}  load before: {load_text()}")
    rows: list[tuple[str, Measure, Measure | None]] = []
    golden_ok: dict[str, bool] = {}
    scaling: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    try:
        tiny = tmp / "tiny.bam"
        write_bam(tiny, [("chr1", 1000)], 10)
        (tmp / "tiny.bed").write_text("chr1\t100\t300\n")
        # warm the page cache so the first timed run is not penalised (numba's cache is on disk)
        subprocess.run(["cat", str(bam)], stdout=subprocess.DEVNULL, check=False)
        subprocess.run(
            [engine, "-C", "-i", str(tiny), "-o", os.devnull], stderr=subprocess.DEVNULL, check=False
        )
        for label, opts in configs.items():
            out = tmp / (label.replace(" ", "_") + ".json")
            tiny_opts = [str(tmp / "tiny.bed") if o == "targets.bed" else o for o in opts]
            base = repeat([engine, *tiny_opts, "-i", str(tiny), "-o", os.devnull], args.dir, args.repeat)
            m = repeat([engine, *opts, "-i", args.bam, "-o", str(out)], args.dir, args.repeat)
            rows.append((f"alignbatch-alignstats {label}", m, base))
            if args.golden and label in GOLDEN_NAMES:
                golden_ok[label] = out.read_bytes() == (args.golden / GOLDEN_NAMES[label]).read_bytes()
        if samtools:
            rows.append(
                ("samtools stats", repeat([samtools, "stats", args.bam], args.dir, args.repeat), None)
            )
        if not args.no_scaling:
            scaling = scaling_checks(
                engine, samtools, bam, tmp, args.repeat, dict((r[0], r[1]) for r in rows)
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"load after: {load_text()}")
    print()
    print("MiB; anon = peak RssAnon (private), file = peak RssFile (shared libraries); base = the same")
    print("flags on a tiny BAM (fixed runtime); d.anon, d.hwm = peak - base (data-dependent)")
    print(
        f"{'command':<38} {'wall s':>7} {'user s':>7} {'sys s':>6} {'VmHWM':>8} {'anon':>8} {'file':>8} "
        f"{'base':>8} {'d.anon':>9} {'d.hwm':>9}"
    )
    for name, m, base in rows:
        print(fmt_row(name, m, base))
    print()
    depth = 4 * (longest + 1) / MIB
    print(
        f"budget: 4 B x (longest contig + 1) + {args.slack_mb:g} MiB = {depth:.1f} + {args.slack_mb:g} "
        f"= {budget:.1f} MiB of data-dependent memory"
    )
    for name, m, base in rows:
        if base is not None:
            d = m.anon_mb - base.anon_mb
            # -C -W (alignment metrics only) keeps no depth array
            arr = 0.0 if {"-C", "-W"} <= set(name.split()) else depth
            print(
                f"  {name:<38} d.anon {d:5.1f} MiB (depth array {arr:.1f} + {d - arr:4.1f} other): "
                f"{'within' if d <= budget else 'OVER'} budget"
            )
    walls = {name: m for name, m, _ in rows}
    if "samtools stats" in walls and "alignbatch-alignstats -C" in walls:
        e, s = walls["alignbatch-alignstats -C"], walls["samtools stats"]
        print(
            f"-C wall ratio engine/samtools stats: {e.wall / s.wall:.2f} (target <= 2.00); "
            f"CPU ratio {(e.user + e.sys) / (s.user + s.sys):.2f}"
        )
    for line in scaling:
        print(line)
    for label, ok in golden_ok.items():
        print(f"golden {GOLDEN_NAMES[label]}: {'identical' if ok else 'DIFFERENT'}")
    return 0


def scaling_checks(
    engine: str, samtools: str | None, bam: Path, tmp: Path, n: int, done: dict[str, Measure]
) -> list[str]:
    lines = ["", "scaling (-C, peak RssAnon MiB):"]
    short_len, long_len, reads = 1_000_000, 50_000_000, 20_000
    short, long = tmp / "short.bam", tmp / "long.bam"
    write_bam(short, [("big", short_len)], reads)
    write_bam(long, [("big", long_len)], reads)
    a = repeat([engine, "-C", "-i", str(short), "-o", os.devnull], tmp, n)
    b = repeat([engine, "-C", "-i", str(long), "-o", os.devnull], tmp, n)
    expect = 4 * (long_len - short_len) / MIB
    lines.append(
        f"  contig {short_len:>12,} bp, {reads:,} reads: anon {a.anon_mb:7.1f}  VmHWM {a.hwm_mb:7.1f}"
    )
    lines.append(
        f"  contig {long_len:>12,} bp, {reads:,} reads: anon {b.anon_mb:7.1f}  VmHWM {b.hwm_mb:7.1f}"
    )
    lines.append(
        f"  growth {b.anon_mb - a.anon_mb:.1f} MiB for {long_len - short_len:,} more bases; "
        f"4 B/base predicts {expect:.1f} MiB (ratio {(b.anon_mb - a.anon_mb) / expect:.3f})"
    )
    if samtools:
        sub = tmp / "subsample.bam"
        subprocess.run([samtools, "view", "-b", "-s", "0.1", "-o", str(sub), str(bam)], check=True)
        sub_n = bam_info_count(samtools, sub)
        full = done.get("alignbatch-alignstats -C") or repeat(
            [engine, "-C", "-i", str(bam), "-o", os.devnull], bam.parent, n
        )
        s = repeat([engine, "-C", "-i", str(sub), "-o", os.devnull], tmp, n)
        _, full_n = bam_info(bam)
        lines.append(
            f"  {bam.name} 10% subsample, {sub_n:>10,} records: anon {s.anon_mb:7.1f}  VmHWM {s.hwm_mb:7.1f}"
        )
        lines.append(
            f"  {bam.name} full,          {full_n:>10,} records: "
            f"anon {full.anon_mb:7.1f}  VmHWM {full.hwm_mb:7.1f}"
        )
        extra = full_n - sub_n
        d = full.anon_mb - s.anon_mb
        verdict = "no per-read storage" if abs(d) < 2 else "GROWS with the reads"
        lines.append(
            f"  growth {d:+.1f} MiB for {extra:,} more records "
            f"({d * MIB / max(extra, 1):+.2f} bytes/record): {verdict}"
        )
    return lines


def bam_info_count(samtools: str, path: Path) -> int:
    out = subprocess.run([samtools, "view", "-c", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


if __name__ == "__main__":
    sys.exit(main())
