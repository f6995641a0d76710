package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminRefusesUnknownQuery: a POST's query parameters the path does not take, or one it
// takes given twice, or to= given empty, are refused (400), naming what the path takes: they
// were ignored in silence, and POST /switchover?site=site2 (or ?to=$SITE with SITE empty, as
// tandem switchover "" refuses) asked for a handover to whichever site was best, not the one
// meant, as a form in the body did (TestAdminRefusesBody). What the paths take is served as
// before.
func TestAdminRefusesUnknownQuery(t *testing.T) {
	t.Parallel()
	h := tokenlessAdmin(t)
	for _, path := range []string{
		"/switchover?site=site2",
		"/switchover?To=site2",
		"/switchover?to=",
		"/switchover?to=site2&to=site3",
		"/promote?force=1&term=3",
		"/resync?to=site2",
		"/split-brain/clear?term=3",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180"+path, nil))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "takes") {
			t.Errorf("POST %s: %d %q; want 400 saying what the path takes", path, rec.Code, rec.Body.String())
		}
	}
	for _, path := range []string{"/switchover?to=site2", "/switchover", "/promote?force=1", "/resync", "/split-brain/clear"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180"+path, nil))
		if rec.Code == http.StatusBadRequest {
			t.Errorf("POST %s: %d %q; want it served", path, rec.Code, rec.Body.String())
		}
	}
}
