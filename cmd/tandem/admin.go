package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandem-ha/tandem/gossip"
)

// status is the JSON of GET /status.
type status struct {
	Site        string                `json:"site"`
	Kind        string                `json:"kind"`
	Role        string                `json:"role"` // gossip.Role's String: "starting" before the first decision
	Term        uint64                `json:"term"`
	Record      recordStatus          `json:"record"`
	Master      string                `json:"master"`
	Reason      string                `json:"reason"`
	Decision    string                `json:"decision"`
	RoleChanges uint64                `json:"role_changes"`
	Cold        bool                  `json:"cold"`
	SplitBrain  uint64                `json:"split_brain"`
	Members     []gossip.MemberStatus `json:"members"`
	Proxy       *proxyStatus          `json:"proxy,omitempty"`
	TxShim      *dbStatus             `json:"txshim,omitempty"`
	Uptime      string                `json:"uptime"`
}

// recordStatus is the term record the member holds (DESIGN §3).
type recordStatus struct {
	Term       uint64 `json:"term"`
	Master     string `json:"master"`
	PeerSynced bool   `json:"peer_synced"`
}

type proxyStatus struct {
	Active    int64 `json:"active"`
	Total     int64 `json:"total"`
	Refused   int64 `json:"refused"`
	Cut       int64 `json:"cut"`
	Idle      int64 `json:"idle"`
	BytesUp   int64 `json:"bytes_up"`
	BytesDown int64 `json:"bytes_down"`
}

func (s *sidecar) status() status {
	st := s.node.State()
	out := status{
		Site: s.cfg.Site, Kind: kindName(s.cfg.Kind), Role: st.Role.String(), Term: st.Term, Master: st.Master,
		Record: recordStatus{Term: st.Record.Term, Master: st.Record.Master, PeerSynced: st.Record.PeerSynced},
		Reason: st.Reason, Decision: st.Decision, RoleChanges: st.RoleChanges, Cold: st.Cold, SplitBrain: st.SplitBrain, Members: st.Members,
		Uptime: time.Since(s.start).Round(time.Second).String(),
	}
	if s.proxy != nil {
		ps := s.proxy.Stats()
		out.Proxy = &proxyStatus{Active: ps.Active, Total: ps.Total, Refused: ps.Refused, Cut: ps.Cut, Idle: ps.Idle, BytesUp: ps.BytesUp, BytesDown: ps.BytesDown}
	}
	if s.db != nil {
		ds := s.db.status()
		out.TxShim = &ds
	}
	return out
}

func (s *sidecar) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.status())
	})
	// For external load balancers: 200 on the member in that role, 503 elsewhere. A master
	// whose shim is fenced by the peer database's term record (fenceByPeer) answers 503 too:
	// it stays master in the gossip for as long as its term does, but refuses new sessions
	// and writes, and a load balancer must not send the clients there (TestAdminMasterFenced).
	roleCheck := func(want gossip.Role) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			st := s.node.State()
			if st.Role != want {
				http.Error(w, st.Role.String(), http.StatusServiceUnavailable)
				return
			}
			if want == gossip.RoleMaster && s.db != nil {
				if why := s.db.fencedBy(s.db.shim.Mode()); why != "" {
					http.Error(w, st.Role.String()+", fenced (it takes no writes): "+why, http.StatusServiceUnavailable)
					return
				}
			}
			fmt.Fprintln(w, st.Role)
		}
	}
	mux.HandleFunc("GET /master", roleCheck(gossip.RoleMaster))
	mux.HandleFunc("GET /backup", roleCheck(gossip.RoleBackup))
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("POST /switchover", s.switchover)
	mux.HandleFunc("POST /promote", s.promote)
	mux.HandleFunc("POST /split-brain/clear", s.clearSplitBrain)
	mux.HandleFunc("POST /resync", s.resync)
	return s.guard(s.auth(queryOnly(mux)))
}

