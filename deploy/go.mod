module github.com/orderservice/orders/deploy

go 1.26.8

require github.com/orderservice/orders/shared v0.0.0

replace github.com/orderservice/orders/shared => ../shared
