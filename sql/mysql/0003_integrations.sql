-- smss schema 3 for MySQL / MariaDB: what applications and monitoring need
-- (docs/integrations.md).  CREATE INDEX without IF NOT EXISTS: MySQL 8 has no such clause.

-- Events waiting to be posted: one row per event and destination (a [webhook:NAME]
-- section, or the dlr-url a Kannel-style sendsms asked for).  Written in the
-- transaction that stores what the event tells; deleted once the receiver
-- answered 2xx; kept as 'failed' when it did not within its max_age.
CREATE TABLE IF NOT EXISTS outbox (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id        CHAR(32)     NOT NULL,
    target          VARCHAR(80)  NOT NULL,
    kind            VARCHAR(16)  NOT NULL,
    url             TEXT         NULL,
    payload         MEDIUMTEXT   NOT NULL,
    created_at      DATETIME(6)  NOT NULL,
    state           VARCHAR(16)  NOT NULL DEFAULT 'pending',
    attempts        INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(6)  NOT NULL,
    last_error      VARCHAR(255) NULL,
    claimed_by      VARCHAR(128) NULL,
    claimed_at      DATETIME(6)  NULL,
    finished_at     DATETIME(6)  NULL,
    UNIQUE KEY outbox_event_id (event_id),
    KEY outbox_due (target, state, next_attempt_at),
    KEY outbox_state (state, finished_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Running totals the dispatchers keep in the transactions that change them
-- (the figures of /metrics): messages by transport and status, parts, reports,
-- received, the accepted-to-sent histogram, webhook deliveries.
CREATE TABLE IF NOT EXISTS tally (
    name            VARCHAR(32)  NOT NULL,
    transport       VARCHAR(128) NOT NULL,
    detail          VARCHAR(32)  NOT NULL,
    value           DOUBLE       NOT NULL DEFAULT 0,
    PRIMARY KEY (name, transport, detail)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The first answer to each Idempotency-Key of the HTTP API, per token, for 24 hours.
CREATE TABLE IF NOT EXISTS idempotency_key (
    token_id        BIGINT UNSIGNED NOT NULL,
    idem_key        VARCHAR(255) NOT NULL,
    request_hash    CHAR(64)     NOT NULL,
    status          SMALLINT     NOT NULL,
    answer          MEDIUMTEXT   NOT NULL,
    created_at      DATETIME(6)  NOT NULL,
    PRIMARY KEY (token_id, idem_key),
    KEY idempotency_key_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The dlr-url and dlr-mask a /cgi-bin/sendsms request gave its message.
CREATE TABLE IF NOT EXISTS dlr_request (
    msg_id          BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    url             TEXT         NOT NULL,
    mask            SMALLINT     NOT NULL,
    sender          VARCHAR(64)  NOT NULL DEFAULT '',
    service         VARCHAR(64)  NOT NULL DEFAULT '',
    created_at      DATETIME(6)  NOT NULL,
    KEY dlr_request_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
