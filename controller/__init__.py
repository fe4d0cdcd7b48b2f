"""alignbatch controller: inbox events → ledger → planner → executor → reconcile → results table.
Stages are modules (intake, submit, reconcile, finish) behind the `service.Controller` facade."""
