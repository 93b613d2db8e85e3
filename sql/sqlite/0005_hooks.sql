-- smss schema 5 for SQLite: the on_receive queue.  handler_state is NULL for a
-- message stored without on_receive, then 'waiting', 'running', 'done'
-- (rcv.handler_status has the exit status); the class and concatenation
-- reference of the message are kept for the program's SMS_1_CLASS and
-- SMS_1_REFERENCE, which it may get long after the pass that stored it.

ALTER TABLE rcv ADD COLUMN message_class INTEGER NULL;
ALTER TABLE rcv ADD COLUMN concat_reference INTEGER NULL;
ALTER TABLE rcv ADD COLUMN handler_state TEXT NULL;
CREATE INDEX IF NOT EXISTS rcv_handler_state ON rcv (handler_state, id);
