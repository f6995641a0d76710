package proxy

import "sync/atomic"

// Stats are the proxy's counters since New. Bytes, Cut and Idle are added when
// a connection ends, so a long-lived connection shows up in BytesUp and
// BytesDown only once it closes, and a cut one in Cut once its handler is
// done (before Active drops).
type Stats struct {
	Active    int64 // connections open now, including those waiting for a master
	Total     int64 // connections accepted
	Refused   int64 // connections closed without reaching a server: PROXY rules, no master within connect_timeout, the client gone first (a TCP health check), shutdown while waiting
	BytesUp   int64 // operator to server, PROXY headers excluded
	BytesDown int64 // server to operator
	Cut       int64 // connections closed because the master changed
	Idle      int64 // connections closed by idle_timeout
}

type counters struct {
	active, total, refused, bytesUp, bytesDown, cut, idle atomic.Int64
}

// Stats returns a snapshot of the counters; each is read atomically, the set
// is not one instant.
func (s *Server) Stats() Stats {
	return Stats{
		Active:    s.stats.active.Load(),
		Total:     s.stats.total.Load(),
		Refused:   s.stats.refused.Load(),
		BytesUp:   s.stats.bytesUp.Load(),
		BytesDown: s.stats.bytesDown.Load(),
		Cut:       s.stats.cut.Load(),
		Idle:      s.stats.idle.Load(),
	}
}
