"""QC on top of the alignstats reports (#16): the operators' batch report, the run history, the MultiQC
plugin. Verdicts themselves are computed in `core.qc`, which the finish stage and `check` import.

Modules: `results_files` (find reports and rows in a RESULTS directory; pure where it can be),
`history` (the Parquet history of rows), `batch_report` (one static HTML page), `multiqc_plugin`
(loaded only by MultiQC, through the `multiqc.modules.v1` / `multiqc.hooks.v1` entry points).
"""
