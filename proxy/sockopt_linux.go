package proxy

import (
	"cmp"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// setUserTimeout sets TCP_USER_TIMEOUT (userTimeout) on a socket; a failure only loses
// that bound.
func setUserTimeout(rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(userTimeout/time.Millisecond))
	})
	return cmp.Or(err, serr)
}

// fdLimit returns the process's open-file limit (RLIMIT_NOFILE, the soft one: Go raises it to
// the hard one at start).
func fdLimit() (uint64, bool) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return r.Cur, true
}
