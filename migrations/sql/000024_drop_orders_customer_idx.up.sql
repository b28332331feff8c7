-- orders_customer_summary_idx (000023) has the same key and serves every
-- query this one did.
--
-- One statement: DROP INDEX CONCURRENTLY cannot run in a transaction block.
DROP INDEX CONCURRENTLY IF EXISTS orders_customer_idx;
