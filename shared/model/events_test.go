package model_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/orderservice/orders/shared/model"
)

func TestEventsChannel(t *testing.T) {
	if got := model.EventsChannel("t1:"); got != "t1:orders:events" {
		t.Errorf("EventsChannel = %q", got)
	}
	if got := model.EventsChannel(""); got != "orders:events" {
		t.Errorf("EventsChannel without prefix = %q", got)
	}
}

func TestEventsEncoding(t *testing.T) {
	for _, tc := range []struct {
		ev   model.Events
		want string
	}{
		{model.Events{Stored: []string{"a1", "b2"}}, `{"stored":["a1","b2"]}`},
		{model.Events{Erased: []string{"c3"}}, `{"erased":["c3"]}`},
		{model.Events{Stored: []string{"a1"}, Erased: []string{"c3"}}, `{"stored":["a1"],"erased":["c3"]}`},
	} {
		b, err := json.Marshal(tc.ev)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("encoded %s, want %s", b, tc.want)
		}
		got, err := model.DecodeEvents(b)
		if err != nil {
			t.Fatalf("DecodeEvents(%s): %v", b, err)
		}
		if !slices.Equal(got.Stored, tc.ev.Stored) || !slices.Equal(got.Erased, tc.ev.Erased) {
			t.Errorf("round trip of %s = %+v", b, got)
		}
	}
}

func TestDecodeEventsRefusesBadInput(t *testing.T) {
	for _, in := range []string{
		``, `nope`, `[]`, `{"stored":"a1"}`, `{"stored":[1]}`,
		`{"stored":["a1","has space"]}`, `{"erased":[""]}`, `{"erased":["` + string(make([]byte, 65)) + `"]}`,
		`{"erased":["../../x"]}`,
	} {
		if _, err := model.DecodeEvents([]byte(in)); !errors.Is(err, model.ErrBadEvents) {
			t.Errorf("DecodeEvents(%q) = %v, want ErrBadEvents", in, err)
		}
	}
	// Unknown fields are ignored, as in orders: a newer ingestor may say more.
	ev, err := model.DecodeEvents([]byte(`{"stored":["a1"],"batch":7}`))
	if err != nil || !slices.Equal(ev.Stored, []string{"a1"}) {
		t.Errorf("DecodeEvents with an unknown field = %+v, %v", ev, err)
	}
}
