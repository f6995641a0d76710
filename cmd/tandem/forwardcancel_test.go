package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSwitchoverForwardFollowsCaller: a switchover asked of the backup is forwarded to the
// master. The forward was made without the caller's context: an operator who gave up (Ctrl-C,
// or their own timeout) left the backup asking the master for up to forwardTimeout, and the
// master then started the handover nobody waited for any more. The forward must end when the
// caller's request does.
func TestSwitchoverForwardFollowsCaller(t *testing.T) {
	t.Parallel()
	// The master's admin API is slow to answer; it reports whether its caller went away.
	gone := make(chan bool, 1)
	s2 := forwardPair(t, func(*sidecar) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
				gone <- true
			case <-time.After(2 * forwardTimeout):
				gone <- false
			}
		})
	})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	start := time.Now()
	s2.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/switchover", nil).WithContext(ctx))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the forwarded switchover answered %s after its caller went away (300 ms): %d %q", took, rec.Code, rec.Body.String())
	}
	select {
	case g := <-gone:
		if !g {
			t.Error("the master's admin API was still asked after the caller went away")
		}
	case <-time.After(3 * forwardTimeout):
		t.Error("the master's admin API was never asked")
	}
}
