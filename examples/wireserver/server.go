package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol modes of the -proxy flag.
const (
	proxyOff = "off"
	proxyV1  = "v1"
	proxyV2  = "v2"
	proxyAny = "any"
)

const (
	maxLine       = 64 << 10 // longest command line, without its newline
	headerTimeout = 10 * time.Second
	maxV1Header   = 107 // bytes of the longest PROXY v1 header, CRLF included (the spec)
	storeTimeout  = 10 * time.Second
	bulkChunk     = 256 << 10
	// maxKey bounds a key, a transfer id and an account, each a primary key with -dsn: a
	// PostgreSQL index entry holds at most 2704 bytes, which a longer one that does not
	// compress overflows. The in-memory store refuses them alike.
	maxKey = 1024
)

var (
	errLineTooLong = errors.New("line too long")
	// zeros is the payload SOURCE sends; it is never written to.
	zeros    = make([]byte, bulkChunk)
	sinkBufs = sync.Pool{New: func() any { b := make([]byte, bulkChunk); return &b }}
)

type options struct {
	name  string
	proxy string // off (or "") | v1 | v2 | any
	// trusted are the peers whose PROXY header is honoured; with a header required, a
	// connection from another is refused. Nil: loopback (defaultTrusted).
	trusted []netip.Prefix
	store   store // nil: a fresh in-memory map
	log     *slog.Logger
}

// defaultTrusted is the -proxy-trusted default: loopback, where the sidecar's proxy runs in
// the examples.
const defaultTrusted = "127.0.0.0/8,::1/128"

// parseTrusted reads a -proxy-trusted list: CIDRs or addresses, separated by commas.
func parseTrusted(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q: neither a CIDR nor an IP address", f)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("%q: give an IPv4-mapped network in IPv4 form", f)
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 {
		return nil, errors.New("no CIDR given")
	}
	return out, nil
}

