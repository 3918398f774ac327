-- 0002 LLM tier and review queue (issue 7): both tiers' opinions on a result and why it needs
-- review, retraining labels (from reviews and audits), and the LLM spend per day.
-- The review queue is not a table: an open item is a result with needs_review (partial index
-- results_review of 0001), a resolved one a result of tier 'review' joined with its label.

ALTER TABLE results
    ADD COLUMN fast_sentiment text,
    ADD COLUMN llm_sentiment  text,
    ADD COLUMN llm_confidence double precision,
    ADD COLUMN review_reason  text;
CREATE INDEX results_reviewed ON results (created_at) WHERE tier = 'review';

CREATE TABLE training_labels (
    request_id text COLLATE "C" NOT NULL,
    source     text NOT NULL,
    text       text NOT NULL,
    language   text NOT NULL,
    label      text NOT NULL,
    labeller   text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (request_id, source)
);
CREATE INDEX training_labels_created ON training_labels (created_at);

CREATE TABLE llm_usage (
    day               date PRIMARY KEY,
    cost_usd          double precision NOT NULL,
    requests          bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    posts             bigint NOT NULL
);
