-- smss schema 5 for MySQL / MariaDB: the on_receive queue.  handler_state is NULL
-- for a message stored without on_receive, then 'waiting', 'running', 'done'
-- (rcv.handler_status has the exit status); the class and concatenation
-- reference of the message are kept for the program's SMS_1_CLASS and
-- SMS_1_REFERENCE, which it may get long after the pass that stored it.
-- One statement per column: MySQL commits each DDL on its own (see migrations).

ALTER TABLE rcv ADD COLUMN message_class TINYINT NULL;
ALTER TABLE rcv ADD COLUMN concat_reference INT NULL;
ALTER TABLE rcv ADD COLUMN handler_state VARCHAR(8) NULL;
CREATE INDEX rcv_handler_state ON rcv (handler_state, id);