// trustedPeer tells whether the peer at addr is one of trusted.
func trustedPeer(addr net.Addr, trusted []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// serve accepts connections on ln until ctx ends, then closes ln and every
// open connection and returns once all connection goroutines are gone.
func serve(ctx context.Context, ln net.Listener, o options) error {
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.store == nil {
		o.store = newMemStore()
	}
	if o.trusted == nil {
		var err error
		if o.trusted, err = parseTrusted(defaultTrusted); err != nil {
			return err
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
	)
	closeAll := func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer func() {
		stop()
		closeAll()
		wg.Wait()
	}()

	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Typically EMFILE: wait for connections to go away rather than die.
			o.log.Warn("accept", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		mu.Lock()
		if ctx.Err() != nil { // closeAll may already have run
			mu.Unlock()
			c.Close()
			return nil
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			handle(ctx, c, o)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		})
	}
}

// handle serves one connection: an optional PROXY header, then commands.
func handle(ctx context.Context, c net.Conn, o options) {
	br := bufio.NewReaderSize(c, 4096)
	client := c.RemoteAddr().String()
	if o.proxy != proxyOff && o.proxy != "" {
		// A header from anyone could claim any address: only a trusted peer may send one.
		if !trustedPeer(c.RemoteAddr(), o.trusted) {
			o.log.Debug("reject connection: a PROXY header is required and the peer is not trusted (-proxy-trusted)", "remote", client)
			return
		}
		h, err := readProxyHeader(c, br)
		if err == nil && (o.proxy == proxyV1 && h.Version != 1 || o.proxy == proxyV2 && h.Version != 2) {
			err = fmt.Errorf("PROXY header version %d, want %s", h.Version, o.proxy)
		}
		if err != nil {
			o.log.Debug("reject connection without a valid PROXY header", "remote", client, "err", err)
			return
		}
		if h.Command.IsProxy() && h.SourceAddr != nil {
			client = h.SourceAddr.String()
		}
	}
	log := o.log.With("client", client)
	log.Debug("connection open")
	for {
		line, err := readLine(br)
		if errors.Is(err, errLineTooLong) {
			io.WriteString(c, "ERR line too long\n")
			log.Debug("closed: line too long")
			return
		}
		if err != nil {
			log.Debug("connection closed", "err", err)
			return
		}
		if err := o.exec(ctx, c, br, line, client); err != nil {
			log.Debug("connection closed", "err", err)
			return
		}
	}
}

// readProxyHeader reads the PROXY header the connection must start with, allowing it
// headerTimeout. A client whose first bytes cannot begin a header (PING starts as "PROXY" does,
// but its second byte tells) is refused as soon as they arrive, not when the time is up.
// A header that arrives in pieces is read whole.
func readProxyHeader(c net.Conn, br *bufio.Reader) (*proxyproto.Header, error) {
	if err := c.SetReadDeadline(time.Now().Add(headerTimeout)); err != nil {
		return nil, err
	}
	for n := 1; ; n++ {
		if _, err := br.Peek(n); err != nil {
			return nil, fmt.Errorf("read PROXY header: %w", err)
		}
		b, _ := br.Peek(br.Buffered())
		v1 := startsSignature(b, sigV1)
		v2 := startsSignature(b, proxyproto.SIGV2)
		if !v1 && !v2 {
			return nil, proxyproto.ErrNoProxyProtocol
		}
		if v1 && len(b) >= len(sigV1) || v2 && len(b) >= len(proxyproto.SIGV2) {
			break
		}
		n = len(b)
	}
	// go-proxyproto takes a v1 header only when one read brought all of it; a sender may split
	// it (the spec asks receivers to bear that): have the line, or its longest, buffered first.
	for {
		b, _ := br.Peek(br.Buffered())
		if !bytes.HasPrefix(b, proxyproto.SIGV1) || bytes.IndexByte(b, '\n') >= 0 || len(b) >= maxV1Header {
			break
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, fmt.Errorf("read PROXY header: %w", err)
		}
	}
	h, err := proxyproto.Read(br)
	if err != nil {
		return nil, err
	}
	return h, c.SetReadDeadline(time.Time{})
}

// sigV1 is a v1 header's start: proxyproto.SIGV1 ("PROXY") and the space the spec puts after it.
var sigV1 = append(append([]byte{}, proxyproto.SIGV1...), ' ')

// startsSignature tells whether b, as far as it goes, is (or starts with) the signature sig.
func startsSignature(b, sig []byte) bool {
	return bytes.HasPrefix(sig, b[:min(len(b), len(sig))])
}

var errQuit = errors.New("client quit")

// exec runs one command line and writes its reply; an error ends the connection.
func (o options) exec(ctx context.Context, c net.Conn, br *bufio.Reader, line, client string) error {
	cmd, rest, _ := strings.Cut(line, " ")
	cmd = strings.ToUpper(cmd)
	reply := func(parts ...string) error {
		_, err := io.WriteString(c, strings.Join(parts, " ")+"\n")
		return err
	}
	switch cmd {
	case "PING":
		return reply("PONG", o.name)
	case "WHO":
		return reply("YOU", client, o.name)
	case "QUIT":
		reply("BYE")
		return errQuit
	case "SET", "GET", "DEL":
		k, v, hasV := strings.Cut(rest, " ")
		if k == "" || hasV != (cmd == "SET") {
			return reply("ERR usage: SET <k> <v> | GET <k> | DEL <k>")
		}
		if msg := badKey("key", k); msg != "" {
			return reply("ERR", msg)
		}
		if msg := badText("value", v); msg != "" {
			return reply("ERR", msg)
		}
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		var err error
		switch cmd {
		case "SET":
			err = o.store.Set(sctx, k, v)
		case "DEL":
			err = o.store.Del(sctx, k)
		case "GET":
			var ok bool
			if v, ok, err = o.store.Get(sctx, k); err == nil {
				if ok {
					return reply("VALUE", o.name, v)
				}
				return reply("NIL", o.name)
			}
		}
		if err != nil {
			o.log.Warn("store", "cmd", cmd, "err", err)
			return reply("ERR store failed")
		}
		return reply("OK", o.name)
	case "XFER":
		f := strings.Fields(rest)
		var amount int64
		var err error
		if len(f) == 4 {
			amount, err = strconv.ParseInt(f[3], 10, 64)
		}
		if len(f) != 4 || err != nil || amount <= 0 || f[1] == f[2] {
			return reply("ERR usage: XFER <id> <from> <to> <amount>")
		}
		for i, what := range []string{"id", "from", "to"} {
			if msg := badKey(what, f[i]); msg != "" {
				return reply("ERR", msg)
			}
		}
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		switch err := o.store.Transfer(sctx, f[0], f[1], f[2], amount); {
		case errors.Is(err, errDuplicate):
			return reply("ERR duplicate", f[0])
		case errors.Is(err, errOutOfRange):
			return reply("ERR", errOutOfRange.Error())
		case err != nil:
			o.log.Warn("store", "cmd", cmd, "err", err)
			return reply("ERR store failed")
		}
		return reply("OK", o.name)
	case "SINK", "SOURCE":
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n < 0 {
			return reply("ERR usage: SINK <n> | SOURCE <n>")
		}
		if cmd == "SINK" {
			buf := sinkBufs.Get().(*[]byte)
			defer sinkBufs.Put(buf)
			for left := n; left > 0; {
				r, err := br.Read((*buf)[:min(left, bulkChunk)])
				left -= int64(r)
				if err != nil {
					return fmt.Errorf("sink %d bytes, %d missing: %w", n, left, err)
				}
			}
			return reply("OK", o.name)
		}
		if err := reply("DATA", rest); err != nil {
			return err
		}
		for n > 0 {
			w, err := c.Write(zeros[:min(n, bulkChunk)])
			if err != nil {
				return fmt.Errorf("source: %w", err)
			}
			n -= int64(w)
		}
		return nil
	}
	return reply("ERR unknown command")
}

// badText says what keeps s, the argument what of a command, from being text that PostgreSQL
// stores (its text type takes UTF-8 without NUL bytes), or "" when nothing does. Both stores
// refuse such an argument alike: the in-memory one would keep what -dsn's could not.
func badText(what, s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return what + " holds a NUL byte"
	case !utf8.ValidString(s):
		return what + " is not UTF-8 text"
	}
	return ""
}

// badKey is badText for a key, a transfer id or an account, which is also at most maxKey bytes.
func badKey(what, s string) string {
	if len(s) > maxKey {
		return fmt.Sprintf("%s longer than %d bytes", what, maxKey)
	}
	return badText(what, s)
}

// readLine returns the next line without its "\n" or "\r\n", or
// errLineTooLong once more than maxLine bytes arrive without a newline.
func readLine(br *bufio.Reader) (string, error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == nil {
			line := string(append(long, frag...))
			line = strings.TrimSuffix(line[:len(line)-1], "\r")
			if len(line) > maxLine {
				return "", errLineTooLong
			}
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
		long = append(long, frag...)
		if len(long) > maxLine+1 { // +1: room for a trailing '\r'
			return "", errLineTooLong
		}
	}
}
