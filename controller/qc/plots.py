"""The batch report's plots as inline SVG, drawn with matplotlib (Agg, no display, no network).

Figures are made with `Figure` directly, not pyplot: no global figure registry, no GUI backend, nothing
to close, so rendering in a controller thread is safe (rc_context still sets global rcParams for the
duration of a plot: render one report at a time). Deterministic output (fixed hash salt, no date
metadata) so the same rows give the same page, and text kept as SVG <text> (svg.fonttype none) so
sample names are searchable on the page and readable by tests.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import matplotlib as mpl
from matplotlib.figure import Figure

from controller.qc.report_model import dom_id

if TYPE_CHECKING:
    from controller.qc.report_model import MetricDistribution

VERDICT_COLOURS = {"pass": "#2e7d32", "warn": "#ef8f00", "fail": "#c62828", "": "#607d8b", "none": "#607d8b"}
_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "alignbatch",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _svg(fig: Figure, plot_id: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buf.getvalue()
    # Inline: drop the XML prolog and DOCTYPE; make element ids unique per plot (several SVGs share a page).
    text = text[text.index("<svg") :]
    # matplotlib's RDF <metadata> block names four namespace URLs and says nothing a reader needs.
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{plot_id}-{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{plot_id}-{m.group(1)})", text)
    text = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{plot_id}-{m.group(1)}"', text)
    return text.replace("<svg ", f'<svg role="img" data-plot="{plot_id}" ', 1)


def distribution_svg(dist: MetricDistribution) -> str:
    """A strip plot of the period's samples (colour = verdict) over the trailing median and band, the
    samples outside the band labelled."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(6.4, 1.9))
        ax = fig.subplots()
        jitter = random.Random(dist.metric.key)  # fixed jitter: same page for the same rows
        base = dist.baseline
        if base is not None:
            ax.axvspan(base.low, base.high, color="#90caf9", alpha=0.35, lw=0, label="30-day spread")
            ax.axvline(base.median, color="#1565c0", lw=1.2, label=f"30-day median {base.median:,.4g}")
        by_verdict: dict[str, tuple[list[float], list[float]]] = {}
        for _, _, value, verdict in dist.values:
            xs, ys = by_verdict.setdefault(verdict or "none", ([], []))
            xs.append(value)
            ys.append(jitter.uniform(-0.35, 0.35))
        for verdict, (xs, ys) in sorted(by_verdict.items()):
            ax.scatter(
                xs,
                ys,
                s=14,
                color=VERDICT_COLOURS.get(verdict, "#607d8b"),
                label=verdict,
                zorder=3,
                linewidths=0,
            )
        for outlier in dist.outliers[:12]:
            ax.annotate(
                outlier.sample,
                (outlier.value, 0.42),
                fontsize=7,
                rotation=30,
                ha="left",
                va="bottom",
                color="#b71c1c",
            )
        ax.set_ylim(-0.6, 1.1)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_xlabel(f"{dist.metric.title} ({dist.metric.unit})")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        return _svg(fig, f"dist-{dom_id(dist.assay)}-{dist.metric.key}")


def throughput_svg(hours: Sequence[tuple[datetime, dict[str, int]]]) -> str:
    """Runs finished per hour, stacked by verdict."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(9.0, 2.2))
        ax = fig.subplots()
        xs = list(range(len(hours)))
        bottom = [0] * len(hours)
        for verdict in ("pass", "warn", "fail", "none"):
            heights = [counts.get(verdict, 0) for _, counts in hours]
            if any(heights):
                ax.bar(xs, heights, bottom=bottom, color=VERDICT_COLOURS[verdict], label=verdict, width=0.85)
                bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        step = max(1, len(hours) // 12)
        ax.set_xticks(
            xs[::step],
            [h.strftime("%m-%d %H:00") for h, _ in hours][::step],
            rotation=30,
            ha="right",
            fontsize=7,
        )
        ax.set_ylabel("runs / hour")
        if any(bottom):
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        return _svg(fig, "throughput")
