"""alignbatch controller: inbox events -> ledger -> job DAG -> executor -> results table."""
