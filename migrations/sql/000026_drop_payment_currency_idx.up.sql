-- The search filters on orders.currency (orders_currency_idx, 000025); no
-- query reads payment by currency any more.
--
-- One statement: DROP INDEX CONCURRENTLY cannot run in a transaction block.
DROP INDEX CONCURRENTLY IF EXISTS payment_currency_idx;
