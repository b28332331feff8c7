-- Search by customer (GET /orders?customer_id=), newest first: a customer's
-- history is one index range scan from the cursor's (date_created,
-- order_uid), so a page deep in it costs what the first page does.
--
-- CONCURRENTLY, one statement per file: see 000002_orders_track_number_idx.
CREATE INDEX CONCURRENTLY orders_customer_idx ON orders (customer_id, date_created DESC, order_uid DESC);
