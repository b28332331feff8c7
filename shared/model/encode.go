package model

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Canonical returns the canonical JSON encoding of o: compact, fields in the
// order of the upstream sample, date_created in UTC truncated to
// TimePrecision, items as an array even when empty, strings escaped exactly
// as encoding/json escapes them (HTML-safe). The same order always gives the
// same bytes, so the encoding can be hashed to tell a redelivered order from
// a conflicting one, cached, and compared byte for byte.
func (o *Order) Canonical() ([]byte, error) {
	return o.AppendCanonical(make([]byte, 0, 512+256*len(o.Items)))
}

// AppendCanonical appends the canonical encoding of o to dst.
//
// It writes every field by hand rather than through encoding/json's
// reflection, which was about a third of the CPU of generating and of
// ingesting an order. Any string that needs escaping goes to encoding/json,
// so escaping cannot differ; the tests check the result byte for byte
// against json.Marshal of the normalised struct, so a field added to Order
// but not here fails them.
func (o *Order) AppendCanonical(dst []byte) ([]byte, error) {
	created := o.DateCreated.UTC().Truncate(TimePrecision)
	var createdJSON []byte
	if y := created.Year(); y < 1 || y > 9999 {
		// Rare and outside RFC 3339's years: encoding/json decides.
		var err error
		if createdJSON, err = json.Marshal(created); err != nil {
			return dst, fmt.Errorf("encode order %q: %w", o.OrderUID, err)
		}
	}
	b := append(dst, `{"order_uid":`...)
	b = AppendJSONString(b, o.OrderUID)
	b = appendField(b, "track_number", o.TrackNumber)
	b = appendField(b, "entry", o.Entry)
	d := &o.Delivery
	b = append(b, `,"delivery":{"name":`...)
	b = AppendJSONString(b, d.Name)
	b = appendField(b, "phone", d.Phone)
	b = appendField(b, "zip", d.Zip)
	b = appendField(b, "city", d.City)
	b = appendField(b, "address", d.Address)
	b = appendField(b, "region", d.Region)
	b = appendField(b, "email", d.Email)
	p := &o.Payment
	b = append(b, `},"payment":{"transaction":`...)
	b = AppendJSONString(b, p.Transaction)
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
	b = append(b, `,"date_created":`...)
	if createdJSON != nil {
		b = append(b, createdJSON...)
	} else {
		b = append(b, '"')
		b = created.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = appendField(b, "oof_shard", o.OofShard)
	return append(b, '}'), nil
}

func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return AppendJSONString(b, v)
}

func appendInt(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// AppendJSONString appends s quoted as encoding/json's Marshal quotes it
// (HTML-safe): printable ASCII other than the characters it escapes is
// copied; anything else goes to encoding/json. For the hand-written
// encoders of the hot paths, which must match Marshal byte for byte.
func AppendJSONString(b []byte, s string) []byte {
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
