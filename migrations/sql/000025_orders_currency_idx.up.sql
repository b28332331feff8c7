-- Search by currency, now that orders holds it (000021): the currency,
-- then the keyset, like the other search indexes, so that a page of a
-- currency's orders is one range scan whether the currency is common or
-- rare. payment_currency_idx (000004, dropped in 000026) served only the
-- rare ones, and a search joined payment to use it.
--
-- CONCURRENTLY, one statement per file: see 000002_orders_track_number_idx.
CREATE INDEX CONCURRENTLY orders_currency_idx ON orders (currency, date_created DESC, order_uid DESC);
