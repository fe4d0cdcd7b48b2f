"""Compile the built-in engine's numba kernels once, at image build time, into NUMBA_CACHE_DIR.

Runs inside the image build (deploy/docker/Dockerfile) with NUMBA_CACHE_DIR=/opt/alignbatch/numba-cache and
NUMBA_CPU_NAME=generic: it writes a small coordinate-sorted paired-end BAM and a target BED with pysam, runs
`alignbatch-alignstats` over them in the whole-genome (-C) and the capture (-t) modes - between them every
cached kernel - and then runs both again with NUMBA_DEBUG_CACHE=1, failing if the second pass compiled
(saved) anything. Without this every job on a fresh host would spend seconds compiling before its first
record.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pysam

REF_LEN = 20_000
READ_LEN = 100


def write_inputs(workdir: Path) -> tuple[Path, Path]:
    bam = workdir / "warm.bam"
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chrW", "LN": REF_LEN}]}
    records = []
    with pysam.AlignmentFile(str(bam), "wb", header=header) as out:
        for i in range(400):
            pos = (i * 37) % (REF_LEN - 2 * READ_LEN - 300)
            mate = pos + 150 + (i % 50)
            for first, start, other in ((True, pos, mate), (False, mate, pos)):
                rec = pysam.AlignedSegment(out.header)
                rec.query_name = f"r{i}"
                rec.query_sequence = "ACGT" * (READ_LEN // 4)
                rec.query_qualities = pysam.qualitystring_to_array("I" * READ_LEN)
                rec.reference_id = rec.next_reference_id = 0
                rec.reference_start, rec.next_reference_start = start, other
                rec.mapping_quality = 20 + i % 40
                rec.cigarstring = f"{READ_LEN}M" if i % 7 else f"5S{READ_LEN - 10}M2I3M"
                rec.is_paired = rec.is_proper_pair = True
                rec.is_read1, rec.is_read2 = first, not first
                rec.is_reverse, rec.mate_is_reverse = not first, first
                rec.is_duplicate = i % 11 == 0
                rec.template_length = (other + READ_LEN - start) * (1 if first else -1)
                rec.set_tag("NM", i % 3)
                rec.set_tag("MC", f"{READ_LEN}M")
                records.append(rec)
        records.sort(key=lambda r: r.reference_start)
        for rec in records:
            out.write(rec)
    pysam.index(str(bam))
    bed = workdir / "warm.bed"
    bed.write_text("chrW\t1000\t3000\nchrW\t8000\t8500\nchrW\t15000\t19000\n")
    return bam, bed


def run_engine(args: list[str], workdir: Path, debug: bool) -> str:
    # The JIT path is what this cache is for: the image's compiled kernels would otherwise be chosen and
    # numba never loaded (worker/engine/aot.py).
    env = {**os.environ, "NUMBA_DEBUG_CACHE": "1" if debug else "0", "ALIGNBATCH_ENGINE_AOT": "0"}
    engine = Path(sys.executable).parent / "alignbatch-alignstats"
    proc = subprocess.run(
        [str(engine), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        sys.exit(
            f"warm_numba: alignbatch-alignstats {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        )
    return proc.stdout + proc.stderr


def main() -> None:
    if not os.environ.get("NUMBA_CACHE_DIR"):
        sys.exit("warm_numba: set NUMBA_CACHE_DIR to the directory the image ships")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bam, bed = write_inputs(workdir)
        modes = [["-C", "-i", bam.name, "-o", "wgs.json"], ["-t", bed.name, "-i", bam.name, "-o", "cap.json"]]
        for args in modes:
            run_engine(args, workdir, debug=False)
        for args in modes:
            out = run_engine(args, workdir, debug=True)
            saved = [line for line in out.splitlines() if "data saved" in line]
            if saved or "data loaded" not in out:
                sys.exit(f"warm_numba: the second pass did not run from the cache: {saved or out[-500:]}")
    entries = sorted(p.name for p in Path(os.environ["NUMBA_CACHE_DIR"]).rglob("*.nbi"))
    print(f"warm_numba: {len(entries)} kernels cached for CPU {os.environ.get('NUMBA_CPU_NAME', 'host')}")


if __name__ == "__main__":
    main()
