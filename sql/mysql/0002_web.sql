-- smss schema 2 for MySQL / MariaDB: users and API tokens of the web interface,
-- and the indexes its pages need to list newest first by (time, id) under every
-- filter without a filesort (InnoDB appends the primary key to every index).
-- CREATE INDEX without IF NOT EXISTS: MySQL 8 has no such clause.

CREATE TABLE IF NOT EXISTS web_user (
    name            VARCHAR(64)  NOT NULL PRIMARY KEY,
    password_hash   VARCHAR(255) NOT NULL,
    created_at      DATETIME(6)  NOT NULL,
    updated_at      DATETIME(6)  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Only the SHA-256 of a token is stored; the token is shown once when made.
CREATE TABLE IF NOT EXISTS api_token (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name            VARCHAR(64)  NOT NULL,
    token_hash      CHAR(64)     NOT NULL,
    created_at      DATETIME(6)  NOT NULL,
    last_used_at    DATETIME(6)  NULL,
    UNIQUE KEY api_token_name (name),
    UNIQUE KEY api_token_hash (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE INDEX msg_created_at ON msg (created_at);
CREATE INDEX msg_phone_created_at ON msg (phone, created_at);
CREATE INDEX sms_status_sent_at ON sms (status, sent_at);
CREATE INDEX sms_delivery_sent_at ON sms (delivery, sent_at);
CREATE INDEX sms_phone_sent_at ON sms (phone, sent_at);
CREATE INDEX rcv_phone_received_at ON rcv (phone, received_at);
