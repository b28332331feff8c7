-- As in 000003. CONCURRENTLY, one statement per file: see 000002.
CREATE INDEX CONCURRENTLY orders_customer_idx ON orders (customer_id, date_created DESC, order_uid DESC);
