package txshim

import (
	"bufio"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/text/unicode/norm"
)

const (
	scramMechanism  = "SCRAM-SHA-256"
	scramIterations = 4096 // PostgreSQL's default scram_iterations
)

var errAuthFailed = errors.New("authentication failed")

// authenticate runs client authentication: trust when Options.Users is nil, else
// SCRAM-SHA-256 (RFC 5802, RFC 7677) against the configured password of the startup user.
// Channel binding is not offered. Passwords are prepared with SASLprep as PostgreSQL prepares
// them (saslprep), so that a client that normalizes a non-ASCII password (libpq, pgx) gets in
// with it as into PostgreSQL. Unknown users go through a full exchange with a random salt, so
// a client cannot tell them from a wrong password.
func (s *Shim) authenticate(cr *frameReader, cw *bufio.Writer, user string) error {
	if s.opts.Users == nil {
		return nil // AuthenticationOk goes with the greeting
	}
	password, known := s.opts.Users[user]
	fail := func(err error) error {
		writeFatal(cw, "28P01", fmt.Sprintf("password authentication failed for user %q", user))
		return fmt.Errorf("client %q: %w", user, err)
	}
	send := func(m pgproto3.BackendMessage) error {
		buf, err := m.Encode(nil)
		if err != nil {
			return err
		}
		if _, err := cw.Write(buf); err != nil {
			return err
		}
		return cw.Flush()
	}
	if err := send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}}); err != nil {
		return err
	}
	typ, body, err := cr.next()
	if err != nil {
		return err
	}
	if typ != 'p' {
		return fail(fmt.Errorf("expected SASLInitialResponse, got %q", typ))
	}
	var first pgproto3.SASLInitialResponse
	if err := first.Decode(body); err != nil {
		return fail(err)
	}
	if first.AuthMechanism != scramMechanism {
		return fail(fmt.Errorf("mechanism %q not offered", first.AuthMechanism))
	}
	sc, err := newScramServer(string(first.Data), password)
	if err != nil {
		return fail(err)
	}
	if err := send(&pgproto3.AuthenticationSASLContinue{Data: []byte(sc.serverFirst)}); err != nil {
		return err
	}
	typ, body, err = cr.next()
	if err != nil {
		return err
	}
	if typ != 'p' {
		return fail(fmt.Errorf("expected SASLResponse, got %q", typ))
	}
	var final pgproto3.SASLResponse
	if err := final.Decode(body); err != nil {
		return fail(err)
	}
	serverFinal, err := sc.finish(string(final.Data))
	if err != nil || !known {
		if err == nil {
			err = errAuthFailed
		}
		return fail(err)
	}
	return send(&pgproto3.AuthenticationSASLFinal{Data: []byte(serverFinal)})
}

// scramServer is the server side of one SCRAM-SHA-256 exchange.
type scramServer struct {
	clientFirstBare string
	gs2Header       string
	nonce           string // client nonce + server nonce
	serverFirst     string
	salted          []byte
}

func newScramServer(clientFirst, password string) (*scramServer, error) {
	// client-first-message = gs2-header client-first-message-bare
	// gs2-header = ("n" | "y" | "p=" cb-name) "," [authzid] ","
	parts := strings.SplitN(clientFirst, ",", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed client-first-message")
	}
	switch {
	case parts[0] == "n" || parts[0] == "y":
	case strings.HasPrefix(parts[0], "p="):
		return nil, errors.New("channel binding requested but not offered")
	default:
		return nil, errors.New("malformed gs2 header")
	}
	if parts[1] != "" {
		return nil, errors.New("authorization identity not supported")
	}
	bare := parts[2]
	var cnonce string
	for _, attr := range strings.Split(bare, ",") {
		if strings.HasPrefix(attr, "r=") {
			cnonce = attr[2:]
		}
		if strings.HasPrefix(attr, "m=") {
			return nil, errors.New("mandatory extension not supported")
		}
	}
	if cnonce == "" {
		return nil, errors.New("client nonce missing")
	}
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, err
	}
	sc := &scramServer{
		clientFirstBare: bare,
		gs2Header:       parts[0] + "," + parts[1] + ",",
		nonce:           cnonce + base64.StdEncoding.EncodeToString(raw[:]),
	}
	sc.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", sc.nonce, base64.StdEncoding.EncodeToString(salt[:]), scramIterations)
	salted, err := pbkdf2.Key(sha256.New, saslprep(password), salt[:], scramIterations, sha256.Size)
	if err != nil {
		return nil, err
	}
	sc.salted = salted
	return sc, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// finish checks client-final-message and returns server-final-message.
