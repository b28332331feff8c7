-- The children of an order (delivery, payment, items) lose their foreign
-- keys to orders. Every row of an order is written in one transaction by
-- the ingestor's writer (ingestor/postgres), children only for an orders
-- row that transaction inserted, so the keys checked what the writer
-- already guarantees, at a cost measured at about a third of the database
-- time of each insert (a trigger and an index lookup per child row; see
-- ingestor/README.md, "Foreign keys"). What ON DELETE CASCADE did, a
-- statement-level trigger does: deleting orders deletes their children in
-- the same statement, so an erasure that deletes orders still leaves no
-- row of them behind. TRUNCATE orders empties the children too.

ALTER TABLE delivery DROP CONSTRAINT delivery_order_uid_fkey;
ALTER TABLE payment DROP CONSTRAINT payment_order_uid_fkey;
ALTER TABLE items DROP CONSTRAINT items_order_uid_fkey;

-- SECURITY DEFINER: the role that deletes orders needs no privilege on the
-- children, as with the cascade (which runs as the tables' owner). The
-- tables are named with the trigger's own schema and search_path holds
-- only pg_catalog and pg_temp (last), so that no object of the caller's
-- can stand in for them.
CREATE FUNCTION orders_delete_children() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('DELETE FROM %I.delivery WHERE order_uid IN (SELECT order_uid FROM deleted_orders)', TG_TABLE_SCHEMA);
    EXECUTE format('DELETE FROM %I.payment WHERE order_uid IN (SELECT order_uid FROM deleted_orders)', TG_TABLE_SCHEMA);
    EXECUTE format('DELETE FROM %I.items WHERE order_uid IN (SELECT order_uid FROM deleted_orders)', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_delete_children AFTER DELETE ON orders
    REFERENCING OLD TABLE AS deleted_orders
    FOR EACH STATEMENT EXECUTE FUNCTION orders_delete_children();

CREATE FUNCTION orders_truncate_children() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('TRUNCATE %1$I.delivery, %1$I.payment, %1$I.items', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_truncate_children AFTER TRUNCATE ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION orders_truncate_children();

-- Trigger functions cannot be called directly; no one needs EXECUTE.
REVOKE ALL ON FUNCTION orders_delete_children(), orders_truncate_children() FROM PUBLIC;
