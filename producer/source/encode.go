package source

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/orderservice/orders/shared/model"
)

// appendCanonical appends the canonical encoding of o, the same bytes as
// (*model.Order).Canonical, to dst.
//
// It exists for throughput only: encoding/json's reflection was about a
// third of the CPU time of a generated message, and generating is what
// bounds --generate's rate. It writes every field by hand in the struct's
// order and hands any string that needs escaping (and any odd time) back to
// encoding/json, so it cannot escape differently; TestAppendCanonical and
// FuzzAppendCanonical check it byte for byte against Canonical, so a field
// added to model.Order without being added here fails the tests. The
// natural home for it is shared/model.
func appendCanonical(dst []byte, o *model.Order) ([]byte, error) {
	created := o.DateCreated.UTC().Truncate(model.TimePrecision)
	if y := created.Year(); y < 1 || y > 9999 {
		// Outside what RFC 3339 allows: leave the error to Canonical.
		b, err := o.Canonical()
		return append(dst, b...), err
	}
	b := append(dst, `{"order_uid":`...)
	b = appendString(b, o.OrderUID)
	b = appendField(b, "track_number", o.TrackNumber)
	b = appendField(b, "entry", o.Entry)
	d := &o.Delivery
	b = append(b, `,"delivery":{"name":`...)
	b = appendString(b, d.Name)
	b = appendField(b, "phone", d.Phone)
	b = appendField(b, "zip", d.Zip)
	b = appendField(b, "city", d.City)
	b = appendField(b, "address", d.Address)
	b = appendField(b, "region", d.Region)
	b = appendField(b, "email", d.Email)
	p := &o.Payment
	b = append(b, `},"payment":{"transaction":`...)
	b = appendString(b, p.Transaction)
	b = appendField(b, "request_id", p.RequestID)
	b = appendField(b, "currency", p.Currency)
	b = appendField(b, "provider", p.Provider)
	b = appendInt(b, "amount", p.Amount)
	b = appendInt(b, "payment_dt", p.PaymentDT)
	b = appendField(b, "bank", p.Bank)
	b = appendInt(b, "delivery_cost", p.DeliveryCost)
	b = appendInt(b, "goods_total", p.GoodsTotal)
	b = appendInt(b, "custom_fee", p.CustomFee)
	b = append(b, `},"items":[`...)
	for i := range o.Items {
		it := &o.Items[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"chrt_id":`...)
		b = strconv.AppendInt(b, it.ChrtID, 10)
		b = appendField(b, "track_number", it.TrackNumber)
		b = appendInt(b, "price", it.Price)
		b = appendField(b, "rid", it.RID)
		b = appendField(b, "name", it.Name)
		b = appendInt(b, "sale", it.Sale)
		b = appendField(b, "size", it.Size)
		b = appendInt(b, "total_price", it.TotalPrice)
		b = appendInt(b, "nm_id", it.NmID)
		b = appendField(b, "brand", it.Brand)
		b = appendInt(b, "status", it.Status)
		b = append(b, '}')
	}
	b = append(b, ']')
	b = appendField(b, "locale", o.Locale)
	b = appendField(b, "internal_signature", o.InternalSignature)
	b = appendField(b, "customer_id", o.CustomerID)
	b = appendField(b, "delivery_service", o.DeliveryService)
	b = appendField(b, "shardkey", o.ShardKey)
	b = appendInt(b, "sm_id", o.SmID)
	b = append(b, `,"date_created":"`...)
	b = created.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "oof_shard", o.OofShard)
	return append(b, '}'), nil
}

func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendInt(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// appendString quotes s as encoding/json does: printable ASCII other than
// the characters it escapes is copied; anything else goes to encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
