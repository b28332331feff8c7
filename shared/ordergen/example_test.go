package ordergen_test

import (
	"fmt"

	"github.com/orderservice/orders/shared/ordergen"
)

func ExampleGenerator_Order() {
	g := ordergen.New(42)
	o := g.Order()
	b, _ := o.Canonical()
	fmt.Println(len(o.Items) >= 1, o.Validate() == nil, len(b) > 0)
	// Output: true true true
}
