//go:build !linux

package txshim

import "net"

// connEnded is false where POLLRDHUP is not known: a session whose client stopped reading ends
// with the client's connection.
func connEnded(net.Conn) bool { return false }

// connTaken cannot tell here whether the other end of a connection reads.
func connTaken(net.Conn) (uint64, bool) { return 0, false }
