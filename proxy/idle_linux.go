package proxy

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

const idleSupported = true

// tcpInfo reads c's TCP_INFO.
func tcpInfo(c *net.TCPConn) (*unix.TCPInfo, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, false
	}
	var info *unix.TCPInfo
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || gerr != nil {
		return nil, false
	}
	return info, true
}

// sinceData returns how long ago c's socket last sent or received data, as
// the kernel tracks it (tcpi_last_data_sent, tcpi_last_data_recv).
func sinceData(c *net.TCPConn) (time.Duration, bool) {
	info, ok := tcpInfo(c)
	if !ok {
		return 0, false
	}
	ms := min(info.Last_data_sent, info.Last_data_recv)
	return time.Duration(ms) * time.Millisecond, true
}

// stalled reports whether c's peer has left what c sent it without any ACK for limit
// (stalledInfo). A socket whose state cannot be read is not.
func stalled(c *net.TCPConn, limit time.Duration) bool {
	info, ok := tcpInfo(c)
	return ok && stalledInfo(info, limit)
}

// stalledInfo: segments retransmitted without an answer (tcpi_retransmits), or two window
// probes (tcpi_probes: a peer may leave one unanswered, as it rate-limits its replies to
// them), and no ACK for limit (tcpi_last_ack_recv). A peer that only closed its receive
// window answers the probes (each answer zeroes tcpi_probes and is an ACK); keepalive
// probes of an idle connection count too, and a live idle peer answers them.
func stalledInfo(info *unix.TCPInfo, limit time.Duration) bool {
	return (info.Retransmits > 0 || info.Probes > 1) && time.Duration(info.Last_ack_recv)*time.Millisecond >= limit
}

// idleAtDrainEnd reports whether no byte moved between the proxy and the server up for at
// least d, and the server's last bytes came after the last it was sent: no request of the
// operator's awaits its reply (finishDrain). A socket whose state cannot be read is not idle.
func idleAtDrainEnd(up *net.TCPConn, d time.Duration) bool {
	info, ok := tcpInfo(up)
	if !ok {
		return false
	}
	sinceRecv := time.Duration(info.Last_data_recv) * time.Millisecond
	sinceSent := time.Duration(info.Last_data_sent) * time.Millisecond
	return sinceRecv >= d && sinceSent >= sinceRecv
}

// sentSince reports whether c's peer sent data that arrived after t, as the kernel tracks it
// (tcpi_last_data_recv, in jiffies: a margin keeps bytes that came just before t out). A
// socket whose state cannot be read has not.
func sentSince(c *net.TCPConn, t time.Time) bool {
	info, ok := tcpInfo(c)
	if !ok {
		return false
	}
	last := time.Now().Add(-time.Duration(info.Last_data_recv) * time.Millisecond)
	return last.After(t.Add(20 * time.Millisecond))
}
