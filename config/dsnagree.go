package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
)

// clientsDisagree says what of dsn the shim's two database clients read differently, or "":
// pgx's pgconn (the shim's relayed and apply sessions; pc is its reading) and lib/pq (the
// control connections: install, term records, the resolver; txshim.OpenDB). Each reads the
// string its own way — pgconn as libpq does, lib/pq a URL through net/url — and a string read
// two ways connects the two kinds of connection differently: postgres://u@h/db?password=s3c;ret
// gave the sessions the password "s3c;ret" and the control connections none. What is compared
// is what a connection is made of: the hosts and ports and how each is reached, the user, the
// password, the database, sslmode and the TLS files, and the settings sent to the server. The
// first difference is named, with how to write the string so both read it alike; never a
// value (any may be part of the password).
func clientsDisagree(dsn string, pc *pgconn.Config) string {
	const differ = ": the database clients read it differently (the shim's sessions by pgx, the control connections by lib/pq)"
	isURL := strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
	if isURL {
		if msg := queryDisagrees(dsn); msg != "" {
			return msg
		}
	}
	qc, err := pq.NewConfig(dsn)
	if err != nil {
		return "" // dsnProblem says why
	}

	// Hosts and ports, each as it is reached: pgconn lists a host once per TLS attempt
	// (sslmode=prefer and allow try it twice).
	var pgTargets, pqTargets []dsnTarget
	for _, h := range append([]*pgconn.FallbackConfig{{Host: pc.Host, Port: pc.Port}}, pc.Fallbacks...) {
		network, addr := pgconn.NetworkAddress(h.Host, h.Port)
		t := dsnTarget{network, addr, h.Host, h.Port}
		if len(pgTargets) == 0 || pgTargets[len(pgTargets)-1] != t {
			pgTargets = append(pgTargets, t)
		}
	}
	qHosts := []pq.ConfigMultihost{{Host: qc.Host, Hostaddr: qc.Hostaddr, Port: qc.Port}}
	qHosts = append(qHosts, qc.Multi...)
	hostaddr := false
	for _, h := range qHosts {
		network, addr := pqNetwork(h)
		pqTargets = append(pqTargets, dsnTarget{network, addr, h.Host, h.Port})
		hostaddr = hostaddr || h.Hostaddr.IsValid()
	}
	if !slices.Equal(pgTargets, pqTargets) {
		switch {
		case hostaddr:
			return "hostaddr" + differ + ": pgx has no hostaddr setting, and sends it to the server as a setting of its own; give the address as host"
		case emptyHost(pgTargets, pqTargets):
			return "host" + differ + ": a host left out or empty is the default Unix socket directory for pgx, localhost for lib/pq; give each host (a socket directory such as /var/run/postgresql, or an address)"
		case isURL && slices.ContainsFunc(qHosts, func(h pq.ConfigMultihost) bool { return strings.HasPrefix(h.Host, "[") }):
			return "host" + differ + ": lib/pq keeps the brackets of an IPv6 host written without a port; give the port (postgres://user@[::1]:5432/db)"
		case isURL && slices.ContainsFunc(qHosts, func(h pq.ConfigMultihost) bool {
			return strings.Contains(h.Host, ":") && !strings.Contains(h.Host, "::")
		}):
			return "host" + differ + ": lib/pq takes host:port,host:port for host names; list the hosts, and the ports as ?port= (postgres://user@h1,h2/db?port=5432,5433)"
		case slices.ContainsFunc(qHosts, func(h pq.ConfigMultihost) bool { return strings.HasPrefix(h.Host, "@") }):
			return "host" + differ + ": a host starting with '@' is an abstract Unix socket for lib/pq, a host name for pgx; give a socket directory (an absolute path) or a host name"
		case qc.Service != "":
			return "host" + differ + ": the service's settings override the string's for lib/pq, the string's win for pgx; give the host and port in one of them only"
		case isURL:
			return "host" + differ + ": give the hosts and ports once, in the URL or as ?host= and ?port=, not both"
		}
		return "host" + differ
	}

	switch {
	case pc.User != qc.User:
		switch {
		case qc.Service != "":
			return "user" + differ + ": the service's settings override the string's for lib/pq, the string's win for pgx; give the user in one of them only"
		case qc.User == "":
			return "user" + differ + ": an empty user is the operating system user's name for pgx, none for lib/pq; give the user, or leave it out"
		case isURL:
			return "user" + differ + ": give the user once, before the host or as ?user=, not both"
		}
		return "user" + differ
	case pc.Password != qc.Password && (qc.Password != "" || stringPassword(dsn, isURL) != ""):
		// pgconn reads the passfile (~/.pgpass) when the string gives no password, lib/pq only
		// when it connects: a difference only where the string (or the service, or
		// $PGPASSWORD) gives one.
		switch {
		case qc.Service != "":
			return "password" + differ + ": the service's settings override the string's for lib/pq, the string's win for pgx; give the password in one of them only"
		case isURL:
			return "password" + differ + ": give it once, percent-encoded (" + urlHint + ")"
		}
		return "password" + differ + ": " + kvSpaceHint
	case pc.Database != qc.Database:
		if qc.Service != "" {
			return "dbname" + differ + ": the service's settings override the string's for lib/pq, the string's win for pgx; give the database in one of them only"
		}
		return "dbname" + differ
	}

	// sslmode, as the first host is reached: lib/pq without one requires TLS, pgx prefers it.
	pgMode := tlsMode(pc, pgTargets[0].host, pgTargets[0].port)
	pqMode := string(qc.SSLMode)
	if pqMode == string(pq.SSLModeRequire) && qc.SSLRootCert != "" && qc.SSLRootCert != "system" {
		pqMode = string(pq.SSLModeVerifyCA) // as libpq: require with a root certificate verifies the chain
	}
	if pqMode == "" && (pgMode == "prefer" || pgMode == "require") {
		pqMode = pgMode
	}
	if pgMode != pqMode {
		if qc.Service != "" {
			return "sslmode" + differ + ": the service's settings override the string's for lib/pq, the string's win for pgx; give sslmode in one of them only"
		}
		return "sslmode" + differ
	}
	if msg := tlsFilesDisagree(pc, qc, differ); msg != "" {
		return msg
	}

	// The settings sent to the server at start-up: pgconn sends every one it does not read
	// itself, lib/pq likewise its own others (its Runtime), and options and application_name.
	pgParams := maps.Clone(pc.RuntimeParams)
	pqParams := maps.Clone(qc.Runtime)
	if pqParams == nil {
		pqParams = map[string]string{}
	}
	if qc.Options != "" {
		pqParams["options"] = qc.Options
	}
	if qc.ApplicationName != "" {
		pqParams["application_name"] = qc.ApplicationName
	}
	// lib/pq takes these only as pgx sends them (UTF8, ISO, MDY), and sends them itself.
	for _, k := range []string{"client_encoding", "datestyle"} {
		delete(pgParams, k)
		delete(pqParams, k)
	}
	keys := slices.Sorted(maps.Keys(pgParams))
	for k := range pqParams {
		if _, ok := pgParams[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	// lib/pq takes fallback_application_name for application_name: named for what was written.
	if i := slices.Index(keys, "fallback_application_name"); i > 0 {
		keys = slices.Insert(slices.Delete(keys, i, i+1), 0, "fallback_application_name")
	}
	for _, k := range keys {
		pgv, inPg := pgParams[k]
		pqv, inPq := pqParams[k]
		name := k
		if !settingName(k) {
			name = "a setting"
		}
		switch {
		case inPg && !inPq:
			return name + differ + ": pgx sends it to the server as a server setting, lib/pq takes it for one of its own or ignores it; leave it out, of the string and of the PG* environment variables"
		case k == "sslpassword" && !inPg && inPq:
			return name + differ + ": lib/pq cannot decrypt a key, and sends the password to the server as a server setting; give an unencrypted sslkey, without sslpassword"
		case !inPg && inPq:
			return name + differ + ": lib/pq sends it to the server as a server setting, pgx takes it for one of its own; leave it out, of the string and of the PG* environment variables"
		case pgv != pqv:
			return name + differ
		}
	}
	return ""
}

// kvSpaceHint says how to write a key=value value both clients read alike.
const kvSpaceHint = "lib/pq ends an unquoted value at any space (a no-break space as well), pgx at an ASCII one; single-quote the value"

// settingName tells a name that may be shown as it is: a setting's, not a piece of a value.
func settingName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// pqNetwork is how lib/pq reaches h: a hostaddr when given, an absolute path or a name starting
// with '@' as a Unix socket, and any other host (an empty one too) over TCP.
func pqNetwork(h pq.ConfigMultihost) (string, string) {
	port := strconv.Itoa(int(h.Port))
	if h.Hostaddr.IsValid() {
		return "tcp", h.Hostaddr.String() + ":" + port
	}
	if filepath.IsAbs(h.Host) || strings.HasPrefix(h.Host, "@") {
		return "unix", filepath.Join(h.Host, ".s.PGSQL."+port)
	}
	_, addr := pgconn.NetworkAddress(h.Host, h.Port)
	return "tcp", addr
}

// emptyHost tells whether the first host the clients read differently is one left out or
// written empty: pgconn takes the default Unix socket directory for it, lib/pq localhost (or,
// for an empty first host, TCP to the local host).
func emptyHost(pg, q []dsnTarget) bool {
	for i := range min(len(pg), len(q)) {
		if pg[i] != q[i] {
			return q[i].host == "" || q[i].host == "localhost" && pg[i].network == "unix"
		}
	}
	return false
}

// dsnTarget is a host of a connection string as a client reaches it.
type dsnTarget struct {
	network, addr string
	host          string
	port          uint16
}

// stringPassword is the password pgconn reads from dsn (or the service, or $PGPASSWORD) without
// the passfile: dsn with passfile set to the null device.
func stringPassword(dsn string, isURL bool) string {
	switch {
	case !isURL:
		dsn += " passfile=" + os.DevNull
	case strings.Contains(dsn, "?"):
		dsn += "&passfile=" + os.DevNull
	default:
		dsn += "?passfile=" + os.DevNull
	}
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return pc.Password
}

// tlsMode is the sslmode pgconn connects to host:port with, read from the TLS configurations
// it tries in turn.
func tlsMode(pc *pgconn.Config, host string, port uint16) string {
	var confs []*tls.Config
	for _, h := range append([]*pgconn.FallbackConfig{{Host: pc.Host, Port: pc.Port, TLSConfig: pc.TLSConfig}}, pc.Fallbacks...) {
		if h.Host == host && h.Port == port {
			confs = append(confs, h.TLSConfig)
		}
	}
	switch {
	case len(confs) == 2 && confs[0] == nil:
		return "allow"
	case len(confs) == 2:
		return "prefer"
	case len(confs) == 0 || confs[0] == nil:
		return "disable"
	case !confs[0].InsecureSkipVerify:
		return "verify-full"
	case confs[0].VerifyPeerCertificate != nil:
		return "verify-ca"
	}
	return "require"
}

// tlsFilesDisagree says whether the root certificates and the client certificate lib/pq takes
// from the files it names are the ones pgconn read; only for files lib/pq is given by name.
func tlsFilesDisagree(pc *pgconn.Config, qc pq.Config, differ string) string {
	conf := pc.TLSConfig
	if conf == nil || qc.SSLInline {
		return ""
	}
	hint := "give it once"
	if qc.Service != "" {
		hint = "the service's settings override the string's for lib/pq, the string's win for pgx; give it in one of them only"
	}
	if f := qc.SSLRootCert; f != "" && f != "system" {
		if b, err := os.ReadFile(f); err == nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) || conf.RootCAs == nil || !pool.Equal(conf.RootCAs) {
				return "sslrootcert" + differ + ": " + hint
			}
		}
	}
	if f := qc.SSLCert; f != "" && qc.SSLKey != "" {
		if b, err := os.ReadFile(f); err == nil {
			blk, _ := pem.Decode(b)
			if blk == nil || len(conf.Certificates) == 0 || len(conf.Certificates[0].Certificate) == 0 ||
				!bytes.Equal(blk.Bytes, conf.Certificates[0].Certificate[0]) {
				return "sslcert" + differ + ": " + hint
			}
		}
	}
	return ""
}

