-- Search by customer, covering: the key of orders_customer_idx (000003)
-- and, in the leaves, every other column a summary shows, so that a page
-- of a customer's history is one range of this index and, where the
-- visibility map says the heap pages are all-visible, an index-only scan
-- (no heap page read per order). It replaces orders_customer_idx (dropped
-- in 000024), so that a stored order costs as many index entries as before.
--
-- CONCURRENTLY, one statement per file: see 000002_orders_track_number_idx.
CREATE INDEX CONCURRENTLY orders_customer_summary_idx ON orders (customer_id, date_created DESC, order_uid DESC)
    INCLUDE (track_number, amount, currency, item_count);
