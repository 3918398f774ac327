-- 0003 drift loop (issue 9): daily drift snapshots, model versions, nightly audit runs and the
-- posts they audited. Snapshots, versions and runs are stored whole as JSON (body, msgspec's
-- encoding of the record) next to the columns that queries filter or sort on: they are small,
-- read by key or by day, and their nested parts (per-language histograms) need no child tables.

CREATE TABLE drift_snapshots (
    snapshot_id          text COLLATE "C" PRIMARY KEY,
    day                  date NOT NULL,
    model_version        text NOT NULL,
    "timestamp"          timestamptz NOT NULL,
    final                boolean NOT NULL,
    drift_score          double precision NOT NULL,
    low_confidence_pct   double precision NOT NULL,
    retraining_triggered boolean NOT NULL,
    body                 jsonb NOT NULL
);
CREATE INDEX drift_snapshots_day ON drift_snapshots (day, "timestamp");

CREATE TABLE model_versions (
    version_id  text COLLATE "C" PRIMARY KEY,
    status      text NOT NULL,
    f1_score    double precision NOT NULL,
    created_at  timestamptz NOT NULL,
    promoted_at timestamptz,
    body        jsonb NOT NULL
);

CREATE TABLE audit_runs (
    run_id text COLLATE "C" PRIMARY KEY,
    day    date NOT NULL,
    status text NOT NULL,
    body   jsonb NOT NULL
);

CREATE TABLE audit_items (
    run_id     text COLLATE "C" NOT NULL,
    request_id text COLLATE "C" NOT NULL,
    language   text NOT NULL,
    fast_label text NOT NULL,
    llm_label  text NOT NULL,
    agreed     boolean NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (run_id, request_id)
);
