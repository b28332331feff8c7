-- Search by currency (GET /orders?currency=). The currency is the payment's;
-- the search joins payment rather than copying the column into orders. For
-- a common currency the newest-first walk of orders_recent_idx finds a page
-- after a few dozen rows; this index serves the rare ones, which that walk
-- would have to scan far for, and the planner picks between the two from
-- the column's statistics. Few distinct values: B-tree deduplication keeps
-- it small.
--
-- CONCURRENTLY, one statement per file: see 000002_orders_track_number_idx.
CREATE INDEX CONCURRENTLY payment_currency_idx ON payment (currency);
