package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminRefusesBody: the admin API takes its arguments in the query string and reads no
// body. A form (curl -d to=site2, which POSTs it as application/x-www-form-urlencoded) was
// ignored in silence: POST /switchover with to=site2 in its body handed control to whichever
// site was best, and POST /promote with force=1 there answered that it needs force=1. A POST
// with a body is refused (400), saying where the arguments go.
func TestAdminRefusesBody(t *testing.T) {
	t.Parallel()
	h := tokenlessAdmin(t)
	for _, tc := range []struct{ path, body, ctype string }{
		{"/switchover", "to=site2", "application/x-www-form-urlencoded"},
		{"/promote", "force=1", "application/x-www-form-urlencoded"},
		{"/switchover", `{"to":"site2"}`, "application/json"},
		{"/split-brain/clear", "x", ""},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180"+tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "query") {
			t.Errorf("POST %s with body %q (%s): %d %q; want 400 saying the arguments go in the query string", tc.path, tc.body, tc.ctype, rec.Code, rec.Body.String())
		}
	}
	// Without a body (curl -X POST, or curl -d '': Content-Length 0) it is served as before.
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/promote?force=1", nil),
		httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/promote?force=1", strings.NewReader("")),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusConflict { // a member without a proxy: a witness never becomes master
			t.Errorf("POST /promote?force=1 without a body: %d %q; want 409", rec.Code, rec.Body.String())
		}
	}
}

// TestAdminMethodBeforeBody: a POST with a body to a path served only for GET (a form posted
// to /status, say) is a wrong method, answered as every other one is: 405 with the Allow
// header. The body check ran before the router and answered 400, as though the arguments had
// been the trouble. A POST with a body to a path that does not exist is likewise 404.
func TestAdminMethodBeforeBody(t *testing.T) {
	t.Parallel()
	h := tokenlessAdmin(t)
	for _, path := range []string{"/status", "/healthz", "/metrics", "/master"} {
		for _, body := range []string{"", "x=1"} {
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180"+path, strings.NewReader(body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Header().Get("Allow"), http.MethodGet) {
				t.Errorf("POST %s with body %q: %d, Allow %q; want 405 allowing GET", path, body, rec.Code, rec.Header().Get("Allow"))
			}
		}
	}
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/nowhere", strings.NewReader("x=1"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("POST /nowhere with a body: %d; want 404", rec.Code)
	}
}
