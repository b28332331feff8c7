package source

import (
	"context"
	"strings"
	"testing"

	"github.com/orderservice/orders/shared/ordergen"
)

func TestFile(t *testing.T) {
	gen := drain(t, Generate(context.Background(), 21, 3, 1))
	o1, o2, o3 := string(gen[0].Value), string(gen[1].Value), string(gen[2].Value)
	invalid := strings.Replace(o2, `"currency":"`, `"currency":"X`, 1)
	tests := []struct {
		name    string
		input   string
		raw     bool
		want    []string // values
		wantErr []string // substrings of the error
	}{
		{name: "array", input: "[" + o1 + ",\n " + o2 + "]", want: []string{o1, o2}},
		{name: "single object", input: "\n" + o1 + "\n", want: []string{o1}},
		{name: "ndjson", input: o1 + "\n" + o2 + "\n" + o3 + "\n", want: []string{o1, o2, o3}},
		{name: "ndjson with blank lines and CRLF", input: o1 + "\r\n\r\n" + o2 + "\r\n", want: []string{o1, o2}},
		{name: "empty", input: " \n", wantErr: []string{"in.json: no orders"}},
		{name: "empty array", input: "[]", wantErr: []string{"no orders"}},
		{name: "invalid order", input: o1 + "\n" + invalid + "\n",
			wantErr: []string{"1 of 2 orders are invalid", "order #2 (line 2", string(gen[1].Key), "payment.currency", "nothing was sent"}},
		{name: "invalid JSON in array", input: "[\n" + o1 + ",\n{\"a\" 1}]",
			wantErr: []string{"array element #2 (line 3)", "invalid JSON"}},
		{name: "invalid JSON in stream", input: o1 + "\n" + o2[:40] + "\n",
			wantErr: []string{"order #2 (line 2)", "invalid JSON"}},
		{name: "line deep in a stream", input: strings.Repeat(o1+"\n\n", 500) + o2[:40],
			wantErr: []string{"order #501 (line 1001)", "invalid JSON"}},
		{name: "line deep in an array", input: "[\n" + strings.Repeat(o1+",\n", 300) + "{\"a\" 1}]",
			wantErr: []string{"array element #301 (line 302)", "invalid JSON"}},
		{name: "data after array", input: "[" + o1 + "] x", wantErr: []string{"after the JSON array"}},
		{name: "not an object", input: "[1]", wantErr: []string{"order #1", "expected a JSON object"}},
		{name: "raw keeps invalid orders", input: invalid + "\n", raw: true, want: []string{invalid}},
		{name: "raw splits non-JSON into lines", input: "hello\n\nworld\r\n", raw: true, want: []string{"hello", "world"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := File(strings.NewReader(tt.input), "in.json", tt.raw)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want one mentioning %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := Len(src); n != len(tt.want) {
				t.Errorf("Len = %d, want %d", n, len(tt.want))
			}
			msgs := drain(t, src)
			if len(msgs) != len(tt.want) {
				t.Fatalf("got %d messages, want %d", len(msgs), len(tt.want))
			}
			for i, m := range msgs {
				if string(m.Value) != tt.want[i] {
					t.Errorf("message %d = %.60q…, want %.60q…", i, m.Value, tt.want[i])
				}
				if !tt.raw && (m.Order == nil || string(m.Key) != m.Order.OrderUID) {
					t.Errorf("message %d: key %q does not match its order", i, m.Key)
				}
			}
		})
	}
}

func TestFileRawKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"order_uid":"abc"}`, "abc"},
		{`{"order_uid":5}`, ""},
		{`[1]`, ""},
		{`garbage`, ""},
	}
	for _, tt := range tests {
		if got := string(rawKey([]byte(tt.in))); got != tt.want {
			t.Errorf("rawKey(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzFile checks that no input makes File panic, and that what it accepts
// without --raw is made of valid orders only.
func FuzzFile(f *testing.F) {
	g := ordergen.New(1)
	a, _ := g.Order().Canonical()
	b, _ := g.Order().Canonical()
	f.Add(string(a), false)
	f.Add("["+string(a)+","+string(b)+"]", false)
	f.Add("a\nb", true)
	f.Add("[", false)
	f.Fuzz(func(t *testing.T, input string, raw bool) {
		src, err := File(strings.NewReader(input), "fuzz", raw)
		if err != nil {
			return
		}
		for {
			m, err := src.Next()
			if err != nil {
				break
			}
			if !raw {
				if m.Order == nil {
					t.Fatalf("accepted an element without an order: %q", m.Value)
				}
				if err := m.Order.Validate(); err != nil {
					t.Fatalf("accepted an invalid order: %v", err)
				}
			}
		}
	})
}
