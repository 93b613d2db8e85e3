-- smss schema 6 for MySQL / MariaDB: what the web interface's operators need.
-- Roles of users (the users of schema 2 become admins) and of API tokens (the
-- tokens of schema 2 keep sending: operator); logins kept on the server, so a
-- logout or a password change ends them; an audit trail of who did what;
-- pausing a transport; a bounded history of each transport's state; cancel and
-- retry (a retry is a new message naming the old one); the indexes the charts
-- read (covering: the charts never touch the table rows).

ALTER TABLE web_user ADD COLUMN role VARCHAR(16) NOT NULL DEFAULT 'admin';
ALTER TABLE api_token ADD COLUMN role VARCHAR(16) NOT NULL DEFAULT 'operator';

-- A login: only the SHA-256 of the random id in the browser's cookie is stored.
CREATE TABLE IF NOT EXISTS web_session (
    id_hash         CHAR(64)     NOT NULL PRIMARY KEY,
    user_name       VARCHAR(64)  NOT NULL,
    created_at      DATETIME(6)  NOT NULL,
    last_seen_at    DATETIME(6)  NOT NULL,
    address         VARCHAR(64)  NOT NULL DEFAULT '',
    KEY web_session_user (user_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Who did what: actions on messages and transports, changes of users and tokens.
CREATE TABLE IF NOT EXISTS audit (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at              DATETIME(6)  NOT NULL,
    actor           VARCHAR(128) NOT NULL,
    action          VARCHAR(32)  NOT NULL,
    target          VARCHAR(160) NOT NULL DEFAULT '',
    detail          VARCHAR(255) NULL,
    KEY audit_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

ALTER TABLE transport_status ADD COLUMN paused_at DATETIME(6) NULL;
ALTER TABLE transport_status ADD COLUMN paused_by VARCHAR(128) NULL;

-- Samples of transport_status (one per transport every few minutes and at every
-- change of state), pruned by age as they are written.
CREATE TABLE IF NOT EXISTS transport_sample (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name            VARCHAR(128) NOT NULL,
    at              DATETIME(6)  NOT NULL,
    state           VARCHAR(32)  NOT NULL DEFAULT '',
    signal_dbm      INT          NULL,
    error           VARCHAR(255) NULL,
    KEY transport_sample_name_at (name, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

ALTER TABLE msg ADD COLUMN retry_of BIGINT UNSIGNED NULL;
ALTER TABLE sms ADD COLUMN retry_of BIGINT UNSIGNED NULL;
ALTER TABLE sms ADD COLUMN retried_as BIGINT UNSIGNED NULL;

CREATE INDEX sms_chart ON sms (sent_at, transport, status, delivery);
CREATE INDEX sms_transport_status_sent_at ON sms (transport, status, sent_at);
CREATE INDEX rcv_chart ON rcv (received_at, transport);
