package deploytest

import (
	"testing"

	"github.com/orderservice/orders/shared/testenv"
)

// TestMain stops the throwaway servers testenv may start.
func TestMain(m *testing.M) { testenv.Main(m) }