// queryDisagrees says which parameter of the URL dsn's query net/url (lib/pq) reads otherwise
// than libpq's rules (pgconn): a pair holding ';' or a '%' without two hex digits after it, which
// net/url drops; a '+', a space for net/url; one given twice, whose first value net/url takes
// and pgconn its last.
func queryDisagrees(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	seen := map[string]string{}
	for pair := range strings.SplitSeq(u.RawQuery, "&") {
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, kerr := libpqDecode(rawKey)
		name := key
		if kerr != nil || !settingName(key) {
			name = "a parameter"
		}
		value, verr := libpqDecode(rawValue)
		vals, perr := url.ParseQuery(pair)
		switch {
		case perr != nil || strings.Contains(pair, ";"):
			return name + ": lib/pq (the control connections) skips the parameter: net/url, which reads its URL, drops one holding ';' or a '%' not followed by two hex digits; write ';' as %3B and '%' as %25"
		case kerr != nil || verr != nil:
			return "" // pgconn refuses it: dsnProblem says why
		case strings.Contains(pair, "+"):
			return name + ": lib/pq reads a '+' in a URL parameter as a space, pgx as '+'; write '+' as %2B (and a space as %20)"
		case len(vals) != 1 || vals.Get(key) != value:
			return name + ": the database clients read it differently (the shim's sessions by pgx, the control connections by lib/pq): percent-encode it (" + urlHint + ")"
		}
		if prev, ok := seen[key]; ok && prev != value {
			return name + ": given twice: lib/pq takes its first value, pgx its last; give it once"
		}
		seen[key] = value
	}
	return ""
}

// libpqDecode percent-decodes a URL component as libpq (and pgconn) does: spaces around it
// skipped, '+' kept as it is.
func libpqDecode(s string) (string, error) {
	s = strings.Trim(s, " ")
	if strings.Contains(s, " ") {
		return "", fmt.Errorf("space")
	}
	return url.PathUnescape(s)
}
