"""Cost per sample (#18): the price table, each attempt's share, the row's execution columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.config import CostConfig
from controller.cost import Attempt, PriceTable, attempt_cost, price_table, total_cost
from controller.placement import QueuePolicy
from tests.support.fakes import ScriptedExecutor, local_controller, submit_run

PRICES = PriceTable(
    on_demand_vcpu_hour=0.04, on_demand_gib_hour=0.005, spot_vcpu_hour=0.01, spot_gib_hour=0.001
)


def test_default_prices_reproduce_the_instances_they_were_split_from() -> None:
    table = price_table(CostConfig())
    # m6i.large: 2 vCPU, 8 GiB, $0.096/h; c6i.large: 2 vCPU, 4 GiB, $0.085/h (us-east-1 On-Demand).
    assert 2 * table.on_demand_vcpu_hour + 8 * table.on_demand_gib_hour == pytest.approx(0.096)
    assert 2 * table.on_demand_vcpu_hour + 4 * table.on_demand_gib_hour == pytest.approx(0.085)
    assert table.spot_vcpu_hour < table.on_demand_vcpu_hour and table.spot_gib_hour < table.on_demand_gib_hour
    assert CostConfig().prices_as_of  # the config says when the prices were taken


def test_an_attempt_costs_its_reservation_for_its_run_time_on_its_capacity() -> None:
    hour = Attempt(vcpus=2, memory_mib=4096, started_at=100.0, stopped_at=3700.0, capacity="on_demand")
    cost = attempt_cost(hour, PRICES)
    assert (cost.vcpu_seconds, cost.memory_gib_seconds) == (7200.0, 14400.0)
    assert cost.est_cost_usd == pytest.approx(2 * 0.04 + 4 * 0.005)
    spot = attempt_cost(Attempt(2, 4096, 100.0, 3700.0, "spot"), PRICES)
    assert spot.est_cost_usd == pytest.approx(2 * 0.01 + 4 * 0.001)
    assert attempt_cost(Attempt(2, 4096, 100.0, 3700.0, "local"), PRICES).est_cost_usd == 0.0
    # Unknown capacity: priced On-Demand, the upper bound; never started: nothing.
    assert attempt_cost(Attempt(2, 4096, 100.0, 3700.0, None), PRICES) == cost
    assert attempt_cost(Attempt(2, 4096, None, None, "spot"), PRICES).vcpu_seconds == 0.0
    both = total_cost([hour, Attempt(2, 4096, 100.0, 3700.0, "spot")], PRICES)
    assert both.est_cost_usd == pytest.approx(cost.est_cost_usd + spot.est_cost_usd)


def test_a_finished_runs_row_carries_where_it_ran_and_every_attempts_cost(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    executor.release.set()  # SubmitJob answers at once
    ctl = local_controller(tmp_path, executor)
    ctl.finisher.prices = PRICES
    policy = QueuePolicy(queues=("spot", "ondemand"), reclaims_before_fallback=1)
    ctl.queues = ctl.submitter.queues = ctl.reconciler.queues = policy
    run_id = submit_run(ctl, "s.bam", "s", steps=("index",))
    run = ctl.ledger.get_run(run_id)
    Path(run.row_uri).parent.mkdir(parents=True, exist_ok=True)
    Path(run.row_uri).write_text(json.dumps({"sample": "s", "run_id": run_id, "TotalRecords": 3}))
    # index: 1 vCPU / 2 GiB for 100 s on Spot. alignstats (1 vCPU / 2 GiB, the smallest tier): reclaimed
    # after 360 s on Spot, then 720 s On-Demand. summary (1 vCPU / 512 MiB): 36 s On-Demand.
    executor.states["s-index"] = "SUCCEEDED"
    executor.ran["s-index"] = (0.0, 100.0, "ce-spot", "spot")
    ctl.reconcile()
    ctl.submit_ready()
    stats = ctl.ledger.jobs_for_run(run_id)[1]
    executor.states[stats.job_id] = "FAILED"
    executor.reasons[stats.job_id] = "Host EC2 (instance i-1) terminated."
    executor.ran[stats.job_id] = (100.0, 460.0, "ce-spot", "spot")
    ctl.reconcile()
    ctl.submit_ready()
    stats, summary = ctl.ledger.jobs_for_run(run_id)[1:]
    assert stats.queue == "ondemand"
    executor.states.update({stats.job_id: "SUCCEEDED", summary.job_id: "SUCCEEDED"})
    executor.ran[stats.job_id] = (500.0, 1220.0, "ce-od", "on_demand")
    executor.ran[summary.job_id] = (1220.0, 1256.0, "ce-od", "on_demand")
    ctl.reconcile()

    assert ctl.ledger.get_run(run_id).state == "succeeded"
    written = json.loads(Path(run.row_uri).read_text())  # the durable row has them, so the table does
    [row] = ctl.ledger.result_rows()
    for r in (row, written):
        # Submissions: index 1, alignstats 2, summary 2 (the first waited on the reclaimed attempt and
        # was cancelled before it ran: it costs nothing).
        assert (r["attempts"], r["reclaims"]) == (5, 1)
        assert (r["queue"], r["compute_environment"], r["capacity"]) == ("ondemand", "ce-od", "on_demand")
        assert r["vcpu_seconds"] == 100 + 360 + 720 + 36
        assert r["memory_gib_seconds"] == 2 * 100 + 2 * 360 + 2 * 720 + 0.5 * 36
        spot_usd = (460 * 0.01 + 920 * 0.001) / 3600
        od_usd = (756 * 0.04 + (1440 + 18) * 0.005) / 3600
        assert r["est_cost_usd"] == pytest.approx(spot_usd + od_usd, abs=1e-6)
        assert [s["step"] for s in r["steps"]] == ["index", "alignstats", "summary"]
    table = (tmp_path / "results" / "table" / "results.jsonl").read_text()
    assert json.loads(table.splitlines()[0])["est_cost_usd"] == row["est_cost_usd"]
    sample = ctl.metrics.registry.get_sample_value
    labels = {"pipeline": row.get("pipeline_version", ""), "assay": "wgs"}
    assert sample("alignbatch_cost_usd_total", labels) == pytest.approx(row["est_cost_usd"])
    assert sample("alignbatch_costed_runs_total", labels) == 1
