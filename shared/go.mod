module github.com/orderservice/orders/shared

go 1.26.8

require github.com/invopop/validation v0.8.0 // indirect
