-- One statement: DROP INDEX CONCURRENTLY cannot run in a transaction block.
DROP INDEX CONCURRENTLY IF EXISTS orders_customer_summary_idx;
