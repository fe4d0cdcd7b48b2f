"""The ledger's SQLite schema (created on first open; `schema_version` in `meta`)."""

SCHEMA_VERSION = 2

# Columns added after version 1, as (table, column, declaration): a ledger written by an older controller
# gets them with ALTER TABLE on open (controller.ledger.db), so an upgrade needs no migration step.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # Where the current attempt was sent and ran (controller.placement), and its reclaims so far.
    ("jobs", "queue", "TEXT"),
    ("jobs", "compute_environment", "TEXT"),
    ("jobs", "capacity", "TEXT"),
    ("jobs", "reclaims", "INTEGER NOT NULL DEFAULT 0"),
    # Earlier attempts of this step (JSON list: job id, queue, compute environment, capacity, start,
    # stop, reason), kept when a reclaimed step is submitted again so its cost is not forgotten.
    ("jobs", "history", "TEXT"),
    # Submitted as child `array_index` of the array job `array_name` (controller/array_submit.py): the
    # name resolves a crashed array submission, like a single job's name does.
    ("jobs", "array_name", "TEXT"),
    ("jobs", "array_index", "INTEGER"),
)
# Indexes on added columns: created after ADDED_COLUMNS exist (an old ledger gets them on open).
ADDED_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_array_name ON jobs (array_name) WHERE array_name IS NOT NULL;
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    etag TEXT NOT NULL,
    version_id TEXT,
    size INTEGER NOT NULL,
    sample TEXT NOT NULL,
    input_uri TEXT NOT NULL,
    inbox_key TEXT NOT NULL,
    report_uri TEXT,
    row_uri TEXT,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    reason TEXT,
    event_time REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (bucket, key, version)
);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    step TEXT NOT NULL,
    name TEXT NOT NULL,
    job_id TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    reason TEXT,
    log_stream TEXT,
    spec TEXT NOT NULL,
    intent_at REAL,
    submitted_at REAL,
    started_at REAL,
    stopped_at REAL,
    updated_at REAL NOT NULL,
    queue TEXT,
    compute_environment TEXT,
    capacity TEXT,
    reclaims INTEGER NOT NULL DEFAULT 0,
    history TEXT,
    array_name TEXT,
    array_index INTEGER,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_job_id ON jobs (job_id);
CREATE TABLE IF NOT EXISTS outputs (
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    uri TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (run_id, kind)
);
CREATE TABLE IF NOT EXISTS index_objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE IF NOT EXISTS results (
    inbox_key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    finished_at REAL NOT NULL,
    row TEXT NOT NULL
);
"""
