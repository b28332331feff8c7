package model_test

import (
	"testing"

	"github.com/orderservice/orders/shared/model"
)

func TestCacheKey(t *testing.T) {
	tests := []struct {
		prefix, uid, want string
	}{
		{"", "b563feb7b2b84b6test", "order:b563feb7b2b84b6test"},
		{"t1a2b3c:", "b563feb7b2b84b6test", "t1a2b3c:order:b563feb7b2b84b6test"},
		{"staging:", "x", "staging:order:x"},
		{"p:", "a_b-C9", "p:order:a_b-C9"},
	}
	for _, tt := range tests {
		if got := model.CacheKey(tt.prefix, tt.uid); got != tt.want {
			t.Errorf("CacheKey(%q, %q) = %q, want %q", tt.prefix, tt.uid, got, tt.want)
		}
	}
}
