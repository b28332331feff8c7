-- Fills the summary columns (000021) of the orders stored before them, in
-- batches of 5,000 orders along the primary key, each committed on its own:
-- one UPDATE of a large table would hold its row locks and its share of
-- the table's bloat until the end, and lose all of it on a failure. A
-- batch locks only its own rows, which no writer touches (the ingestor
-- inserts new orders and deletes erased ones; an erasure waits for the
-- batch at most). Orders written meanwhile come with their columns set or
-- get them from 000021's trigger. A failed run is resumed by running it
-- again (force version 21 first): it skips the rows already filled.
--
-- One statement: COMMIT inside DO is allowed only outside a transaction
-- block, and golang-migrate sends a file as one query, which PostgreSQL
-- runs as one implicit transaction when it holds several statements.
--
-- Last, the CHECKs are validated: a scan that takes SHARE UPDATE
-- EXCLUSIVE, which lets writes through.
DO $$
DECLARE
    done text := '';
    upto text;
BEGIN
    LOOP
        SELECT max(order_uid) INTO upto
        FROM (SELECT order_uid FROM orders WHERE order_uid > done ORDER BY order_uid LIMIT 5000) batch;
        EXIT WHEN upto IS NULL;
        UPDATE orders o SET amount = p.amount, currency = p.currency,
            item_count = (SELECT count(*) FROM items i WHERE i.order_uid = o.order_uid)
        FROM payment p
        WHERE o.order_uid > done AND o.order_uid <= upto AND p.order_uid = o.order_uid AND o.amount IS NULL;
        COMMIT;
        done := upto;
    END LOOP;
    ALTER TABLE orders VALIDATE CONSTRAINT orders_amount_check;
    ALTER TABLE orders VALIDATE CONSTRAINT orders_currency_check;
    ALTER TABLE orders VALIDATE CONSTRAINT orders_item_count_check;
END
$$;
