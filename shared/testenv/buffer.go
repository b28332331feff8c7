package testenv

import "github.com/orderservice/orders/shared/syncio"

// Buffer is a bytes.Buffer that a service, a child process or a logger may
// write to while the test reads it (syncio.Buffer). The zero value is ready
// to use.
type Buffer = syncio.Buffer
