DROP TRIGGER orders_fill_summary ON orders;
DROP FUNCTION orders_fill_summary();
-- Drops their CHECKs with them; the indexes that use them are gone already
-- (000023 and 000025 down).
ALTER TABLE orders DROP COLUMN amount, DROP COLUMN currency, DROP COLUMN item_count;