func (sc *scramServer) finish(clientFinal string) (string, error) {
	// client-final-message = "c=" base64(gs2-header) ",r=" nonce ["," extensions] ",p=" proof
	i := strings.LastIndex(clientFinal, ",p=")
	if i < 0 {
		return "", errors.New("client proof missing")
	}
	withoutProof := clientFinal[:i]
	proof, err := base64.StdEncoding.DecodeString(clientFinal[i+3:])
	if err != nil || len(proof) != sha256.Size {
		return "", errors.New("malformed client proof")
	}
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(sc.gs2Header)) {
		return "", errors.New("channel binding data mismatch")
	}
	if attrs[1] != "r="+sc.nonce {
		return "", errors.New("nonce mismatch")
	}
	authMessage := sc.clientFirstBare + "," + sc.serverFirst + "," + withoutProof
	clientKey := hmacSHA256(sc.salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	sig := hmacSHA256(stored[:], authMessage)
	got := make([]byte, len(proof))
	for k := range proof {
		got[k] = proof[k] ^ sig[k]
	}
	gotStored := sha256.Sum256(got)
	if subtle.ConstantTimeCompare(gotStored[:], stored[:]) != 1 {
		return "", errAuthFailed
	}
	serverKey := hmacSHA256(sc.salted, "Server Key")
	return "v=" + base64.StdEncoding.EncodeToString(hmacSHA256(serverKey, authMessage)), nil
}

// saslprep prepares a password as PostgreSQL does before it derives a SCRAM secret from it
// (pg_saslprep, RFC 4013 SASLprep), and as libpq does before it hashes the password it sends: an
// ASCII password as it is; else non-ASCII spaces mapped to a space, what is commonly mapped to
// nothing removed, the result in Unicode normalization form NFKC. A password that is no valid
// UTF-8, that is empty once mapped, or whose result holds a prohibited or unassigned (in
// Unicode 3.2) code point or breaks the bidirectional rule, is used as it is, as PostgreSQL
// and libpq use it.
func saslprep(password string) string {
	ascii := true
	for i := 0; i < len(password); i++ {
		if password[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii || !utf8.ValidString(password) {
		return password
	}
	mapped := make([]rune, 0, len(password))
	for _, r := range password {
		switch {
		case unicode.Is(saslprepSpace, r):
			mapped = append(mapped, ' ')
		case unicode.Is(saslprepToNothing, r):
		default:
			mapped = append(mapped, r)
		}
	}
	if len(mapped) == 0 {
		// Nothing left once mapped: PostgreSQL's pg_saslprep takes an empty password for
		// prohibited, and it and libpq use the password as it is.
		return password
	}
	out := norm.NFKC.String(string(mapped))
	var randAL, l bool
	for _, r := range out {
		if unicode.Is(saslprepProhibited, r) || unicode.Is(saslprepUnassigned, r) {
			return password
		}
		randAL = randAL || unicode.Is(saslprepRandAL, r)
		l = l || unicode.Is(saslprepL, r)
	}
	if randAL {
		// RFC 3454 section 6: no L character, and an R or AL character first and last.
		first, _ := utf8.DecodeRuneInString(out)
		last, _ := utf8.DecodeLastRuneInString(out)
		if l || !unicode.Is(saslprepRandAL, first) || !unicode.Is(saslprepRandAL, last) {
			return password
		}
	}
	return out
}
