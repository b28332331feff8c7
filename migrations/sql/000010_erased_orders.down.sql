REVOKE DELETE ON orders FROM order_ingestor;
REVOKE ALL ON erased_orders FROM order_ingestor;
DROP TABLE IF EXISTS erased_orders;
