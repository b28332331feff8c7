-- What a line of an order list shows (GET /orders: amount, currency, item
-- count) is copied into orders, so that a search reads one index and no
-- other table: before, each listed order cost a payment lookup and a count
-- of its items, which made a customer's page of 20 cost 40 index lookups
-- in two more tables. The ingestor's writer (ingestor/postgres) fills the
-- columns in the transaction that stores the order's payment and items.
--
-- The columns are nullable and the CHECKs NOT VALID, so that this step
-- takes its ACCESS EXCLUSIVE lock only for as long as it takes to change the
-- catalog: no rewrite and no scan of a large table. Every row is NULL here;
-- 000022 fills the stored ones in batches and validates the CHECKs.
ALTER TABLE orders
    ADD COLUMN amount     bigint,
    ADD COLUMN currency   char(3),
    ADD COLUMN item_count smallint;

ALTER TABLE orders ADD CONSTRAINT orders_amount_check CHECK (amount >= 0) NOT VALID;
ALTER TABLE orders ADD CONSTRAINT orders_currency_check CHECK (currency ~ '^[A-Z]{3}$') NOT VALID;
-- items.position is below 1000.
ALTER TABLE orders ADD CONSTRAINT orders_item_count_check CHECK (item_count BETWEEN 0 AND 1000) NOT VALID;

-- A writer that does not know the columns (an ingestor of the previous
-- release, still running while this one rolls out; a hand-written INSERT)
-- leaves them NULL. This trigger fills them when its transaction commits,
-- from the payment and items rows it wrote, so that the order is listed
-- like any other. It is queued only for such rows (WHEN): the current
-- writer sets the columns, and pays one test of NEW.amount per row. An
-- order without a payment row keeps NULLs and is not listed, as it was
-- not when the search joined payment.
--
-- SECURITY DEFINER: writers may INSERT into orders but not UPDATE it. As in
-- 000020's triggers, the tables are named with the trigger's schema and
-- search_path holds only pg_catalog and pg_temp.
CREATE FUNCTION orders_fill_summary() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('UPDATE %1$I.orders o SET amount = p.amount, currency = p.currency,
            item_count = (SELECT count(*) FROM %1$I.items i WHERE i.order_uid = o.order_uid)
        FROM %1$I.payment p
        WHERE o.order_uid = $1 AND p.order_uid = $1 AND o.amount IS NULL', TG_TABLE_SCHEMA)
    USING NEW.order_uid;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER orders_fill_summary AFTER INSERT ON orders
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.amount IS NULL)
    EXECUTE FUNCTION orders_fill_summary();

REVOKE ALL ON FUNCTION orders_fill_summary() FROM PUBLIC;
