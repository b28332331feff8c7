DROP TRIGGER orders_truncate_children ON orders;
DROP TRIGGER orders_delete_children ON orders;
DROP FUNCTION orders_truncate_children();
DROP FUNCTION orders_delete_children();

-- Rows whose order is gone were never visible (every read starts from
-- orders); the keys cannot come back while they exist.
DELETE FROM delivery c WHERE NOT EXISTS (SELECT FROM orders o WHERE o.order_uid = c.order_uid);
DELETE FROM payment c WHERE NOT EXISTS (SELECT FROM orders o WHERE o.order_uid = c.order_uid);
DELETE FROM items c WHERE NOT EXISTS (SELECT FROM orders o WHERE o.order_uid = c.order_uid);

ALTER TABLE delivery ADD CONSTRAINT delivery_order_uid_fkey
    FOREIGN KEY (order_uid) REFERENCES orders (order_uid) ON DELETE CASCADE;
ALTER TABLE payment ADD CONSTRAINT payment_order_uid_fkey
    FOREIGN KEY (order_uid) REFERENCES orders (order_uid) ON DELETE CASCADE;
ALTER TABLE items ADD CONSTRAINT items_order_uid_fkey
    FOREIGN KEY (order_uid) REFERENCES orders (order_uid) ON DELETE CASCADE;
