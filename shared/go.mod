module github.com/orderservice/orders/shared

go 1.26.8

require (
	github.com/brianvoe/gofakeit/v7 v7.18.2
	github.com/invopop/validation v0.8.0
)
