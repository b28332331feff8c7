-- Erasure by tombstone (a Kafka record with an order's uid as key and a null
-- value): the ingestor deletes the order and records here that its uid is
-- erased, so that the order is refused if it is ever delivered again. The uid
-- itself is not kept, only its SHA-256: enough to recognise it, and the row
-- is the audit record of the erasure (when, and which tombstone).
CREATE TABLE erased_orders (
    uid_sha256       bytea       PRIMARY KEY CHECK (length(uid_sha256) = 32),
    erased_at        timestamptz NOT NULL DEFAULT now(),
    source_topic     text        NOT NULL CHECK (source_topic <> ''),
    source_partition integer     NOT NULL CHECK (source_partition >= 0),
    source_offset    bigint      NOT NULL CHECK (source_offset >= 0)
);

COMMENT ON TABLE erased_orders IS
    'order_uids erased by a tombstone (SHA-256 of the uid) and the tombstone''s position; orders with these uids are refused';

-- The ingestor records erasures and looks them up. Erasing deletes the
-- orders row; ON DELETE CASCADE removes its delivery, payment and items rows,
-- and referential actions run with the rights of the tables' owner, so DELETE
-- on orders is the only other privilege erasure needs. The reader needs
-- nothing: an erased order is simply not there.
GRANT SELECT, INSERT ON erased_orders TO order_ingestor;
GRANT DELETE ON orders TO order_ingestor;
