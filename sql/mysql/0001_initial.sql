-- smss schema 1 for MySQL / MariaDB (InnoDB, utf8mb4).  Times are UTC.

-- The queue: what clients handed in and was acknowledged "OK <id>".
CREATE TABLE IF NOT EXISTS msg (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    phone           VARCHAR(32)  NOT NULL,
    text            TEXT         NOT NULL,
    parts           SMALLINT UNSIGNED NOT NULL DEFAULT 1,
    client          VARCHAR(64)  NOT NULL DEFAULT '',
    route           VARCHAR(64)  NULL,
    created_at      DATETIME(6)  NOT NULL,
    attempts        INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(6)  NOT NULL,
    last_error      VARCHAR(255) NULL,
    claimed_by      VARCHAR(128) NULL,
    claimed_at      DATETIME(6)  NULL,
    send_started_at DATETIME(6)  NULL,
    KEY msg_due (next_attempt_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What was sent or finally failed; id is the msg id the client was given.
CREATE TABLE IF NOT EXISTS sms (
    id              BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    phone           VARCHAR(32)  NOT NULL,
    text            TEXT         NOT NULL,
    status          VARCHAR(16)  NOT NULL,
    sent_at         DATETIME(6)  NOT NULL,
    parts           SMALLINT UNSIGNED NOT NULL DEFAULT 1,
    client          VARCHAR(64)  NOT NULL DEFAULT '',
    route           VARCHAR(64)  NULL,
    created_at      DATETIME(6)  NOT NULL,
    attempts        INT UNSIGNED NOT NULL DEFAULT 0,
    transport       VARCHAR(128) NOT NULL DEFAULT '',
    refs            VARCHAR(255) NOT NULL DEFAULT '',
    error           VARCHAR(255) NULL,
    delivery        VARCHAR(16)  NULL,
    delivered_at    DATETIME(6)  NULL,
    KEY sms_sent_at (sent_at),
    KEY sms_phone (phone)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per sent part, to pair delivery reports with their message.
CREATE TABLE IF NOT EXISTS sms_part (
    sms_id          BIGINT UNSIGNED NOT NULL,
    part            SMALLINT UNSIGNED NOT NULL,
    transport       VARCHAR(128) NOT NULL,
    reference       VARCHAR(64)  NOT NULL,
    sent_at         DATETIME(6)  NOT NULL,
    delivery        VARCHAR(16)  NULL,
    status_code     INT          NULL,
    reported_at     DATETIME(6)  NULL,
    PRIMARY KEY (sms_id, part),
    KEY sms_part_reference (transport, reference, sent_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What came in.
CREATE TABLE IF NOT EXISTS rcv (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    phone           VARCHAR(32)  NOT NULL,
    text            TEXT         NOT NULL,
    received_at     DATETIME(6)  NOT NULL,
    sent_at         DATETIME(6)  NULL,
    parts           SMALLINT UNSIGNED NOT NULL DEFAULT 1,
    smsc            VARCHAR(32)  NOT NULL DEFAULT '',
    transport       VARCHAR(128) NOT NULL DEFAULT '',
    raw_pdu         TEXT         NULL,
    error           VARCHAR(255) NULL,
    handler_status  INT          NULL,
    KEY rcv_received_at (received_at),
    KEY rcv_phone (phone)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What each transport (modem, SMPP link ...) looked like at the end of its last pass.
CREATE TABLE IF NOT EXISTS transport_status (
    name            VARCHAR(128) NOT NULL PRIMARY KEY,
    updated_at      DATETIME(6)  NOT NULL,
    state           VARCHAR(32)  NOT NULL DEFAULT '',
    signal_dbm      INT          NULL,
    registration    VARCHAR(32)  NULL,
    operator        VARCHAR(64)  NULL,
    last_error      VARCHAR(255) NULL,
    last_error_at   DATETIME(6)  NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