// queryOnly refuses a POST that carries a body: the admin API takes its arguments in the query
// string and reads no body (noBody), so a form (curl -d to=site2) or JSON sent there was ignored
// in silence, and the request served as if it named nothing: a switchover to whichever site was
// best rather than the one named. Only a request mux serves: one for a path it does not serve,
// or with a method the path does not take, gets mux's 404, or its 405 with the Allow header —
// refused first for its body, a POST to /status was told the arguments were the trouble
// (TestAdminMethodBeforeBody).
func queryOnly(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			mux.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodPost && r.ContentLength != 0 { // -1: chunked, of unknown length
			http.Error(w, "the admin API reads no request body: give the arguments in the query string (POST /switchover?to=SITE, POST /promote?force=1)", http.StatusBadRequest)
			return
		}
		if r.Method == http.MethodPost {
			if msg := badQuery(r); msg != "" {
				http.Error(w, msg, http.StatusBadRequest)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// postQuery names the query parameters each POST path takes, and how (for the refusal).
var postQuery = map[string]struct {
	names []string
	usage string
}{
	"/switchover":        {[]string{"to"}, "to=SITE, or nothing for the best other site"},
	"/promote":           {[]string{"force", "accept_loss"}, "force=1 or accept_loss=TERM"},
	"/resync":            {nil, "nothing"},
	"/split-brain/clear": {nil, "nothing"},
}

// badQuery says what is wrong with a POST's query parameters, "" when nothing is: a parameter
// the path does not take (POST /switchover?site=site2), one given twice, or to= given empty
// (a script's $SITE left empty). Ignored, they turned a request into another one: a handover
// to whichever site was best, not the one meant (TestAdminRefusesUnknownQuery).
func badQuery(r *http.Request) string {
	takes, ok := postQuery[r.URL.Path]
	if !ok {
		return ""
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Sprintf("POST %s: its query string %q cannot be read (%v): it takes %s", r.URL.Path, r.URL.RawQuery, err, takes.usage)
	}
	for name, vs := range q {
		switch {
		case !slices.Contains(takes.names, name):
			return fmt.Sprintf("POST %s takes %s, not %q", r.URL.Path, takes.usage, name)
		case len(vs) > 1:
			return fmt.Sprintf("POST %s takes %s, each once: %s is given %d times", r.URL.Path, takes.usage, name, len(vs))
		case name == "to" && vs[0] == "":
			return fmt.Sprintf("POST %s takes %s: to is empty", r.URL.Path, takes.usage)
		}
	}
	return ""
}

// adminReadTimeout bounds how long the admin API waits for a request's header, and for a body
// it does not read (noBody); adminIdleTimeout how long a kept-alive connection may stay idle
// (a variable for the tests).
const adminReadTimeout = 5 * time.Second

var adminIdleTimeout = time.Minute

// noBody answers a request that carries a body, which no path of the admin API reads (a POST
// with one is refused: queryOnly), without
// waiting for that body, and closes its connection: net/http reads what the handler left
// before it answers, and again before the connection can serve another request, without a
// deadline, so a client that announced a body and never finished it held the connection for
// ever, and got no answer.
func noBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 { // -1: chunked, of unknown length
			w.Header().Set("Connection", "close")
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(adminReadTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// guard keeps web pages out: a browser on the member's host reaches its loopback admin API, which
// without a token trusts whoever does (DESIGN §6). A cross-origin POST is refused (a page could
// otherwise force a promotion), and, without a token, so is a request whose Host is a name rather
// than an IP address or localhost: a page whose name was rebound to 127.0.0.1 (DNS rebinding)
// counts as same-origin, but its requests carry its own name.
func (s *sidecar) guard(next http.Handler) http.Handler {
	tokenless := s.cfg.Admin.Token == ""
	return http.NewCrossOriginProtection().Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No Host at all (HTTP/1.0, as a load balancer's health check) is no browser's request:
		// a browser always names the host it asks.
		if tokenless && r.URL.Path != "/healthz" && r.Host != "" && !addressHost(r.Host) { // /healthz tells nothing
			http.Error(w, fmt.Sprintf("refused: Host %q is not an IP address or localhost (without admin.token_file, only requests to the admin address itself are served)", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// addressHost reports whether host (host or host:port, from a request's Host header) is an IP
// address or localhost, or names no host at all (":7180", as tandem status -admin :7180 sends
// it: this host, and no page's name).
func addressHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		if h == "" {
			return true
		}
		host = h
	}
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil || strings.EqualFold(host, "localhost")
}

// auth requires the bearer token (when one is configured) on everything but /healthz.
func (s *sidecar) auth(next http.Handler) http.Handler {
	token := s.cfg.Admin.Token
	if token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scheme's name is case-insensitive (RFC 9110 §11.1): "bearer" is as good as "Bearer".
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		// One or more spaces after it (1*SP, RFC 9110 §11.4): the others are no part of the
		// token either (TestAdminAuthSpaces).
		got = strings.TrimLeft(got, " ")
		// The token file's byte order mark, which config drops, is no part of the token either
		// when a client read the file as it is (Prometheus's credentials_file, "$(cat FILE)").
		got = strings.TrimPrefix(got, "\ufeff")
		if r.URL.Path != "/healthz" && (!ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tandem"`) // required of a 401 (RFC 9110 §15.5.2)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// metrics writes the Prometheus text format by hand: a handful of gauges and
// counters do not justify a client library.
func (s *sidecar) metrics(w http.ResponseWriter, r *http.Request) {
	st := s.node.State()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	metric := func(name, typ, help string, samples ...string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, sm := range samples {
			fmt.Fprintf(w, "%s%s\n", name, sm)
		}
	}
	// Starting too: a member waiting at cold start holds no other role, maybe for long.
	roles := []gossip.Role{gossip.RoleStarting, gossip.RoleMaster, gossip.RoleBackup, gossip.RoleFenced, gossip.RoleWitness}
	var rs []string
	for _, role := range roles {
		v := 0
		if st.Role == role {
			v = 1
		}
		rs = append(rs, fmt.Sprintf(`{role=%q} %d`, role, v))
	}
	metric("tandem_role", "gauge", "1 for the role this member holds.", rs...)
	metric("tandem_term", "gauge", "The current term.", fmt.Sprintf(" %d", st.Term))
	metric("tandem_split_brain", "gauge", "The term in which this site committed alone while another took a newer term (0: none).", fmt.Sprintf(" %d", st.SplitBrain))
	metric("tandem_role_changes_total", "counter", "Role changes of this member.", fmt.Sprintf(" %d", st.RoleChanges))
	alive := 0
	for _, m := range st.Members {
		if m.Alive {
			alive++
		}
	}
	metric("tandem_members_alive", "gauge", "Members this member sees alive, itself included.", fmt.Sprintf(" %d", alive))
	if s.proxy != nil {
		ps := s.proxy.Stats()
		metric("tandem_proxy_connections_active", "gauge", "Operator connections being proxied.", fmt.Sprintf(" %d", ps.Active))
		metric("tandem_proxy_connections_total", "counter", "Operator connections accepted.", fmt.Sprintf(" %d", ps.Total))
		metric("tandem_proxy_connections_refused_total", "counter", "Operator connections closed without reaching a server: refused by the PROXY rules, no master within connect_timeout, the client gone before it was forwarded (a load balancer's TCP health check counts here), shutdown while waiting.", fmt.Sprintf(" %d", ps.Refused))
		metric("tandem_proxy_connections_cut_total", "counter", "Connections cut because their server lost the master role.", fmt.Sprintf(" %d", ps.Cut))
		metric("tandem_proxy_connections_idle_total", "counter", "Connections closed by proxy.idle_timeout.", fmt.Sprintf(" %d", ps.Idle))
		metric("tandem_proxy_bytes_total", "counter", "Bytes proxied by connections that have ended.",
			fmt.Sprintf(`{direction="up"} %d`, ps.BytesUp), fmt.Sprintf(`{direction="down"} %d`, ps.BytesDown))
	}
	if s.db != nil {
		ds := s.db.status()
		var ms []string
		for _, m := range []string{"dual", "solo", "read-only", "fenced"} {
			v := 0
			if ds.Mode == m {
				v = 1
			}
			ms = append(ms, fmt.Sprintf(`{mode=%q} %d`, m, v))
		}
		metric("tandem_txshim_mode", "gauge", "1 for the shim's mode.", ms...)
		metric("tandem_txshim_peer_synced", "gauge", "1 while the peer database has every commit.", fmt.Sprintf(" %d", boolInt(ds.PeerSynced)))
		metric("tandem_txshim_backlog", "gauge", "Transactions known not to be on the peer database yet.", fmt.Sprintf(" %d", ds.Backlog))
		metric("tandem_txshim_needs_resync", "gauge", "1 when the peer database needs resync: it refused a shipped transaction (diverged), or the slot lost WAL it lacked.", fmt.Sprintf(" %d", boolInt(ds.NeedsResync != "")))
		if v := ds.Verify; v != nil && v.Error == "" {
			metric("tandem_txshim_verify_differences", "gauge", "Differences the comparison of both databases after the last catch-up found (0: identical).", fmt.Sprintf(" %d", len(v.Differences)))
		}
		if ds.SlotRetainedBytes != nil {
			metric("tandem_txshim_slot_retained_bytes", "gauge", "WAL the local replication slot holds back.", fmt.Sprintf(" %d", *ds.SlotRetainedBytes))
			if ds.SlotSafeBytes != nil {
				metric("tandem_txshim_slot_safe_bytes", "gauge", "WAL that may still be written before PostgreSQL invalidates the slot (max_slot_wal_keep_size).", fmt.Sprintf(" %d", *ds.SlotSafeBytes))
			}
		}
		metric("tandem_txshim_in_doubt", "gauge", "Prepared transactions the master's last resolver pass left for an operator (tandem resolve); 0 on a site that is not master.", fmt.Sprintf(" %d", ds.InDoubt))
		metric("tandem_txshim_sessions_active", "gauge", "Client sessions of the shim.", fmt.Sprintf(" %d", ds.SessionsActive))
		metric("tandem_txshim_commits_total", "counter", "Write transactions committed, by how.",
			fmt.Sprintf(`{kind="dual"} %d`, ds.CommitsDual), fmt.Sprintf(`{kind="solo"} %d`, ds.CommitsSolo),
			fmt.Sprintf(`{kind="plain"} %d`, ds.CommitsPlain), fmt.Sprintf(`{kind="unwrapped"} %d`, ds.Unwrapped))
		metric("tandem_txshim_peer_errors_total", "counter", "Dual commits whose peer prepare failed.", fmt.Sprintf(" %d", ds.PeerErrors))
		metric("tandem_txshim_refused_total", "counter", "Write commits refused by mode or term.", fmt.Sprintf(" %d", ds.Refused))
		metric("tandem_txshim_left_in_doubt_total", "counter", "Commits left prepared for the resolver, their client told 08007.", fmt.Sprintf(" %d", ds.LeftInDoubt))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// switchover starts a handover on the master. Asked of a member that is not
// the master, it forwards the request to the master's admin API (once: a
// forwarded request is never forwarded again).
func (s *sidecar) switchover(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("to")
	st := s.node.State()
	if st.Role != gossip.RoleMaster && st.Master != "" && r.Header.Get(forwardedHeader) == "" {
		for _, m := range st.Members {
			if m.Site != st.Master || m.Admin == "" {
				continue
			}
			// The whole forward, the lookup of a host name in the master's admin address
			// included, within forwardTimeout: the caller must get this answer, not its own
			// timeout.
			ctx, cancel := context.WithTimeout(r.Context(), forwardTimeout)
			defer cancel()
			addr, err := peerAdmin(ctx, m.Admin, m.Addr)
			if err != nil {
				http.Error(w, fmt.Sprintf("cannot forward to the master %s: %v", m.Site, err), http.StatusBadGateway)
				return
			}
			c := &adminClient{base: adminURL(addr), token: s.cfg.Admin.Token, http: newAdminHTTP(forwardTimeout)}
			var out strings.Builder
			if err := c.doContext(ctx, http.MethodPost, "/switchover?"+r.URL.RawQuery, &out, forwardedHeader); err != nil {
				// The master's refusal is the answer (an unknown site, none ready); 502 is for a
				// master this member could not ask (unreachable, or its token is not this one's).
				var re *replyError
				if errors.As(err, &re) && re.code == http.StatusConflict {
					http.Error(w, fmt.Sprintf("the master %s: %s", m.Site, re.msg), http.StatusConflict)
					return
				}
				http.Error(w, fmt.Sprintf("forwarded to the master %s at %s: %v", m.Site, m.Admin, err), http.StatusBadGateway)
				return
			}
			fmt.Fprint(w, out.String())
			return
		}
	}
	if err := s.node.Switchover(to); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	fmt.Fprintf(w, "%s%s\n", saidSwitchover, s.cfg.Site)
}

// peerAdmin is where to reach a peer's admin API, published as admin (its admin.listen),
// from this host: a wildcard host is the peer's gossip address (gossip, ip:port); a
// loopback one — an IP, or a name that reaches only loopback from here, as localhost — is
// out of reach unless the peer's gossip address is on this host's loopback too (both sites on
// one machine). Else admin as it is.
func peerAdmin(ctx context.Context, admin, gossip string) (string, error) {
	host, port, err := net.SplitHostPort(admin)
	if err != nil {
		return "", fmt.Errorf("its admin address %q: %w", admin, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		// A host name: as the operator configured it, unless it names this host's loopback
		// here (config takes admin.listen = "localhost:7180" as loopback, needing no token):
		// the request, with this member's token, would go to this host's own port.
		if !loopbackName(ctx, host) {
			return admin, nil
		}
		ip = netip.IPv6Loopback()
	}
	g, gerr := netip.ParseAddrPort(gossip)
	switch {
	case ip.IsUnspecified():
		if gerr != nil {
			return "", fmt.Errorf("its admin API listens on %s and its gossip address is unknown", admin)
		}
		return net.JoinHostPort(g.Addr().Unmap().String(), port), nil
	case ip.IsLoopback() && (gerr != nil || !g.Addr().Unmap().IsLoopback()):
		return "", fmt.Errorf("its admin API listens on loopback (%s) on another host: run the command there, or give it an admin.listen this host reaches", admin)
	}
	return admin, nil
}

// loopbackName tells whether a host name reaches only this host's loopback from here:
// localhost and the names under .localhost always (RFC 6761), another name when every address
// it resolves to is loopback. A name that does not resolve is not: the request then fails on
// its own.
func loopbackName(ctx context.Context, host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ips, err := lookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			return false
		}
	}
	return true
}

// lookupNetIP looks a host name up (a variable for the tests).
var lookupNetIP = defaultLookupNetIP

func defaultLookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

// promote lifts this site's cold-start wait (tandem promote -force, DESIGN §3): a site that
// started without seeing anyone who knows a newer term may then take the master role alone,
// if it otherwise qualifies.
//
// With accept_loss=T instead (tandem promote -accept-loss T) it is an operator's word that the
// master of term T, the newest term, is lost for good: the site may take control though its
// database lacks what that master committed alone (gossip.Node.AcceptLoss), and what it lacks
// is lost. It lifts the cold-start wait too.
func (s *sidecar) promote(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	loss := q.Get("accept_loss")
	if q.Get("force") != "1" && loss == "" {
		http.Error(w, "promote needs force=1 (it ignores the cold-start wait) or accept_loss=TERM", http.StatusBadRequest)
		return
	}
	var term uint64
	if loss != "" {
		var err error
		if term, err = strconv.ParseUint(loss, 10, 64); err != nil || term == 0 {
			http.Error(w, "accept_loss needs the term whose lost master's commits may be lost (a positive number; tandem status shows it)", http.StatusBadRequest)
			return
		}
	}
	if s.proxy == nil {
		http.Error(w, "a witness never becomes master", http.StatusConflict)
		return
	}
	st := s.node.State()
	switch {
	case loss != "" && st.Role == gossip.RoleMaster:
		http.Error(w, fmt.Sprintf("%s is master of term %d already: nothing to accept", s.cfg.Site, st.Term), http.StatusConflict)
		return
	case loss != "":
		if err := s.node.AcceptLoss(term); err != nil {
			http.Error(w, "accept_loss refused: "+err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintf(w, "%s"+saidLossAccepted+"%d committed that this site's database lacks is accepted; "+
			"this site may take control without it\n", s.cfg.Site, term)
	case !st.Cold || st.Role == gossip.RoleMaster:
		http.Error(w, notForced(s.cfg.Site, st), http.StatusConflict)
		return
	default:
		s.node.Force()
		fmt.Fprintf(w, "%s"+saidForced+"%d; whatever another site committed after that term is lost if that site is master elsewhere\n", s.cfg.Site, st.Term)
	}
	// The site may still wait for another rule (no majority, fence_delay, or not current once
	// it sees a newer term): say so rather than let the operator believe it took control. No
	// decision yet is no answer either: right after the force a cold site is backup for a
	// moment with none, before the round that says what it waits for.
	waiting := func(d string) bool {
		return d == "" || strings.HasPrefix(d, "cold start") || (loss != "" && strings.HasPrefix(d, "not current"))
	}
	// A client that goes away ends the watch (TestPromoteClientGone).
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
watch:
	for {
		st = s.node.State()
		if st.Role == gossip.RoleMaster || !waiting(st.Decision) {
			break
		}
		select {
		case <-ctx.Done():
			break watch
		case <-tick.C:
		}
	}
	if st.Role != gossip.RoleMaster && st.Decision != "" && (loss != "" || !strings.HasPrefix(st.Decision, "cold start")) {
		fmt.Fprintf(w, "%s still waits: %s\n", s.cfg.Site, st.Decision)
	}
}

// notForced says why promote -force does nothing on a site that is not waiting at cold start,
// and, when the site waits because it is not current, that -force never overrides that: its
// database lacks commits of the newest term's master (DESIGN §3 rule 2).
func notForced(site string, st gossip.State) string {
	if st.Role == gossip.RoleMaster {
		return fmt.Sprintf("%s is master of term %d already: nothing to force", site, st.Term)
	}
	msg := fmt.Sprintf("%s is not waiting at cold start (role %s): nothing to force", site, st.Role)
	if st.Decision == "" {
		return msg
	}
	msg += "; it waits because: " + st.Decision
	if strings.HasPrefix(st.Decision, "not current") {
		msg += ". -force does not override that (DESIGN.md §3 rule 2): this site's database lacks what the master of the newest term " +
			"committed alone or later, and taking control here would lose it for good. Bring that site back (its sidecar and database): " +
			"it catches this database up or hands over. tandem status there shows its term and peer_synced. " +
			"Only if that site is lost for good: tandem promote -accept-loss TERM (the newest term) takes control here and loses what it lacks"
	}
	return msg
}

// resync re-seeds the peer database from the master's (DESIGN §5.5). It answers when done;
// a client that goes away cancels it (the peer's copy is rolled back).
func (s *sidecar) resync(w http.ResponseWriter, r *http.Request) {
	if s.db == nil {
		http.Error(w, "no [txshim] configured", http.StatusConflict)
		return
	}
	if err := s.db.resync(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	fmt.Fprintf(w, "%s"+saidResynced+"; dual commit resumed\n", s.cfg.Site)
}

// clearSplitBrain is an operator's word that this site's split brain (DESIGN §3) is dealt with.
func (s *sidecar) clearSplitBrain(w http.ResponseWriter, r *http.Request) {
	term, err := s.node.ClearSplitBrain()
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	fmt.Fprintf(w, "%s"+saidSplitBrainCleared+"%d cleared; failback to this site is allowed again\n", s.cfg.Site, term)
}

// What a member says when it did what a POST asked (each command's reply holds one of its own):
// the CLI checks for them, as it checks a status (tandemStatus), so that another HTTP server
// answering 200 at the address given is not taken for the member having done it.
const (
	saidSwitchover        = "switchover started on the master "
	saidForced            = ": cold-start wait lifted at term "
	saidLossAccepted      = ": the loss of what the master of term "
	saidResynced          = ": the peer database holds a copy of the application tables"
	saidSplitBrainCleared = ": split brain of term "
)

// forwardTimeout bounds a switchover a backup forwards to the master (which answers at once: the
// handover goes on after its answer). It is shorter than the operator's own request
// (cliTimeout), so that the command gets the backup's answer naming the master it could not
// reach, rather than a timeout of its own that names nothing.
const forwardTimeout = cliTimeout / 2

// forwardedHeader marks a switchover request one member forwarded to another.
const forwardedHeader = "X-Tandem-Forwarded"

// adminMaxConns bounds the connections the admin API holds at once: each is a file descriptor
// of the sidecar's, which the proxy, the shim and the gossip need too, and a client could
// otherwise keep as many open as it liked (/healthz needs no token, a request a minute keeps one
// alive). Its clients (an operator's command, a backup's forward, a monitor, load balancers'
// checks) need a handful; one beyond the bound waits to be accepted until another closes.
const adminMaxConns = 128

// limitListener accepts at most cap(slots) connections open at once: Accept waits, until one
// of them is closed, or the listener is.
type limitListener struct {
	net.Listener
	slots  chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close closes the listener, and ends an Accept waiting for a connection to close.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitConn gives its slot back when closed, once however often it is.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
