package auth

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr is the address of the client of r. It is the direct peer,
// unless the peer is one of the trusted proxies: then X-Forwarded-For is
// read from the right (each proxy appends the address it was reached
// from) and the first address that is not a trusted proxy is the client.
// Addresses left of it were written by the client itself and are never
// believed. It returns the zero Addr when the peer address cannot be read
// (as for a Unix socket).
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	client := peer
	values := r.Header["X-Forwarded-For"]
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			var hop string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				hop, v = v, ""
			}
			a, ok := parseHop(strings.TrimSpace(hop))
			if !ok {
				// A trusted proxy writes addresses; this one was
				// written by someone else, so the last proxy's peer is
				// the client as far as anyone can tell.
				return client
			}
			client = a
			if !isTrusted(a, trusted) {
				return a
			}
		}
	}
	return client
}

func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// parseHop reads one X-Forwarded-For element: an address, possibly with
// a port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma-separated list of CIDR prefixes or
// single addresses ("10.0.0.0/8, 192.0.2.7"), as configured.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: %q is neither an address nor a CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// failureKey is the rate limiter key for the failed authentications of
// a client address. An IPv6 client usually has a whole /64, so that is
// the unit.
func failureKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "fail:" + p.String()
	}
	return "fail:" + a.String()
}
