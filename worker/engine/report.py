"""Render accumulators as the alignstats v0.11 report (key order, C printf formatting, no escaping).

`build_report` is pure: accumulators + run context -> ordered (key, formatted value) pairs. `render_json`
reproduces the tool's byte layout; `render_tsv` is our extra (`--format tsv`), one `key<TAB>value` line each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from worker.engine import kernel as k
from worker.engine.accumulators import Accumulators
from worker.engine.stats import hist_stats

U64 = (1 << 64) - 1
THRESHOLDS = (1, 10, 15, 20, 30, 40, 50, 60, 70, 100, 500, 1000)


@dataclass(frozen=True)
class ReportContext:
    input_name: str
    input_size: int
    alignment: bool
    wgs: bool
    capture: bool
    total_targets: int = 0
    masked_bases: int = 0  # Q10: n @SQ + sum(BED end - 1 - start), 0 without -m


def fmt_float(x: float) -> str:
    if math.isnan(x):
        # glibc prints a NaN's sign ("-nan"); Python's formatting drops it
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    return "%f" % x  # noqa: UP031 - C printf %f semantics, 6 decimals


def pct(num: int, den: int) -> str:
    if den == 0:
        return "0.000000"
    return fmt_float(100.0 * float(num & U64) / float(den & U64))


def _int(v: int) -> str:
    return str(v & U64)


def build_report(acc: Accumulators, ctx: ReportContext) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []

    def put(key: str, value: str) -> None:
        out.append((key, value))

    put("InputFileName", f'"{ctx.input_name}"')
    put("InputFileSize", _int(ctx.input_size))
    total = acc.count(k.C_TOTAL)
    unf = acc.count(k.C_UNFILTERED)
    filt = acc.count(k.C_FILTERED)
    put("TotalRecords", _int(total))
    put("UnfilteredRecords", _int(unf))
    put("UnfilteredRecordsPct", pct(unf, total))
    put("FilteredRecords", _int(filt))
    put("FilteredRecordsPct", pct(filt, total))
    if ctx.alignment:
        _alignment(acc, put)
    if ctx.wgs:
        _coverage(acc, ctx, put, "Wgs")
    if ctx.capture:
        _coverage(acc, ctx, put, "Cap")
    return out


def _alignment(acc: Accumulators, put) -> None:
    for g, prefix in ((0, ""), (1, "R1"), (2, "R2")):
        a = lambda i, g=g: acc.aln_value(g, i)  # noqa: E731
        yr, yb = a(k.A_R_TOTAL), a(k.A_B_TOTAL)
        mr, mb = a(k.A_R_MAPPED), a(k.A_B_MAPPED)
        ab = a(k.A_B_ALIGNED)
        put(f"{prefix}YieldReads", _int(yr))
        put(f"{prefix}YieldBases", _int(yb))
        put(f"{prefix}UnmappedReads", _int(a(k.A_R_UNMAPPED)))
        put(f"{prefix}UnmappedReadsPct", pct(a(k.A_R_UNMAPPED), yr))
        put(f"{prefix}UnmappedBases", _int(a(k.A_B_UNMAPPED)))
        put(f"{prefix}UnmappedBasesPct", pct(a(k.A_B_UNMAPPED), yb))
        if g == 0:
            put("DuplicateReads", _int(a(k.A_R_DUP)))
            put("DuplicateReadsPct", pct(a(k.A_R_DUP), a(k.A_R_AQP)))
            put("DuplicateBases", _int(a(k.A_B_DUP)))
            put("DuplicateBasesPct", pct(a(k.A_B_DUP), a(k.A_B_AQP)))
        put(f"{prefix}MappedReads", _int(mr))
        put(f"{prefix}MappedReadsPct", pct(mr, yr))
        put(f"{prefix}MappedBases", _int(mb))
        put(f"{prefix}MappedBasesPct", pct(mb, yb))
        put(f"{prefix}AlignedBases", _int(ab))
        put(f"{prefix}AlignedBasesPct", pct(ab, yb))
        for name, idx in (
            ("MatchedBases", k.A_B_MATCHED),
            ("MismatchedBases", k.A_B_MISM),
            ("InsertedBases", k.A_B_INS),
            ("DeletedBases", k.A_B_DEL),
        ):
            put(f"{prefix}{name}", _int(a(idx)))
            put(f"{prefix}{name}Pct", pct(a(idx), ab))
        put(f"{prefix}SoftClippedReads", _int(a(k.A_R_SOFT)))
        put(f"{prefix}SoftClippedReadsPct", pct(a(k.A_R_SOFT), mr))
        put(f"{prefix}SoftClippedBases", _int(a(k.A_B_SOFT)))
        put(f"{prefix}SoftClippedBasesPct", pct(a(k.A_B_SOFT), mb))
        put(f"{prefix}PerfectReads", _int(a(k.A_R_PERFECT)))
        put(f"{prefix}PerfectReadsPct", pct(a(k.A_R_PERFECT), mr))
        put(f"{prefix}PerfectBases", _int(a(k.A_B_PERFECT)))
        put(f"{prefix}PerfectBasesPct", pct(a(k.A_B_PERFECT), mb))
        put(f"{prefix}Q20Bases", _int(a(k.A_Q20)))
        put(f"{prefix}Q20BasesPct", pct(a(k.A_Q20), ab))
        put(f"{prefix}Q30Bases", _int(a(k.A_Q30)))
        put(f"{prefix}Q30BasesPct", pct(a(k.A_Q30), ab))
    for g, prefix in ((0, ""), (1, "R1"), (2, "R2")):
        st = hist_stats(acc.read_length[g].items())
        put(f"{prefix}AlignedReadLengthMean", fmt_float(st.mean))
        put(f"{prefix}AlignedReadLengthMedian", _int(st.median))
        put(f"{prefix}AlignedReadLengthMode", _int(st.mode))
        put(f"{prefix}AlignedReadLengthStandardDeviation", fmt_float(st.sd))
    c = acc.count
    pairs_r2 = c(k.C_PAIRS_R2)
    put("TotalPairs", _int(c(k.C_TOTAL_PAIRS)))
    put("TotalSameChrPairs", _int(c(k.C_SAME_CHR)))
    put("TotalSameChrPairsPct", pct(c(k.C_SAME_CHR), pairs_r2))
    put("UnpairedReads", _int(c(k.C_UNPAIRED)))
    put("UnpairedReadsPct", pct(c(k.C_UNPAIRED), pairs_r2))
    put("R1UnpairedReads", _int(c(k.C_R1_UNPAIRED)))
    put("R1UnpairedReadsPct", pct(c(k.C_R1_UNPAIRED), pairs_r2))
    put("R2UnpairedReads", _int(c(k.C_R2_UNPAIRED)))
    put("R2UnpairedReadsPct", pct(c(k.C_R2_UNPAIRED), pairs_r2))
    put("ChimericReadPairPct", pct(c(k.C_CHIM_NUM), c(k.C_CHIM_DEN)))
    st = hist_stats(acc.insert_size.items())
    put("InsertSizeMean", fmt_float(st.mean))
    put("InsertSizeMedian", _int(st.median))
    put("InsertSizeMode", _int(st.mode))
    put("InsertSizeStandardDeviation", fmt_float(st.sd))


def _coverage(acc: Accumulators, ctx: ReportContext, put, prefix: str) -> None:
    c = acc.count
    total_reads = c(k.C_COV_TOTAL)
    aligned = c(k.C_COV_ALIGNED)
    dups = c(k.C_COV_DUP)
    if prefix == "Wgs":
        items = acc.wgs_depth.items()
        size = acc.genome_bases  # median/SD use the unmasked size (Q10)
        denom = (acc.genome_bases - ctx.masked_bases) & U64
    else:
        items = acc.cap_depth.items()
        size = acc.bases_on_target & U64
        denom = size
    cov_total = 0
    above = [0] * len(THRESHOLDS)
    for v, n in items:
        cov_total += v * n
        for i, t in enumerate(THRESHOLDS):
            if v >= t:
                above[i] += n
    st = hist_stats(items, mid=size // 2)
    mean = float(cov_total & U64) / float(denom) if denom else 0.0
    put(f"{prefix}TotalReads", _int(total_reads))
    put(f"{prefix}CovDuplicateReads", _int(dups))
    put(f"{prefix}CovDuplicateReadsPct", pct(dups, total_reads))
    put(f"{prefix}AlignedReads", _int(aligned))
    put(f"{prefix}AlignedReadsPct", pct(aligned, total_reads))
    put(f"{prefix}ReadsPaired", _int(c(k.C_COV_PAIRED)))
    put(f"{prefix}ReadsPairedWithMates", _int(c(k.C_COV_PAIRED_MATES)))
    put(f"{prefix}CoverageMean", fmt_float(mean))
    put(f"{prefix}CoverageMedian", _int(st.median))
    put(f"{prefix}CoverageStandardDeviation", fmt_float(st.sd))
    put(f"{prefix}ExpectedAlignedReads", _int(aligned))
    put(f"{prefix}CalculatedAlignedReads", _int(c(k.C_PROCESSED)))
    for t, n in zip(THRESHOLDS, above, strict=True):
        put(f"{prefix}CoverageBases{t}", _int(n))
        put(f"{prefix}CoverageBases{t}Pct", pct(n, denom))
    if prefix == "Wgs":
        put("WgsFilteredOverlapBases", _int(c(k.C_WGS_OVERLAP)))
        put("WgsFilteredLowBaseQualityBases", _int(c(k.C_WGS_LOWQ)))
        return
    put("CapFilteredOverlapBases", _int(c(k.C_CAP_OVERLAP)))
    put("CapFilteredLowBaseQualityBases", "0")  # Q8: always 0
    buf_reads = c(k.C_CAP_BUFFER_READS)
    tgt_reads = c(k.C_CAP_TARGET_READS)
    put("CapBufferAlignedReads", _int(buf_reads))
    put("CapBufferAlignedReadsPct", pct(buf_reads, aligned))
    put("CapTargetAlignedReads", _int(tgt_reads))
    put("CapTargetAlignedReadsPct", pct(tgt_reads, aligned))
    put("CapTargetsHit", _int(acc.targets_hit))
    put("CapTargetsHitPct", pct(acc.targets_hit, ctx.total_targets))
    put("CapTargetBuffersHit", _int(acc.target_buffers_hit))
    put("CapTargetBuffersHitPct", pct(acc.target_buffers_hit, ctx.total_targets))
    put("CapTotalTargets", _int(ctx.total_targets))
    put("CapHighCoverageNonTargetHits", _int(acc.high_coverage_non_target + acc.stale_hits()))
    put("CapBasesOnTarget", _int(acc.bases_on_target))
    put("CapBasesOnBuffer", _int(acc.bases_on_buffer))
    put("CapReadsOnTargetOrBuffer", _int(buf_reads + tgt_reads))
    put("CapReadsOnTargetOrBufferPct", pct(buf_reads + tgt_reads, aligned))


def render_json(pairs: list[tuple[str, str]]) -> str:
    body = ",\n".join(f'    "{key}": {value}' for key, value in pairs)
    return "{\n" + body + "\n}\n"


def render_tsv(pairs: list[tuple[str, str]]) -> str:
    lines = []
    for key, value in pairs:
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        lines.append(f"{key}\t{value}")
    return "\n".join(lines) + "\n"
