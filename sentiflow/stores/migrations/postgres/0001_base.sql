-- 0001 base schema: results (request + final result, one row per request_id), their aspects,
-- batch jobs with their requests, and webhook delivery attempts.
--
-- Identifiers use COLLATE "C": byte order (the same order SQLite gives, so both stores return
-- aspects in the same order) and cheaper comparisons in the primary-key indexes.

-- One row per request_id: the ClassificationRequest as received (request columns) and its
-- final ClassificationResult. Kept in one row because they are written together (ResultRecord is
-- the unit every writer receives) and read together by request_id; one primary-key upsert.
CREATE TABLE results (
    request_id         text COLLATE "C" PRIMARY KEY,
    -- ClassificationRequest
    text               text NOT NULL,
    language_requested text NOT NULL,
    source             text NOT NULL,
    topic              text,
    priority           text NOT NULL,
    aspects_requested  boolean NOT NULL,
    received_at        timestamptz NOT NULL,
    -- ClassificationResult
    sentiment          text NOT NULL,
    confidence         double precision NOT NULL,
    model_used         text NOT NULL,
    model_version      text NOT NULL,
    language_detected  text NOT NULL,
    latency_ms         double precision NOT NULL,
    created_at         timestamptz NOT NULL,
    tier               text NOT NULL,
    needs_review       boolean NOT NULL,
    fast_confidence    double precision
);
CREATE INDEX results_created ON results (created_at);
CREATE INDEX results_review ON results (created_at) WHERE needs_review;

-- AspectSentiment rows of a result; replaced as a whole when the result is rewritten.
CREATE TABLE aspects (
    result_id   text COLLATE "C" NOT NULL REFERENCES results (request_id) ON DELETE CASCADE,
    aspect_id   text COLLATE "C" NOT NULL,
    aspect_name text NOT NULL,
    sentiment   text NOT NULL,
    confidence  double precision NOT NULL,
    span_start  integer,
    span_end    integer,
    PRIMARY KEY (result_id, aspect_id)
);

CREATE TABLE batches (
    batch_id    text COLLATE "C" PRIMARY KEY,
    count       integer NOT NULL CHECK (count >= 0),
    status      text NOT NULL,
    priority    text NOT NULL,
    webhook_url text,
    done        integer NOT NULL CHECK (done >= 0),
    error       text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
-- Resuming after a restart lists the unfinished jobs only.
CREATE INDEX batches_unfinished ON batches (created_at) WHERE status IN ('queued', 'running');

-- The requests of a batch job in submission order (resumable: pending = no row in results).
CREATE TABLE batch_items (
    batch_id    text COLLATE "C" NOT NULL REFERENCES batches (batch_id) ON DELETE CASCADE,
    position    integer NOT NULL,
    request_id  text COLLATE "C" NOT NULL,
    text        text NOT NULL,
    language    text NOT NULL,
    source      text NOT NULL,
    topic       text,
    priority    text NOT NULL,
    aspects     boolean NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (batch_id, position)
);

CREATE TABLE webhook_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id    text COLLATE "C" NOT NULL,
    chunk_index integer NOT NULL,
    chunk_count integer NOT NULL,
    attempt     integer NOT NULL,
    outcome     text NOT NULL,
    status_code integer,
    error       text,
    duration_ms double precision NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX webhook_attempts_batch ON webhook_attempts (batch_id, id);
