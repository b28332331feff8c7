package benchscale

import (
	"time"

	"github.com/orderservice/orders/shared/model"
)

// timelineStart is when the first order of a run was created.
var timelineStart = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// maxLateness is how long before its arrival an order may have been
// created: the orders of a run arrive about in date order, as they do in
// production, but not exactly.
const maxLateness = 5 * time.Minute

// retime dates order number seq of the run (0, 1, 2...) on the timeline:
// created about seq seconds after timelineStart, up to maxLateness earlier
// (taken from the generator's own random date, so the run is still
// reproducible), and paid as long before as the generator had it. Equal
// timestamps are common, as in a busy shop.
func retime(o *model.Order, seq int64) {
	jitter := time.Duration(o.DateCreated.Unix()%int64(maxLateness/time.Second)) * time.Second
	paidBefore := o.DateCreated.Unix() - o.Payment.PaymentDT
	created := timelineStart.Add(time.Duration(seq)*time.Second - jitter)
	o.DateCreated = created
	o.Payment.PaymentDT = created.Unix() - paidBefore
}
