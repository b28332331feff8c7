-- The order schema: one row per order in orders, one in delivery and payment,
-- one per line in items. Constraints mirror shared/model's Validate so that a
-- bug in a writer cannot store what the model would reject.

CREATE TABLE orders (
    order_uid          text        PRIMARY KEY
                                   CHECK (order_uid ~ '^[A-Za-z0-9_-]{1,64}$'),
    track_number       varchar(255) NOT NULL CHECK (track_number <> ''),
    entry              varchar(255) NOT NULL CHECK (entry <> ''),
    locale             varchar(255) NOT NULL CHECK (locale <> ''),
    internal_signature varchar(255) NOT NULL DEFAULT '',
    customer_id        varchar(255) NOT NULL CHECK (customer_id <> ''),
    delivery_service   varchar(255) NOT NULL CHECK (delivery_service <> ''),
    shardkey           varchar(255) NOT NULL CHECK (shardkey <> ''),
    sm_id              bigint      NOT NULL CHECK (sm_id >= 0),
    date_created       timestamptz NOT NULL,
    oof_shard          varchar(255) NOT NULL CHECK (oof_shard <> ''),
    -- SHA-256 of the order's canonical JSON (model.Order.Canonical): a
    -- redelivered order has the same hash, a conflicting one does not.
    content_sha256     bytea       NOT NULL CHECK (length(content_sha256) = 32),
    ingested_at        timestamptz NOT NULL DEFAULT now()
);

-- "The N most recent orders" is one backward-free index scan with a LIMIT;
-- order_uid breaks ties so that paging is stable.
CREATE INDEX orders_recent_idx ON orders (date_created DESC, order_uid DESC);

CREATE TABLE delivery (
    order_uid text         PRIMARY KEY REFERENCES orders (order_uid) ON DELETE CASCADE,
    name      varchar(255) NOT NULL CHECK (name <> ''),
    phone     varchar(255) NOT NULL CHECK (phone <> ''),
    zip       varchar(255) NOT NULL CHECK (zip <> ''),
    city      varchar(255) NOT NULL CHECK (city <> ''),
    address   varchar(255) NOT NULL CHECK (address <> ''),
    region    varchar(255) NOT NULL CHECK (region <> ''),
    email     varchar(255) NOT NULL CHECK (email <> '')
);

CREATE TABLE payment (
    order_uid     text         PRIMARY KEY REFERENCES orders (order_uid) ON DELETE CASCADE,
    -- A payment transaction belongs to exactly one order.
    transaction   varchar(255) NOT NULL UNIQUE CHECK (transaction <> ''),
    request_id    varchar(255) NOT NULL DEFAULT '',
    currency      char(3)      NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    provider      varchar(255) NOT NULL CHECK (provider <> ''),
    amount        bigint       NOT NULL CHECK (amount >= 0),
    payment_dt    bigint       NOT NULL CHECK (payment_dt > 0),
    bank          varchar(255) NOT NULL CHECK (bank <> ''),
    delivery_cost bigint       NOT NULL CHECK (delivery_cost >= 0),
    goods_total   bigint       NOT NULL CHECK (goods_total >= 0),
    custom_fee    bigint       NOT NULL CHECK (custom_fee >= 0)
);

CREATE TABLE items (
    order_uid    text         NOT NULL REFERENCES orders (order_uid) ON DELETE CASCADE,
    -- The item's index in the order's items array: keeps their order.
    position     smallint     NOT NULL CHECK (position >= 0 AND position < 1000),
    chrt_id      bigint       NOT NULL CHECK (chrt_id >= 0),
    track_number varchar(255) NOT NULL CHECK (track_number <> ''),
    price        bigint       NOT NULL CHECK (price >= 0),
    rid          varchar(255) NOT NULL CHECK (rid <> ''),
    name         varchar(255) NOT NULL CHECK (name <> ''),
    sale         smallint     NOT NULL CHECK (sale BETWEEN 0 AND 100),
    size         varchar(255) NOT NULL CHECK (size <> ''),
    total_price  bigint       NOT NULL CHECK (total_price >= 0),
    nm_id        bigint       NOT NULL CHECK (nm_id >= 0),
    brand        varchar(255) NOT NULL CHECK (brand <> ''),
    status       bigint       NOT NULL CHECK (status >= 0),
    PRIMARY KEY (order_uid, position)
);

-- Roles are cluster-wide and may already exist (another database on the same
-- server, or a DBA who created them with passwords): create them only when
-- missing, and tolerate a concurrent creator.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'order_ingestor') THEN
        BEGIN
            CREATE ROLE order_ingestor LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'order_reader') THEN
        BEGIN
            CREATE ROLE order_reader LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO order_ingestor, order_reader', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO order_ingestor, order_reader;
GRANT SELECT, INSERT ON orders, delivery, payment, items TO order_ingestor;
GRANT SELECT ON orders, delivery, payment, items TO order_reader;
