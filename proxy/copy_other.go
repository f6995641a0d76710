//go:build !linux

package proxy

import "net"

// copyStream is io.Copy where splice(2) is not known (copyCounted).
func copyStream(dst, src *net.TCPConn, _ chan struct{}) (int64, bool, error) {
	return copyCounted(dst, src)
}
