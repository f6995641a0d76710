//go:build !linux

package txshim

import "net"

// idleConnGone is false where the non-blocking peek is not known: the apply finds a connection
// the peer ended when it uses it.
func idleConnGone(net.Conn) bool { return false }
