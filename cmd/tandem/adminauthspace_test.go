package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tandem-ha/tandem/config"
)

// TestAdminAuthSpaces: the token may follow the scheme after more than one space ("Bearer
// s3cret" with two: RFC 9110 §11.4 writes credentials as auth-scheme 1*SP token68): the space
// after the first was taken for part of the token, and the right token refused (401). A token
// that is not the member's is still refused however it is spaced.
func TestAdminAuthSpaces(t *testing.T) {
	t.Parallel()
	s := &sidecar{cfg: &config.Config{Admin: config.Admin{Token: "s3cret"}}, log: slog.New(slog.DiscardHandler)}
	h := s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for header, want := range map[string]int{
		"Bearer  s3cret":   http.StatusOK,
		"Bearer    s3cret": http.StatusOK,
		"Bearer  wrong":    http.StatusUnauthorized,
		"Bearer  ":         http.StatusUnauthorized,
		"Bearer s3 cret":   http.StatusUnauthorized,
	} {
		req := httptest.NewRequest(http.MethodGet, "/status", nil)
		req.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("/status with %q: %d, want %d", header, rec.Code, want)
		}
	}
}
