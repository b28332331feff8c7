REVOKE ALL ON orders, delivery, payment, items FROM order_ingestor, order_reader;
REVOKE USAGE ON SCHEMA public FROM order_ingestor, order_reader;
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM order_ingestor, order_reader', current_database());
END
$$;

DROP TABLE IF EXISTS items;
DROP TABLE IF EXISTS payment;
DROP TABLE IF EXISTS delivery;
DROP TABLE IF EXISTS orders;

-- The roles are shared by every database on the server: drop them only when
-- nothing else still depends on them.
DO $$
BEGIN
    DROP ROLE IF EXISTS order_reader;
    DROP ROLE IF EXISTS order_ingestor;
EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
    RAISE NOTICE 'order roles kept: other databases still use them';
END
$$;
