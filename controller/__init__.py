"""alignbatch controller: inbox events → intake → plan → ledger → submit → executor → reconcile → finish.
Stages are modules (intake, submit, reconcile, finish) behind the `service.Controller` facade."""
